/** Progress lines on stderr, each stamped with the time since the bench started. */
import { performance } from 'node:perf_hooks'

const t0 = performance.now()

export function progress (msg: string): void {
  const s = (performance.now() - t0) / 1000
  const mm = Math.floor(s / 60).toString().padStart(2, '0')
  const ss = (s % 60).toFixed(1).padStart(4, '0')
  process.stderr.write(`[${mm}:${ss}] ${msg}\n`)
}

export function elapsedS (): number {
  return (performance.now() - t0) / 1000
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => { setTimeout(resolve, ms) })
}

export function fmt (x: number, digits = 0): string {
  if (!Number.isFinite(x)) return 'n/a'
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

/**
 * Milliseconds since the epoch with sub-millisecond resolution (performance.timeOrigin + now()): the
 * clock the bench and its helper processes share (each helper's offset to it is measured).
 */
export function epochNow (): number {
  return performance.timeOrigin + performance.now()
}
