/**
 * Scenario 3, delivery end to end at a steady rate (also the steady half of scenario 12): 1,000
 * events/s open loop to the 8 organizations of the `steady` fleet (one endpoint each, 8 origins on the
 * receiver process). Latency of an event = its arrival at the receiver − the moment the bench read its
 * 201 (both on the bench's clock; the receiver's offset is measured). An arrival before the 201 was
 * read counts as 0 and is counted separately.
 *
 * Warm (default): a warm-up, waited until delivered, so the measured run starts from a drained state.
 * Cold: no warm-up — the harness calls it right after a fresh start (first /health 200) for the first
 * `coldDeliveryMs` (3 s).
 * Afterwards it waits up to 30 s for the last delivery: an event not delivered by then is missing.
 */
import { OpenLoop } from '../load/open-loop.ts'
import type { ReceiverProcess } from '../load/receiver-handle.ts'
import { eventRequests } from '../lib/api.ts'
import { describeLoad, type RunLoad } from '../lib/meter.ts'
import { latencyRun, p99ByGroup, type LatencyRun } from '../lib/latency.ts'
import { epochNow, fmt, progress, sleep } from '../lib/progress.ts'
import { percentileCurve, quantile, roundSummary, sortedSamples, summarize, type LatencySummary } from '../lib/stats.ts'
import { meter, type Bench, type Target } from './context.ts'
import type { Fleet } from './fleet.ts'

export const DELIVERY_RATE = 1_000
const WAIT_MS = 30_000
const CONNECTIONS = 64

export interface SteadyRun {
  readonly label: string
  readonly rate: number
  readonly durationMs: number
  readonly accepted: number
  readonly delivered: number
  readonly missing: number
  readonly duplicates: number
  readonly badSignatures: number
  readonly verifiedSignatures: number
  readonly arrivedBefore201: number
  /** From the end of sending to the last delivery. */
  readonly waitedMs: number
  readonly send: LatencyRun
  readonly latencyMs: LatencySummary
  readonly curve: { p: number, ms: number }[]
  /** Delivery p99 (ms) of the events sent in each second of the run. */
  readonly p99BySecond: number[]
  /** Service CPU seconds from the start of sending to the last delivery, per delivery (ms). */
  readonly serviceCpuMsPerDelivery: number | null
  readonly load: RunLoad
}

interface Accepted { at: number, i: number }

async function send (b: Bench, server: Target, loop: OpenLoop, fleet: Fleet, durationMs: number, prefix: string): Promise<{ accepted: Map<string, Accepted>, run: LatencyRun }> {
  const accepted = new Map<string, Accepted>()
  const r = await loop.run({
    port: server.port, path: '/api/events', rate: DELIVERY_RATE, durationMs, readBody: true,
    make: eventRequests(fleet.orgs, b.payloads, prefix),
    onAnswer: (i, status, body, endedAt) => {
      if (status !== 201) return
      accepted.set((JSON.parse(body) as { id: string }).id, { at: performance.timeOrigin + endedAt, i })
    },
  })
  return { accepted, run: latencyRun(r) }
}

export async function steady (b: Bench, server: Target, receiver: ReceiverProcess, fleet: Fleet, label: string, cold: boolean): Promise<SteadyRun> {
  const tag = `scenario 3 · ${label}`
  const loop = new OpenLoop(server.port, CONNECTIONS)
  const durationMs = cold ? b.D.coldDeliveryMs : b.D.deliveryMs
  try {
    await receiver.reset()
    if (!cold) {
      progress(`${tag}: warm-up ${b.D.deliveryWarmMs / 1000} s at ${fmt(DELIVERY_RATE)} events/s`)
      const w = await send(b, server, loop, fleet, b.D.deliveryWarmMs, `${b.runId}-w3-${label}-`)
      const w0 = epochNow()
      const { timedOut } = await receiver.waitFor(fleet.prefix, w.accepted.size, WAIT_MS)
      const arrivals = await receiver.arrivals(fleet.prefix)
      const lat = sortedSamples([...w.accepted].map(([id, a]) => (arrivals.get(id) ?? NaN) - a.at).filter(x => !Number.isNaN(x)))
      progress(`${tag}: warm-up: ${fmt(lat.length)}/${fmt(w.accepted.size)} delivered, p50 ${quantile(lat, 0.5).toFixed(1)} ms, ` +
        `p99 ${quantile(lat, 0.99).toFixed(1)} ms, max ${quantile(lat, 1).toFixed(1)} ms; ${timedOut ? 'NOT drained' : 'drained'} after ${Math.round(epochNow() - w0)} ms`)
      await receiver.reset()
      await sleep(500)
    }
    progress(`${tag}: measuring ${durationMs / 1000} s at ${fmt(DELIVERY_RATE)} events/s${cold ? ' right after the start' : ''}`)
    const m = await meter(b, { service: server.pid, receiver: receiver.pid })
    const { accepted, run } = await send(b, server, loop, fleet, durationMs, `${b.runId}-s3-${label}-`)
    const t0 = epochNow()
    const { stats } = await receiver.waitFor(fleet.prefix, accepted.size, WAIT_MS)
    const load = await m.stop()
    const waitedMs = Math.round(epochNow() - t0)
    const arrivals = await receiver.arrivals(fleet.prefix)
    const lat: number[] = []
    const byIndex = new Float64Array(run.scheduled).fill(NaN)
    let early = 0
    for (const [id, { at, i }] of accepted) {
      const arrived = arrivals.get(id)
      if (arrived === undefined) continue
      const ms = arrived - at
      if (ms < 0) early++
      lat.push(Math.max(0, ms))
      byIndex[i] = Math.max(0, ms)
    }
    const sorted = sortedSamples(lat)
    const cpuS = (load.cpuCores.service ?? NaN) * load.wallS
    const out: SteadyRun = {
      label,
      rate: DELIVERY_RATE,
      durationMs,
      accepted: accepted.size,
      delivered: lat.length,
      missing: accepted.size - lat.length,
      duplicates: stats.duplicates,
      badSignatures: stats.badSignatures,
      verifiedSignatures: stats.verified,
      arrivedBefore201: early,
      waitedMs,
      send: run,
      latencyMs: roundSummary(summarize(sorted)),
      curve: percentileCurve(sorted),
      p99BySecond: p99ByGroup(byIndex, DELIVERY_RATE),
      serviceCpuMsPerDelivery: lat.length === 0 || Number.isNaN(cpuS) ? null : Math.round((cpuS * 1000 / lat.length) * 1000) / 1000,
      load,
    }
    progress(`${tag}: ${fmt(out.delivered)}/${fmt(out.accepted)} delivered, p50 ${out.latencyMs.p50} ms, p99 ${out.latencyMs.p99} ms, ` +
      `max ${out.latencyMs.max} ms; ${out.duplicates} duplicates, ${out.badSignatures} bad signatures (${out.verifiedSignatures} checked); ` +
      `ingest ${run.non2xx} non-2xx, ${run.errors} errors; service CPU ${out.serviceCpuMsPerDelivery ?? '?'} ms per delivery`)
    progress(`  delivery p99 by second sent (ms): ${out.p99BySecond.join(' ')}`)
    progress(`  ${describeLoad(load)}`)
    return out
  } finally {
    await loop.close()
  }
}
