/**
 * Resident memory of a process, from /proc/<pid>/status (Linux): VmRSS now and VmHWM, the kernel's
 * own peak, which catches spikes between samples. `MemoryWatch` samples VmRSS every `everyMs` so a
 * test can compare phases (before, during and after a fault).
 */
import { readFileSync } from 'node:fs'

export interface Resident { readonly rssMb: number, readonly peakMb: number }

function field (status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
  if (m === null) throw new Error(`/proc status has no ${name}`)
  return Number(m[1]) / 1024
}

export function resident (pid: number): Resident {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return { rssMb: field(status, 'VmRSS'), peakMb: field(status, 'VmHWM') }
}

export class MemoryWatch {
  readonly #pid: number
  readonly #timer: NodeJS.Timeout
  /** Highest VmRSS sampled since the last `mark`. */
  maxSinceMark = 0
  maxMb = 0

  constructor (pid: number, everyMs = 100) {
    this.#pid = pid
    this.#timer = setInterval(() => { this.sample() }, everyMs)
    this.#timer.unref()
  }

  sample (): Resident | null {
    let r: Resident
    try { r = resident(this.#pid) } catch { return null } // the process has exited
    this.maxSinceMark = Math.max(this.maxSinceMark, r.rssMb)
    this.maxMb = Math.max(this.maxMb, r.rssMb)
    return r
  }

  /** Starts a new phase: returns the highest VmRSS of the one that ended. */
  mark (): number {
    const m = this.maxSinceMark
    this.maxSinceMark = 0
    this.sample()
    return m
  }

  stop (): void { clearInterval(this.#timer) }
}

export const mb = (n: number): string => `${Math.round(n)} MB`
