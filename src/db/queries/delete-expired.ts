/**
 * Retention deletes (primary/retention.ts): one bounded batch per statement, each its own short
 * transaction, so a purge never holds locks long enough to block ingest. Rows are picked by ctid, so
 * concurrent purges on several nodes only split the work (deleting a row already gone is a no-op).
 */
import type { Sql } from '../client.ts'

/** Deletes up to `limit` events created more than `retentionDays` ago; returns how many. */
export async function deleteExpiredEvents (sql: Sql, retentionDays: number, limit: number): Promise<number> {
  const r = await sql`
    delete from events where ctid = any(array(
      select ctid from events
       where created_at < now() - make_interval(days => ${retentionDays})
       limit ${limit}))`
  return r.count
}

/** Deletes up to `limit` dedup records past their expiry; returns how many. */
export async function deleteExpiredDedupKeys (sql: Sql, limit: number): Promise<number> {
  const r = await sql`
    delete from dedup_keys where ctid = any(array(
      select ctid from dedup_keys where expires_at < now() limit ${limit}))`
  return r.count
}
