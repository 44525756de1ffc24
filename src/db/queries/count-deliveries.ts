/** Scrape-time delivery gauges: attempts due now (index-backed by events_due, capped at 100,000). */
import type { Sql } from '../client.ts'

export async function countDueDeliveries (sql: Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from (
      select 1 from events where next_attempt_at <= now() limit 100000
    ) due`
  return row?.n ?? 0
}
