/**
 * Closed-loop ingest load (scenarios 1 and 7) with autocannon's programmatic API: `connections`
 * keep-alive connections, pipelining 1, each sending POST /api/events as fast as answers come back,
 * every request with its own dedup_id and the next API key (setup-request.cjs). With `workers` > 0,
 * autocannon runs that many worker threads and splits the connections between them.
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
  readonly created: number // 201s
  readonly non2xx: number
  readonly errors: number
  readonly timeouts: number
  /** Durable 201s per second of the run. */
  readonly reqPerSec: number
  /** autocannon's latency histogram of 2xx answers (ms). */
  readonly latencyMs: { readonly mean: number, readonly p50: number, readonly p90: number, readonly p99: number, readonly max: number }
}

export function runIngest (o: IngestOptions): Promise<IngestResult> {
  const spec = {
    method: 'POST',
    path: '/api/events',
    headers: { 'content-type': 'application/json' },
    setupRequest: o.workers > 0 ? SETUP_REQUEST : require(SETUP_REQUEST) as (req: never) => unknown,
    benchKeys: [...o.keys],
    benchPayloads: [...o.payloads],
    benchPrefix: o.prefix,
  }
  return new Promise((resolve, reject) => {
    let done = 0
    let lastDone = 0
    const started = Date.now()
    const instance = autocannon({
      url: `http://127.0.0.1:${o.port}/api/events`,
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
      const created = status['201'] ?? 0
      resolve({
        label: o.label,
        prefix: o.prefix,
        connections: o.connections,
        workers: o.workers,
        durationS: r.duration,
        sent: r.requests.sent ?? 0,
        status,
        created,
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
