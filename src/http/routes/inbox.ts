/**
 * The pull model: GET /api/inbox (cursor-paged, newest first), POST /api/ack/:event_id and
 * POST /api/ack (batch). Organizations are strictly isolated: every query is keyed by the caller's
 * organization, and another organization's event is indistinguishable from an unknown one (404).
 * Listener threads only.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import type { Body } from '../pipeline.ts'
import { send } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { ApiError } from '../../errors.ts'
import { isUuid } from '../../lib/uuid.ts'
import { listInbox, type EventStatus } from '../../db/queries/list-inbox.ts'
import { ackEvent, ackEvents } from '../../db/queries/ack-events.ts'
import { dbError } from '../../db/errors.ts'

const STATUSES: readonly string[] = ['pending', 'failed', 'dead_letter', 'delivered']
const INT_RE = /^\d{1,9}$/

function parseStatus (raw: string | null): EventStatus | null {
  if (raw === null) return null
  if (!STATUSES.includes(raw)) {
    throw new ApiError('invalid_status', 'status must be one of pending, failed, dead_letter, delivered', { details: { status: `unknown status "${raw.slice(0, 50)}"` } })
  }
  return raw as EventStatus
}

function parseLimit (raw: string | null): number {
  if (raw === null) return 100
  const n = INT_RE.test(raw) ? Number(raw) : NaN
  if (!(n >= 1 && n <= 1000)) throw new ApiError('invalid_limit')
  return n
}

/** Cursor: base64url of "<created_at ISO>|<id>" of the last event on the previous page. */
export function encodeCursor (createdAt: Date, id: string): string {
  return Buffer.from(`${createdAt.toISOString()}|${id}`).toString('base64url')
}

function decodeCursor (raw: string): { createdAt: Date, id: string } {
  const bad = new ApiError('invalid_cursor', 'cursor is not a next_cursor returned by this API')
  if (raw.length > 200 || !/^[A-Za-z0-9_-]+$/.test(raw)) throw bad
  const text = Buffer.from(raw, 'base64url').toString()
  const sep = text.indexOf('|')
  if (sep < 0) throw bad
  const createdAt = new Date(text.slice(0, sep))
  const id = text.slice(sep + 1)
  if (Number.isNaN(createdAt.getTime()) || !isUuid(id)) throw bad
  return { createdAt, id: id.toLowerCase() }
}

export async function inbox (ctx: Ctx, s: Services): Promise<void> {
  const auth = ctx.auth
  if (auth === null) throw new ApiError('unauthorized')
  const q = new URLSearchParams(ctx.query)
  const status = parseStatus(q.get('status'))
  const limit = parseLimit(q.get('limit'))
  const cursorRaw = q.get('cursor')
  const after = cursorRaw === null || cursorRaw === '' ? null : decodeCursor(cursorRaw)
  const offsetRaw = q.get('offset')
  let offset = 0
  if (after === null && offsetRaw !== null) {
    if (!INT_RE.test(offsetRaw)) throw new ApiError('invalid_cursor', 'offset must be a non-negative integer')
    offset = Number(offsetRaw)
  }
  let rows
  try {
    rows = await listInbox(s.sql, { organizationId: auth.organizationId, status, limit, after, offset })
  } catch (err) { throw dbError(err) }
  const hasMore = rows.length > limit
  if (hasMore) rows.pop()
  const last = rows[rows.length - 1]
  const nextCursor = hasMore && last !== undefined ? encodeCursor(last.created_at, last.id) : null
  send(ctx, 200, serialize.inbox({ events: rows, limit, next_cursor: nextCursor, has_more: hasMore }))
}

export async function ackOne (ctx: Ctx, s: Services): Promise<void> {
  const auth = ctx.auth
  if (auth === null) throw new ApiError('unauthorized')
  const id = ctx.param
  if (!isUuid(id)) throw new ApiError('invalid_id')
  let at: Date | null
  try { at = await ackEvent(s.sql, auth.organizationId, id.toLowerCase()) } catch (err) { throw dbError(err) }
  if (at === null) throw new ApiError('not_found', 'Event not found')
  send(ctx, 200, serialize.ack({ event_id: id.toLowerCase(), status: 'delivered', acknowledged_at: at.toISOString() }))
}

export async function ackMany (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const auth = ctx.auth
  if (auth === null || body === null) throw new ApiError('unauthorized')
  const raw = body.event_ids
  if (raw === undefined || raw === null) throw new ApiError('missing_field', 'Missing required field: event_ids', { field: 'event_ids' })
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 1000) {
    throw new ApiError('invalid_event', 'event_ids must be an array of 1 to 1000 event ids', { details: { event_ids: 'must be an array of 1 to 1000 UUID strings' } })
  }
  const ids: string[] = []
  for (const v of raw) {
    if (typeof v !== 'string' || !isUuid(v)) {
      throw new ApiError('invalid_id', 'Every event id must be a UUID', { details: { event_ids: `not a UUID: ${JSON.stringify(v).slice(0, 60)}` } })
    }
    ids.push(v.toLowerCase())
  }
  const unique = [...new Set(ids)]
  let found: Set<string>
  try { found = await ackEvents(s.sql, auth.organizationId, unique) } catch (err) { throw dbError(err) }
  send(ctx, 200, serialize.batchAck({ acknowledged: found.size, not_found: unique.filter(id => !found.has(id)) }))
}
