/** Open-loop runs as reported: counts and latency summaries instead of the raw arrays. */
import type { OpenLoopResult } from '../load/open-loop.ts'
import { percentileCurve, quantile, roundSummary, sortedSamples, summarize, type LatencySummary } from './stats.ts'

export interface LatencyRun extends Omit<OpenLoopResult, 'latencies' | 'latencies2xx' | 'byIndex'> {
  readonly latencyMs: LatencySummary
  readonly curve: { p: number, ms: number }[]
  /** p99 (ms) of the requests scheduled in each second of the run: when the slow ones happened. */
  readonly p99BySecond: number[]
}

/** p99 of the values in each consecutive group of `perGroup` (NaN entries skipped). */
export function p99ByGroup (byIndex: ArrayLike<number>, perGroup: number): number[] {
  const out: number[] = []
  for (let a = 0; a < byIndex.length; a += perGroup) {
    const xs: number[] = []
    for (let i = a; i < Math.min(byIndex.length, a + perGroup); i++) if (!Number.isNaN(byIndex[i]!)) xs.push(byIndex[i]!)
    out.push(Math.round(quantile(sortedSamples(xs), 0.99) * 10) / 10)
  }
  return out
}

export function latencyRun (r: OpenLoopResult): LatencyRun {
  const sorted = sortedSamples(r.latencies)
  return {
    rate: r.rate,
    durationMs: r.durationMs,
    scheduled: r.scheduled,
    sent: r.sent,
    answered: r.answered,
    ok2xx: r.ok2xx,
    non2xx: r.non2xx,
    errors: r.errors,
    dropped: r.dropped,
    status: r.status,
    maxSendLagMs: Math.round(r.maxSendLagMs * 1000) / 1000,
    firstError: r.firstError,
    latencyMs: roundSummary(summarize(sorted)),
    curve: percentileCurve(sorted),
    p99BySecond: p99ByGroup(r.byIndex, r.rate),
  }
}
