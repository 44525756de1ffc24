/**
 * Organization changes made on other nodes (key rotation, tier, endpoints), heard by LISTEN on
 * `triggers_org_changes` (db/queries/notify-organization-changes.ts): each notification evicts that
 * organization's keys from every listener of this node, within milliseconds of the commit.
 * rotation-watch.ts keeps polling key rotations once a second as a fallback. Primary thread only.
 *
 * A notification sent while the LISTEN connection is down is lost for good, so the caches must not be
 * trusted across a gap:
 *
 *   listening ──no heartbeat heard for lostAfterMs──▶ lost: drop every cache and hold them empty
 *   lost ──LISTEN re-established or heartbeat heard──▶ listening: drop every cache again, release
 *   any (re-)LISTEN (postgres.js re-issues it after its connection closed) ─▶ drop every cache
 *
 * The heartbeat: every beatMs the primary NOTIFYs a channel of its own, LISTENed on the same
 * connection right after the changes channel (postgres.js re-issues a connection's LISTENs in that
 * order, so a heartbeat heard means the changes channel is listened too). Silence for lostAfterMs —
 * the connection closed and not yet back, or a half-open connection that never closes — is a loss.
 */
import { randomBytes } from 'node:crypto'
import type { Sql } from '../db/client.ts'
import type { Logger } from '../log.ts'
import { listenChannel, ORG_CHANGES_CHANNEL, sendHeartbeat } from '../db/queries/notify-organization-changes.ts'

export interface OrgChangeHandlers {
  /** An organization changed: drop its cached keys everywhere on this node. */
  evict (organizationId: string): void
  /** Drop every cached key; with `hold`, keep the caches empty until called without it. */
  dropAll (hold: boolean): void
}

export interface OrgChangeWatchOptions {
  readonly beatMs?: number
  readonly lostAfterMs?: number
}

type State = 'starting' | 'listening' | 'lost'

export class OrgChangeWatch {
  readonly #sql: Sql
  readonly #log: Logger
  readonly #on: OrgChangeHandlers
  readonly #beatMs: number
  readonly #lostAfterMs: number
  readonly #beatChannel = `${ORG_CHANGES_CHANNEL}_hb_${randomBytes(8).toString('hex')}`
  #state: State = 'starting'
  #heardAt = 0
  #tickAt = 0
  #beating = false
  #timer: NodeJS.Timeout | null = null
  #stopped = false

  constructor (sql: Sql, log: Logger, on: OrgChangeHandlers, o: OrgChangeWatchOptions = {}) {
    this.#sql = sql
    this.#log = log
    this.#on = on
    this.#beatMs = o.beatMs ?? 250
    this.#lostAfterMs = o.lostAfterMs ?? 1000
  }

  /** Listens (without waiting for it: postgres.js keeps retrying) and starts the heartbeat. */
  start (): void {
    this.#heardAt = this.#tickAt = performance.now()
    this.#listen(ORG_CHANGES_CHANNEL, payload => { this.#changed(payload) }, () => { this.#listened() })
    this.#listen(this.#beatChannel, () => { this.#heard() }, () => {})
    this.#timer = setInterval(() => { this.#tick() }, this.#beatMs)
    this.#timer.unref()
  }

  /**
   * Stops reacting and beating. The LISTEN connection itself closes with the database client
   * (`sql.end()` ends it): an UNLISTEN now would wait out a connect timeout when the database is gone.
   */
  stop (): void {
    this.#stopped = true
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  #listen (channel: string, onNotify: (payload: string) => void, onListen: () => void): void {
    listenChannel(this.#sql, channel, onNotify, onListen).then(undefined, (err: unknown) => {
      // postgres.js re-issues the LISTEN once it reconnects; #listened reports it.
      this.#log.warn({ err, channel }, 'LISTEN failed; retrying')
    })
  }

  #changed (organizationId: string): void {
    if (this.#stopped) return
    this.#heardAt = performance.now()
    this.#log.debug({ organizationId, via: 'notify' }, 'organization changed')
    this.#on.evict(organizationId)
  }

  /** The changes channel is (again) listened: whatever was sent before may have been missed. */
  #listened (): void {
    if (this.#stopped) return
    const was = this.#state
    this.#state = 'listening'
    this.#heardAt = performance.now()
    this.#on.dropAll(false)
    if (was === 'starting') this.#log.debug('organization changes LISTEN established')
    else this.#log.info({ was }, 'organization changes LISTEN re-established; listener caches dropped')
  }

  #heard (): void {
    if (this.#stopped) return
    this.#heardAt = performance.now()
    if (this.#state !== 'lost') return
    this.#state = 'listening'
    this.#on.dropAll(false)
    this.#log.info('organization changes heard again; listener caches dropped and released')
  }

  #tick (): void {
    if (this.#stopped) return
    const now = performance.now()
    // After a stall of this thread's own loop, heartbeats may be waiting unread in the socket (timers
    // run before I/O callbacks): judge the silence on the next tick, not this one.
    const stalled = now - this.#tickAt > 2 * this.#beatMs
    this.#tickAt = now
    if (!stalled && this.#state !== 'lost' && now - this.#heardAt > this.#lostAfterMs) {
      this.#state = 'lost'
      this.#on.dropAll(true)
      this.#log.warn({ silentMs: Math.round(now - this.#heardAt) }, 'organization changes LISTEN lost; listener caches dropped and held until it is back')
    }
    if (this.#beating) return
    this.#beating = true
    sendHeartbeat(this.#sql, this.#beatChannel, '').then(() => { this.#beating = false }, (err: unknown) => {
      this.#beating = false
      this.#log.debug({ err }, 'heartbeat NOTIFY failed')
    })
  }
}
