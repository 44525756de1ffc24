/**
 * The micro-batching writer (one per listener thread). Accepted events queue here; a flush takes
 * everything queued (up to WRITER_MAX_BATCH) into one transaction and each request is answered only
 * after that transaction commits. Batching is adaptive group commit: a flush starts on the next turn of
 * the event loop (setImmediate, so requests parsed in the same I/O phase share it) whenever fewer than
 * `maxInFlight` transactions are running; while they run, new events accumulate into the next batch. At
 * low load a request waits for one round trip; under load batches grow by themselves.
 *
 *   submit ──▶ [queue ≤ WRITER_MAX_QUEUE] ──flush──▶ insertEvents (1 tx) ──commit──▶ settle each
 *                   │ full                                   │ connection lost        201 / 409
 *                   ▼                                        ▼
 *                  503 unavailable                          503 unavailable (nothing half-written)
 *
 * A request's events form a group (one for POST /api/events, up to BATCH_MAX_EVENTS for the batch
 * route): a group is never split between statements, so every request is one transaction with its
 * fan-out deliveries, and the events of a batch request may share a statement with other requests'.
 * WRITER_MAX_BATCH is therefore a soft bound: a statement stops at the first group boundary past it.
 *
 * A statement failing for any other reason is retried one group per transaction, so one bad row cannot
 * fail its neighbours' requests. Listener threads only.
 *
 * Tracing (docs/tracing.md), decided once by `traced`: each event carries its request's ingest span,
 * whose traceparent is written with the event, and each request gets a `commit` span for the
 * statement that held it. Off, events carry null and the statement has no traceparent array.
 */
import type { Sql } from '../db/client.ts'
import { dedupKey, insertEvents, type BatchResult, type EventBatch } from '../db/queries/insert-events.ts'
import { dbError, isConnectionError } from '../db/errors.ts'
import { ApiError } from '../errors.ts'
import { uuidv7 } from '../lib/uuid.ts'
import type { EventInput } from './validate.ts'
import type { IngestSpan } from '../tracing/tracer.ts'

/** One queued event; its fields are all set at construction (STYLE C7). */
export class PendingEvent<T> {
  readonly organizationId: string
  /** UUIDv7, made in submission order: the events of one request get increasing ids. */
  readonly id: string
  readonly input: EventInput
  readonly owner: T
  /** The item's index in its request (0 for a single event). */
  readonly index: number
  /** The last event of its request's group (true for a single event). */
  groupEnd: boolean
  /** An earlier event of the same statement with the same dedup key, or null. */
  dupOf: PendingEvent<T> | null
  /** The ingest span of its request, or null (tracing off). */
  readonly trace: IngestSpan | null
  constructor (organizationId: string, input: EventInput, owner: T, index = 0, trace: IngestSpan | null = null) {
    this.organizationId = organizationId
    this.id = uuidv7()
    this.input = input
    this.owner = owner
    this.index = index
    this.groupEnd = true
    this.dupOf = null
    this.trace = trace
  }
}

export interface WriterHooks<T> {
  created (ev: PendingEvent<T>, createdAt: string): void
  duplicate (ev: PendingEvent<T>, originalId: string): void
  failed (ev: PendingEvent<T>, err: ApiError): void
  /** After a commit that stored at least one event due for delivery. */
  committed (count: number, anyDue: boolean): void
  batch (size: number, ms: number): void
}

export interface WriterOptions {
  readonly maxBatch: number
  readonly maxQueue: number
  readonly maxInFlight: number
  readonly dedupWindowSeconds: number
  /** Tracing is on: store each event's traceparent and report each statement to its requests' spans. */
  readonly traced: boolean
}

export class Writer<T> {
  readonly #sql: Sql
  readonly #o: WriterOptions
  readonly #hooks: WriterHooks<T>
  #queue: PendingEvent<T>[] = []
  /** Events submitted and not yet settled (queued + in flight). */
  #outstanding = 0
  #inFlight = 0
  #scheduled = false
  #idleWaiters: (() => void)[] = []

  constructor (sql: Sql, options: WriterOptions, hooks: WriterHooks<T>) {
    this.#sql = sql
    this.#o = options
    this.#hooks = hooks
  }

