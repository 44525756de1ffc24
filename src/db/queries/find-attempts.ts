/**
 * Reading the delivery attempt log (sql/0005_attempts.sql; the contract, docs/api.md "Delivery attempts"). Listener threads.
 *
 *   listEventAttempts     one event's attempts, oldest first     index delivery_attempts_event
 *   listEndpointAttempts  one endpoint's attempts, newest first  index delivery_attempts_endpoint
 *   findAttempt           one attempt by id                      primary key, one or two partitions
 *   endpointAttemptStats  counts and percentiles over a window    index delivery_attempts_endpoint
 *
 * Every query is keyed by the caller's organization first, so another organization's rows are never
 * read. Lists are keyset-paged on (started_at, id): started_at is written as whole milliseconds
 * (complete-deliveries.ts: to_timestamp of integer ms), so a cursor carrying an ISO time with
 * milliseconds is exact. Every list states a lower bound on started_at whenever one is known, so the
 * planner prunes the daily partitions before it (the event's creation for an event's attempts, the
 * id's own time for one attempt, `since` for a window).
 *
 * Response excerpts and headers read as expired (null, response_body_expired) once started_at is older
 * than ATTEMPT_BODY_RETENTION_DAYS, decided here at read time: rows the retention job has not cleared
 * yet (attempt-partitions.ts clears whole days) read the same as cleared ones.
 */
import type { Sql } from '../client.ts'
import type { AttemptOutcome, AttemptTrigger } from './complete-deliveries.ts'

export interface AttemptRow {
  id: string
  event_id: string
  endpoint_id: string
  attempt_number: number
  trigger: AttemptTrigger
  url: string
  started_at: Date
  duration_ms: number
  outcome: AttemptOutcome
  response_status: number | null
  response_headers: Record<string, string> | null
  response_body: string | null
  response_body_truncated: boolean
  error: string | null
  next_attempt_at: Date | null
  response_body_expired: boolean
}

export type StatusClass = '2xx' | '3xx' | '4xx' | '5xx' | 'none'

export interface Keyset { readonly createdAt: Date, readonly id: string }

/** The columns of the API's attempt object (of `delivery_attempts a`), the excerpt and headers nulled once expired. */
function columns (sql: Sql, bodyDays: number) {
  return sql`
    a.id, a.event_id, a.endpoint_id, a.attempt_number, a.trigger, a.url, a.started_at, a.duration_ms, a.outcome, a.response_status,
    case when a.started_at < now() - ${bodyDays} * interval '1 day' then null else a.response_headers end as response_headers,
    case when a.started_at < now() - ${bodyDays} * interval '1 day' then null else a.response_body end as response_body,
    a.response_body_truncated, a.error, a.next_attempt_at,
    a.started_at < now() - ${bodyDays} * interval '1 day' as response_body_expired`
}

export interface EventAttemptsQuery {
  readonly organizationId: string
  readonly eventId: string
  readonly endpointId: string | null
  readonly limit: number
  readonly after: Keyset | null
  readonly bodyRetentionDays: number
}

/**
 * The event's creation time, or null when this organization has no such event. Its attempts start
 * after it, so it bounds the partitions their list reads.
 */
export async function eventCreatedAt (sql: Sql, orgId: string, eventId: string): Promise<Date | null> {
  const [row] = await sql<{ created_at: Date }[]>`select created_at from events where organization_id = ${orgId} and id = ${eventId}`
  return row?.created_at ?? null
}

