/**
 * Closed-loop ingest load (scenarios 1, 7, 9, 11, 13) with autocannon's programmatic API: `connections`
 * keep-alive connections, pipelining 1, each sending POST /api/events (or, with `batch` N, POST
 * /api/events/batch with N events) as fast as answers come back, every event with its own dedup_id
 * and every request with the next API key (setup-request.cjs). With `workers` > 0, autocannon runs
 * that many worker threads and splits the connections between them.
 */
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { progress, fmt } from '../lib/progress.ts'
import { round3 } from '../lib/stats.ts'

const require = createRequire(import.meta.url)
const SETUP_REQUEST = fileURLToPath(new URL('./setup-request.cjs', import.meta.url))

export interface IngestOptions {
  readonly label: string
  readonly port: number
  readonly connections: number
  readonly durationS: number
  readonly workers: number // 0: autocannon's own thread only
  readonly keys: readonly string[]
  readonly payloads: readonly string[]
  readonly prefix: string // dedup_id prefix unique to this run
  /** Events per request: 0 (default) single events on POST /api/events, N on POST /api/events/batch. */
  readonly batch?: number
  readonly quiet?: boolean
}

export interface IngestResult {
  readonly label: string
  readonly prefix: string
  readonly connections: number
  readonly workers: number
  readonly durationS: number
  readonly sent: number
  readonly status: Record<string, number>
  readonly created: number // 2xx answers (201 single, 200 batch)
  /** Events in the 2xx answers (created × batch size; = created for single events). */
  readonly events: number
  /** Events per second in 2xx answers. */
  readonly eventsPerSec: number
  readonly batch: number
  readonly non2xx: number
  readonly errors: number
  readonly timeouts: number
  /** Durable 2xx answers per second of the run. */
  readonly reqPerSec: number
  /** autocannon's latency histogram of 2xx answers (ms). */
  readonly latencyMs: { readonly mean: number, readonly p50: number, readonly p90: number, readonly p99: number, readonly max: number }
}

export function runIngest (o: IngestOptions): Promise<IngestResult> {
  const batch = o.batch ?? 0
  const path = batch > 0 ? '/api/events/batch' : '/api/events'
  const spec = {
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json' },
    setupRequest: o.workers > 0 ? SETUP_REQUEST : require(SETUP_REQUEST) as (req: never) => unknown,
    benchKeys: [...o.keys],
    benchPayloads: [...o.payloads],
    benchPrefix: o.prefix,
    benchBatch: batch,
  }
  return new Promise((resolve, reject) => {
    let done = 0
    let lastDone = 0
    const started = Date.now()
    const instance = autocannon({
      url: `http://127.0.0.1:${o.port}${path}`,
      connections: o.connections,
      pipelining: 1,
      duration: o.durationS,
      timeout: 10,
      ...(o.workers > 0 ? { workers: o.workers } : {}),
      requests: [spec],
    }, (err, r) => {
      clearInterval(timer)
      if (err !== null) { reject(err); return }
      const status: Record<string, number> = {}
      for (const [code, s] of Object.entries(r.statusCodeStats)) status[code] = s.count
      const created = batch > 0 ? (status['200'] ?? 0) : (status['201'] ?? 0)
      const events = created * Math.max(1, batch)
      resolve({
        label: o.label,
        prefix: o.prefix,
        connections: o.connections,
        workers: o.workers,
        durationS: r.duration,
        sent: r.requests.sent ?? 0,
        status,
        created,
        events,
        eventsPerSec: Math.round(events / r.duration),
        batch,
        non2xx: r.non2xx,
        errors: r.errors,
        timeouts: r.timeouts,
        reqPerSec: Math.round(created / r.duration),
        latencyMs: { mean: round3(r.latency.mean), p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
      })
    })
    // Ticks come only from autocannon's own thread (not from its workers); the timer prints either way.
    instance.on('tick', (t: { counter: number }) => { done += t.counter })
    const timer = setInterval(() => {
      if (o.quiet === true) return
      const s = Math.round((Date.now() - started) / 1000)
      const rate = o.workers > 0 ? '' : ` · ${fmt((done - lastDone) / 5)} req/s`
      lastDone = done
      progress(`  ${o.label}: ${s}/${o.durationS} s${rate}`)
    }, 5000)
  })
}
