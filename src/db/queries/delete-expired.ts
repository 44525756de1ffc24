/**
 * Retention deletes (primary/retention.ts): one bounded batch per statement, each its own short
 * transaction, so a purge never holds locks long enough to block ingest. Rows are picked by ctid, so
 * concurrent purges on several nodes only split the work (deleting a row already gone is a no-op).
 * Events and deliveries are found through their BRIN indexes on created_at (sql/0002, sql/0003).
 */
import type { Sql } from '../client.ts'

/** The moment `retentionDays` ago by the database's clock: one cutoff for a purge's events and deliveries. */
export async function retentionCutoff (sql: Sql, retentionDays: number): Promise<Date> {
  const [row] = await sql<{ cutoff: Date }[]>`select now() - make_interval(days => ${retentionDays}) as cutoff`
  return row!.cutoff
}

/** Deletes up to `limit` events created before `cutoff`; returns how many. */
export async function deleteExpiredEvents (sql: Sql, cutoff: Date, limit: number): Promise<number> {
  const r = await sql`
    delete from events where ctid = any(array(
      select ctid from events where created_at < ${cutoff} limit ${limit}))`
  return r.count
}

/** Deletes up to `limit` deliveries of events created before `cutoff` (their created_at); returns how many. */
export async function deleteExpiredDeliveries (sql: Sql, cutoff: Date, limit: number): Promise<number> {
  const r = await sql`
    delete from deliveries where ctid = any(array(
      select ctid from deliveries where created_at < ${cutoff} limit ${limit}))`
  return r.count
}

/** Deletes up to `limit` dedup records past their expiry; returns how many. */
export async function deleteExpiredDedupKeys (sql: Sql, limit: number): Promise<number> {
  const r = await sql`
    delete from dedup_keys where ctid = any(array(
      select ctid from dedup_keys where expires_at < now() limit ${limit}))`
  return r.count
}
