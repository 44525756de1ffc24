/**
 * Scrape-time delivery gauges (primary thread, /metrics): deliveries due now, the whole backlog, and
 * the largest backlogs by endpoint with their age. Each read is bounded (index-only scans of
 * deliveries_due and deliveries_open, capped), so a huge backlog costs a scrape a bounded amount.
 */
import type { Sql } from '../client.ts'

const DUE_CAP = 100_000
const BACKLOG_CAP = 1_000_000

export async function countDueDeliveries (sql: Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from (select 1 from deliveries where next_attempt_at <= now() limit ${DUE_CAP}) due`
  return row?.n ?? 0
}

export interface EndpointBacklog { endpoint_id: string, deliveries: number, oldest_seconds: number }

export interface Backlog {
  /** pending + failed deliveries (counted up to 1,000,000) */
  readonly total: number
  /** The `top` endpoints with the most pending or failed deliveries, largest first. */
  readonly top: readonly EndpointBacklog[]
}

export async function deliveryBacklog (sql: Sql, top = 10): Promise<Backlog> {
  const rows = await sql<(EndpointBacklog & { total: number })[]>`
    with open as (
      select endpoint_id, created_at from deliveries where status in ('pending', 'failed') limit ${BACKLOG_CAP}
    ), per as (
      select endpoint_id, count(*)::int as deliveries,
             extract(epoch from now() - min(created_at))::float8 as oldest_seconds
        from open group by endpoint_id
    )
    select p.*, (select count(*)::int from open) as total from per p order by p.deliveries desc, p.endpoint_id limit ${top}`
  return { total: rows[0]?.total ?? 0, top: rows.map(r => ({ endpoint_id: r.endpoint_id, deliveries: r.deliveries, oldest_seconds: r.oldest_seconds })) }
}
