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
import { listInbox, type EventStatus, type InboxRow } from '../../db/queries/list-inbox.ts'
import { listDeliveries, type DeliveryRow } from '../../db/queries/list-deliveries.ts'
import { pageOf, parsePage } from '../paging.ts'
import { deliveryDoc } from './deliveries.ts'
import { ackEvent, ackEvents } from '../../db/queries/ack-events.ts'
import { dbError } from '../../db/errors.ts'

const STATUSES: readonly string[] = ['pending', 'failed', 'dead_letter', 'delivered']

function parseStatus (raw: string | null): EventStatus | null {
  if (raw === null) return null
  if (!STATUSES.includes(raw)) {
    throw new ApiError('invalid_status', 'status must be one of pending, failed, dead_letter, delivered', { details: { status: `unknown status "${raw.slice(0, 50)}"` } })
  }
  return raw as EventStatus
}

/** `include`: a comma-separated list; `deliveries` is the only value (anything else is 400 invalid_filter). */
function includesDeliveries (raw: string | null): boolean {
  if (raw === null || raw === '') return false
  for (const part of raw.split(',')) {
    if (part !== 'deliveries') throw new ApiError('invalid_filter', 'include may only be deliveries', { details: { include: `unknown value "${part.slice(0, 50)}"` } })
  }
  return true
}

export async function inbox (ctx: Ctx, s: Services): Promise<void> {
  const auth = ctx.auth
  if (auth === null) throw new ApiError('unauthorized')
  const q = new URLSearchParams(ctx.query)
  const status = parseStatus(q.get('status'))
  const withDeliveries = includesDeliveries(q.get('include'))
  const page = parsePage(q)
  let rows: InboxRow[]
  let deliveries: DeliveryRow[] = []
  try {
    rows = await listInbox(s.sql, { organizationId: auth.organizationId, status, limit: page.limit, after: page.after, offset: page.offset })
    if (withDeliveries) deliveries = await listDeliveries(s.sql, auth.organizationId, rows.slice(0, page.limit).map(r => r.id))
  } catch (err) { throw dbError(err) }
  const p = pageOf(rows, page.limit, r => ({ createdAt: r.created_at, id: r.id }))
  let events: readonly (InboxRow & { deliveries?: Record<string, unknown>[] })[] = p.rows
  if (withDeliveries) {
    const byEvent = new Map<string, Record<string, unknown>[]>()
    for (const d of deliveries) {
      let list = byEvent.get(d.event_id)
      if (list === undefined) { list = []; byEvent.set(d.event_id, list) }
      list.push(deliveryDoc(d))
    }
    events = p.rows.map(r => ({ ...r, deliveries: byEvent.get(r.id) ?? [] }))
  }
  send(ctx, 200, serialize.inbox({ events, limit: page.limit, next_cursor: p.nextCursor, has_more: p.hasMore }))
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
