/**
 * What the scratch database's connections are doing during a run, sampled from pg_stat_activity every
 * 250 ms: for each sample, every non-idle connection counts once under "<wait event or 'CPU'> ·
 * <the statement's first words>". The shares show where a delivery drain spends its database time
 * (claims, result writes, waiting on locks or on the WAL flush) without any extension installed.
 */
import type { BenchDatabase } from './database.ts'

const EVERY_MS = 250

export interface ActivityShare { readonly what: string, readonly share: number }

export class PgActivity {
  readonly #db: BenchDatabase
  readonly #counts = new Map<string, number>()
  #samples = 0
  #timer: NodeJS.Timeout | null = null
  #busy = false

  constructor (db: BenchDatabase) { this.#db = db }

  start (): void {
    this.#timer = setInterval(() => { void this.#sample() }, EVERY_MS)
  }

  async #sample (): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      const rows = await this.#db.sql<{ wait: string | null, q: string }[]>`
        select case when wait_event is null then 'CPU' else wait_event_type || ':' || wait_event end as wait,
               left(regexp_replace(query, '\\s+', ' ', 'g'), 48) as q
          from pg_stat_activity
         where datname = current_database() and state not in ('idle') and pid <> pg_backend_pid()`
      this.#samples++
      for (const r of rows) {
        const k = `${r.wait ?? 'CPU'} · ${r.q.trim()}`
        this.#counts.set(k, (this.#counts.get(k) ?? 0) + 1)
      }
    } catch { /* a failed sample is skipped */ } finally { this.#busy = false }
  }

  /** Stops sampling; the 8 most frequent activities as the average number of connections doing them. */
  stop (): { samples: number, top: ActivityShare[] } {
    if (this.#timer !== null) clearInterval(this.#timer)
    const n = Math.max(1, this.#samples)
    const top = [...this.#counts].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([what, c]) => ({ what, share: Math.round((c / n) * 100) / 100 }))
    return { samples: this.#samples, top }
  }
}
