/**
 * POST /api/events/batch (the contract, docs/api.md "Batch ingest"). Checks in the contract's order: auth (401) → body
 * size (413, BATCH_MAX_BODY_BYTES, decided while streaming) → JSON (400) → shape (400 invalid_batch) →
 * count (422 batch_too_large) → rate limit: N tokens, all or nothing (429) → per-item validation →
 * dedup (within the batch, then against the window) → one transaction with every created event and
 * its fan-out deliveries (the thread's writer, as one group: ingest/writer.ts) → 200 after commit.
 * An `atomic` batch with an invalid item is 422 batch_rejected and stores nothing. With tracing on,
 * the request is one server span, the parent of all its events' deliveries (docs/tracing.md).
 * Listener threads.
 */
import type { Ctx } from '../context.ts'
import type { AuthEntry } from '../../auth/key-cache.ts'
import type { Services } from '../services.ts'
import { rateLimitError, setRateHeaders } from '../pipeline.ts'
import { send, sendError } from '../reply.ts'
import { ApiError } from '../../errors.ts'
import { Decision } from '../../rate-limit/limiter.ts'
import { parseBatch, validateItem, type BatchShape } from '../../ingest/validate-batch.ts'
import { PendingEvent } from '../../ingest/writer.ts'
import type { EventInput } from '../../ingest/validate.ts'
import { endRefused, type WriterOwner } from './events.ts'
import { tracer, type IngestSpan } from '../../tracing/tracer.ts'

const FULL = new ApiError('unavailable', 'Too many events waiting to be written; retry shortly', null, { retryAfter: 1 })

/** The result of one item, as it will be serialized (fixed shape, STYLE C7). */
class ItemResult {
  status: 'created' | 'duplicate' | 'invalid' | 'not_created'
  id: string
  type: string
  dedupId: string | null
  createdAt: string
  eventId: string
  error: ApiError | null
  constructor () {
    this.status = 'not_created'
    this.id = ''
    this.type = ''
    this.dedupId = null
    this.createdAt = ''
    this.eventId = ''
    this.error = null
  }
}

/** One batch request while its events are being written: the writer's hooks settle its items. */
export class BatchRequest {
  readonly ctx: Ctx
  readonly results: ItemResult[]
  outstanding: number
  failed: ApiError | null
  /** The request's ingest span, or null (tracing off). */
  readonly trace: IngestSpan | null

  constructor (ctx: Ctx, n: number, trace: IngestSpan | null) {
    this.ctx = ctx
    this.results = new Array<ItemResult>(n)
    for (let i = 0; i < n; i++) this.results[i] = new ItemResult()
    this.outstanding = 0
    this.failed = null
    this.trace = trace
  }

  created (index: number, id: string, input: EventInput, createdAt: string): void {
    const r = this.results[index]!
    r.status = 'created'
    r.id = id
    r.type = input.type
    r.dedupId = input.dedupId
    r.createdAt = createdAt
    this.#settled()
  }

  duplicate (index: number, input: EventInput, originalId: string): void {
    const r = this.results[index]!
    r.status = 'duplicate'
    r.dedupId = input.dedupId
    r.eventId = originalId
    this.#settled()
  }

  fail (err: ApiError): void {
    this.failed ??= err
    this.#settled()
  }

  #settled (): void {
    if (--this.outstanding > 0) return
    if (this.failed !== null) sendError(this.ctx, this.failed)
    else send(this.ctx, 200, serializeBatch(this.results, 'results'))
    if (this.trace !== null) this.trace.end(this.ctx.aborted ? 0 : (this.failed === null ? 200 : this.failed.status), null)
  }
}

function str (s: string): string { return JSON.stringify(s) }

