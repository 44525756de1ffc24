/**
 * What the hot-path metrics cost per ingested event: the calls one POST /api/events makes
 * (request + accepted + its share of a batch observation + an auth-cache hit), on ThreadMetrics
 * (counting into shared Float64 slots) versus NoopMetrics (METRICS_PORT=0). Compared with the
 * service's CPU time per event from `npm run bench` scenario 1 (server cores × 1e6 / events per
 * second), this bounds the throughput cost of metrics independently of the machine's noise.
 * Run: node --import tsx bench/micro/metrics.bench.ts [service µs per event, default 52]
 */
import { NoopMetrics, ThreadMetrics } from '../../src/metrics/counters.ts'
import { allocateMetrics } from '../../src/metrics/layout.ts'

const N = 5_000_000
const BATCH = 16

function perEvent (m: ThreadMetrics): number {
  let sink = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    m.authCache(true)
    m.request(6, 201, 0.0012 + (i & 7) * 0.0003)
    m.accepted()
    if ((i & (BATCH - 1)) === 0) { m.batch(BATCH, 0.0011); m.writerQueue(i & 63) }
    sink += i
  }
  const ns = Number(process.hrtime.bigint() - t0) / N
  if (sink === -1) console.log(sink)
  return ns
}

const live = new ThreadMetrics(allocateMetrics())
const noop = new NoopMetrics(null)
for (let r = 0; r < 2; r++) { perEvent(live); perEvent(noop) } // warm up both shapes
const results: { live: number, noop: number }[] = []
for (let r = 0; r < 5; r++) results.push({ live: perEvent(live), noop: perEvent(noop) })
const med = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const liveNs = med(results.map(r => r.live))
const noopNs = med(results.map(r => r.noop))
const serviceUs = Number(process.argv[2] ?? 52)
const costNs = Math.max(0, liveNs - noopNs)
console.log(`metrics per event: ${liveNs.toFixed(1)} ns counting, ${noopNs.toFixed(1)} ns with NoopMetrics → ${costNs.toFixed(1)} ns`)
console.log(`against ${serviceUs} µs of service CPU per event: ${(costNs / (serviceUs * 1000) * 100).toFixed(3)} % of ingest CPU`)
