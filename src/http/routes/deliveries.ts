/**
 * GET /api/events/:event_id/deliveries: every delivery of one event (no paging: one per endpoint it
 * was fanned out to, at most MAX_ENDPOINTS_PER_ORG plus deleted ones). Listener threads only.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import { send } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { ApiError } from '../../errors.ts'
import { dbError } from '../../db/errors.ts'
import { eventExists, listDeliveries, type DeliveryRow } from '../../db/queries/list-deliveries.ts'
import { pathId } from '../paging.ts'

export function deliveryDoc (d: DeliveryRow): Record<string, unknown> {
  return {
    endpoint_id: d.endpoint_id,
    status: d.status,
    attempts: d.attempts,
    response_status: d.response_status,
    last_error: d.last_error,
    next_attempt_at: d.next_attempt_at === null ? null : d.next_attempt_at.toISOString(),
    delivered_at: d.delivered_at === null ? null : d.delivered_at.toISOString(),
  }
}

export async function eventDeliveries (ctx: Ctx, s: Services): Promise<void> {
  if (ctx.auth === null) throw new ApiError('unauthorized')
  const org = ctx.auth.organizationId
  const id = pathId(ctx.param, 'event')
  let rows: DeliveryRow[]
  let exists: boolean
  try {
    [exists, rows] = await Promise.all([eventExists(s.sql, org, id), listDeliveries(s.sql, org, [id])])
  } catch (err) { throw dbError(err) }
  if (!exists) throw new ApiError('not_found', 'Event not found')
  send(ctx, 200, serialize.eventDeliveries({ event_id: id, deliveries: rows.map(deliveryDoc) }))
}
