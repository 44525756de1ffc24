/**
 * The attempt log's daily partitions (sql/0005_attempts.sql): created a week ahead, dropped whole when
 * every row in them is past ATTEMPT_RETENTION_DAYS, and their response excerpts and headers cleared in
 * batches of 1,000 rows once the whole day is past ATTEMPT_BODY_RETENTION_DAYS (rows on the boundary
 * day already read as expired: find-attempts.ts). A partition that old is no longer written, so
 * clearing it never contends with the delivery threads' inserts. Called by the delivery threads
 * (ensure, at start) and the primary's retention job (all three).
 *
 * Creating or dropping a partition takes an ACCESS EXCLUSIVE lock on delivery_attempts itself (measured
 * on PostgreSQL 15: both wait for an open insert into any partition). While such a statement waits for
 * its lock, every later insert and read of the log queues behind it, so both run with a short
 * `lock_timeout` (LOCK_TIMEOUT_MS): a busy moment costs the writers at most that wait, and the
 * statement is tried again later (primary/retention.ts). bench/micro/attempt-drop.bench.ts, 2026-12-03,
 * PostgreSQL 15 on the 2-core development machine, 4 writers of 100-row batches: a drop of a 20,000-row
 * partition took 69 ms (p50; max 253) and writers' p99 went from 63 to 96 ms while ten were dropped;
 * behind a reader holding the log for 1 s, a drop with lock_timeout 100 ms gave up and writers' worst
 * batch stayed at 158 ms, while one without it stalled every writer for 1,071 ms.
 */
import type { Sql } from '../client.ts'

const CLEAR_BATCH = 1000
/** Longest wait of a partition create or drop for its lock on the parent table. */
export const LOCK_TIMEOUT_MS = 100

function sqlState (err: unknown): string | null {
  return err !== null && typeof err === 'object' && 'code' in err && typeof err.code === 'string' ? err.code : null
}

/** 55P03 lock_not_available: lock_timeout expired. */
export function isLockTimeout (err: unknown): boolean {
  return sqlState(err) === '55P03'
}

/**
 * Creates the daily partitions from yesterday to a week ahead (idempotent); returns how many it made.
 * Rejects with a lock timeout (isLockTimeout) when the parent stayed busy for `lockTimeoutMs`.
 */
export async function ensureAttemptPartitions (sql: Sql, daysAhead = 7, lockTimeoutMs = LOCK_TIMEOUT_MS): Promise<number> {
  return await sql.begin(async tx => {
    await tx`select set_config('lock_timeout', ${lockTimeoutMs + 'ms'}, true)`
    const [row] = await tx<{ n: number }[]>`select triggers_ensure_attempt_partitions(${daysAhead}) as n`
    return row?.n ?? 0
  })
}

/** Partitions whose whole day ended at least `days` days ago, oldest first. */
export async function partitionsOlderThan (sql: Sql, days: number): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    select c.relname as name
      from pg_inherits i
      join pg_class c on c.oid = i.inhrelid
      join pg_class p on p.oid = i.inhparent
     where p.relname = 'delivery_attempts' and c.relname ~ '^delivery_attempts_p[0-9]{8}$'
       and to_date(substring(c.relname from 20), 'YYYYMMDD') + 1 <= (now() at time zone 'UTC')::date - ${days}::int
     order by c.relname`
  return rows.map(r => r.name)
}

/**
 * Drops one partition, waiting at most `lockTimeoutMs` for the parent's lock: true when it is gone,
 * false when the lock was busy (nothing changed; try again later).
 */
export async function dropAttemptPartition (sql: Sql, name: string, lockTimeoutMs = LOCK_TIMEOUT_MS): Promise<boolean> {
  try {
    await sql.begin(async tx => {
      await tx`select set_config('lock_timeout', ${lockTimeoutMs + 'ms'}, true)`
      await tx`drop table if exists ${tx(name)}`
      await tx`delete from attempt_partitions_cleared where name = ${name}`
    })
    return true
  } catch (err) {
    if (isLockTimeout(err)) return false
    throw err
  }
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
