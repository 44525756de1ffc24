/**
 * The fallback for cross-node key rotation: every node polls once a second for organizations whose
 * key was rotated since the last poll and evicts them from its listeners' caches. Rotations normally
 * arrive at once by NOTIFY (org-change-watch.ts); this poll catches one whose notification was lost
 * (the rotating node failed to send it, or this node's LISTEN connection was down and its caches were
 * held meanwhile). The node that rotated a key evicts it before answering. Primary thread only.
 */
import type { Sql } from '../db/client.ts'
import type { Logger } from '../log.ts'
import { findRotatedSince } from '../db/queries/organizations.ts'

export class RotationWatch {
  readonly #sql: Sql
  readonly #log: Logger
  readonly #evict: (organizationId: string) => void
  #since = new Date()
  #timer: NodeJS.Timeout | null = null
  #running = false

  constructor (sql: Sql, log: Logger, evict: (organizationId: string) => void) {
    this.#sql = sql
    this.#log = log
    this.#evict = evict
  }

  start (intervalMs = 1000): void {
    // Overlap by a second: a rotation committed just before "now" with an earlier timestamp is not missed.
    this.#since = new Date(Date.now() - 1000)
    this.#timer = setInterval(() => { this.#poll() }, intervalMs)
    this.#timer.unref()
  }

  stop (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  #poll (): void {
    if (this.#running) return
    this.#running = true
    findRotatedSince(this.#sql, new Date(this.#since.getTime() - 1000)).then(rows => {
      this.#running = false
      for (const r of rows) {
        this.#evict(r.id)
        if (r.key_rotated_at > this.#since) this.#since = r.key_rotated_at
      }
    }, (err: unknown) => {
      this.#running = false
      this.#log.warn({ err }, 'rotation poll failed; retrying')
    })
  }
}
