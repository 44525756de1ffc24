/**
 * Acknowledgement by a pull consumer (the contract, docs/api.md fan-out rule 8): the event becomes `delivered`, every
 * `pending` and `failed` delivery of it becomes `cancelled` (nothing more is attempted), and the first
 * acknowledged_at is kept. An attempt in flight cannot undo it: result writes skip cancelled
 * deliveries and acknowledged events (complete-deliveries.ts, triggers_refresh_events).
 */
import type { Sql } from '../client.ts'

/** The first acknowledged_at, or null when the event is unknown for this organization. */
export async function ackEvent (sql: Sql, organizationId: string, id: string): Promise<Date | null> {
  const [row] = await sql<{ acknowledged_at: Date }[]>`
    with acked as (
      update events
         set status = 'delivered', acknowledged_at = now(), updated_at = now()
       where organization_id = ${organizationId} and id = ${id} and acknowledged_at is null
      returning id, acknowledged_at
    ), cancelled as (
      update deliveries d
         set status = 'cancelled', next_attempt_at = null, rate_reserved = false, updated_at = now()
        from acked a
       where d.organization_id = ${organizationId} and d.event_id = a.id and d.status in ('pending', 'failed')
      returning 1
    )
    select acknowledged_at from acked
    union all
    select acknowledged_at from events
     where organization_id = ${organizationId} and id = ${id} and acknowledged_at is not null`
  return row?.acknowledged_at ?? null
}

/** Acknowledges many; returns the ids that exist for this organization (acknowledged now or before). */
export async function ackEvents (sql: Sql, organizationId: string, ids: string[]): Promise<Set<string>> {
  const rows = await sql<{ id: string }[]>`
    with acked as (
      update events
         set status = 'delivered', acknowledged_at = now(), updated_at = now()
       where organization_id = ${organizationId} and id = any(${ids}::uuid[]) and acknowledged_at is null
      returning id
    ), cancelled as (
      update deliveries d
         set status = 'cancelled', next_attempt_at = null, rate_reserved = false, updated_at = now()
        from acked a
       where d.organization_id = ${organizationId} and d.event_id = a.id and d.status in ('pending', 'failed')
      returning 1
    )
    select id from acked
    union all
    select id from events
     where organization_id = ${organizationId} and id = any(${ids}::uuid[]) and acknowledged_at is not null`
  return new Set(rows.map(r => r.id))
}
