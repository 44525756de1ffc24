/**
 * Retention, run by the primary thread once a minute (on several nodes each runs it; concurrent purges
 * only split the work):
 *
 *   1. events older than RETENTION_DAYS and their deliveries, and expired dedup records: deleted in small
 *      batches (1,000 rows per statement, each its own short transaction, a pause between batches), so
 *      the purge never holds row locks long enough to block ingest (db/queries/delete-expired.ts).
 *      Deliveries go first, with the same cutoff as their events (a delivery's created_at is its
 *      event's): a delivery never outlives its event, since a due one without its event would be
 *      claimed again and again without an attempt.
 *   2. the attempt log (db/queries/attempt-partitions.ts): daily partitions made a week ahead, whole
 *      partitions dropped past ATTEMPT_RETENTION_DAYS (never row deletes), response excerpts and headers
 *      cleared past ATTEMPT_BODY_RETENTION_DAYS (old partitions only, which nothing writes any more).
 *      Creating and dropping a partition lock the parent table, so each waits at most LOCK_TIMEOUT_MS for
 *      its lock: on a busy moment it backs off and tries again (DROP_TRIES, then the next run), and the
 *      delivery threads' inserts wait at most that long behind it.
 */
import type { Sql } from '../db/client.ts'
import type { Logger } from '../log.ts'
import { deleteExpiredDedupKeys, deleteExpiredDeliveries, deleteExpiredEvents, retentionCutoff } from '../db/queries/delete-expired.ts'
import { clearExpiredExcerpts, dropAttemptPartition, ensureAttemptPartitions, isLockTimeout, partitionsOlderThan } from '../db/queries/attempt-partitions.ts'

const BATCH = 1000
/** Partitions of the attempt log kept ready ahead of today. */
const DAYS_AHEAD = 7
/** Tries to get a partition's lock within one run, with a growing pause in between. */
const DROP_TRIES = 4
const DROP_BACKOFF_MS = 50

const pause = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Runs `batch` until it deletes fewer than BATCH rows (or `maxBatches` ran), pausing between batches. */
async function inBatches (maxBatches: number, batch: () => Promise<number>): Promise<number> {
  let total = 0
  for (let i = 0; i < maxBatches; i++) {
    const n = await batch()
    total += n
    if (n < BATCH) break
    await pause(10)
  }
  return total
}

export interface EventPurge { readonly events: number, readonly deliveries: number }

/** Deletes the events older than `retentionDays` and their deliveries (see the header); returns how many of each. */
export async function purgeEventsAndDeliveries (sql: Sql, retentionDays: number, maxBatches = 1000): Promise<EventPurge> {
  const cutoff = await retentionCutoff(sql, retentionDays)
  const deliveries = await inBatches(maxBatches, async () => await deleteExpiredDeliveries(sql, cutoff, BATCH))
  const events = await inBatches(maxBatches, async () => await deleteExpiredEvents(sql, cutoff, BATCH))
  return { events, deliveries }
}

/** Deletes the events older than `retentionDays` (and their deliveries); returns how many events. */
export async function purgeEvents (sql: Sql, retentionDays: number, maxBatches = 1000): Promise<number> {
  return (await purgeEventsAndDeliveries(sql, retentionDays, maxBatches)).events
}

export async function purgeDedupKeys (sql: Sql, maxBatches = 1000): Promise<number> {
  return await inBatches(maxBatches, async () => await deleteExpiredDedupKeys(sql, BATCH))
}

export interface AttemptRetention {
  /** ATTEMPT_RETENTION_DAYS (config already keeps it within RETENTION_DAYS). */
  readonly retentionDays: number
  /** ATTEMPT_BODY_RETENTION_DAYS */
  readonly bodyRetentionDays: number
}

export interface AttemptLogUpkeep {
  /** Partitions created ahead. */
  readonly created: number
  /** Partitions dropped. */
  readonly dropped: readonly string[]
  /** Expired partitions whose lock stayed busy: left for the next run. */
  readonly busy: readonly string[]
  /** Rows whose excerpt and headers were cleared. */
  readonly cleared: number
}

/** Drops one partition, retrying a busy lock DROP_TRIES times with a growing pause; false when still busy. */
async function dropWithRetry (sql: Sql, name: string): Promise<boolean> {
  for (let i = 0; i < DROP_TRIES; i++) {
    if (i > 0) await pause(DROP_BACKOFF_MS * 2 ** (i - 1) * (0.5 + Math.random()))
    if (await dropAttemptPartition(sql, name)) return true
  }
  return false
}

/** One upkeep pass of the attempt log: create ahead, drop expired partitions, clear expired excerpts. */
export async function maintainAttemptLog (sql: Sql, o: AttemptRetention): Promise<AttemptLogUpkeep> {
  let created = 0
  try {
    created = await ensureAttemptPartitions(sql, DAYS_AHEAD)
  } catch (err) {
    // Partitions exist a week ahead: a busy minute is no risk, the next run makes them.
    if (!isLockTimeout(err)) throw err
  }
  const dropped: string[] = []
  const busy: string[] = []
  for (const name of await partitionsOlderThan(sql, o.retentionDays)) {
    if (await dropWithRetry(sql, name)) dropped.push(name)
    else busy.push(name)
  }
  const cleared = await clearExpiredExcerpts(sql, o.bodyRetentionDays)
  return { created, dropped, busy, cleared }
}

export class RetentionJob {
  readonly #sql: Sql
  readonly #log: Logger
  readonly #days: number
  readonly #attempts: AttemptRetention | null
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null

  /** `attempts`: the attempt log's retention (null: leave the attempt log alone). */
  constructor (sql: Sql, log: Logger, retentionDays: number, attempts: AttemptRetention | null = null) {
    this.#sql = sql
    this.#log = log
    this.#days = retentionDays
    this.#attempts = attempts
  }

  start (intervalMs = 60_000): void {
    this.#timer = setInterval(() => { this.runOnce() }, intervalMs)
    this.#timer.unref()
  }

  /** Starts one purge unless one is running; failures are logged and retried next interval. */
  runOnce (): Promise<void> {
    this.#running ??= (async () => {
      try {
        const { events, deliveries } = await purgeEventsAndDeliveries(this.#sql, this.#days)
        const dedup = await purgeDedupKeys(this.#sql)
        if (events > 0 || deliveries > 0 || dedup > 0) this.#log.info({ events, deliveries, dedup }, 'retention purge')
        if (this.#attempts !== null) {
          const a = await maintainAttemptLog(this.#sql, this.#attempts)
          if (a.created > 0 || a.dropped.length > 0 || a.cleared > 0) {
            this.#log.info({ created: a.created, dropped: a.dropped, cleared: a.cleared }, 'attempt log retention')
          }
          if (a.busy.length > 0) this.#log.warn({ busy: a.busy }, 'attempt log partitions still locked; dropping them next run')
        }
      } catch (err) {
        this.#log.warn({ err }, 'retention purge failed; retrying next interval')
      } finally {
        this.#running = null
      }
    })()
    return this.#running
  }

  async stop (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#running
  }
}
