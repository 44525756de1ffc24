/**
 * The delivery loop (delivery thread): claim due attempts in batches, run them within global and
 * per-endpoint bounds, write results back in batches.
 *
 *   wake message ─┐
 *   NOTIFY ───────┼─▶ kick ─▶ pump: claim ≤ min(free slots, 100), ≤ room per origin ─▶ per attempt: admit(endpoint)
 *   poll timer ───┘     ▲           │                           go ─▶ dispatch ─▶ decide ─▶ settle ─▶ results ─┐
 *                       │           │                           busy ─▶ endpoint's wait FIFO ─┘ (started    │
 *                       │           │                                   by the next settle)                 │
 *                       │           │ idle: timer = min(500 ms,  FIFO full / open ─▶ releases (deferred) ───┤
 *                       │           ▼ earliest future next_attempt_at)                                      │
 *                       └──────────────────────────── flush (one UPDATE per batch) ◀────────────────────────┘
 *
 * Invariants:
 *   - At most DELIVERY_CONCURRENCY attempts in flight, at most DELIVERY_PER_ENDPOINT_CONCURRENCY (P) per
 *     origin; a claim never asks for more rows than there are free slots, nor for more rows of one
 *     origin than that origin's free slots plus free wait places (EndpointTable.capacities).
 *   - An attempt claimed for a busy endpoint (closed breaker, P in flight) waits in that endpoint's FIFO
 *     (at most P waiting) and starts as soon as an attempt to the endpoint settles, instead of going back
 *     to the database. Waiting attempts exist only behind a full endpoint, so there are never more of
 *     them than attempts in flight (≤ DELIVERY_CONCURRENCY; also checked when queueing). They do not use
 *     a slot of `#free` (so a hanging endpoint still holds at most its P slots and other organizations
 *     keep being claimed); the claim is bounded by the per-origin room instead.
 *   - Lease = 2 × DELIVERY_TIMEOUT_MS + LEASE_MARGIN_MS. A waiting attempt holds its lease, so the lease
 *     covers the wait plus the attempt: an attempt queued at position ≤ P has started once the P attempts
 *     in flight when it was queued have settled, each within the timeout; then it runs within the
 *     timeout; the margin covers the timeout ticker's slack and writing the result.
 *   - A waiting attempt is never attempted after its endpoint's breaker opens: the settle that opens it
 *     hands every waiting attempt back (Release, as never started) due at the breaker's retry time.
 *   - An endpoint that is full or whose breaker is open does not hold slots: its organizations are
 *     excluded from claims, and attempts claimed for it anyway (FIFO full, breaker open) are handed back
 *     (Release) without counting, due again when the endpoint can take them. A hanging endpoint
 *     therefore costs at most its per-endpoint share of slots, and other organizations' events are
 *     claimed on time.
 *   - stop() hands back waiting attempts at once as never started, like claimed-but-unstarted ones.
 *   - One claim at a time (kicks while claiming set `again`); one flush at a time. Pending writes are
 *     bounded (claims pause when they pile up), every timer is a single per-scheduler timer.
 *   - Every promise is observed: pump, flush, sweep and attempts end in handlers that log.
 */
import type { Config } from '../config/load.ts'
import type { Sql } from '../db/client.ts'
import { claimDeliveries, nextDueAt, type ClaimedDelivery } from '../db/queries/claim-deliveries.ts'
import { completeDeliveries, Completion, releaseDeliveries, Release, type CompletionStatus } from '../db/queries/complete-deliveries.ts'
import { DELIVERY_CHANNEL, deferOrganizations, sweepParkedEvents } from '../db/queries/schedule-deliveries.ts'
import type { Logger } from '../log.ts'
import type { ThreadMetrics } from '../metrics/counters.ts'
import { EndpointTable, type Admission, type Endpoint } from './breaker.ts'
import { Dispatcher } from './dispatch.ts'
import { AttemptResult, decide } from './retry-policy.ts'

export { DELIVERY_CHANNEL }