/** The batch answer, built by hand: the per-item objects have four shapes. */
export function serializeBatch (results: readonly ItemResult[], wrapper: 'results' | 'rejected'): string {
  let created = 0
  let duplicates = 0
  let invalid = 0
  let items = ''
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!
    if (i > 0) items += ','
    items += '{"index":' + String(i) + ',"status":"' + r.status + '"'
    switch (r.status) {
      case 'created':
        created++
        items += ',"id":"' + r.id + '","type":' + str(r.type) + ',"dedup_id":' + (r.dedupId === null ? 'null' : str(r.dedupId)) +
          ',"created_at":"' + r.createdAt + '"'
        break
      case 'duplicate':
        duplicates++
        items += ',"dedup_id":' + (r.dedupId === null ? 'null' : str(r.dedupId)) + ',"event_id":"' + r.eventId + '"'
        break
      case 'invalid': {
        invalid++
        const e = r.error!
        items += ',"code":"' + e.code + '","error":' + str(e.message)
        const c = e.context
        if (c !== null) {
          if (c.details !== undefined) items += ',"details":' + JSON.stringify(c.details)
          if (c.size !== undefined) items += ',"size":' + String(c.size)
          if (c.limit !== undefined) items += ',"limit":' + String(c.limit)
        }
        break
      }
      case 'not_created':
        break
    }
    items += '}'
  }
  if (wrapper === 'rejected') {
    return '{"error":' + str('Atomic batch rejected: an item is invalid') + ',"code":"batch_rejected","results":[' + items + ']}'
  }
  return '{"created":' + String(created) + ',"duplicates":' + String(duplicates) + ',"invalid":' + String(invalid) + ',"results":[' + items + ']}'
}

/** Route body ('text' mode: auth and the body cap are done; everything else happens here). */
export function ingestBatch (ctx: Ctx, s: Services): void | Promise<void> {
  const auth = ctx.auth
  if (auth === null) throw new ApiError('unauthorized')
  const span = tracer.ingest('/api/events/batch', ctx.startedAt, ctx.traceparent, auth.organizationId)
  if (span === null) return checked(ctx, s, auth, null)
  let r: void | Promise<void>
  try { r = checked(ctx, s, auth, span) } catch (err) { endRefused(span, err); throw err }
  return r === undefined ? r : r.then(undefined, (err: unknown) => { endRefused(span, err); throw err })
}

function checked (ctx: Ctx, s: Services, auth: AuthEntry, span: IngestSpan | null): void | Promise<void> {
  const batch = parseBatch(ctx.bodyText, Math.min(s.config.batchMaxEvents, auth.limit))
  const d = s.limiter.organization(auth.orgNo, auth.limit, new Decision(), batch.items.length)
  if (d instanceof Decision) { admitted(ctx, s, batch, d, span); return }
  return d.then(got => { admitted(ctx, s, batch, got, span) })
}

function admitted (ctx: Ctx, s: Services, batch: BatchShape, d: Decision, span: IngestSpan | null): void {
  if (ctx.aborted) { if (span !== null) span.end(0, null); return }
  const auth = ctx.auth!
  setRateHeaders(ctx, d)
  if (!d.allowed) throw rateLimitError(d)
  const n = batch.items.length
  const req = new BatchRequest(ctx, n, span)
  const events: PendingEvent<WriterOwner>[] = []
  let invalid = false
  for (let i = 0; i < n; i++) {
    const v = validateItem(batch.items[i], batch.texts[i]!)
    if (v instanceof ApiError) {
      invalid = true
      const r = req.results[i]!
      r.status = 'invalid'
      r.error = v
    } else {
      events.push(new PendingEvent<WriterOwner>(auth.organizationId, v, req, i, span))
    }
  }
  if (invalid && batch.atomic) {
    send(ctx, 422, serializeBatch(req.results, 'rejected'))
    if (span !== null) span.end(422, null)
    return
  }
  if (events.length === 0) {
    send(ctx, 200, serializeBatch(req.results, 'results'))
    if (span !== null) span.end(200, null)
    return
  }
  req.outstanding = events.length
  if (!s.writer.submitGroup(events)) throw FULL
}
