/**
 * One operation of the document as HTTP: builds the URL from the path template and query, sends it
 * with fetch, turns the answer into the typed body or an error, and retries what may be retried.
 *
 * The retry rule (README "Retries"):
 * - 429 `rate_limit_exceeded` is retried for every request: the service refuses it before doing
 *   anything (no event stored, no dedup_id reserved, no key made or rotated).
 * - 503 and failures without a response (refused, reset, timed out) are retried only for requests
 *   that are safe to repeat: GETs; acknowledgements (idempotent by the contract); an event carrying a
 *   `dedup_id`, or a batch whose every item carries one (a repeat is answered as a duplicate naming
 *   the stored event); and any request whose caller passes `retry: true`. A 503 can mean "the commit's
 *   outcome is unknown", so a POST without those guards is not repeated behind the caller's back.
 * - `retry: false` on a call turns retrying off for it.
 * The wait is the response's Retry-After (seconds or an HTTP date; for a 429 without the header, the
 * envelope's retry_after), else exponential backoff with jitter; at most `maxRetries` retries, and a
 * Retry-After longer than `maxRetryAfterMs` is not waited for: the error is thrown at once.
 */
import { OPERATIONS, type OperationId } from './generated/api.js'
import { TriggersApiError, TriggersConnectionError, TriggersHttpError, type ResponseFacts } from './errors.js'

export interface RetryOptions {
  /** Retries after the first attempt; 0 turns retrying off. Default 3. */
  readonly maxRetries?: number
  /** Backoff without Retry-After: a random wait between half and all of initialDelayMs × 2^retry, at most maxDelayMs. Defaults 500 and 20,000. */
  readonly initialDelayMs?: number
  readonly maxDelayMs?: number
  /** The longest Retry-After waited for. Default 60,000 (a rate-limit window is one clock minute). */
  readonly maxRetryAfterMs?: number
}

export interface RetryInfo {
  /** `"GET /api/inbox"` */
  readonly operation: string
  /** 1 for the first retry. */
  readonly retry: number
  /** How long the client waits before it. */
  readonly delayMs: number
  /** What it retries: the status of the failed answer, or null when there was none. */
  readonly status: number | null
  readonly error: Error
}

export interface CallOptions {
  /** Aborts the call, including a wait between retries. */
  readonly signal?: AbortSignal
  /** true: retry 503s and connection failures even if the request is not known to be safe to repeat; false: never retry. */
  readonly retry?: boolean
  /** Per attempt; overrides the client's timeoutMs. */
  readonly timeoutMs?: number
  /** Extra request headers (e.g. X-Request-ID). */
  readonly headers?: Readonly<Record<string, string>>
}

export interface Transport {
  readonly baseUrl: string
  readonly fetch: typeof fetch
  readonly timeoutMs: number
  readonly retry: Required<RetryOptions>
  readonly headers: Readonly<Record<string, string>>
  readonly onRetry: ((info: RetryInfo) => void) | undefined
  apiKey (): string | undefined
}

export interface CallInput {
  readonly params?: Readonly<Record<string, string>>
  readonly query?: Readonly<Record<string, string | number | boolean | undefined | null>>
  readonly body?: unknown
}

/** Operations that are idempotent by the contract: repeating them changes nothing. */
const IDEMPOTENT: ReadonlySet<OperationId> = new Set(['postApiAckEventId', 'postApiAck'])

function hasDedupId (item: unknown): boolean {
  return typeof item === 'object' && item !== null && typeof (item as { dedup_id?: unknown }).dedup_id === 'string' && (item as { dedup_id: string }).dedup_id !== ''
}

/** Whether a 503 or a lost answer may be retried for this request (see the rule above). */
export function safeToRepeat (op: OperationId, body: unknown): boolean {
  const info = OPERATIONS[op]
  if (info.method === 'GET' || IDEMPOTENT.has(op)) return true
  if (op === 'postApiEvents') return hasDedupId(body)
  if (op === 'postApiEventsBatch') {
    const events = (body as { events?: unknown } | undefined)?.events
    return Array.isArray(events) && events.length > 0 && events.every(hasDedupId)
  }
  return false
}