const CLAIM_BATCH = 100
const MAX_ROUNDS = 16
const POLL_MS = 500
const ERROR_BACKOFF_MS = 1000
/** Next look when rows are due but none could be claimed (their endpoints are full or open). */
const BLOCKED_POLL_MS = 20
/** Lease = 2 × attempt timeout (waiting for a slot, then the attempt) + this margin for writing the result back. */
const LEASE_MARGIN_MS = 10_000
/** How much later an attempt claimed for a busy endpoint whose wait queue is full is due again. */
const BUSY_DEFER_MS = 250
const FLUSH_DELAY_MS = 5
const FLUSH_RETRY_MS = 1000
const SWEEP_EVERY_MS = 5000
const SWEEP_WINDOW_MS = 10 * 60_000
/** Attempts still running after the stop deadline are aborted and given this long to settle. */
const ABORT_GRACE_MS = 2000

export interface SchedulerOptions {
  readonly sql: Sql
  readonly config: Config
  readonly log: Logger
  /** This thread's metric slots, or null to count nothing. */
  readonly metrics: ThreadMetrics | null
  /** Breaker tuning (tests); defaults: 5 failures, 5 s cool-down doubling to 60 s. */
  readonly breakerThreshold?: number
  readonly breakerCooldownMs?: number
}

function parseTarget (raw: string): URL | null {
  try { return new URL(raw) } catch { return null }
}

const STATUS: Record<'delivered' | 'retry' | 'dead', CompletionStatus> = { delivered: 'delivered', retry: 'failed', dead: 'dead_letter' }
const OUTCOME = { delivered: 'delivered', retry: 'retry_scheduled', dead: 'dead_letter' } as const

export class Scheduler {
  readonly #sql: Sql
  readonly #log: Logger
  readonly #metrics: ThreadMetrics | null
  readonly #delays: readonly number[]
  readonly #leaseMs: number
  readonly #pendingCap: number
  readonly #waitCap: number
  readonly #dispatcher: Dispatcher
  readonly #gates: EndpointTable<ClaimedDelivery>

  #free: number
  #running = 0
  /** Claimed attempts in endpoints' wait queues (≤ #waitCap). */
  #waiting = 0
  #claiming = false
  #again = false
  #stopping = false
  #pumpDone: Promise<void> = Promise.resolve()
  #pollTimer: NodeJS.Timeout | null = null
  #sweepTimer: NodeJS.Timeout | null = null
  #sweeping = false
  #flushTimer: NodeJS.Timeout | null = null
  #flushing: Promise<void> | null = null
  #results: Completion[] = []
  #releases: Release[] = []
  #listening: { unlisten: () => Promise<void> } | null = null
  #idleWaiter: (() => void) | null = null
  #listenPending = false
  // Reused buffers for the claim's per-origin room (refilled before each claim).
  readonly #capExcluded: string[] = []
  readonly #capOrigins: string[] = []
  readonly #capRooms: number[] = []
  readonly #drained: ClaimedDelivery[] = []

