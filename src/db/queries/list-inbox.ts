/**
 * The inbox: an organization's events newest first, keyset-paged on (created_at, id) — both immutable,
 * so paging never repeats or skips an event that existed when paging began, however many arrive
 * meanwhile. `offset` exists for older clients and is used only without a cursor.
 */
import type { Sql } from '../client.ts'

export type EventStatus = 'pending' | 'failed' | 'dead_letter' | 'delivered'

export interface InboxRow {
  id: string
  type: string
  /** The stored JSON text, exactly as accepted (spliced into responses, never re-parsed). */
  payload: string
  dedup_id: string | null
  status: EventStatus
  attempts: number
  response_status: number | null
  last_error: string | null
  created_at: Date
  updated_at: Date
  acknowledged_at: Date | null
}

export interface InboxQuery {
  readonly organizationId: string
  readonly status: EventStatus | null
  readonly limit: number
  readonly after: { createdAt: Date, id: string } | null
  readonly offset: number
}

export async function listInbox (sql: Sql, q: InboxQuery): Promise<InboxRow[]> {
  // Written so the planner matches the partial indexes (sql/0001_init.sql): every open-status filter
  // also states `status <> 'delivered'`; delivered has its own index.
  const statusFilter = q.status === null
    ? sql`status <> 'delivered'`
    : q.status === 'delivered'
      ? sql`status = 'delivered'`
      : sql`status <> 'delivered' and status = ${q.status}`
  const keyset = q.after === null
    ? sql``
    : sql`and (created_at, id) < (${q.after.createdAt}::timestamptz, ${q.after.id}::uuid)`
  const offset = q.after === null && q.offset > 0 ? sql`offset ${q.offset}` : sql``
  return await sql<InboxRow[]>`
    select id, type, payload::text as payload, dedup_id, status, attempts, response_status, last_error,
           created_at, updated_at, acknowledged_at
      from events
     where organization_id = ${q.organizationId} and ${statusFilter} ${keyset}
     order by created_at desc, id desc
     limit ${q.limit + 1} ${offset}`
}
