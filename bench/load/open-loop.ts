/**
 * Open-loop load at a fixed rate (scenarios 2, 3 and 6), because autocannon is closed-loop: each of
 * its connections sends the next request only when the previous answer arrived, so when the server
 * stalls for 200 ms autocannon simply sends nothing for 200 ms and records one slow request instead of
 * the ~400 that should have been sent meanwhile ("coordinated omission"). Here request i is due at
 * exactly start + i / rate whatever happened before, and its latency is counted from that scheduled
 * time to the end of its response, so a stall shows up in every request it delayed.
 *
 * Sending: an undici Pool (keep-alive, pipelining 1, up to `connections` sockets) — a request that
 * finds every socket busy waits in the pool's queue, and that wait is part of its latency. The
 * scheduler wakes at most every millisecond and sends everything due, so timer jitter (≤ ~1 ms) is
 * included in the latency too, equally for every server measured. A request not answered within
 * `timeoutMs` counts as an error; more than `maxOutstanding` unanswered requests makes further sends
 * "dropped" (counted, never silently skipped), so a dead server cannot grow the queue without bound.
 */
import { Pool } from 'undici'
import { performance } from 'node:perf_hooks'

export interface OpenLoopRequest {
  readonly headers: Record<string, string>
  readonly body: string
}

export interface OpenLoopOptions {
  readonly port: number
  readonly path: string
  readonly rate: number // requests per second
  readonly durationMs: number
  readonly make: (i: number) => OpenLoopRequest
  /** Called with each answer (status, body text when readBody, time the answer ended). */
  readonly onAnswer?: (i: number, status: number, body: string, endedAt: number) => void
  readonly readBody?: boolean
  readonly timeoutMs?: number
  readonly maxOutstanding?: number
}

export interface OpenLoopResult {
  readonly rate: number
  readonly durationMs: number
  readonly scheduled: number
  readonly sent: number
  readonly answered: number
  readonly ok2xx: number
  readonly non2xx: number
  readonly errors: number
  readonly dropped: number
  readonly status: Record<string, number>
  /** Latency (ms) from scheduled send time to end of response, for every answered request. */
  readonly latencies: Float64Array
  /** The same for 2xx answers only. */
  readonly latencies2xx: Float64Array
  /** Latency by request index (NaN: no answer), to see when in the run slow answers happened. */
  readonly byIndex: Float64Array
  /** How late the scheduler actually sent, worst case (ms): its own jitter, for the record. */
  readonly maxSendLagMs: number
  readonly firstError: string | null
}

export class OpenLoop {
  readonly #pool: Pool
  readonly #port: number

  constructor (port: number, connections: number) {
    this.#port = port
    this.#pool = new Pool(`http://127.0.0.1:${port}`, {
      connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
    })
  }

  get port (): number { return this.#port }

  run (o: OpenLoopOptions): Promise<OpenLoopResult> {
    const total = Math.max(1, Math.round(o.rate * o.durationMs / 1000))
    const intervalMs = 1000 / o.rate
    const timeoutMs = o.timeoutMs ?? 10_000
    const maxOutstanding = o.maxOutstanding ?? Math.max(1000, o.rate * 10)
    const latencies = new Float64Array(total)
    const latencies2xx = new Float64Array(total)
    const byIndex = new Float64Array(total).fill(NaN)
    const status: Record<string, number> = {}
    let answered = 0
    let ok2xx = 0
    let errors = 0
    let dropped = 0
    let sent = 0
    let outstanding = 0
    let next = 0
    let maxLag = 0
    let firstError: string | null = null
    const start = performance.now() + 5

    return new Promise(resolve => {
      const finishIfDone = (): void => {
        if (next < total || outstanding > 0) return
        resolve({
          rate: o.rate,
          durationMs: o.durationMs,
          scheduled: total,
          sent,
          answered,
          ok2xx,
          non2xx: answered - ok2xx,
          errors,
          dropped,
          status,
          latencies: latencies.slice(0, answered),
          latencies2xx: latencies2xx.slice(0, ok2xx),
          byIndex,
          maxSendLagMs: maxLag,
          firstError,
        })
      }

      const send = (i: number, due: number): void => {
        if (outstanding >= maxOutstanding) { dropped++; return }
        const req = o.make(i)
        outstanding++
        sent++
        this.#pool.request({
          method: 'POST',
          path: o.path,
          headers: req.headers,
          body: req.body,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        }).then(async res => {
          let text = ''
          if (o.readBody === true) text = await res.body.text()
          else await res.body.dump()
          const ended = performance.now()
          const ms = ended - due
          latencies[answered++] = ms
          byIndex[i] = ms
          const code = res.statusCode
          status[code] = (status[code] ?? 0) + 1
          if (code >= 200 && code < 300) latencies2xx[ok2xx++] = ms
          o.onAnswer?.(i, code, text, ended)
        }).catch((err: unknown) => {
          errors++
          firstError ??= err instanceof Error ? `${err.name}: ${err.message}` : String(err)
        }).finally(() => {
          outstanding--
          finishIfDone()
        })
      }

      const tick = (): void => {
        const now = performance.now()
        while (next < total) {
          const due = start + next * intervalMs
          if (due > now) break
          maxLag = Math.max(maxLag, now - due)
          send(next, due)
          next++
        }
        if (next < total) {
          const wait = start + next * intervalMs - performance.now()
          setTimeout(tick, Math.max(0, Math.min(wait, 1)))
        } else {
          finishIfDone()
        }
      }
      setTimeout(tick, 5)
    })
  }

  async close (): Promise<void> {
    await this.#pool.close()
  }
}
