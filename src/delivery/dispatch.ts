/**
 * One webhook attempt over HTTP (delivery thread), on undici's dispatcher API: a single Agent keeps a
 * keep-alive Pool per origin (dropped by undici when idle), and each attempt is a fixed-shape handler
 * object (`Flight`) given straight to `dispatch` — no Response object, body stream, promise or
 * AbortController per attempt (those were ~5% of the thread's CPU in a profile of a backlog drain).
 *
 * Invariants:
 *   - The whole attempt is bounded by DELIVERY_TIMEOUT_MS: undici's connect, headers and body timeouts,
 *     plus one ticker that sweeps the attempts in flight and aborts those past their deadline (no timer
 *     per attempt, STYLE C9).
 *   - Redirects are never followed (plain Agent, no interceptor): a 3xx is a failed attempt.
 *   - At most ATTEMPT_BODY_EXCERPT_BYTES of the response body are read: past that the request is
 *     aborted (the connection is dropped), so a receiver answering gigabytes costs nothing.
 *   - Only content-type, content-length, retry-after and location are kept of the response headers.
 *   - Unless private targets are allowed, every connection goes through webhooks/ssrf.ts guardedLookup,
 *     and an IP-literal host is checked here before any socket is opened (outcome `blocked`).
 *   - Every attempt ends in exactly one call of `Settler.settled` with its AttemptResult.
 * The request is exactly the contract's (docs/api.md "Webhook delivery"): JSON body `{"id","type","data","timestamp"}` with the stored
 * payload text spliced in (never re-parsed), the Standard Webhooks headers signed with each of the
 * endpoint's secrets, and X-Endpoint-ID; with tracing on, also the `traceparent` of the attempt's span
 * (docs/tracing.md). With tracing off the headers are exactly those: one flag, decided at construction.
 */
import { isIP } from 'node:net'
import { Agent } from 'undici'
import { VERSION } from '../version.ts'
import type { ClaimedDelivery } from '../db/queries/claim-deliveries.ts'
import { AttemptResult, type AttemptKind } from './retry-policy.ts'
import { signatureHeader } from '../webhooks/signing.ts'
import { guardedLookup, isPublicAddress, NonPublicAddressError, urlHost } from '../webhooks/ssrf.ts'
import { NOOP_TRACER, type AttemptSpan, type Tracer } from '../tracing/tracer.ts'

const KEEP_ALIVE_MS = 4000
/** At most this much of a failure's body goes into last_error. */
const LAST_ERROR_BYTES = 1024

export const USER_AGENT = 'triggers-api/' + VERSION

// Header values must be visible ASCII; an event type outside that is sent percent-encoded (the body
// always carries the exact type).
const HEADER_SAFE = /^[\x20-\x7e]*$/

/** The delivery body, built by splicing the stored payload JSON text. */
export function deliveryBody (d: ClaimedDelivery): string {
  return '{"id":"' + d.eventId + '","type":' + JSON.stringify(d.type) + ',"data":' + d.payload +
    ',"timestamp":"' + d.createdAt.toISOString() + '"}'
}

/**
 * A webhook URL parsed once (the scheduler caches these per URL string): what every attempt to it
 * needs, precomputed — the origin for the pool, the request path, and whether the SSRF rule refuses an
 * IP-literal host outright.
 */
export class Target {
  readonly origin: string
  readonly path: string
  readonly href: string
  /** An IP-literal host that is not public (refused without a connection unless private targets are allowed). */
  readonly privateLiteral: boolean
  constructor (u: URL) {
    this.origin = u.origin
    this.path = u.pathname + u.search
    this.href = u.href
    const host = urlHost(u)
    this.privateLiteral = isIP(host) !== 0 && !isPublicAddress(host)
  }
}

/** The request headers of an attempt signed at `nowS` (unix seconds), as an undici flat list. */
export function requestHeaders (d: ClaimedDelivery, nowS: number, body: string): string[] {
  return [
    'content-type', 'application/json',
    'user-agent', USER_AGENT,
    'x-event-id', d.eventId,
    'x-event-type', HEADER_SAFE.test(d.type) ? d.type : encodeURIComponent(d.type),
    'x-delivery-attempt', String(d.attempts),
    'x-endpoint-id', d.endpointId,
    'webhook-id', d.eventId,
    'webhook-timestamp', String(nowS),
    'webhook-signature', signatureHeader(d.secrets, d.eventId, nowS, body),
  ]
}

/** Receives every finished attempt (the scheduler), with the attempt's span to end (null: tracing off). */
export interface Settler {
  settled (d: ClaimedDelivery, r: AttemptResult, span: AttemptSpan | null): void
}

