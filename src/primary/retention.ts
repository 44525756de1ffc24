/**
 * Retention: events older than RETENTION_DAYS and expired dedup records are deleted in small batches
 * (1,000 rows per statement, each its own short transaction, with a pause between batches), so the
 * purge never holds locks long enough to block ingest (the statements: db/queries/delete-expired.ts).
 * Runs on the primary thread once a minute; on several nodes each runs it, and concurrent purges only
 * split the work.
 */
import type { Sql } from '../db/client.ts'
import type { Logger } from '../log.ts'
import { deleteExpiredDedupKeys, deleteExpiredEvents } from '../db/queries/delete-expired.ts'

const BATCH = 1000

/** Runs `batch` until it deletes fewer than BATCH rows (or `maxBatches` ran), pausing between batches. */
async function inBatches (maxBatches: number, batch: () => Promise<number>): Promise<number> {
  let total = 0
  for (let i = 0; i < maxBatches; i++) {
    const n = await batch()
    total += n
    if (n < BATCH) break
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  return total
}

export async function purgeEvents (sql: Sql, retentionDays: number, maxBatches = 1000): Promise<number> {
  return await inBatches(maxBatches, async () => await deleteExpiredEvents(sql, retentionDays, BATCH))
}

export async function purgeDedupKeys (sql: Sql, maxBatches = 1000): Promise<number> {
  return await inBatches(maxBatches, async () => await deleteExpiredDedupKeys(sql, BATCH))
}

export class RetentionJob {
  readonly #sql: Sql
  readonly #log: Logger
  readonly #days: number
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null

  constructor (sql: Sql, log: Logger, retentionDays: number) {
    this.#sql = sql
    this.#log = log
    this.#days = retentionDays
  }

  start (intervalMs = 60_000): void {
    this.#timer = setInterval(() => { this.runOnce() }, intervalMs)
    this.#timer.unref()
  }

  /** Starts one purge unless one is running; failures are logged and retried next interval. */
  runOnce (): Promise<void> {
    this.#running ??= (async () => {
      try {
        const events = await purgeEvents(this.#sql, this.#days)
        const dedup = await purgeDedupKeys(this.#sql)
        if (events > 0 || dedup > 0) this.#log.info({ events, dedup }, 'retention purge')
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
