/**
 * Client load for the fault tests: `workers` clients, each on its own keep-alive connection, sending
 * POST /api/events back to back and every `batchEvery`-th request a POST /api/events/batch of
 * `batchSize` events. It records what a client can know: the id of every event the service
 * acknowledged (a 201, or a `created` item of a 200 batch), every status and error code, the slowest
 * answer per status, and failures that reached no answer (refused, reset, a request that outlived
 * `timeoutMs`). A 503 must be `unavailable` with Retry-After; anything else unexpected is kept in
 * `unexpected`. Every socket is undici's, which handles its own errors.
 */
import { Client } from 'undici'

export interface LoadOptions {
  readonly base: string
  readonly key: string
  readonly workers: number
  /** Every n-th request of a worker is a batch (0: none). */
  readonly batchEvery?: number
  readonly batchSize?: number
  /** A request without an answer after this long counts as a hang (default 10 s). */
  readonly timeoutMs?: number
  /** The event type sent. */
  readonly type?: string
}

/** Failures where the client got no answer at all (the connection was refused, reset or closed). */
export const CONNECTION_LEVEL = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'])

export function errCode (err: unknown): string {
  if (err !== null && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

function bump<K> (m: Map<K, number>, k: K): void { m.set(k, (m.get(k) ?? 0) + 1) }

/** One acknowledged request: when it was sent and answered (performance.now()), and its events. */
export interface Ack { readonly sentAt: number, readonly at: number, readonly events: number }

export class Load {
  /** Ids of events the service acknowledged. */
  readonly accepted = new Set<string>()
  /** Every acknowledgement (a 201, or a 200 batch with created items), in order of arrival. */
  readonly acks: Ack[] = []
  readonly statuses = new Map<number, number>()
  /** Error codes of non-2xx answers. */
  readonly codes = new Map<string, number>()
  /** Failures with no answer, by code. */
  readonly failures = new Map<string, number>()
  readonly unexpected: string[] = []
  /** Slowest answer per status (ms). */
  readonly slowest = new Map<number, number>()
  /** Requests sent and not yet answered or failed. */
  waiting = 0
  /** Events sent (batch items count one each). */
  sent = 0
  #stop = false
  #running: Promise<void>[] = []
  readonly #o: LoadOptions

  constructor (o: LoadOptions) { this.#o = o }

  start (): this {
    this.#running = Array.from({ length: this.#o.workers }, async (_, w) => { await this.#worker(w) })
    return this
  }

  async stop (): Promise<void> {
    this.#stop = true
    await Promise.all(this.#running)
  }

  count (status: number): number { return this.statuses.get(status) ?? 0 }

  /** Failures that are not connection-level (hangs past timeoutMs included). */
  otherFailures (): string[] {
    return [...this.failures.keys()].filter(c => !CONNECTION_LEVEL.has(c))
  }

  /** The first acknowledgement at or after `t` (performance.now()), or null. */
  firstAckAfter (t: number): number | null {
    for (const a of this.acks) if (a.at >= t) return a.at
    return null
  }

  /** Events acknowledged whose request was sent before `t`, and answered after `from`. */
  ackedSentBefore (t: number, from = 0): number {
    let n = 0
    for (const a of this.acks) if (a.sentAt < t && a.at >= from) n += a.events
    return n
  }

  summary (): string {
    return `events sent ${this.sent}, acknowledged ${this.accepted.size}; statuses ${JSON.stringify(Object.fromEntries(this.statuses))}; ` +
      `codes ${JSON.stringify(Object.fromEntries(this.codes))}; no answer ${JSON.stringify(Object.fromEntries(this.failures))}; ` +
      `slowest ms ${JSON.stringify(Object.fromEntries([...this.slowest].map(([s, ms]) => [s, Math.round(ms)])))}`
  }

  async #worker (w: number): Promise<void> {
    const { base, key, batchEvery = 0, batchSize = 10, timeoutMs = 10_000, type = 'fault.load' } = this.#o
    const client = new Client(base, { pipelining: 1, connect: { timeout: 5000 }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
    try {
      for (let n = 1; !this.#stop; n++) {
        const batch = batchEvery > 0 && n % batchEvery === 0
        const body = batch
          ? JSON.stringify({ events: Array.from({ length: batchSize }, (_, i) => ({ type, payload: { w, n, i } })) })
          : JSON.stringify({ type, payload: { w, n } })
        this.sent += batch ? batchSize : 1
        this.waiting++
        const t0 = performance.now()
        try {
          const res = await client.request({
            path: batch ? '/api/events/batch' : '/api/events',
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-api-key': key },
            body,
          })
          const text = await res.body.text()
          this.#record(res.statusCode, res.headers['retry-after'], text, t0)
        } catch (err) {
          bump(this.failures, errCode(err))
          // The service is gone or going: do not spin on refused connections.
          await new Promise(resolve => setTimeout(resolve, 20))
        } finally {
          this.waiting--
        }
      }
    } finally {
      await client.destroy()
    }
  }

  #record (status: number, retryAfter: string | string[] | undefined, text: string, sentAt: number): void {
    const at = performance.now()
    const ms = at - sentAt
    bump(this.statuses, status)
    this.slowest.set(status, Math.max(this.slowest.get(status) ?? 0, ms))
    let json: any = null
    try { json = JSON.parse(text) } catch { json = null }
    if (status === 201) {
      this.accepted.add(json.id)
      this.acks.push({ sentAt, at, events: 1 })
      return
    }
    if (status === 200) {
      let created = 0
      for (const r of json.results) if (r.status === 'created') { this.accepted.add(r.id); created++ }
      if (created > 0) this.acks.push({ sentAt, at, events: created })
      if (created !== json.results.length) this.unexpected.push(`batch 200 with ${json.results.length - created} items not created: ${text.slice(0, 200)}`)
      return
    }
    bump(this.codes, String(json?.code))
    const ra = Number(retryAfter)
    if (status !== 503 || json?.code !== 'unavailable' || !Number.isInteger(ra) || ra < 1) {
      this.unexpected.push(`${status} Retry-After ${String(retryAfter)} ${text.slice(0, 200)}`)
    }
  }
}