export interface DispatcherOptions {
  readonly timeoutMs: number
  /** Connections per origin (undici pool size); many endpoints may share one origin. */
  readonly connectionsPerOrigin: number
  readonly allowPrivate: boolean
  readonly excerptBytes: number
  /** The delivery thread's tracer (default NOOP_TRACER: no spans, no traceparent header). */
  readonly tracer?: Tracer
}

const NOT_ABORTED = 0
const TIMED_OUT = 1
const SHUTDOWN = 2
const CUT_SHORT = 3 // the body passed the excerpt: not an error

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'])
const KEPT_HEADERS = new Set(['content-type', 'content-length', 'retry-after', 'location'])

function codeOf (err: unknown): string | null {
  if (err !== null && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code
  return null
}

function isNonPublic (err: unknown): boolean {
  let e: unknown = err
  for (let depth = 0; depth < 5 && e !== null && typeof e === 'object'; depth++) {
    if (e instanceof NonPublicAddressError) return true
    e = 'cause' in e ? e.cause : null
  }
  return false
}

/** The excerpt as text: UTF-8 with invalid bytes replaced (U+FFFD), NUL removed (PostgreSQL text cannot hold it). */
function excerptText (chunks: Buffer[], bytes: number): string {
  const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes)
  const s = buf.toString('utf8')
  return s.includes('\u0000') ? s.replace(/\u0000/g, '') : s
}

/**
 * One attempt in flight: the undici handler (legacy callback form, taken by the dispatcher as is) and
 * everything the result needs. Every field is set in the constructor (STYLE C7).
 */
class Flight {
  readonly d: ClaimedDelivery
  readonly owner: Dispatcher
  readonly startedAt: number
  readonly deadline: number
  /** performance.now() when the request was handed to a connection (0 until then). */
  sentAt: number
  abortFn: ((err?: Error) => void) | null
  reason: number
  status: number
  retryAfter: string | null
  headers: string | null
  chunks: Buffer[]
  bytes: number
  truncated: boolean
  done: boolean
  /** The attempt's span (null: tracing off). */
  readonly span: AttemptSpan | null

  constructor (d: ClaimedDelivery, owner: Dispatcher, startedAt: number, deadline: number, span: AttemptSpan | null) {
    this.d = d
    this.span = span
    this.owner = owner
    this.startedAt = startedAt
    this.deadline = deadline
    this.sentAt = 0
    this.abortFn = null
    this.reason = NOT_ABORTED
    this.status = 0
    this.retryAfter = null
    this.headers = null
    this.chunks = []
    this.bytes = 0
    this.truncated = false
    this.done = false
  }

  abort (reason: number): void {
    if (this.reason !== NOT_ABORTED || this.done) return
    this.reason = reason
    if (this.abortFn !== null) this.abortFn()
  }

  // ── undici handler ──
  onConnect (abort: (err?: Error) => void): void {
    this.abortFn = abort
    this.sentAt = performance.now()
    if (this.reason !== NOT_ABORTED) abort()
  }

  onHeaders (statusCode: number, raw: Buffer[]): boolean {
    this.status = statusCode
    let kept: Record<string, string> | null = null
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const nameBuf = raw[i]!
      if (nameBuf.length > 14 || nameBuf.length < 8) continue
      const name = nameBuf.toString('latin1').toLowerCase()
      if (!KEPT_HEADERS.has(name)) continue
      const value = raw[i + 1]!.toString('latin1')
      if (name === 'retry-after') this.retryAfter = value
      ;(kept ??= {})[name] = value
    }
    this.headers = kept === null ? null : JSON.stringify(kept)
    return true
  }

  onData (chunk: Buffer): boolean {
    const room = this.owner.excerptBytes - this.bytes
    if (chunk.length > room) {
      if (room > 0) { this.chunks.push(chunk.subarray(0, room)); this.bytes += room }
      this.truncated = true
      this.abort(CUT_SHORT)
      return false
    }
    this.chunks.push(chunk)
    this.bytes += chunk.length
    return true
  }

  onComplete (): void {
    this.finish(null)
  }

  onError (err: Error): void {
    this.finish(err)
  }

  finish (err: Error | null): void {
    if (this.done) return
    this.done = true
    this.owner.finished(this, err)
  }
}

export class Dispatcher {
  readonly #agent: Agent
  readonly #timeoutMs: number
  readonly #allowPrivate: boolean
  readonly #settler: Settler
  readonly excerptBytes: number
  readonly #flights = new Set<Flight>()
  #ticker: NodeJS.Timeout | null
  readonly #tracer: Tracer
  /** Tracing is on: each attempt gets a span and sends its traceparent. */
  readonly #traced: boolean