/** One event's attempts, oldest first, `limit + 1` rows (the extra one says there is a next page). */
export async function listEventAttempts (sql: Sql, q: EventAttemptsQuery, createdAt: Date): Promise<AttemptRow[]> {
  const endpoint = q.endpointId === null ? sql`` : sql`and endpoint_id = ${q.endpointId}`
  const keyset = q.after === null ? sql`` : sql`and (started_at, id) > (${q.after.createdAt}::timestamptz, ${q.after.id}::uuid)`
  return await sql<AttemptRow[]>`
    select ${columns(sql, q.bodyRetentionDays)}
      from delivery_attempts a
     where organization_id = ${q.organizationId} and event_id = ${q.eventId}
       -- an attempt may start a little before its event's created_at by another node's clock
       and started_at >= ${createdAt}::timestamptz - interval '1 hour'
       ${endpoint} ${keyset}
     order by started_at, id
     limit ${q.limit + 1}`
}

export interface EndpointAttemptsQuery {
  readonly organizationId: string
  readonly endpointId: string
  readonly outcome: AttemptOutcome | null
  readonly statusClass: StatusClass | null
  readonly eventType: string | null
  /** started_at ≥ since */
  readonly since: Date | null
  /** started_at < until */
  readonly until: Date | null
  readonly limit: number
  readonly after: Keyset | null
  readonly bodyRetentionDays: number
}

const STATUS_RANGES: Record<Exclude<StatusClass, 'none'>, readonly [number, number]> = {
  '2xx': [200, 300], '3xx': [300, 400], '4xx': [400, 500], '5xx': [500, 600],
}

/**
 * Most attempts one filtered page of an endpoint's list examines. outcome, status_class and event_type
 * are not in the index, so a filter matching little would otherwise read the endpoint's whole log for
 * one page (on the listener's pool, beside ingest). Past this many the page ends early, with a cursor
 * where the examination stopped.
 */
export const SCAN_MAX = 10_000

export interface EndpointAttemptsPage {
  /** Up to `limit + 1` rows, newest first. */
  readonly rows: AttemptRow[]
  /**
   * Set when a filtered page stopped after SCAN_MAX attempts with `limit` rows or fewer: the oldest
   * attempt it examined. Every newer attempt was looked at; the next page continues after it.
   */
  readonly scanEnd: Keyset | null
}

interface ScanRow extends AttemptRow { scanned: number, scan_started_at: Date | null, scan_id: string | null }

/** One endpoint's attempts, newest first, filtered (see SCAN_MAX). */
export async function listEndpointAttempts (sql: Sql, q: EndpointAttemptsQuery): Promise<EndpointAttemptsPage> {
  const range = q.statusClass === null || q.statusClass === 'none' ? null : STATUS_RANGES[q.statusClass]
  const window = sql`
    organization_id = ${q.organizationId} and endpoint_id = ${q.endpointId}
    ${q.since === null ? sql`` : sql`and started_at >= ${q.since}`}
    ${q.until === null ? sql`` : sql`and started_at < ${q.until}`}
    ${q.after === null ? sql`` : sql`and (started_at, id) < (${q.after.createdAt}::timestamptz, ${q.after.id}::uuid)`}`
  if (q.outcome === null && q.statusClass === null && q.eventType === null) {
    const rows = await sql<AttemptRow[]>`
      select ${columns(sql, q.bodyRetentionDays)}
        from delivery_attempts a
       where ${window}
       order by started_at desc, id desc
       limit ${q.limit + 1}`
    return { rows, scanEnd: null }
  }
  const statusClass = q.statusClass === null
    ? sql``
    : range === null
      ? sql`and response_status is null`
      : sql`and response_status >= ${range[0]} and response_status < ${range[1]}`
  // scanned: the newest SCAN_MAX attempts of the window (keys and filter columns only); hits: the
  // page's rows among them; the full rows are then read by primary key. One row always comes back
  // (the scan's size and its oldest key), with the page's rows beside it.
  const rows = await sql<ScanRow[]>`
    with scanned as materialized (
      select id, started_at, outcome, response_status, event_type
        from delivery_attempts
       where ${window}
       order by started_at desc, id desc
       limit ${SCAN_MAX}
    ), hits as (
      select id, started_at from scanned
       where true
         ${q.outcome === null ? sql`` : sql`and outcome = ${q.outcome}`}
         ${statusClass}
         ${q.eventType === null ? sql`` : sql`and event_type = ${q.eventType}`}
       order by started_at desc, id desc
       limit ${q.limit + 1}
    ), edge as (
      select (select count(*)::int from scanned) as scanned, l.started_at as scan_started_at, l.id as scan_id
        from (select 1) one
        left join lateral (select started_at, id from scanned order by started_at, id limit 1) l on true
    )
    select e.scanned, e.scan_started_at, e.scan_id, p.*
      from edge e
      left join lateral (
        select ${columns(sql, q.bodyRetentionDays)}
          from hits h
          join delivery_attempts a on a.organization_id = ${q.organizationId} and a.id = h.id and a.started_at = h.started_at
      ) p on true
     order by p.started_at desc, p.id desc`
  const first = rows[0]
  const page = first === undefined || first.id === null ? [] : rows
  const stopped = first !== undefined && first.scanned >= SCAN_MAX && page.length <= q.limit && first.scan_started_at !== null && first.scan_id !== null
  return { rows: page, scanEnd: stopped ? { createdAt: first.scan_started_at!, id: first.scan_id! } : null }
}

