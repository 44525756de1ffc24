/**
 * Hot-path metric writes (STYLE C12): plain numeric stores into this thread's slots, no prom-client
 * objects, no label hashing, no allocation. Each method is a few array operations. One instance per
 * thread, over the SharedArrayBuffer the primary gave it. With METRICS_PORT=0 the primary gives none
 * and the thread uses NoopMetrics, decided once at start (STYLE C8): every method is empty, which is
 * also the baseline bench/ compares against to measure what metrics cost.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import {
  ATTEMPT_BUCKETS, ATTEMPT_OUTCOMES, BATCH_BUCKETS, DELIVERY_OUTCOMES, LATENCY_BUCKETS, METRICS, OFFSETS, RATE_SCOPES, REJECT_REASONS,
  STATUS_CLASSES, allocateMetrics, slotsPerSeries,
} from './layout.ts'

const HIST_LAT = slotsPerSeries(METRICS.httpDuration)
const HIST_ATTEMPT = slotsPerSeries(METRICS.attempts)

function observe (a: Float64Array, base: number, buckets: readonly number[], v: number): void {
  // Cumulative buckets are produced at scrape time; here only the first bucket holding v counts.
  let i = 0
  while (i < buckets.length && v > buckets[i]!) i++
  a[base + i]!++
  a[base + buckets.length]! += v
  a[base + buckets.length + 1]!++
}

export class ThreadMetrics {
  readonly slots: Float64Array

  constructor (sab: SharedArrayBuffer | null) {
    this.slots = new Float64Array(sab ?? allocateMetrics())
  }

  /** The metrics of a thread: counting into `sab`, or doing nothing when there is none. */
  static forThread (sab: SharedArrayBuffer | null): ThreadMetrics {
    return sab === null ? new NoopMetrics(null) : new ThreadMetrics(sab)
  }

  request (route: number, status: number, seconds: number): void {
    const cls = status >= 500 ? 3 : status >= 400 ? 2 : status >= 300 ? 1 : 0
    this.slots[OFFSETS.httpRequests + route * STATUS_CLASSES.length + cls]!++
    observe(this.slots, OFFSETS.httpDuration + route * HIST_LAT, LATENCY_BUCKETS, seconds)
  }

  accepted (): void { this.slots[OFFSETS.eventsAccepted]!++ }
  duplicate (): void { this.slots[OFFSETS.eventsDuplicate]!++ }

  /** `code` is an error code; codes outside REJECT_REASONS are not counted here. */
  rejected (code: string): void {
    const i = (REJECT_REASONS as readonly string[]).indexOf(code)
    if (i >= 0) this.slots[OFFSETS.eventsRejected + i]!++
  }

  rateLimited (scope: typeof RATE_SCOPES[number]): void {
    this.slots[OFFSETS.rateLimited + RATE_SCOPES.indexOf(scope)]!++
  }

  authCache (hit: boolean): void {
    this.slots[hit ? OFFSETS.authCacheHits : OFFSETS.authCacheMisses]!++
  }

  batch (size: number, seconds: number): void {
    observe(this.slots, OFFSETS.writerBatchSize, BATCH_BUCKETS, size)
    observe(this.slots, OFFSETS.writerCommit, LATENCY_BUCKETS, seconds)
  }

  writerQueue (n: number): void { this.slots[OFFSETS.writerQueue] = n }

  delivery (outcome: typeof DELIVERY_OUTCOMES[number], attemptSeconds: number): void {
    this.slots[OFFSETS.deliveries + DELIVERY_OUTCOMES.indexOf(outcome)]!++
    observe(this.slots, OFFSETS.deliveryAttempt, LATENCY_BUCKETS, attemptSeconds)
  }

  /** One HTTP attempt (as the attempt log records it), by outcome. */
  attempt (outcome: typeof ATTEMPT_OUTCOMES[number], seconds: number): void {
    observe(this.slots, OFFSETS.attempts + ATTEMPT_OUTCOMES.indexOf(outcome) * HIST_ATTEMPT, ATTEMPT_BUCKETS, seconds)
  }

  delivered (endToEndSeconds: number): void {
    observe(this.slots, OFFSETS.deliveryEndToEnd, LATENCY_BUCKETS, endToEndSeconds)
  }

  /** Samples event-loop lag and heap every `intervalMs` (one unref'd timer per thread). */
  startRuntimeSampling (intervalMs = 1000): () => void {
    const h = monitorEventLoopDelay({ resolution: 10 })
    h.enable()
    this.slots[OFFSETS.heapUsed] = getHeapStatistics().used_heap_size
    const t = setInterval(() => {
      this.slots[OFFSETS.eventLoopLag] = h.percentile(99) / 1e9
      h.reset()
      this.slots[OFFSETS.heapUsed] = getHeapStatistics().used_heap_size
    }, intervalMs)
    t.unref()
    return () => { clearInterval(t); h.disable() }
  }
}

/** Metrics turned off (METRICS_PORT=0): same interface, no work. */
export class NoopMetrics extends ThreadMetrics {
  override request (): void {}
  override accepted (): void {}
  override duplicate (): void {}
  override rejected (): void {}
  override rateLimited (): void {}
  override authCache (): void {}
  override batch (): void {}
  override writerQueue (): void {}
  override delivery (): void {}
  override delivered (): void {}
  override attempt (): void {}
  override startRuntimeSampling (): () => void { return () => {} }
}