  constructor (o: DispatcherOptions, settler: Settler) {
    this.#timeoutMs = o.timeoutMs
    this.#allowPrivate = o.allowPrivate
    this.#settler = settler
    this.#tracer = o.tracer ?? NOOP_TRACER
    this.#traced = this.#tracer.on
    this.excerptBytes = o.excerptBytes
    this.#agent = new Agent({
      connections: o.connectionsPerOrigin,
      keepAliveTimeout: KEEP_ALIVE_MS,
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      connect: o.allowPrivate ? { timeout: o.timeoutMs } : { timeout: o.timeoutMs, lookup: guardedLookup },
    })
    const tickMs = Math.min(100, Math.max(5, Math.floor(o.timeoutMs / 10)))
    this.#ticker = setInterval(sweepDeadlines, tickMs, this.#flights)
    this.#ticker.unref()
  }

  get inFlight (): number { return this.#flights.size }

  /** Starts one attempt of `d` to `target`; the result arrives at the settler. */
  attempt (d: ClaimedDelivery, target: Target): void {
    const startedAt = Date.now()
    if (!this.#allowPrivate && target.privateLiteral) {
      this.#settler.settled(d, new AttemptResult('refused', 0, 'refused: webhook host is a non-public address', null, startedAt, 0, null, null, false),
        this.#traced ? this.#tracer.attempt(d, startedAt) : null)
      return
    }
    const body = deliveryBody(d)
    const headers = requestHeaders(d, Math.floor(startedAt / 1000), body)
    const span = this.#traced ? this.#tracer.attempt(d, startedAt) : null
    if (span !== null) headers.push('traceparent', span.traceparent)
    const flight = new Flight(d, this, startedAt, startedAt + this.#timeoutMs, span)
    this.#flights.add(flight)
    this.#agent.dispatch({ origin: target.origin, path: target.path, method: 'POST', headers, body }, flight)
  }

  /** Called by a Flight when it ends (exactly once). */
  finished (f: Flight, err: Error | null): void {
    this.#flights.delete(f)
    const duration = f.sentAt === 0 ? 0 : performance.now() - f.sentAt
    this.#settler.settled(f.d, err === null || f.reason === CUT_SHORT ? this.#responseResult(f, duration) : this.#errorResult(f, err, duration), f.span)
  }

  #responseResult (f: Flight, duration: number): AttemptResult {
    const status = f.status
    const body = f.bytes === 0 && !f.truncated ? '' : excerptText(f.chunks, f.bytes)
    if (status >= 200 && status < 300) return new AttemptResult('success', status, null, null, f.startedAt, duration, f.headers, body, f.truncated)
    const note = status >= 300 && status < 400 ? ' (redirects are not followed)' : ''
    const snippet = body.length > LAST_ERROR_BYTES ? body.slice(0, LAST_ERROR_BYTES) : body
    return new AttemptResult('http', status, 'HTTP ' + String(status) + note + (snippet === '' ? '' : ': ' + snippet), f.retryAfter,
      f.startedAt, duration, f.headers, body, f.truncated)
  }

  #errorResult (f: Flight, err: Error, duration: number): AttemptResult {
    let kind: AttemptKind
    let message: string
    const code = codeOf(err)
    if (f.reason === SHUTDOWN) {
      kind = 'aborted'
      message = 'attempt interrupted by shutdown'
    } else if (f.reason === TIMED_OUT || (code !== null && TIMEOUT_CODES.has(code))) {
      kind = 'timeout'
      message = `timeout: no complete response within ${this.#timeoutMs} ms`
    } else if (isNonPublic(err)) {
      kind = 'refused'
      message = 'refused: webhook host resolves to a non-public address'
    } else {
      kind = 'network'
      const m = err.message
      message = code === null ? `connection error: ${m}` : (m.includes(code) ? m : `${code}: ${m}`)
    }
    // A response that started and then failed still tells the status it had (rare): keep the error.
    return new AttemptResult(kind, 0, message, null, f.startedAt, kind === 'refused' ? 0 : duration, null, null, false)
  }

  /** Cuts every in-flight attempt short (shutdown); their results come back as 'aborted'. */
  abortAll (): void {
    for (const f of this.#flights) f.abort(SHUTDOWN)
  }

  /** Stops the ticker and closes every connection. Call after in-flight attempts have settled. */
  async close (): Promise<void> {
    if (this.#ticker !== null) clearInterval(this.#ticker)
    this.#ticker = null
    await this.#agent.destroy()
  }
}

function sweepDeadlines (flights: Set<Flight>): void {
  const now = Date.now()
  for (const f of flights) if (now >= f.deadline) f.abort(TIMED_OUT)
}