/**
 * One attempt by id. Its id is a UUIDv7 whose time part is its started_at (scheduler.ts uuidv7At), so
 * `startedMs` (lib/uuid.ts uuidv7Time) bounds the search to the partition of that moment — two when it
 * is within a second of midnight UTC.
 */
export async function findAttempt (sql: Sql, orgId: string, id: string, startedMs: number, bodyDays: number): Promise<AttemptRow | null> {
  const [row] = await sql<AttemptRow[]>`
    select ${columns(sql, bodyDays)}
      from delivery_attempts a
     where organization_id = ${orgId} and id = ${id}
       and started_at >= ${new Date(startedMs - 1000)} and started_at <= ${new Date(startedMs + 1000)}`
  return row ?? null
}

/**
 * True when this organization has the endpoint, or had it: a deleted endpoint's attempt log stays
 * readable until retention (the contract, docs/api.md), so attempts under its id count too.
 */
export async function endpointKnown (sql: Sql, orgId: string, endpointId: string): Promise<boolean> {
  const [row] = await sql<{ known: boolean }[]>`
    select case when exists (select 1 from endpoints where organization_id = ${orgId} and id = ${endpointId}) then true
                else exists (select 1 from delivery_attempts where organization_id = ${orgId} and endpoint_id = ${endpointId})
           end as known`
  return row?.known === true
}

export interface AttemptStatsRow {
  success: number
  http_error: number
  timeout: number
  network_error: number
  blocked: number
  p50_ms: number | null
  p95_ms: number | null
  last_success_at: Date | null
  last_failure_at: Date | null
}

/** Counts by outcome, p50/p95 of duration_ms and the latest success and failure in [since, until). */
export async function endpointAttemptStats (sql: Sql, orgId: string, endpointId: string, since: Date, until: Date): Promise<AttemptStatsRow> {
  const [row] = await sql<AttemptStatsRow[]>`
    select count(*) filter (where outcome = 'success')::int as success,
           count(*) filter (where outcome = 'http_error')::int as http_error,
           count(*) filter (where outcome = 'timeout')::int as timeout,
           count(*) filter (where outcome = 'network_error')::int as network_error,
           count(*) filter (where outcome = 'blocked')::int as blocked,
           percentile_disc(0.5) within group (order by duration_ms) as p50_ms,
           percentile_disc(0.95) within group (order by duration_ms) as p95_ms,
           max(started_at) filter (where outcome = 'success') as last_success_at,
           max(started_at) filter (where outcome <> 'success') as last_failure_at
      from delivery_attempts
     where organization_id = ${orgId} and endpoint_id = ${endpointId}
       and started_at >= ${since} and started_at < ${until}`
  return row!
}