/** Retry-After in milliseconds from now: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter (value: string | null, now = Date.now()): number | null {
  if (value === null) return null
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v) * 1000
  const at = Date.parse(v)
  return Number.isNaN(at) ? null : Math.max(0, at - now)
}

function buildUrl (base: string, template: string, input: CallInput): string {
  const path = template.replace(/\{([a-z_]+)\}/g, (_m, name: string) => {
    const v = input.params?.[name]
    if (typeof v !== 'string' || v === '') throw new TypeError(`${template}: missing path parameter ${name}`)
    return encodeURIComponent(v)
  })
  const qs = new URLSearchParams()
  for (const [k, v] of Object.entries(input.query ?? {})) if (v !== undefined && v !== null) qs.append(k, String(v))
  const q = qs.toString()
  return base.replace(/\/+$/, '') + path + (q === '' ? '' : `?${q}`)
}

function sleep (ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) { reject(signal.reason); return }
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

interface Outcome { readonly value?: unknown, readonly error?: Error, readonly status: number | null, readonly waitMs: number | null }

/** One HTTP attempt: never throws for HTTP or network failures (they come back as `error`), only for the caller's abort. */
async function attempt (t: Transport, op: OperationId, url: string, init: RequestInit, timeoutMs: number, signal: AbortSignal | undefined, accept: readonly number[]): Promise<Outcome> {
  const info = OPERATIONS[op]
  const name = `${info.method} ${info.path}`
  const ctl = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => { timedOut = true; ctl.abort() }, timeoutMs)
  const onAbort = (): void => ctl.abort(signal?.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    let res: Response
    let text: string
    try {
      res = await t.fetch(url, { ...init, signal: ctl.signal })
      text = await res.text()
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason
      return { error: new TriggersConnectionError(name, timedOut, err), status: null, waitMs: null }
    }
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'))
    const facts: ResponseFacts = {
      status: res.status,
      requestId: res.headers.get('x-request-id'),
      retryAfter: retryAfterMs === null ? null : Math.ceil(retryAfterMs / 1000),
    }
    if (res.ok || accept.includes(res.status)) {
      if (info.response === 'empty' || text === '') return { value: undefined, status: res.status, waitMs: null }
      if (info.response === 'text') return { value: text, status: res.status, waitMs: null }
      try {
        return { value: JSON.parse(text), status: res.status, waitMs: null }
      } catch {
        return { error: new TriggersHttpError(name, facts, text), status: res.status, waitMs: null }
      }
    }
    let body: unknown = null
    try { body = JSON.parse(text) } catch { body = null }
    const isEnvelope = typeof body === 'object' && body !== null && typeof (body as { code?: unknown }).code === 'string' && typeof (body as { error?: unknown }).error === 'string'
    const error = isEnvelope ? new TriggersApiError(body as never, name, facts) : new TriggersHttpError(name, facts, text)
    let waitMs = retryAfterMs
    if (waitMs === null && error instanceof TriggersApiError && typeof error.context.retry_after === 'number') waitMs = error.context.retry_after * 1000
    return { error, status: res.status, waitMs }
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}

function backoff (r: Required<RetryOptions>, retry: number): number {
  const ceiling = Math.min(r.maxDelayMs, r.initialDelayMs * 2 ** (retry - 1))
  return Math.round(ceiling / 2 + Math.random() * ceiling / 2)
}

/** Sends the operation and returns its body; throws TriggersError (or the caller's abort reason). */
export async function call (t: Transport, op: OperationId, input: CallInput, opts: CallOptions = {}, accept: readonly number[] = []): Promise<unknown> {
  const info = OPERATIONS[op]
  const url = buildUrl(t.baseUrl, info.path, input)
  const headers: Record<string, string> = { accept: 'application/json', ...t.headers, ...opts.headers }
  if (info.auth) {
    const key = t.apiKey()
    if (key === undefined) throw new TypeError(`${info.method} ${info.path} needs an API key: pass apiKey to the client`)
    headers['x-api-key'] = key
  }
  let body: string | undefined
  if (input.body !== undefined && info.body !== 'none') {
    body = JSON.stringify(input.body)
    headers['content-type'] = 'application/json'
  }
  const init: RequestInit = { method: info.method, headers, body }
  const repeatable = opts.retry ?? safeToRepeat(op, input.body)
  const maxRetries = opts.retry === false ? 0 : t.retry.maxRetries
  for (let retry = 0; ; retry++) {
    const out = await attempt(t, op, url, init, opts.timeoutMs ?? t.timeoutMs, opts.signal, accept)
    if (out.error === undefined) return out.value
    const retriable = out.status === 429 || ((out.status === 503 || out.status === null) && repeatable)
    if (!retriable || retry >= maxRetries) throw out.error
    if (out.waitMs !== null && out.waitMs > t.retry.maxRetryAfterMs) throw out.error
    const delayMs = out.waitMs ?? backoff(t.retry, retry + 1)
    t.onRetry?.({ operation: `${info.method} ${info.path}`, retry: retry + 1, delayMs, status: out.status, error: out.error })
    await sleep(delayMs, opts.signal)
  }
}
