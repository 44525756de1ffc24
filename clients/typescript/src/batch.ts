/**
 * Batch helpers: a long array of events sent as batches of at most BATCH_MAX_EVENTS (the service's
 * cap), one after another, with the per-item results gathered into one answer whose `index` is the
 * position in the whole array. A batch over the organization's tier (a free tier admits at most 100
 * events a minute, hence a batch of at most 100) is answered 422 `batch_too_large` with
 * `max_events`, storing nothing: the helper then goes on in batches of that size.
 */
import type { BatchItemResult, BatchResponse, CreateEventRequest } from './generated/api.js'
import { isApiError, TriggersError } from './errors.js'

/** The most events the service takes in one batch (BATCH_MAX_EVENTS's default). */
export const BATCH_MAX_EVENTS = 500
/** The most ids POST /api/ack takes. */
export const ACK_MAX_IDS = 1000

/** An event to send. `payload` takes any object (interfaces included). */
export type EventInput = Omit<CreateEventRequest, 'payload' | 'data'> & { readonly payload: object }

export interface SendEventsResult {
  readonly created: number
  readonly duplicates: number
  readonly invalid: number
  /** How many batch requests were answered. */
  readonly batches: number
  /** One per event sent, in the order of the array; `index` is the position in the array. */
  readonly results: BatchItemResult[]
}

/** A batch failed part way: the batches before it are stored (`sent`), the events from `failedAt` on are not known to be. */
export class SendEventsError extends TriggersError {
  readonly sent: SendEventsResult
  /** Index of the first event of the batch that failed. */
  readonly failedAt: number

  constructor (cause: unknown, sent: SendEventsResult, failedAt: number) {
    super(`batch starting at event ${failedAt} failed: ${cause instanceof Error ? cause.message : String(cause)}`, cause instanceof TriggersError ? cause.operation : 'POST /api/events/batch', { cause })
    this.name = 'SendEventsError'
    this.sent = sent
    this.failedAt = failedAt
  }
}

/** `items` cut into arrays of at most `size`. */
export function chunk<T> (items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`chunk size must be a positive integer, not ${size}`)
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** Sends `events` in batches of at most `batchSize` through `send`, gathering the results. */
export async function sendInBatches (
  events: readonly EventInput[],
  batchSize: number,
  send: (batch: readonly EventInput[]) => Promise<BatchResponse>,
): Promise<SendEventsResult> {
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > BATCH_MAX_EVENTS) {
    throw new RangeError(`batchSize must be an integer from 1 to ${BATCH_MAX_EVENTS}, not ${batchSize}`)
  }
  const sum = { created: 0, duplicates: 0, invalid: 0, batches: 0, results: [] as BatchItemResult[] }
  let size = batchSize
  let at = 0
  while (at < events.length) {
    const part = events.slice(at, at + size)
    let res: BatchResponse
    try {
      res = await send(part)
    } catch (err) {
      const allowed = isApiError(err, 'batch_too_large') ? err.context.max_events : 0
      if (allowed >= 1 && allowed < part.length) { size = allowed; continue }
      throw new SendEventsError(err, { ...sum, results: [...sum.results] }, at)
    }
    sum.created += res.created
    sum.duplicates += res.duplicates
    sum.invalid += res.invalid
    sum.batches++
    for (const r of res.results) sum.results.push({ ...r, index: r.index + at })
    at += part.length
  }
  return sum
}