  // Callbacks bound once (fixed shape; no closure per event).
  readonly #kickCb = (): void => { this.#kick() }
  readonly #onPumpDone = (nextMs: number): void => { this.#pumpSettled(nextMs) }
  readonly #onPumpFailed = (err: unknown): void => {
    this.#log.error({ err }, 'delivery claim failed')
    this.#pumpSettled(ERROR_BACKOFF_MS)
  }

  readonly #onFlushTimer = (): void => {
    this.#flushTimer = null
    this.#flushing = this.#flush().then(this.#onFlushed, this.#onFlushFailed)
  }

  readonly #onFlushed = (): void => {
    this.#flushing = null
    if (this.#results.length > 0 || this.#releases.length > 0) this.#scheduleFlush(FLUSH_DELAY_MS)
    // The rows just written may define the earliest next attempt: let the claim loop re-aim its timer.
    this.#kick()
  }

  readonly #onFlushFailed = (err: unknown): void => {
    this.#flushing = null
    this.#log.error({ err, pending: this.#results.length + this.#releases.length }, 'writing delivery results failed; retrying')
    this.#scheduleFlush(FLUSH_RETRY_MS)
  }

  readonly #onSweepTimer = (): void => {
    if (this.#listening === null) this.#listen().then(undefined, this.#onListenFailed)
    if (this.#sweeping) return
    this.#sweeping = true
    sweepParkedEvents(this.#sql, SWEEP_WINDOW_MS).then(this.#onSwept, this.#onSweepFailed)
  }

  readonly #onSwept = (n: number): void => {
    this.#sweeping = false
    if (n > 0) {
      this.#log.info({ scheduled: n }, 'un-parked events of recently configured webhooks')
      this.#kick()
    }
  }

  readonly #onSweepFailed = (err: unknown): void => {
    this.#sweeping = false
    this.#log.warn({ err }, 'parked-event sweep failed')
  }

  readonly #onDeferred = (n: number): void => {
    if (n > 0) this.#log.info({ deferred: n }, 'deferred the due backlog of an endpoint whose breaker opened')
  }

  readonly #onDeferFailed = (err: unknown): void => {
    this.#log.warn({ err }, 'deferring the backlog of an open endpoint failed (claims skip it anyway)')
  }

  readonly #onListenFailed = (err: unknown): void => {
    this.#log.warn({ err }, 'LISTEN failed; polling until it succeeds')
  }

  constructor (o: SchedulerOptions) {
    const c = o.config
    this.#sql = o.sql
    this.#log = o.log
    this.#metrics = o.metrics
    this.#delays = c.deliveryRetryDelaysMs
    this.#leaseMs = 2 * c.deliveryTimeoutMs + LEASE_MARGIN_MS
    this.#free = c.deliveryConcurrency
    this.#waitCap = c.deliveryConcurrency
    this.#pendingCap = c.deliveryConcurrency + 4 * CLAIM_BATCH
    this.#dispatcher = new Dispatcher({ timeoutMs: c.deliveryTimeoutMs, perEndpoint: c.deliveryPerEndpoint, allowPrivate: c.allowPrivateWebhooks })
    const cooldown = o.breakerCooldownMs ?? 5000
    this.#gates = new EndpointTable<ClaimedDelivery>({
      perEndpoint: c.deliveryPerEndpoint,
      waitPerEndpoint: c.deliveryPerEndpoint,
      threshold: o.breakerThreshold ?? 5,
      cooldownMs: cooldown,
      maxCooldownMs: Math.max(cooldown, 60_000),
      maxEndpoints: 10_000,
    })
  }

  /** Starts listening and claiming. Resolves once LISTEN is set up (or has failed: polling covers it). */
  async start (): Promise<void> {
    try { await this.#listen() } catch (err) { this.#onListenFailed(err) }
    if (this.#stopping) return
    this.#sweepTimer = setInterval(this.#onSweepTimer, SWEEP_EVERY_MS)
    this.#sweepTimer.unref()
    this.#kick()
  }

  /** New work may be due (a 'wake' message): claim now. */
  wake (): void {
    this.#kick()
  }

  /**
   * Stops claiming; waits for in-flight attempts until `deadlineAt` (ms since epoch), then aborts the
   * rest and hands them back due now; writes every pending result; closes connections. The database
   * client stays open (the caller owns it).
   */
  async stop (deadlineAt: number): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    // Waiting attempts were never started: hand them back at once, due now, as if never claimed.
    this.#gates.takeAllWaiting(this.#drained)
    for (const d of this.#drained) this.#releases.push(new Release(d.organizationId, d.id, d.attempts, true, 0, null))
    this.#waiting -= this.#drained.length
    this.#drained.length = 0
    if (this.#pollTimer !== null) clearTimeout(this.#pollTimer)
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer)
    this.#pollTimer = null
    this.#sweepTimer = null
    if (this.#listening !== null) {
      try { await this.#listening.unlisten() } catch (err) { this.#log.warn({ err }, 'UNLISTEN failed') }
      this.#listening = null
    }
    await this.#pumpDone
    if (this.#running > 0) await this.#waitIdle(deadlineAt)
    if (this.#running > 0) {
      this.#log.warn({ in_flight: this.#running }, 'stop deadline reached; aborting in-flight delivery attempts')
      this.#dispatcher.abortAll()
      await this.#waitIdle(Date.now() + ABORT_GRACE_MS)
    }
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer)
    this.#flushTimer = null
    if (this.#flushing !== null) await this.#flushing
    for (let i = 0; i < 3 && (this.#results.length > 0 || this.#releases.length > 0); i++) {
      try { await this.#flush() } catch (err) {
        this.#log.error({ err, pending: this.#results.length + this.#releases.length }, 'writing delivery results at stop failed; their leases will expire instead')
      }
    }
    await this.#dispatcher.close()
  }

  async #listen (): Promise<void> {
    if (this.#stopping || this.#listenPending || this.#listening !== null) return
    this.#listenPending = true
    try {
      const l = await this.#sql.listen(DELIVERY_CHANNEL, this.#kickCb, this.#kickCb)
      if (this.#stopping) await l.unlisten()
      else this.#listening = l
    } finally {
      this.#listenPending = false
    }
  }

  #kick (): void {
    if (this.#stopping) return
    if (this.#claiming) { this.#again = true; return }
    this.#claiming = true
    if (this.#pollTimer !== null) { clearTimeout(this.#pollTimer); this.#pollTimer = null }
    this.#pumpDone = this.#pump().then(this.#onPumpDone, this.#onPumpFailed)
  }

  #pumpSettled (nextMs: number): void {
    this.#claiming = false
    if (this.#stopping) return
    if (this.#again) { this.#again = false; this.#kick(); return }
    this.#pollTimer = setTimeout(this.#kickCb, nextMs)
    this.#pollTimer.unref()
  }

  /** Claims and starts attempts until nothing more is due or no slot is free; returns ms until the next look. */
  async #pump (): Promise<number> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      this.#again = false
      const want = Math.min(this.#free, CLAIM_BATCH, this.#pendingCap - this.#results.length - this.#releases.length)
      if (want <= 0 || this.#stopping) return POLL_MS // a finishing attempt or flush kicks again
      this.#gates.capacities(Date.now(), this.#capExcluded, this.#capOrigins, this.#capRooms)
      const rows = await claimDeliveries(this.#sql, {
        limit: want,
        perOrigin: this.#gates.defaultRoom,
        leaseMs: this.#leaseMs,
        excludedOrgs: this.#capExcluded,
        capOrigins: this.#capOrigins,
        capRooms: this.#capRooms,
      })
      const now = Date.now()
      for (const d of rows) this.#startOrDefer(d, now)
      if (rows.length < want && !this.#again) {
        const at = await nextDueAt(this.#sql)
        if (at === null) return POLL_MS
        const ms = at.getTime() - Date.now()
        if (ms > 0) return Math.min(POLL_MS, ms)
        // Due rows this claim did not take. After progress, look again at once (the exclusions changed).
        // Without any, they belong to endpoints that are full or open (a settle kicks, and a cool-down
        // ends within the back-off) or to another node's claim: back off instead of re-claiming every
        // millisecond (~300 empty claims/s were measured while a breaker was open).
        return rows.length > 0 ? 1 : BLOCKED_POLL_MS
      }
    }
    return 1 // still busy after MAX_ROUNDS: yield to the event loop, then continue
  }

  #startOrDefer (d: ClaimedDelivery, now: number): void {
    if (this.#stopping) {
      this.#releases.push(new Release(d.organizationId, d.id, d.attempts, true, 0, null))
      this.#scheduleFlush(0)
      return
    }
    const target = parseTarget(d.webhookUrl)
    const ep = this.#gates.get(target === null ? d.webhookUrl : target.origin, d.organizationId)
    const admission = this.#gates.admit(ep, now)
    if (admission === 'go') {
      this.#start(d, ep, target, now)
      return
    }
    // Busy: wait for the endpoint's next free slot, unless its queue (or the global bound) is full.
    if (admission === 'busy' && this.#waiting < this.#waitCap && ep.waiting.push(d)) {
      this.#waiting++
      return
    }
    this.#defer(d, ep, admission, now)
  }

  /** Hands a claimed, never-started attempt back, due when the endpoint can take it (not counted). */
  #defer (d: ClaimedDelivery, ep: Endpoint<ClaimedDelivery>, admission: Admission, now: number): void {
    const at = this.#gates.retryAt(ep, admission, now, BUSY_DEFER_MS)
    this.#releases.push(new Release(d.organizationId, d.id, d.attempts, true, at - now, null))
    this.#scheduleFlush(FLUSH_DELAY_MS)
  }

  /** Runs an admitted attempt (its endpoint slot is reserved). */
  #start (d: ClaimedDelivery, ep: Endpoint<ClaimedDelivery>, target: URL | null, now: number): void {
    this.#free--
    this.#running++
    const attempt = target === null
      ? Promise.resolve(new AttemptResult('network', 0, 'invalid webhook URL', null))
      : this.#dispatcher.attempt(d, target)
    attempt.then(
      r => { this.#settle(d, ep, r, now) },
      (err: unknown) => { this.#settle(d, ep, new AttemptResult('network', 0, 'internal error: ' + (err instanceof Error ? err.name : 'unknown'), null), now) },
    )
  }

  /**
   * A slot of `ep` came free: start its oldest waiting attempt(s). If the breaker opened (or a probe
   * is in flight) every waiting attempt is handed back due at the breaker's retry time; while
   * stopping, due now (stop() normally empties the queues first).
   */
  #startWaiting (ep: Endpoint<ClaimedDelivery>, now: number): void {
    while (ep.waiting.size > 0) {
      const admission: Admission = this.#stopping ? 'open' : this.#gates.admit(ep, now)
      if (admission === 'busy') return
      const d = ep.waiting.shift()!
      this.#waiting--
      if (admission === 'go') this.#start(d, ep, parseTarget(d.webhookUrl), now)
      else if (this.#stopping) this.#releases.push(new Release(d.organizationId, d.id, d.attempts, true, 0, null))
      else this.#defer(d, ep, admission, now)
    }
  }

  #settle (d: ClaimedDelivery, ep: Endpoint<ClaimedDelivery>, r: AttemptResult, startedAt: number): void {
    const now = Date.now()
    const aborted = r.kind === 'aborted'
    const before = ep.state
    this.#gates.settle(ep, r.kind === 'success', !aborted, now)
    if (ep.state === 'open' && before !== 'open') {
      this.#log.warn({ endpoint: ep.key, failures: ep.failures, retry_in_ms: ep.openUntil - now }, 'circuit breaker opened')
      // Move the endpoint's due backlog past the cool-down, so claims do not keep scanning past it.
      deferOrganizations(this.#sql, [...ep.orgs], ep.openUntil - now).then(this.#onDeferred, this.#onDeferFailed)
    }
    this.#running--
    this.#free++
    if (aborted) {
      this.#releases.push(new Release(d.organizationId, d.id, d.attempts, false, 0, r.error))
    } else {
      const dec = decide(r, d.seriesAttempt, this.#delays, now, Math.random())
      if (this.#metrics !== null) {
        this.#metrics.delivery(OUTCOME[dec.verdict], (now - startedAt) / 1000)
        if (dec.verdict === 'delivered') this.#metrics.delivered((now - d.createdAt.getTime()) / 1000)
      }
      this.#results.push(new Completion(d.organizationId, d.id, d.attempts, STATUS[dec.verdict], dec.delayMs,
        r.status === 0 ? null : r.status, r.error))
      if (dec.verdict !== 'delivered') {
        const line = {
          event_id: d.id,
          organization_id: d.organizationId,
          endpoint: ep.key,
          attempt: d.attempts,
          series_attempt: d.seriesAttempt,
          outcome: r.kind,
          response_status: r.status === 0 ? null : r.status,
          next: STATUS[dec.verdict],
          delay_ms: dec.delayMs,
        }
        if (dec.verdict === 'dead') this.#log.warn(line, 'delivery dead-lettered')
        else this.#log.info(line, 'delivery attempt failed')
      }
    }
    if (ep.waiting.size > 0) this.#startWaiting(ep, now)
    this.#scheduleFlush(FLUSH_DELAY_MS)
    if (this.#running === 0 && this.#idleWaiter !== null) this.#idleWaiter()
    this.#kick()
  }

  #scheduleFlush (delayMs: number): void {
    // While stopping, stop() writes everything itself once attempts have settled.
    if (this.#stopping) return
    if (this.#flushTimer !== null || this.#flushing !== null) return
    this.#flushTimer = setTimeout(this.#onFlushTimer, delayMs)
  }

  /** Writes pending results and releases, one batch statement each per round. */
  async #flush (): Promise<void> {
    for (let round = 0; round < 100 && (this.#results.length > 0 || this.#releases.length > 0); round++) {
      const results = this.#results
      this.#results = []
      let written = 0
      try {
        written = await completeDeliveries(this.#sql, results)
      } catch (err) {
        this.#results = results.concat(this.#results)
        throw err
      }
      const releases = this.#releases
      this.#releases = []
      let released = 0
      try {
        released = await releaseDeliveries(this.#sql, releases)
      } catch (err) {
        this.#releases = releases.concat(this.#releases)
        throw err
      }
      this.#log.debug({ results: results.length, written, released, deferred: releases.length }, 'delivery batch written')
    }
  }

  #waitIdle (deadlineAt: number): Promise<void> {
    return new Promise(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        this.#idleWaiter = null
        resolve()
      }
      const timer = setTimeout(done, Math.max(0, deadlineAt - Date.now()))
      this.#idleWaiter = done
    })
  }
}
