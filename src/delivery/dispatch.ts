/**
 * One webhook attempt over HTTP (delivery thread). A single undici Agent keeps a keep-alive Pool per
 * origin (undici drops idle pools itself), capped at DELIVERY_PER_ENDPOINT_CONCURRENCY connections.
 *
 * Invariants:
 *   - The whole attempt (connect to last byte) is bounded by DELIVERY_TIMEOUT_MS: undici's connect,
 *     headers and body timeouts, plus one AbortController per attempt aborted by a single ticker that
 *     sweeps in-flight attempts (no timer per attempt, STYLE C9).
 *   - Redirects are never followed (plain Agent, no redirect interceptor): a 3xx is a failed attempt.
 *   - At most 4 KiB of a failure response is kept (for last_error); at most 64 KiB is read before the
 *     connection is dropped instead of drained.
 *   - Unless private targets are allowed, every connection goes through ssrf.guardedLookup, and an
 *     IP-literal host is checked here before any socket is opened.
 *   - `attempt` never rejects: every outcome is an AttemptResult.
 * The request is exactly API.md's: JSON body `{"id","type","data","timestamp"}` with the stored
 * payload text spliced in (never re-parsed) and the Standard Webhooks headers.
 */
import { VERSION } from '../version.ts'
import { isIP } from 'node:net'
import { Agent } from 'undici'
import type { ClaimedDelivery } from '../db/queries/claim-deliveries.ts'
import { AttemptResult } from './retry-policy.ts'
import { signatureHeader } from './signing.ts'
import { guardedLookup, isPublicAddress, NonPublicAddressError, urlHost } from './ssrf.ts'

const KEEP_BYTES = 4096
const READ_MAX_BYTES = 64 * 1024
const KEEP_ALIVE_MS = 4000

export const USER_AGENT = 'triggers-api/' + VERSION

// Header values must be visible ASCII; an event type outside that is sent percent-encoded (the body
// always carries the exact type).
const HEADER_SAFE = /^[\x20-\x7e]*$/

/** The delivery body, built by splicing the stored payload JSON text. */
export function deliveryBody (d: ClaimedDelivery): string {
  return '{"id":"' + d.id + '","type":' + JSON.stringify(d.type) + ',"data":' + d.payload +
    ',"timestamp":"' + d.createdAt.toISOString() + '"}'
}

type AbortReason = 0 | 1 | 2
const NOT_ABORTED: AbortReason = 0
const TIMED_OUT: AbortReason = 1
const SHUTDOWN: AbortReason = 2

/** One attempt in flight (fixed shape): its abort handle and deadline. */
class Flight {
  readonly controller = new AbortController()
  readonly deadline: number
  reason: AbortReason = NOT_ABORTED
  constructor (deadline: number) { this.deadline = deadline }
  abort (reason: AbortReason): void {
    if (this.reason !== NOT_ABORTED) return
    this.reason = reason
    this.controller.abort()
  }
}

export interface DispatcherOptions {
  readonly timeoutMs: number
  readonly perEndpoint: number
  readonly allowPrivate: boolean
}

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

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'])

/** Reads at most READ_MAX_BYTES of a body, keeping the first KEEP_BYTES as text (NULs removed: PostgreSQL text cannot hold them). */
async function readSnippet (body: AsyncIterable<unknown> & { destroy: () => unknown }): Promise<string> {
  const kept: Buffer[] = []
  let keptBytes = 0
  let seen = 0
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk))
    seen += buf.length
    if (keptBytes < KEEP_BYTES) {
      const part = buf.subarray(0, KEEP_BYTES - keptBytes)
      kept.push(part)
      keptBytes += part.length
    }
    if (seen >= READ_MAX_BYTES) break // leaving the loop destroys the body (and its connection)
  }
  return Buffer.concat(kept).toString('utf8').replace(/\u0000/g, '')
}

export class Dispatcher {
  readonly #agent: Agent
  readonly #timeoutMs: number
  readonly #allowPrivate: boolean
  readonly #flights = new Set<Flight>()
  #ticker: NodeJS.Timeout | null

  constructor (o: DispatcherOptions) {
    this.#timeoutMs = o.timeoutMs
    this.#allowPrivate = o.allowPrivate
    this.#agent = new Agent({
      connections: o.perEndpoint,
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

  /** Performs one attempt of `d` to `target` (its parsed webhook URL). Never rejects. */
  async attempt (d: ClaimedDelivery, target: URL): Promise<AttemptResult> {
    if (!this.#allowPrivate) {
      const host = urlHost(target)
      if (isIP(host) !== 0 && !isPublicAddress(host)) {
        return new AttemptResult('refused', 0, 'refused: webhook host is a non-public address', null)
      }
    }
    const body = deliveryBody(d)
    const nowS = Math.floor(Date.now() / 1000)
    const signature = signatureHeader(d.secrets, d.id, nowS, body)
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': USER_AGENT,
      'x-event-id': d.id,
      'x-event-type': HEADER_SAFE.test(d.type) ? d.type : encodeURIComponent(d.type),
      'x-delivery-attempt': String(d.attempts),
      'webhook-id': d.id,
      'webhook-timestamp': String(nowS),
    }
    if (signature !== '') headers['webhook-signature'] = signature
    const flight = new Flight(Date.now() + this.#timeoutMs)
    this.#flights.add(flight)
    try {
      const res = await this.#agent.request({
        origin: target.origin,
        path: target.pathname + target.search,
        method: 'POST',
        headers,
        body,
        signal: flight.controller.signal,
      })
      const status = res.statusCode
      if (status >= 200 && status < 300) {
        // The receiver accepted the event; a failure while draining its reply does not undo that.
        try { await res.body.dump({ limit: READ_MAX_BYTES }) } catch { /* the connection is dropped, the result stands */ }
        return new AttemptResult('success', status, null, null)
      }
      const ra = res.headers['retry-after']
      const retryAfter = typeof ra === 'string' ? ra : Array.isArray(ra) ? (ra[0] ?? null) : null
      let snippet: string
      try { snippet = await readSnippet(res.body) } catch (err) { return this.#errorResult(err, flight) }
      const note = status >= 300 && status < 400 ? ' (redirects are not followed)' : ''
      return new AttemptResult('http', status, 'HTTP ' + String(status) + note + (snippet === '' ? '' : ': ' + snippet), retryAfter)
    } catch (err) {
      return this.#errorResult(err, flight)
    } finally {
      this.#flights.delete(flight)
    }
  }

  #errorResult (err: unknown, flight: Flight): AttemptResult {
    if (flight.reason === SHUTDOWN) return new AttemptResult('aborted', 0, 'attempt interrupted by shutdown', null)
    const code = codeOf(err)
    if (flight.reason === TIMED_OUT || (code !== null && TIMEOUT_CODES.has(code))) {
      return new AttemptResult('timeout', 0, `timeout: no complete response within ${this.#timeoutMs} ms`, null)
    }
    if (isNonPublic(err)) return new AttemptResult('refused', 0, 'refused: webhook host resolves to a non-public address', null)
    const name = err instanceof Error ? err.name : 'Error'
    return new AttemptResult('network', 0, `connection error: ${code ?? name}`, null)
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
