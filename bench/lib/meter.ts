/**
 * Machine load during one measured run, recorded with every scenario's result so a reader can judge
 * the numbers: the load average before and after, the CPU the machine as a whole was busy with
 * (/proc/stat), and the CPU (in cores: CPU seconds per wall second, all threads) of each process the
 * bench knows — the service, its helpers (receiver, ceiling client, baselines), the bench process
 * itself (the load generators: autocannon and its worker threads, the open-loop client), and the
 * PostgreSQL backends serving the scratch database. `other` is what the machine was busy with beyond
 * all of those (other people's work, the kernel's share not charged to a process, PostgreSQL's
 * background writers).
 */
import os from 'node:os'
import { readFile } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { readCpuSeconds } from './child.ts'

export interface RunLoad {
  readonly wallS: number
  readonly loadAverageBefore: readonly number[]
  readonly loadAverageAfter: readonly number[]
  /** Cores the whole machine was busy (user + system + irq + steal), from /proc/stat. */
  readonly machineBusyCores: number | null
  /** Cores used by each process (or group of processes) during the run. */
  readonly cpuCores: Record<string, number | null>
  /** machineBusyCores minus every process listed: other work on the machine. */
  readonly otherCores: number | null
}

/** Processes to watch: a name and how to find their pids (fixed pids, or a function asked at start and end). */
export type Watched = Record<string, number | (() => Promise<number[]>)>

async function machineTicks (): Promise<{ busy: number, total: number } | null> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0] ?? ''
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    const idle = (f[3] ?? 0) + (f[4] ?? 0)
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
    return { busy: total - idle, total }
  } catch { return null }
}

async function cpuOf (pids: readonly number[]): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  await Promise.all(pids.map(async p => {
    const s = p === process.pid ? selfCpu() : await readCpuSeconds(p)
    if (s !== null) out.set(p, s)
  }))
  return out
}

function selfCpu (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

const round2 = (x: number): number => Math.round(x * 100) / 100

export class Meter {
  readonly #watched: Watched
  readonly #t0: number
  readonly #load0: number[]
  readonly #ticks0: { busy: number, total: number } | null
  readonly #cpu0: Map<string, Map<number, number>>

  private constructor (watched: Watched, t0: number, load0: number[], ticks0: { busy: number, total: number } | null, cpu0: Map<string, Map<number, number>>) {
    this.#watched = watched
    this.#t0 = t0
    this.#load0 = load0
    this.#ticks0 = ticks0
    this.#cpu0 = cpu0
  }

  static async start (watched: Watched): Promise<Meter> {
    const cpu0 = new Map<string, Map<number, number>>()
    for (const [name, w] of Object.entries(watched)) cpu0.set(name, await cpuOf(await pidsOf(w)))
    const ticks0 = await machineTicks()
    return new Meter(watched, performance.now(), os.loadavg(), ticks0, cpu0)
  }

  async stop (): Promise<RunLoad> {
    const wallS = (performance.now() - this.#t0) / 1000
    const ticks1 = await machineTicks()
    const cpuCores: Record<string, number | null> = {}
    let known = 0
    for (const [name, w] of Object.entries(this.#watched)) {
      const before = this.#cpu0.get(name) ?? new Map<number, number>()
      const after = await cpuOf(await pidsOf(w))
      if (after.size === 0 && before.size === 0) { cpuCores[name] = null; continue }
      let used = 0
      // A process that appeared during the run is charged all its CPU; one that ended is not seen.
      for (const [pid, s] of after) used += s - (before.get(pid) ?? 0)
      cpuCores[name] = round2(used / wallS)
      known += used / wallS
    }
    let machineBusyCores: number | null = null
    if (this.#ticks0 !== null && ticks1 !== null && ticks1.total > this.#ticks0.total) {
      machineBusyCores = round2(((ticks1.busy - this.#ticks0.busy) / (ticks1.total - this.#ticks0.total)) * os.availableParallelism())
    }
    return {
      wallS: round2(wallS),
      loadAverageBefore: this.#load0.map(round2),
      loadAverageAfter: os.loadavg().map(round2),
      machineBusyCores,
      cpuCores,
      otherCores: machineBusyCores === null ? null : round2(Math.max(0, machineBusyCores - known)),
    }
  }
}

async function pidsOf (w: number | (() => Promise<number[]>)): Promise<number[]> {
  if (typeof w === 'number') return w > 0 ? [w] : []
  try { return await w() } catch { return [] }
}

/** One line for progress output: load average and who used the CPU. */
export function describeLoad (l: RunLoad): string {
  const procs = Object.entries(l.cpuCores).filter(([, v]) => v !== null).map(([k, v]) => `${k} ${v}`).join(', ')
  return `load ${l.loadAverageBefore[0]?.toFixed(2)} → ${l.loadAverageAfter[0]?.toFixed(2)}; cores: machine ${l.machineBusyCores ?? '?'} (${procs}, other ${l.otherCores ?? '?'})`
}
