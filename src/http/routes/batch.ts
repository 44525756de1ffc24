/**
 * POST /api/events/batch (the contract, docs/api.md "Batch ingest"). Checks in the contract's order: auth (401) → body
 * size (413, BATCH_MAX_BODY_BYTES, decided while streaming) → JSON (400) → shape (400 invalid_batch) →
 * count (422 batch_too_large) → rate limit: N tokens, all or nothing (429) → per-item validation →
 * dedup (within the batch, then against the window) → one transaction with every created event and
 * its fan-out deliveries (the thread's writer, as one group: ingest/writer.ts) → 200 after commit.
 * An `atomic` batch with an invalid item is 422 batch_rejected and stores nothing. Listener threads.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import { rateLimitError, setRateHeaders } from '../pipeline.ts'
import { send, sendError } from '../reply.ts'
import { ApiError } from '../../errors.ts'
import { Decision } from '../../rate-limit/limiter.ts'
import { parseBatch, validateItem, type BatchShape } from '../../ingest/validate-batch.ts'
import { PendingEvent } from '../../ingest/writer.ts'
import type { EventInput } from '../../ingest/validate.ts'
import type { WriterOwner } from './events.ts'

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

  constructor (ctx: Ctx, n: number) {
    this.ctx = ctx
    this.results = new Array<ItemResult>(n)
    for (let i = 0; i < n; i++) this.results[i] = new ItemResult()
    this.outstanding = 0
    this.failed = null
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
  const batch = parseBatch(ctx.bodyText, Math.min(s.config.batchMaxEvents, auth.limit))
  const d = s.limiter.organization(auth.orgNo, auth.limit, new Decision(), batch.items.length)
  if (d instanceof Decision) { admitted(ctx, s, batch, d); return }
  return d.then(got => { admitted(ctx, s, batch, got) })
}

function admitted (ctx: Ctx, s: Services, batch: BatchShape, d: Decision): void {
  if (ctx.aborted) return
  const auth = ctx.auth!
  setRateHeaders(ctx, d)
  if (!d.allowed) throw rateLimitError(d)
  const n = batch.items.length
  const req = new BatchRequest(ctx, n)
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
      events.push(new PendingEvent<WriterOwner>(auth.organizationId, v, req, i))
    }
  }
  if (invalid && batch.atomic) {
    send(ctx, 422, serializeBatch(req.results, 'rejected'))
    return
  }
  if (events.length === 0) { send(ctx, 200, serializeBatch(req.results, 'results')); return }
  req.outstanding = events.length
  if (!s.writer.submitGroup(events)) throw FULL
}
