/**
 * Acknowledgement by a pull consumer: the event becomes `delivered`, any scheduled retry is cancelled
 * (next_attempt_at NULL), and the first acknowledged_at is kept. An in-flight delivery attempt cannot
 * undo it: the delivery engine's result writes skip delivered events.
 */
import type { Sql } from '../client.ts'

/** The first acknowledged_at, or null when the event is unknown for this organization. */
export async function ackEvent (sql: Sql, organizationId: string, id: string): Promise<Date | null> {
  const [row] = await sql<{ acknowledged_at: Date }[]>`
    with acked as (
      update events
         set status = 'delivered', acknowledged_at = now(), next_attempt_at = null, updated_at = now()
       where organization_id = ${organizationId} and id = ${id} and acknowledged_at is null
      returning acknowledged_at
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
         set status = 'delivered', acknowledged_at = now(), next_attempt_at = null, updated_at = now()
       where organization_id = ${organizationId} and id = any(${ids}::uuid[]) and acknowledged_at is null
      returning id
    )
    select id from acked
    union all
    select id from events
     where organization_id = ${organizationId} and id = any(${ids}::uuid[]) and acknowledged_at is not null`
  return new Set(rows.map(r => r.id))
}
