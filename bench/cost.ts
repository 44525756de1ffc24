/**
 * Cost per million durable events, from an ingest throughput — scenario 1 (single events) and
 * scenario 11 (batches of 100), one estimate each — and the Fly.io Machine that fly.toml names.
 *
 *   per-vCPU throughput = events stored per second ÷ cores of the bench machine
 *                         (a conservative figure: PostgreSQL and the load generator used the same cores)
 *   events per hour     = per-vCPU throughput × the VM's vCPUs × 3600
 *   cost per million    = the VM's hourly price ÷ (events per hour / 1e6)
 *
 * Only the VM is priced: the managed PostgreSQL, volumes and bandwidth are not included.
 *
 * PRICES (USD per month of 730 h for a started Machine), read 2026-11-24 (PRICES_READ_ON):
 * shared-cpu-1x with 256 MB at $1.94/month is the figure fly.toml's comment uses (one place for the
 * project: keep the two in step), as Fly.io published it with its shared-cpu sizes ("New VMs: more
 * RAM, extra CPU, and a dollar menu", fly.io/blog; read here from a stored copy of that post), with
 * 1 GB at $5.70 and 2 GB at $10.70 from the same table (it has no 512 MB row).
 * A summary checked against fly.io/docs/about/pricing on 2026-06-07 gives $2.02/month for 256 MB
 * (+4 %): prices vary by region and change; re-check before relying on them and update
 * PRICES_READ_ON with the table. A size not in the table prints "price unknown". When fly.toml's
 * [[vm]] gives no memory, the smallest memory of that size is used; a memory between two rows is
 * priced at the next larger one.
 */
import { readFile } from 'node:fs/promises'

export const PRICES_READ_ON = '2026-11-24'
export const HOURS_PER_MONTH = 730

/** USD per month for a started Machine, by size and memory (MB). */
export const FLY_MONTHLY_USD: Readonly<Record<string, Readonly<Record<number, number>>>> = {
  'shared-cpu-1x': { 256: 1.94, 1024: 5.70, 2048: 10.70 },
}

/** The default when fly.toml is absent or names no size: the size the project deploys on. */
export const DEFAULT_VM = { size: 'shared-cpu-1x', memoryMb: 256 } as const

export interface FlyVm {
  readonly size: string
  readonly memoryMb: number
  readonly vcpus: number
  readonly source: string // where the size came from
  readonly hourlyUsd: number | null
}

export function vcpusOf (size: string): number {
  const m = /-(\d+)x$/.exec(size)
  return m === null ? 1 : Number(m[1])
}

function parseMemory (s: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(gb|mb)?\s*$/i.exec(s)
  if (m === null) return null
  const n = Number(m[1])
  return (m[2] ?? 'mb').toLowerCase() === 'gb' ? n * 1024 : n
}

/** Reads the [[vm]] section of fly.toml (size, memory, cpus, cpu_kind); a missing file gives the default. */
export async function readFlyVm (flyToml: URL): Promise<FlyVm> {
  let text: string
  try { text = await readFile(flyToml, 'utf8') } catch {
    return priced(DEFAULT_VM.size, DEFAULT_VM.memoryMb, null, `fly.toml absent: default ${DEFAULT_VM.size}`)
  }
  const section = /^\s*\[\[vm\]\]\s*$([\s\S]*?)(?=^\s*\[|(?![\s\S]))/m.exec(text)?.[1] ?? ''
  const field = (name: string): string | null => {
    const m = new RegExp(`^\\s*${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^#\\s]+))`, 'm').exec(section)
    return m === null ? null : (m[2] ?? m[3] ?? m[4] ?? null)
  }
  let size = field('size')
  const kind = field('cpu_kind')
  const cpus = field('cpus')
  if (size === null && kind !== null) size = `${kind === 'performance' ? 'performance' : 'shared-cpu'}-${cpus ?? 1}x`
  const memory = field('memory') ?? field('memory_mb')
  const memoryMb = memory === null ? null : parseMemory(memory)
  if (size === null) return priced(DEFAULT_VM.size, DEFAULT_VM.memoryMb, null, `fly.toml names no VM size: default ${DEFAULT_VM.size}`)
  return priced(size, memoryMb, cpus === null ? null : Number(cpus), 'fly.toml')
}

function priced (size: string, memoryMb: number | null, cpus: number | null, source: string): FlyVm {
  const table = FLY_MONTHLY_USD[size]
  let mem = memoryMb
  if (table !== undefined && (mem === null || table[mem] === undefined)) {
    const sizes = Object.keys(table).map(Number).sort((a, b) => a - b)
    mem = mem === null ? sizes[0]! : (sizes.find(s => s >= mem!) ?? sizes[sizes.length - 1]!)
  }
  const monthly = table?.[mem ?? -1]
  return {
    size,
    memoryMb: mem ?? 0,
    vcpus: cpus ?? vcpusOf(size),
    source,
    hourlyUsd: monthly === undefined ? null : monthly / HOURS_PER_MONTH,
  }
}

export interface CostEstimate {
  readonly vm: FlyVm
  readonly benchCores: number
  readonly throughputPerSec: number
  readonly perVcpuPerSec: number
  readonly eventsPerHourOnVm: number
  readonly usdPerMillion: number | null
  readonly pricesReadOn: string
}

export function estimateCost (vm: FlyVm, throughputPerSec: number, benchCores: number): CostEstimate {
  const perVcpuPerSec = throughputPerSec / benchCores
  const eventsPerHourOnVm = perVcpuPerSec * vm.vcpus * 3600
  return {
    vm,
    benchCores,
    throughputPerSec,
    perVcpuPerSec,
    eventsPerHourOnVm,
    usdPerMillion: vm.hourlyUsd === null || eventsPerHourOnVm <= 0 ? null : vm.hourlyUsd / (eventsPerHourOnVm / 1e6),
    pricesReadOn: PRICES_READ_ON,
  }
}
