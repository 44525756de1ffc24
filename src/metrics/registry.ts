/**
 * The Prometheus registry, on the primary thread only (STYLE C12). prom-client's own aggregation
 * works only with the cluster module, so every thread's metric slots (layout.ts) are summed here at
 * scrape time by metric objects that implement prom-client's `get()` contract. Process metrics come
 * from prom-client's default collectors; a few gauges are read at scrape time (Argon2 queue, due
 * deliveries from PostgreSQL).
 */
import type { Backlog } from '../db/queries/count-deliveries.ts'
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { METRICS, OFFSETS, slotsPerSeries, type MetricKey, type MetricSpec } from './layout.ts'

export interface SlotSource {
  readonly thread: string
  readonly slots: Float64Array
}

interface Value { value: number, labels: Record<string, string | number>, metricName?: string }

function fmtLe (b: number): string { return String(b) }

/** A prom-client-compatible metric whose values are read from the threads' slots at scrape time. */
class SlotMetric {
  readonly name: string
  readonly help: string
  readonly type: string
  readonly aggregator = 'sum'
  readonly #spec: MetricSpec
  readonly #offset: number
  readonly #sources: () => readonly SlotSource[]

  constructor (key: MetricKey, sources: () => readonly SlotSource[]) {
    const s: MetricSpec = METRICS[key]
    this.#spec = s
    this.name = s.name
    this.help = s.help
    this.type = s.type
    this.#offset = OFFSETS[key]
    this.#sources = sources
  }

  get (): { name: string, help: string, type: string, values: Value[], aggregator: string } {
    const s = this.#spec
    const values: Value[] = []
    const l1 = s.label?.values ?? [null]
    const l2 = s.label2?.values ?? [null]
    const per = slotsPerSeries(s)
    const sources = this.#sources()
    let series = 0
    for (const a of l1) {
      for (const b of l2) {
        const labels: Record<string, string> = {}
        if (a !== null && s.label !== null) labels[s.label.name] = a
        if (b !== null && s.label2 !== null) labels[s.label2.name] = b
        const base = this.#offset + series * per
        series++
        if (s.across === 'per-thread') {
          for (const src of sources) values.push({ value: src.slots[base] ?? 0, labels: { ...labels, thread: src.thread } })
          continue
        }
        if (s.buckets === null) {
          let v = 0
          for (const src of sources) v += src.slots[base] ?? 0
          values.push({ value: v, labels })
          continue
        }
        const n = s.buckets.length
        let cumulative = 0
        for (let i = 0; i < n; i++) {
          for (const src of sources) cumulative += src.slots[base + i] ?? 0
          values.push({ value: cumulative, labels: { ...labels, le: fmtLe(s.buckets[i]!) }, metricName: `${s.name}_bucket` })
        }
        let sum = 0
        let count = 0
        for (const src of sources) { sum += src.slots[base + n] ?? 0; count += src.slots[base + n + 1] ?? 0 }
        values.push({ value: count, labels: { ...labels, le: '+Inf' }, metricName: `${s.name}_bucket` })
        values.push({ value: sum, labels, metricName: `${s.name}_sum` })
        values.push({ value: count, labels, metricName: `${s.name}_count` })
      }
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }
}

export interface RegistryHooks {
  readonly sources: () => readonly SlotSource[]
  /** Argon2 tasks waiting for a worker. */
  readonly argon2Queue: () => number
  /** Deliveries due now (null when the database cannot say). */
  readonly dueDeliveries: () => Promise<number | null>
  /** The delivery backlog and its largest endpoints (null when the database cannot say). */
  readonly backlog: () => Promise<Backlog | null>
}

export function buildRegistry (hooks: RegistryHooks): Registry {
  const registry = new Registry()
  // prom-client's default names already start with process_ / nodejs_: the prefix is the namespace only
  // (triggers_process_resident_memory_bytes, triggers_nodejs_heap_size_used_bytes).
  collectDefaultMetrics({ register: registry, prefix: 'triggers_' })
  for (const key of Object.keys(METRICS) as MetricKey[]) {
    // prom-client accepts any object with name/help/type/get(); see Registry.getMetricsAsString.
    registry.registerMetric(new SlotMetric(key, hooks.sources) as unknown as Parameters<Registry['registerMetric']>[0])
  }
  registry.registerMetric(new Gauge({
    name: 'triggers_argon2_queue_tasks',
    help: 'Argon2 hash/verify tasks waiting for a pool thread.',
    registers: [],
    collect () { this.set(hooks.argon2Queue()) },
  }))
  registry.registerMetric(new Gauge({
    name: 'triggers_deliveries_due',
    help: 'Delivery attempts due now and not yet claimed (counted up to 100000).',
    registers: [],
    async collect () {
      const n = await hooks.dueDeliveries()
      if (n !== null) this.set(n)
    },
  }))
  // One read per scrape feeds the three backlog gauges (the first to collect fetches it).
  let backlog: Promise<Backlog | null> | null = null
  const readBacklog = (): Promise<Backlog | null> => {
    backlog ??= hooks.backlog().finally(() => { setTimeout(() => { backlog = null }, 1000).unref() })
    return backlog
  }
  registry.registerMetric(new Gauge({
    name: 'triggers_deliveries_backlog',
    help: 'Pending and failed deliveries on every endpoint (counted up to 1000000).',
    registers: [],
    async collect () {
      const b = await readBacklog()
      if (b !== null) this.set(b.total)
    },
  }))
  // Top endpoints only (the contract, docs/api.md "Flow control per endpoint"): at most 10 series, labelled by endpoint and
  // rank; never a label per organization.
  const topCount = new Gauge({
    name: 'triggers_endpoint_backlog_deliveries',
    help: 'Pending and failed deliveries of the 10 endpoints with the largest backlog.',
    labelNames: ['rank', 'endpoint_id'],
    registers: [],
    async collect () {
      const b = await readBacklog()
      this.reset()
      if (b === null) return
      b.top.forEach((e, i) => { this.set({ rank: String(i + 1), endpoint_id: e.endpoint_id }, e.deliveries) })
    },
  })
  const topAge = new Gauge({
    name: 'triggers_endpoint_backlog_oldest_seconds',
    help: 'Age of the oldest pending or failed delivery of the 10 endpoints with the largest backlog.',
    labelNames: ['rank', 'endpoint_id'],
    registers: [],
    async collect () {
      const b = await readBacklog()
      this.reset()
      if (b === null) return
      b.top.forEach((e, i) => { this.set({ rank: String(i + 1), endpoint_id: e.endpoint_id }, e.oldest_seconds) })
    },
  })
  registry.registerMetric(topCount)
  registry.registerMetric(topAge)
  return registry
}
