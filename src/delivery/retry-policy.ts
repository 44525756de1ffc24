/**
 * The retry policy, pure (no I/O, no clock, no randomness of its own: callers pass `nowMs` and a
 * random number in [0, 1)). Runs on the delivery thread; unit-tested in test/unit/retry-policy.test.ts.
 *
 *   outcome of one attempt ──classify──▶ success | dead | retry
 *   retry + series attempt k ──decide──▶ retry after delays[k-1] ±20% (or Retry-After, ≤ 10 min)
 *                                        or dead_letter when k > delays.length
 *
 * `k` is the 1-based attempt index within the current retry series (events.series_attempt), so a
 * redelivery starts a fresh series while `attempts` keeps counting.
 */

/** How one attempt ended. `aborted` means this node cut it short at shutdown (not the receiver's fault). */
export type AttemptKind = 'success' | 'http' | 'timeout' | 'network' | 'refused' | 'aborted'

/**
 * The outcome of one attempt (fixed shape, STYLE C7): `status` is 0 when no response arrived. The rest
 * is what the attempt log records (the contract, docs/api.md "Delivery attempts").
 */
export class AttemptResult {
  readonly kind: AttemptKind
  readonly status: number
  /** A short description for last_error (never a payload or a secret), or null on success. */
  readonly error: string | null
  /** The raw Retry-After header of a non-2xx response, or null. */
  readonly retryAfter: string | null
  /** ms since the epoch when the attempt started */
  readonly startedAt: number
  /** From handing the request to a connection to the last byte read (or the error). */
  readonly durationMs: number
  /** JSON text of the kept response headers, or null. */
  readonly headers: string | null
  /** The response body excerpt, or null when no response arrived. */
  readonly body: string | null
  readonly truncated: boolean

  constructor (kind: AttemptKind, status: number, error: string | null, retryAfter: string | null,
    startedAt = 0, durationMs = 0, headers: string | null = null, body: string | null = null, truncated = false) {
    this.kind = kind
    this.status = status
    this.error = error
    this.retryAfter = retryAfter
    this.startedAt = startedAt
    this.durationMs = durationMs
    this.headers = headers
    this.body = body
    this.truncated = truncated
  }
}

export type Classification = 'success' | 'dead' | 'retry'

/** 2xx is success; 410 Gone stops at once; everything else (3xx, 4xx, 5xx, timeouts, connection errors) retries. */
export function classify (r: AttemptResult): Classification {
  if (r.kind === 'success' || (r.kind === 'http' && r.status >= 200 && r.status < 300)) return 'success'
  if (r.kind === 'http' && r.status === 410) return 'dead'
  return 'retry'
}

export const JITTER = 0.2
export const RETRY_AFTER_CAP_MS = 10 * 60 * 1000

/** `ms` scaled by a factor in [0.8, 1.2) chosen by `random` ∈ [0, 1). */
export function jittered (ms: number, random: number): number {
  return Math.round(ms * (1 - JITTER + 2 * JITTER * random))
}

const SECONDS_RE = /^\s*(\d{1,10})\s*$/
// Every HTTP-date form (IMF-fixdate, RFC 850, asctime) starts with a day name; Date.parse alone
// would accept things like "-5" or "1.5".
const HTTP_DATE_RE = /^\s*[A-Za-z]{3}/

/**
 * Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP date. Returns milliseconds from `nowMs`,
 * capped at 10 minutes, never negative; null when absent or unparsable.
 */
export function parseRetryAfter (value: string | null, nowMs: number): number | null {
  if (value === null) return null
  const m = SECONDS_RE.exec(value)
  let ms: number
  if (m !== null) {
    ms = Number(m[1]) * 1000
  } else {
    if (!HTTP_DATE_RE.test(value)) return null
    const at = Date.parse(value)
    if (Number.isNaN(at)) return null
    ms = at - nowMs
  }
  return Math.min(Math.max(ms, 0), RETRY_AFTER_CAP_MS)
}

export type Verdict = 'delivered' | 'retry' | 'dead'

/** What to write back for an attempt. `delayMs` is the wait before the next attempt, or -1 for none. */
export class Decision {
  readonly verdict: Verdict
  readonly delayMs: number
  constructor (verdict: Verdict, delayMs: number) {
    this.verdict = verdict
    this.delayMs = delayMs
  }
}

const DELIVERED = new Decision('delivered', -1)
const DEAD = new Decision('dead', -1)

/**
 * Decides the next step after attempt `seriesAttempt` (1-based) of the current series. With delays
 * [d1 … dn] there are n retries: attempt k ≤ n that fails is retried after dk (jittered), or after
 * the receiver's Retry-After when it sent a valid one (honoured as given, capped, no jitter);
 * attempt n+1 that fails is dead.
 */
export function decide (r: AttemptResult, seriesAttempt: number, delays: readonly number[], nowMs: number, random: number): Decision {
  const c = classify(r)
  if (c === 'success') return DELIVERED
  if (c === 'dead') return DEAD
  const k = seriesAttempt < 1 ? 1 : seriesAttempt
  const base = delays[k - 1]
  if (base === undefined) return DEAD
  const retryAfter = parseRetryAfter(r.retryAfter, nowMs)
  return new Decision('retry', retryAfter !== null ? retryAfter : jittered(base, random))
}
