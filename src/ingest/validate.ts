/**
 * Field rules of POST /api/events, in the contract's order: fields (400 `invalid_event` with a
 * `details` entry per bad field) → payload size (413 `payload_too_large`, measured as the UTF-8 bytes
 * of the compact JSON serialization of `payload`). The payload stored is the client's own text
 * without insignificant whitespace, so numbers and keys are kept exactly as sent. Pure module.
 */
import { ApiError } from '../errors.ts'
import { rawMember } from './raw-payload.ts'
import { codePoints } from '../lib/text.ts'

export const MAX_PAYLOAD_BYTES = 262_144

/** A validated event, ready for the writer (one shape, STYLE C7). */
export class EventInput {
  readonly type: string
  /** The compact JSON text of the payload, stored verbatim. */
  readonly payload: string
  readonly dedupId: string | null
  constructor (type: string, payload: string, dedupId: string | null) {
    this.type = type
    this.payload = payload
    this.dedupId = dedupId
  }
}

function checkString (v: unknown, name: string, details: Record<string, string>, required: boolean): string | null {
  if (v === undefined || v === null) {
    if (required) details[name] = 'is required'
    return null
  }
  if (typeof v !== 'string') { details[name] = 'must be a string'; return null }
  // Characters are code points, as PostgreSQL's char_length counts them (an emoji is one).
  if (v.length === 0 || (v.length > 255 && codePoints(v) > 255)) { details[name] = 'must be 1-255 characters'; return null }
  return v
}

/**
 * `text` is the body text `body` was parsed from: the stored payload is its raw `payload` (or `data`)
 * member, compacted (ingest/raw-payload.ts), so numbers and keys are kept exactly as sent. Without
 * `text` (unit tests), the payload is re-serialized with JSON.stringify.
 */
export function validateEvent (body: Record<string, unknown>, text?: string): EventInput {
  const details: Record<string, string> = {}
  const type = checkString(body.type, 'type', details, true)
  const dedupId = checkString(body.dedup_id, 'dedup_id', details, false)
  let payload = body.payload
  let payloadName = 'payload'
  if (payload === undefined && body.data !== undefined) { payload = body.data; payloadName = 'data' }
  if (payload === undefined || payload === null) details.payload = 'is required'
  else if (typeof payload !== 'object' || Array.isArray(payload)) details[payloadName] = 'must be a JSON object'
  if (type === null || Object.keys(details).length > 0) {
    throw new ApiError('invalid_event', 'Invalid event', { details })
  }
  // The size rule is the contract's: the compact serialization (JSON.stringify: escapes resolved,
  // numbers normalized). What is stored is the client's own text (see above).
  const canonical = JSON.stringify(payload)
  // Fast path: a string's UTF-8 length is at most 3 bytes per UTF-16 unit.
  if (canonical.length * 3 > MAX_PAYLOAD_BYTES) {
    const size = Buffer.byteLength(canonical, 'utf8')
    if (size > MAX_PAYLOAD_BYTES) {
      throw new ApiError('payload_too_large', undefined, { size, limit: MAX_PAYLOAD_BYTES })
    }
  }
  const stored = text === undefined ? null : rawMember(text, payloadName)
  return new EventInput(type, stored ?? canonical, dedupId)
}
