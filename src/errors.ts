/**
 * The error catalogue (STYLE C4): every error the service answers with has a stable snake_case `code`
 * (the API's envelope code), an HTTP status and a `retriable` flag. Route code throws or returns these;
 * nothing compares error messages. Anything not in the catalogue becomes an opaque 500 `internal_error`.
 * Pure module: imported by every thread.
 */

export interface ErrorSpec {
  readonly status: number
  readonly message: string
  readonly retriable: boolean
  readonly doc: string
}

export const CATALOGUE = {
  not_found: { status: 404, message: 'Not found', retriable: false, doc: 'Unknown route, or an event that does not exist or belongs to another organization.' },
  method_not_allowed: { status: 405, message: 'Method not allowed', retriable: false, doc: 'The route exists but not for this HTTP method; `Allow` lists the methods it takes.' },
  invalid_json: { status: 400, message: 'Request body must be a valid JSON object', retriable: false, doc: 'The body is not JSON, not UTF-8, or not a JSON object.' },
  invalid_event: { status: 400, message: 'Invalid event', retriable: false, doc: 'A field is missing or has the wrong type or length; `details` names each bad field.' },
  missing_field: { status: 400, message: 'Missing required field', retriable: false, doc: 'A required field is absent; `field` names it.' },
  validation_error: { status: 422, message: 'Validation failed', retriable: false, doc: 'A field is present but not acceptable; `details` says why.' },
  invalid_webhook_url: { status: 422, message: 'Invalid webhook URL', retriable: false, doc: 'Not an absolute http(s) URL, longer than 2048 characters, or a non-public address.' },
  invalid_status: { status: 400, message: 'Invalid status filter', retriable: false, doc: 'The `status` is not one the route accepts.' },
  invalid_limit: { status: 400, message: 'limit must be an integer between 1 and 1000', retriable: false, doc: '`limit` is out of range or not an integer.' },
  invalid_cursor: { status: 400, message: 'Invalid cursor', retriable: false, doc: '`cursor` is not a `next_cursor` this service produced, or `offset` is not a non-negative integer.' },
  invalid_id: { status: 400, message: 'Invalid event id: must be a UUID', retriable: false, doc: 'The event id in the path is not a UUID.' },
  unauthorized: { status: 401, message: 'Invalid API key', retriable: false, doc: 'The X-API-Key header is missing, malformed, unknown or rotated away.' },
  rate_limit_exceeded: { status: 429, message: 'Rate limit exceeded', retriable: true, doc: 'Over the per-minute limit; wait `retry_after` seconds.' },
  body_too_large: { status: 413, message: 'Request body exceeds 1 MiB limit', retriable: false, doc: 'The whole request body is over 1 MiB.' },
  payload_too_large: { status: 413, message: 'Payload exceeds 256KB limit', retriable: false, doc: 'The compact JSON of `payload` is over 262144 bytes.' },
  duplicate_event: { status: 409, message: 'Duplicate event detected within 24-hour window', retriable: false, doc: 'The `dedup_id` was accepted within the window; `event_id` is the original.' },
  invalid_event_types: { status: 422, message: 'Invalid event_types', retriable: false, doc: 'The endpoint filter is empty, longer than 100 patterns, or has a pattern that is not "*", an exact type, or "<prefix>.*".' },
  endpoint_limit_reached: { status: 422, message: 'Endpoint limit reached', retriable: false, doc: 'The organization already has MAX_ENDPOINTS_PER_ORG endpoints; `limit` says how many.' },
  endpoint_disabled: { status: 422, message: 'The endpoint is disabled', retriable: false, doc: 'Redelivery or replay to a disabled endpoint; enable it first (PATCH status active).' },
  invalid_batch: { status: 400, message: 'Invalid batch', retriable: false, doc: 'The batch body has no `events` array, or it is empty; `details` says which.' },
  batch_too_large: { status: 422, message: 'Batch has too many events', retriable: false, doc: 'More items than BATCH_MAX_EVENTS or than the tier allows per minute; `max_events` says how many are allowed.' },
  batch_rejected: { status: 422, message: 'Atomic batch rejected: an item is invalid', retriable: false, doc: 'An `atomic` batch had an invalid item: nothing was stored; `results` names each item.' },
  invalid_filter: { status: 400, message: 'Invalid filter', retriable: false, doc: 'A list filter (`outcome`, `status_class`, `event_type`, `since`, `until`, `endpoint_id`) has a bad value; `details` names it.' },
  no_webhook_configured: { status: 422, message: 'No webhook URL is configured for this organization', retriable: false, doc: 'Redelivery needs a webhook URL.' },
  unavailable: { status: 503, message: 'Service temporarily unavailable', retriable: true, doc: 'The database is unreachable or the service is past its bounded queues; retry after `Retry-After` seconds.' },
  internal_error: { status: 500, message: 'Internal server error', retriable: true, doc: 'An unexpected failure; it is logged with its cause.' },
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof CATALOGUE

/** Extra envelope fields; every key that may appear is listed so the serializer is precompiled. */
export interface ErrorContext {
  details?: Record<string, string>
  field?: string
  size?: number
  limit?: number
  window?: string
  retry_after?: number
  dedup_id?: string
  event_id?: string
  max_events?: number
  /** batch_rejected: the per-item results (serialized by the batch route itself). */
  results?: readonly unknown[]
}

export class ApiError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly retriable: boolean
  readonly context: ErrorContext | null
  /** Seconds for a Retry-After header, or 0 for none. */
  readonly retryAfter: number

  constructor (code: ErrorCode, message?: string, context?: ErrorContext | null, options?: { cause?: unknown, retryAfter?: number }) {
    const spec = CATALOGUE[code]
    super(message ?? spec.message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ApiError'
    this.code = code
    this.status = spec.status
    this.retriable = spec.retriable
    this.context = context ?? null
    this.retryAfter = options?.retryAfter ?? (code === 'unavailable' ? 1 : 0)
  }
}

/** Turns anything thrown into a catalogue error; unknown errors become an opaque internal_error. */
export function coerceError (err: unknown): ApiError {
  if (err instanceof ApiError) return err
  return new ApiError('internal_error', undefined, null, { cause: err })
}

/** Errors cross postMessage as plain `{code, message}` and are rebuilt here (STYLE C2). */
export interface WireError { readonly code: string, readonly message: string }
export function toWire (err: unknown): WireError {
  if (err instanceof ApiError) return { code: err.code, message: err.message }
  return { code: 'internal_error', message: err instanceof Error ? err.message : String(err) }
}
export function fromWire (w: WireError): ApiError {
  const code: ErrorCode = w.code in CATALOGUE ? w.code as ErrorCode : 'internal_error'
  return new ApiError(code, code === 'internal_error' ? undefined : w.message, null, { cause: new Error(w.message) })
}
