/**
 * Scheduling deliveries outside the attempt loop: un-parking when a webhook URL is configured,
 * redelivery of one event, replay of many, and the delivery thread's periodic safety sweep.
 *
 * Scheduling means `next_attempt_at = now()`; the delivery threads find the work by claiming (see
 * claim-deliveries.ts). Each function ends by notifying DELIVERY_CHANNEL so every node's delivery thread
 * wakes at once instead of at its next poll. Called from listener threads (routes) and the delivery thread.
 */
import type { Sql } from '../client.ts'

/**
 * The LISTEN/NOTIFY channel delivery threads listen on. The ingest writer should notify it in the
 * transaction that inserts events (`select pg_notify('triggers_events', '')`, delivered on commit and
 * coalesced by PostgreSQL within a transaction) or just after commit with `notifyDeliveries`.
 */
export const DELIVERY_CHANNEL = 'triggers_events'

/** Most rows one un-parking statement touches; larger backlogs are taken in several statements. */
const UNPARK_CHUNK = 5000
/** Bound on chunks per call (25 million events) so the loop is finite whatever happens concurrently. */
const UNPARK_MAX_CHUNKS = 5000
export const REPLAY_MAX = 10_000
const DEFER_MAX = 10_000

/** Wakes every delivery thread listening on DELIVERY_CHANNEL (all nodes sharing the database). */
export async function notifyDeliveries (sql: Sql): Promise<void> {
  await sql`select pg_notify(${DELIVERY_CHANNEL}, '')`
}

/**
 * The organization now has a webhook URL: its parked events (pending or failed with nothing scheduled)
 * become due now. Returns how many were scheduled.
 */
export async function releaseParkedEvents (sql: Sql, orgId: string): Promise<number> {
  let total = 0
  for (let i = 0; i < UNPARK_MAX_CHUNKS; i++) {
    const rows = await sql<{ id: string }[]>`
      update events e set next_attempt_at = now()
        from (select organization_id, id from events
               where organization_id = ${orgId} and status in ('pending', 'failed') and next_attempt_at is null
               limit ${UNPARK_CHUNK}) t
       where e.organization_id = t.organization_id and e.id = t.id
         and e.next_attempt_at is null and e.status in ('pending', 'failed')
      returning e.id`
    total += rows.length
    if (rows.length < UNPARK_CHUNK) break
  }
  if (total > 0) await notifyDeliveries(sql)
  return total
}

export type RedeliverResult = 'ok' | 'not_found' | 'no_webhook'

/**
 * Starts a fresh retry series for one event of the organization, whatever its status: status
 * 'pending', series_attempt 0, due now; `attempts` keeps counting; acknowledged/delivered state is
 * cleared (last response_status/last_error stay as the record of the previous attempt).
 * 'not_found' covers another organization's event; 'no_webhook' when the organization has no URL.
 */
export async function redeliverEvent (sql: Sql, orgId: string, eventId: string): Promise<RedeliverResult> {
  const [row] = await sql<{ found: boolean, has_webhook: boolean, updated: number }[]>`
    with org as (
      select webhook_url is not null as has_webhook from organizations where id = ${orgId}
    ), upd as (
      update events
         set status = 'pending', series_attempt = 0, next_attempt_at = now(),
             acknowledged_at = null, delivered_at = null, updated_at = now()
       where organization_id = ${orgId} and id = ${eventId}
         and coalesce((select has_webhook from org), false)
      returning id
    )
    select exists (select 1 from events where organization_id = ${orgId} and id = ${eventId}) as found,
           coalesce((select has_webhook from org), false) as has_webhook,
           (select count(*) from upd)::int as updated,
           case when exists (select 1 from upd) then pg_notify(${DELIVERY_CHANNEL}, '') end as notified`
  if (row === undefined || !row.found) return 'not_found'
  if (!row.has_webhook) return 'no_webhook'
  return 'ok'
}

/**
 * Re-schedules up to 10,000 of the organization's events in `status` created at or after `since`,
 * oldest first, each with a fresh retry series (as redeliverEvent). Returns how many were scheduled.
 * An organization without a webhook URL gets them scheduled too; the claim parks them until a URL is set.
 */
export async function replayEvents (sql: Sql, orgId: string, status: 'dead_letter' | 'failed', since: Date | null): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    with t as (
      select organization_id, id from events
       where organization_id = ${orgId} and status = ${status}
         and (${since}::timestamptz is null or created_at >= ${since}::timestamptz)
       order by created_at, id
       limit ${REPLAY_MAX}
    ), upd as (
      update events e
         set status = 'pending', series_attempt = 0, next_attempt_at = now(), updated_at = now()
        from t
       where e.organization_id = t.organization_id and e.id = t.id and e.status = ${status}
      returning e.id
    )
    select (select count(*) from upd)::int as n,
           case when exists (select 1 from upd) then pg_notify(${DELIVERY_CHANNEL}, '') end as notified`
  return row?.n ?? 0
}

/**
 * Safety net for a race the routes cannot close alone: a claim that read an organization without a URL
 * may park an event just after releaseParkedEvents ran for a newly configured URL. Un-parks such events,
 * looking only at organizations whose webhook changed within `windowMs`, so it stays cheap to run every
 * few seconds. Returns how many were scheduled (at most one chunk per call).
 */
export async function sweepParkedEvents (sql: Sql, windowMs: number): Promise<number> {
  const rows = await sql<{ id: string }[]>`
    update events e set next_attempt_at = now()
      from (select ev.organization_id, ev.id
              from organizations o
              join events ev on ev.organization_id = o.id
             where o.webhook_url is not null
               and o.webhook_updated_at > now() - ${windowMs} * interval '1 millisecond'
               and ev.status in ('pending', 'failed') and ev.next_attempt_at is null
             limit ${UNPARK_CHUNK}) t
     where e.organization_id = t.organization_id and e.id = t.id
       and e.next_attempt_at is null and e.status in ('pending', 'failed')
    returning e.id`
  return rows.length
}

/**
 * Moves the due, unleased events of these organizations `delayMs` later without touching attempts
 * (their endpoint's circuit breaker just opened). At most DEFER_MAX rows per call; rows past that
 * are skipped by claims while the breaker is open and deferred one by one if claimed.
 */
export async function deferOrganizations (sql: Sql, orgIds: readonly string[], delayMs: number): Promise<number> {
  if (orgIds.length === 0) return 0
  const rows = await sql<{ id: string }[]>`
    update events e set next_attempt_at = now() + ${Math.max(0, Math.round(delayMs))} * interval '1 millisecond'
      from (select organization_id, id from events
             where organization_id = any(${sql.array([...orgIds])}::uuid[])
               and status in ('pending', 'failed') and next_attempt_at <= now()
             limit ${DEFER_MAX}) t
     where e.organization_id = t.organization_id and e.id = t.id
       and e.next_attempt_at <= now() and e.status in ('pending', 'failed')
    returning e.id`
  return rows.length
}