  get outstanding (): number { return this.#outstanding }

  /** Queues an event; false when the writer is past its bound (the caller answers 503). */
  submit (ev: PendingEvent<T>): boolean {
    if (this.#outstanding >= this.#o.maxQueue) return false
    this.#outstanding++
    this.#queue.push(ev)
    this.#schedule()
    return true
  }

  /**
   * Queues one request's events as a group written in one statement, all or none: false (nothing
   * queued) when they do not fit under the bound.
   */
  submitGroup (events: readonly PendingEvent<T>[]): boolean {
    if (events.length === 0) return true
    if (this.#outstanding + events.length > this.#o.maxQueue) return false
    this.#outstanding += events.length
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!
      ev.groupEnd = i === events.length - 1
      this.#queue.push(ev)
    }
    this.#schedule()
    return true
  }

  /** Resolves when nothing is queued or in flight (graceful shutdown). */
  idle (): Promise<void> {
    if (this.#outstanding === 0) return Promise.resolve()
    return new Promise(resolve => this.#idleWaiters.push(resolve))
  }

  #schedule (): void {
    if (this.#scheduled || this.#inFlight >= this.#o.maxInFlight) return
    this.#scheduled = true
    setImmediate(flushWriter, this)
  }

  /** Internal: called by flushWriter. */
  flush (): void {
    this.#scheduled = false
    while (this.#queue.length > 0 && this.#inFlight < this.#o.maxInFlight) {
      let batch: PendingEvent<T>[]
      // Cut at the first group boundary at or past maxBatch (a group is never split).
      let cut = Math.min(this.#queue.length, this.#o.maxBatch)
      while (cut < this.#queue.length && !this.#queue[cut - 1]!.groupEnd) cut++
      if (cut >= this.#queue.length) {
        batch = this.#queue
        this.#queue = []
      } else {
        batch = this.#queue.slice(0, cut)
        this.#queue = this.#queue.slice(cut)
      }
      this.#inFlight++
      this.#write(batch, true).then(() => this.#done(batch.length), (err: unknown) => {
        // #write settles every event itself; reaching here is a programmer error: crash (STYLE C5).
        process.nextTick(() => { throw err })
      })
    }
  }

  #done (n: number): void {
    this.#inFlight--
    this.#outstanding -= n
    if (this.#queue.length > 0) this.#schedule()
    if (this.#outstanding === 0 && this.#idleWaiters.length > 0) {
      const w = this.#idleWaiters
      this.#idleWaiters = []
      for (const f of w) f()
    }
  }

  async #write (batch: PendingEvent<T>[], mayRetrySingly: boolean): Promise<void> {
    const seen = new Map<string, PendingEvent<T>>()
    const b: EventBatch = { organizationIds: [], ids: [], types: [], payloads: [], dedupIds: [], traceparents: this.#o.traced ? [] : null }
    for (const ev of batch) {
      const d = ev.input.dedupId
      if (d !== null) {
        const k = dedupKey(ev.organizationId, d)
        const first = seen.get(k)
        if (first !== undefined) { ev.dupOf = first; continue }
        seen.set(k, ev)
      }
      b.organizationIds.push(ev.organizationId)
      b.ids.push(ev.id)
      b.types.push(ev.input.type)
      b.payloads.push(ev.input.payload)
      b.dedupIds.push(d)
      if (b.traceparents !== null) b.traceparents.push(ev.trace === null ? null : ev.trace.traceparent)
    }
    const createdAt = new Date()
    const t0 = performance.now()
    let result: BatchResult
    try {
      result = await insertEvents(this.#sql, b, createdAt, this.#o.dedupWindowSeconds)
    } catch (err) {
      if (mayRetrySingly && groupCount(batch) > 1 && !isConnectionError(err)) {
        // One group per transaction, so one bad row fails only its own request.
        let from = 0
        for (let i = 0; i < batch.length; i++) {
          batch[i]!.dupOf = null
          if (batch[i]!.groupEnd) { await this.#write(batch.slice(from, i + 1), false); from = i + 1 }
        }
        return
      }
      const e = dbError(err)
      if (this.#o.traced) traceCommits(batch, t0, performance.now(), e)
      for (const ev of batch) this.#hooks.failed(ev, e)
      return
    }
    const t1 = performance.now()
    if (this.#o.traced) traceCommits(batch, t0, t1, null)
    this.#hooks.batch(batch.length, t1 - t0)
    const iso = createdAt.toISOString()
    for (const ev of batch) {
      const first = ev.dupOf ?? ev
      if (result.inserted.has(first.id)) {
        if (ev.dupOf === null) this.#hooks.created(ev, iso)
        else this.#hooks.duplicate(ev, first.id)
        continue
      }
      const original = first.input.dedupId === null ? undefined : result.duplicates.get(dedupKey(first.organizationId, first.input.dedupId))
      if (original !== undefined) this.#hooks.duplicate(ev, original)
      else this.#hooks.failed(ev, new ApiError('internal_error', undefined, null, { cause: new Error('event was neither stored nor a duplicate') }))
    }
    if (result.inserted.size > 0) this.#hooks.committed(result.inserted.size, result.anyDue)
  }
}

function flushWriter (w: Writer<unknown>): void { w.flush() }

/** One `commit` span per traced request of the statement (its last event closes the group). */
function traceCommits (batch: readonly PendingEvent<unknown>[], t0: number, t1: number, err: Error | null): void {
  let inGroup = 0
  for (const ev of batch) {
    inGroup++
    if (!ev.groupEnd) continue
    if (ev.trace !== null) ev.trace.commit(t0, t1, batch.length, inGroup, err)
    inGroup = 0
  }
}

function groupCount (batch: readonly PendingEvent<unknown>[]): number {
  let n = 0
  for (const ev of batch) if (ev.groupEnd) n++
  return n
}
