/**
 * Percentiles and summaries of latency samples (milliseconds). All samples are kept (a 20 s run at
 * 2,000 req/s is 40,000 numbers), so percentiles are exact, not histogram buckets.
 */

export interface LatencySummary {
  readonly count: number
  readonly min: number
  readonly mean: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly p999: number
  readonly max: number
}

/** Sorted copy of the first `n` samples. */
export function sortedSamples (samples: ArrayLike<number>, n = samples.length): Float64Array {
  const out = Float64Array.from({ length: n }, (_, i) => samples[i]!)
  return out.sort()
}

/** The q-quantile (0..1) of sorted samples, nearest-rank (never interpolated past a real sample). */
export function quantile (sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length
  if (n === 0) return NaN
  const rank = Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))
  return sorted[rank]!
}

export function summarize (sorted: ArrayLike<number>): LatencySummary {
  const n = sorted.length
  let sum = 0
  for (let i = 0; i < n; i++) sum += sorted[i]!
  return {
    count: n,
    min: n === 0 ? NaN : sorted[0]!,
    mean: n === 0 ? NaN : sum / n,
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    p999: quantile(sorted, 0.999),
    max: n === 0 ? NaN : sorted[n - 1]!,
  }
}

/**
 * Points of the percentile curve from p0 to p99.9, evenly spaced in "nines" (x = -log10(1 - p)),
 * so p50, p90, p99 and p99.9 sit at x = 0.30, 1, 2, 3. For the chart and the results JSON.
 */
export function percentileCurve (sorted: ArrayLike<number>, points = 120): { p: number, ms: number }[] {
  const out: { p: number, ms: number }[] = []
  if (sorted.length === 0) return out
  for (let i = 0; i <= points; i++) {
    const nines = (3 * i) / points
    const p = 1 - 10 ** -nines
    out.push({ p: Math.round(p * 1e6) / 1e4, ms: round3(quantile(sorted, p)) })
  }
  return out
}

export function round3 (x: number): number {
  return Math.round(x * 1000) / 1000
}

export function roundSummary (s: LatencySummary): LatencySummary {
  return {
    count: s.count,
    min: round3(s.min),
    mean: round3(s.mean),
    p50: round3(s.p50),
    p90: round3(s.p90),
    p99: round3(s.p99),
    p999: round3(s.p999),
    max: round3(s.max),
  }
}

export function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}
