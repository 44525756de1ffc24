/**
 * POST /api/events/batch validation (the contract, docs/api.md "Batch ingest"), in the contract's order: JSON
 * (400 invalid_json) → shape (400 invalid_batch: `events` missing, not an array, or empty; `atomic`
 * not a boolean) → count (422 batch_too_large) → [the route charges the rate limit] → each item by the
 * rules of POST /api/events (type, payload object ≤ 256 KB, dedup_id, depth, `\u0000`). Items are
 * judged one by one: a bad item is a result of its own, not a failed request. Each item's payload is
 * stored as the client wrote it (its raw text, compacted: ingest/raw-payload.ts). Pure module.
 */
import { ApiError } from '../errors.ts'
import { checkStorable, parseJsonObjectOnly } from '../http/json.ts'
import { rawElements, rawMemberText } from './raw-payload.ts'
import { validateEvent, type EventInput } from './validate.ts'

export class BatchShape {
  readonly atomic: boolean
  readonly items: readonly unknown[]
  /** The raw JSON text of each item, parallel to `items`. */
  readonly texts: readonly string[]
  constructor (atomic: boolean, items: readonly unknown[], texts: readonly string[]) {
    this.atomic = atomic
    this.items = items
    this.texts = texts
  }
}

function invalidBatch (field: string, reason: string): ApiError {
  return new ApiError('invalid_batch', `Invalid batch: ${field} ${reason}`, { details: { [field]: reason } })
}

/** JSON, shape and count. `maxEvents` is min(BATCH_MAX_EVENTS, the tier's per-minute limit). */
export function parseBatch (text: string, maxEvents: number): BatchShape {
  const body = parseJsonObjectOnly(text)
  const events = body.events
  if (events === undefined || events === null) throw invalidBatch('events', 'is required')
  if (!Array.isArray(events)) throw invalidBatch('events', 'must be an array')
  if (events.length === 0) throw invalidBatch('events', 'must hold at least one event')
  const atomic = body.atomic ?? false
  if (typeof atomic !== 'boolean') throw invalidBatch('atomic', 'must be a boolean')
  if (events.length > maxEvents) {
    throw new ApiError('batch_too_large', `A batch may hold at most ${maxEvents} events`, { max_events: maxEvents })
  }
  const raw = rawMemberText(text, 'events')
  const texts = raw === null ? [] : rawElements(raw)
  // JSON.parse kept the last `events` member, and so did rawMemberText: the two agree item by item.
  return new BatchShape(atomic, events, texts.length === events.length ? texts : events.map(e => JSON.stringify(e)))
}

/** One item: its EventInput, or the ApiError the single route would have answered with. */
export function validateItem (item: unknown, text: string): EventInput | ApiError {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    return new ApiError('invalid_event', 'Invalid event', { details: { event: 'must be a JSON object' } })
  }
  try {
    checkStorable(item, text)
    return validateEvent(item as Record<string, unknown>, text)
  } catch (err) {
    if (err instanceof ApiError) return err
    throw err
  }
}
