/**
 * The attempt log's daily partitions (sql/0005_attempts.sql): created a week ahead, dropped whole when
 * every row in them is past ATTEMPT_RETENTION_DAYS, and their response excerpts and headers cleared in
 * batches of 1,000 rows once the whole day is past ATTEMPT_BODY_RETENTION_DAYS (rows on the boundary
 * day already read as expired: find-attempts.ts). A partition that old is no longer written, so
 * clearing it never contends with the delivery threads' inserts. Called by the delivery threads
 * (ensure, at start) and the primary's retention job (all three).
 */
import type { Sql } from '../client.ts'

const CLEAR_BATCH = 1000

/** Creates the daily partitions from yesterday to a week ahead (idempotent); returns how many it made. */
export async function ensureAttemptPartitions (sql: Sql, daysAhead = 7): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select triggers_ensure_attempt_partitions(${daysAhead}) as n`
  return row?.n ?? 0
}

/** Partitions whose whole day ended at least `days` days ago, oldest first. */
async function partitionsOlderThan (sql: Sql, days: number): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    select c.relname as name
      from pg_inherits i
      join pg_class c on c.oid = i.inhrelid
      join pg_class p on p.oid = i.inhparent
     where p.relname = 'delivery_attempts' and c.relname ~ '^delivery_attempts_p[0-9]{8}$'
       and to_date(substring(c.relname from 20), 'YYYYMMDD') + 1 <= (now() at time zone 'UTC')::date - ${days}
     order by c.relname`
  return rows.map(r => r.name)
}

/** Drops the partitions past `retentionDays`; returns their names. */
export async function dropExpiredAttemptPartitions (sql: Sql, retentionDays: number): Promise<string[]> {
  const old = await partitionsOlderThan(sql, retentionDays)
  for (const name of old) {
    await sql`drop table if exists ${sql(name)}`
    await sql`delete from attempt_partitions_cleared where name = ${name}`
  }
  return old
}

/** Clears the excerpts and headers of partitions past `days` not cleared yet; returns how many rows. */
export async function clearExpiredExcerpts (sql: Sql, days: number, maxBatches = 1000): Promise<number> {
  let total = 0
  const done = new Set((await sql<{ name: string }[]>`select name from attempt_partitions_cleared`).map(r => r.name))
  for (const name of await partitionsOlderThan(sql, days)) {
    if (done.has(name)) continue
    for (let i = 0; i < maxBatches; i++) {
      const r = await sql`
        update ${sql(name)} set response_body = null, response_headers = null
         where ctid = any(array(select ctid from ${sql(name)}
                                 where response_body is not null or response_headers is not null
                                 limit ${CLEAR_BATCH}))`
      total += r.count
      if (r.count < CLEAR_BATCH) {
        await sql`insert into attempt_partitions_cleared (name) values (${name}) on conflict do nothing`
        break
      }
    }
  }
  return total
}
