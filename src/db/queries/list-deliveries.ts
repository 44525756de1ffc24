/**
 * The deliveries of events (the contract, docs/api.md fan-out rule 7 `?include=deliveries`, GET /api/events/:id/deliveries):
 * one row per (event, endpoint), in endpoint creation order. `next_attempt_at` reads null while an
 * attempt is in flight (it then holds the lease, an internal detail). Listener threads.
 */
import type { Sql } from '../client.ts'

export interface DeliveryRow {
  event_id: string
  endpoint_id: string
  status: 'pending' | 'failed' | 'dead_letter' | 'delivered' | 'cancelled'
  attempts: number
  response_status: number | null
  last_error: string | null
  next_attempt_at: Date | null
  delivered_at: Date | null
}

export async function listDeliveries (sql: Sql, orgId: string, eventIds: readonly string[]): Promise<DeliveryRow[]> {
  if (eventIds.length === 0) return []
  return await sql<DeliveryRow[]>`
    select event_id, endpoint_id, status, attempts, response_status, last_error,
           case when leased_until is null then next_attempt_at end as next_attempt_at, delivered_at
      from deliveries
     where organization_id = ${orgId} and event_id = any(${sql.array([...eventIds])}::uuid[])
     order by event_id, endpoint_id`
}

/** True when the event exists for this organization. */
export async function eventExists (sql: Sql, orgId: string, eventId: string): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`select exists (select 1 from events where organization_id = ${orgId} and id = ${eventId}) as ok`
  return row?.ok === true
}
