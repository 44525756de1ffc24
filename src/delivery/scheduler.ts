/**
 * The delivery loop of one delivery thread: claim due deliveries in batches, start them, write results
 * back in batches.
 *
 *   wake message ─┐
 *   NOTIFY ───────┼─▶ kick ─▶ pump: claim (flow.ts plans per endpoint, under the endpoint's row lock)
 *   poll timer ───┘     ▲           │ leased ─▶ dispatch ─▶ settled ─▶ decide ─▶ results ─┐
 *                       │           │ idle: timer = min(500 ms, earliest future due)      │
 *                       └───────────┴──────── flush (one transaction per batch) ◀─────────┘
 *
 * Invariants:
 *   - At most DELIVERY_CONCURRENCY attempts in flight on this thread: a claim never leases more than
 *     the free slots. Per endpoint, the claim itself enforces max_concurrency (live leases on every
 *     node), the rate limit, throttling, the breaker and pause/disable (delivery/flow.ts): whatever it
 *     leases starts at once, so there are no local wait queues.
 *   - An endpoint a claim found at its concurrency limit is left out of this thread's next claims until
 *     one of its attempts settles here or FULL_BACKOFF_MS passes (its leases may be on other nodes),
 *     so its backlog is not rescanned meanwhile. Bounded (EXCLUDED_MAX).
 *   - Lease = DELIVERY_TIMEOUT_MS + LEASE_MARGIN_MS: an attempt starts as soon as it is leased and ends
 *     within the timeout; the margin covers the timeout ticker's slack and writing the result.
 *   - One claim at a time (kicks while claiming set `again`); one flush at a time; results waiting to be
 *     written are bounded (claims pause when they pile up); timers are per scheduler, never per attempt.
 *   - Every promise is observed: pump, flush and sweeps end in handlers that log.
 */
import type { Config } from '../config/load.ts'
import type { Sql } from '../db/client.ts'
import { claimDeliveries, findBacklogged, FocusList, nextDueAt, type Candidate, type ClaimedDelivery, type ClaimPlan, type EndpointFlow } from '../db/queries/claim-deliveries.ts'
import { Completion, EndpointHealth, Release, writeResults, type AttemptOutcome, type AttemptTrigger, type CompletionStatus, type HealthPolicy } from '../db/queries/complete-deliveries.ts'
import { DELIVERY_CHANNEL, sweepEndpoints } from '../db/queries/schedule-deliveries.ts'
import { ensureAttemptPartitions } from '../db/queries/attempt-partitions.ts'
import type { Logger } from '../log.ts'
import type { ThreadMetrics } from '../metrics/counters.ts'
import { uuidv7, uuidv7At } from '../lib/uuid.ts'
import { Dispatcher, Target, type Settler } from './dispatch.ts'
import { planClaim, type FlowOptions } from './flow.ts'
import { AttemptResult, decide, parseRetryAfter } from './retry-policy.ts'
import type { AttemptSpan, Tracer } from '../tracing/tracer.ts'

/** Most candidates one claim looks at. */
const CLAIM_MAX = 256
const MAX_ROUNDS = 16
const POLL_MS = 500
const ERROR_BACKOFF_MS = 1000
/** Next look when rows are due but none could be claimed (their endpoints are full or locked by another claimer). */
const BLOCKED_POLL_MS = 20
const LEASE_MARGIN_MS = 10_000
const FULL_BACKOFF_MS = 250
const EXCLUDED_MAX = 500
/** Most endpoints with a backlog this thread reads per endpoint (focus; see claim-deliveries.ts). */
const FOCUS_MAX = 64
/** The general scan reads at most this many times its candidates of the due index. */
const WINDOW_FACTOR = 2
/** Looking for endpoints waiting behind a backlog: at most this often, backing off to DISCOVER_MAX_MS while it finds none. */
const DISCOVER_MIN_MS = 50
const DISCOVER_MAX_MS = 1000
/**
 * Results wait at most this long to be written (or until FLUSH_AT of them): fewer, larger transactions.
 * Latency of deliveries does not depend on it (the request is already sent); only how soon the inbox
 * shows the result, and other nodes see the lease released, does.
 */
const FLUSH_DELAY_MS = 5
const FLUSH_AT = 128
const FLUSH_MAX = 512
const FLUSH_RETRY_MS = 1000
const SWEEP_EVERY_MS = 5000
const SWEEP_WINDOW_MS = 10 * 60_000
/** last_success_at is written at most this often per endpoint by one thread when nothing else changed. */
const SUCCESS_WRITE_MS = 1000
const HEALTH_MEMORY_MAX = 10_000
/** Attempts still running after the stop deadline are aborted and given this long to settle. */
const ABORT_GRACE_MS = 2000
const URL_CACHE_MAX = 10_000

export interface SchedulerOptions {
  readonly sql: Sql
  readonly config: Config
  readonly log: Logger
  /** This thread's metric slots, or null to count nothing. */
  readonly metrics: ThreadMetrics | null
  /** Breaker tuning (tests); default 5 consecutive failures. */
  readonly breakerThreshold?: number
  /** This thread's tracer: attempt spans and the traceparent header (default: none). */
  readonly tracer?: Tracer
}

const STATUS: Record<'delivered' | 'retry' | 'dead', CompletionStatus> = { delivered: 'delivered', retry: 'failed', dead: 'dead_letter' }
const OUTCOME = { delivered: 'delivered', retry: 'retry_scheduled', dead: 'dead_letter' } as const
const LOG_OUTCOME: Record<AttemptResult['kind'], AttemptOutcome> = {
  success: 'success', http: 'http_error', timeout: 'timeout', network: 'network_error', refused: 'blocked', aborted: 'network_error',
}

/** An endpoint known to have more due deliveries than its concurrency (fixed shape). */
class Backlog {
  readonly organizationId: string
  readonly limit: number
  constructor (organizationId: string, limit: number) {
    this.organizationId = organizationId
    this.limit = limit
  }
}

function parseTarget (raw: string): Target | null {
  try { return new Target(new URL(raw)) } catch { return null }
}

export class Scheduler implements Settler {
  readonly #sql: Sql
  readonly #log: Logger
  readonly #metrics: ThreadMetrics | null
  readonly #delays: readonly number[]
  readonly #leaseMs: number
  readonly #capacity: number
  readonly #pendingCap: number
  readonly #dispatcher: Dispatcher
  readonly #flow: { defaultConcurrency: number, breakerThreshold: number, probeWaitMs: number }
  readonly #policy: HealthPolicy
  readonly #logAttempts: boolean

  #free: number
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
  #health = new Map<string, EndpointHealth>()
  /** Endpoints whose failures are in the batch being written right now (left out of claims until it commits). */
  readonly #healthWriting = new Set<string>()
  #listening: { unlisten: () => Promise<void> } | null = null
  #idleWaiter: (() => void) | null = null
  #listenPending = false
  /** Endpoint id → until when it is left out of claims (it was at its concurrency limit). */
  readonly #full = new Map<string, number>()
  readonly #excluded = new Set<string>()
  /** Endpoint id → its backlog: read per endpoint in claims (focus) until a claim finds fewer due than asked. */
  readonly #backlog = new Map<string, Backlog>()
  readonly #focus = new FocusList()
  #discoverAt = 0
  #discoverEvery = DISCOVER_MIN_MS
  /** The last claim found due rows it could not take (their endpoints full, excluded or held by another claimer). */
  #blocked = false
  /** Endpoint id → when this thread last wrote its last_success_at. */
  readonly #successWritten = new Map<string, number>()
  readonly #urls = new Map<string, Target | null>()
  /** This thread's lease holder id (claims count other threads' leases from the database, ours here). */
  readonly #holder = uuidv7()
  /** Endpoint id → this thread's attempts in flight to it. */
  readonly #inFlight = new Map<string, number>()

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
    if (this.#results.length > 0 || this.#releases.length > 0 || this.#health.size > 0) this.#scheduleFlush(FLUSH_DELAY_MS)
    // Claims pause while results pile up, and the rows just written may define the next due time.
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
    sweepEndpoints(this.#sql, SWEEP_WINDOW_MS).then(this.#onSwept, this.#onSweepFailed)
  }

  readonly #onSwept = (n: number): void => {
    this.#sweeping = false
    if (n > 0) {
      this.#log.info({ scheduled: n }, 'swept deliveries of recently changed endpoints')
      this.#kick()
    }
  }

  readonly #onSweepFailed = (err: unknown): void => {
    this.#sweeping = false
    this.#log.warn({ err }, 'endpoint sweep failed')
  }

  readonly #onListenFailed = (err: unknown): void => {
    this.#log.warn({ err }, 'LISTEN failed; polling until it succeeds')
  }

  readonly #planner = (candidates: readonly Candidate[], all: ReadonlyMap<string, EndpointFlow>, nowMs: number, plan: ClaimPlan): void => {
    // An attempt that failed while this claim ran is not in the rows just read: its endpoint waits for
    // the write, as #exclusions makes claims that start later do (the planner leaves such rows due).
    let waiting: Map<string, EndpointFlow> | null = null
    for (const id of all.keys()) if (this.#unwrittenFailure(id)) (waiting ??= new Map(all)).delete(id)
    const endpoints = waiting ?? all
    for (const ep of endpoints.values()) ep.leased += this.#inFlight.get(ep.id) ?? 0
    const o: FlowOptions = { free: this.#free, defaultConcurrency: this.#flow.defaultConcurrency, breakerThreshold: this.#flow.breakerThreshold, probeWaitMs: this.#flow.probeWaitMs }
    planClaim(o, candidates, endpoints, nowMs, plan)
    for (const id of plan.full) {
      const ep = endpoints.get(id)
      if (ep === undefined || this.#backlog.has(id) || this.#backlog.size >= FOCUS_MAX) continue
      this.#backlog.set(id, new Backlog(ep.organization_id, ep.max_concurrency ?? this.#flow.defaultConcurrency))
    }
  }

  constructor (o: SchedulerOptions) {
    const c = o.config
    this.#sql = o.sql
    this.#log = o.log
    this.#metrics = o.metrics
    this.#delays = c.deliveryRetryDelaysMs
    this.#leaseMs = c.deliveryTimeoutMs + LEASE_MARGIN_MS
    this.#capacity = c.deliveryConcurrency
    this.#free = c.deliveryConcurrency
    this.#pendingCap = c.deliveryConcurrency + 4 * CLAIM_MAX
    this.#logAttempts = c.attemptLog
    const threshold = o.breakerThreshold ?? 5
    this.#flow = { defaultConcurrency: c.deliveryPerEndpoint, breakerThreshold: threshold, probeWaitMs: 1000 }
    this.#policy = { breakerThreshold: threshold, disableOnGone: c.endpointDisableOnGone, autoDisableHours: c.endpointAutoDisableHours }
    this.#dispatcher = new Dispatcher({
      timeoutMs: c.deliveryTimeoutMs,
      // Many endpoints may share one origin, each with its own max_concurrency: the pool must not be the limit.
      connectionsPerOrigin: c.deliveryConcurrency,
      allowPrivate: c.allowPrivateWebhooks,
      excerptBytes: c.attemptBodyExcerptBytes,
      tracer: o.tracer,
    }, this)
  }

  /** Starts listening and claiming. Resolves once LISTEN is set up (or has failed: polling covers it). */
  async start (): Promise<void> {
    try { await ensureAttemptPartitions(this.#sql) } catch (err) { this.#log.warn({ err }, 'could not create attempt-log partitions ahead') }
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
    if (this.#pollTimer !== null) clearTimeout(this.#pollTimer)
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer)
    this.#pollTimer = null
    this.#sweepTimer = null
    if (this.#listening !== null) {
      try { await this.#listening.unlisten() } catch (err) { this.#log.warn({ err }, 'UNLISTEN failed') }
      this.#listening = null
    }
    await this.#pumpDone
    if (this.#running() > 0) await this.#waitIdle(deadlineAt)
    if (this.#running() > 0) {
      this.#log.warn({ in_flight: this.#running() }, 'stop deadline reached; aborting in-flight delivery attempts')
      this.#dispatcher.abortAll()
      await this.#waitIdle(Date.now() + ABORT_GRACE_MS)
    }
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer)
    this.#flushTimer = null
    if (this.#flushing !== null) await this.#flushing
    for (let i = 0; i < 3 && this.#pendingWrites(); i++) {
      try { await this.#flush() } catch (err) {
        this.#log.error({ err, pending: this.#results.length + this.#releases.length }, 'writing delivery results at stop failed; their leases will expire instead')
      }
    }
    await this.#dispatcher.close()
  }

  #running (): number { return this.#capacity - this.#free }
  #pendingWrites (): boolean { return this.#results.length > 0 || this.#releases.length > 0 || this.#health.size > 0 }

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

  /**
   * The endpoints to leave out of the next claim (bounded): those at their concurrency limit, and those
   * with a failure, a throttle or a 410 not yet written — the claim would not see the breaker, the
   * throttle or the disabling that the write will record, so they wait for it (a flush is ≤ 5 ms away).
   */
  #exclusions (now: number): ReadonlySet<string> {
    const out = this.#excluded
    out.clear()
    for (const [id, until] of this.#full) {
      if (until <= now) { this.#full.delete(id); continue }
      if (out.size < EXCLUDED_MAX) out.add(id)
    }
    for (const h of this.#health.values()) if (h.failures > 0 && out.size < EXCLUDED_MAX) out.add(h.endpointId)
    for (const id of this.#healthWriting) if (out.size < EXCLUDED_MAX) out.add(id)
    return out
  }

  /** A failure, throttle or 410 of the endpoint is waiting to be written, or being written. */
  #unwrittenFailure (id: string): boolean {
    return (this.#health.get(id)?.failures ?? 0) > 0 || this.#healthWriting.has(id)
  }

  /**
   * The focus endpoints of the next claim: known backlogs with free slots here and not excluded, up to
   * `room` slots in all (the general scan leaves them out). Returns the slots given.
   */
  #planFocus (excluded: ReadonlySet<string>, room: number): number {
    const f = this.#focus
    f.clear()
    let given = 0
    for (const [id, b] of this.#backlog) {
      if (given >= room) break
      if (excluded.has(id)) continue
      const cap = Math.min(b.limit - (this.#inFlight.get(id) ?? 0), room - given)
      if (cap <= 0) continue
      f.add(b.organizationId, id, cap)
      given += cap
    }
    return given
  }

  /** Finds endpoints waiting behind a backlog at the head of the due queue (claim-deliveries.ts findBacklogged). */
  async #discover (): Promise<void> {
    const want = FOCUS_MAX - this.#backlog.size
    let found = 0
    if (want > 0) {
      try {
        for (const b of await findBacklogged(this.#sql, [...this.#backlog.keys()], want)) {
          this.#backlog.set(b.id, new Backlog(b.organization_id, b.max_concurrency ?? this.#flow.defaultConcurrency))
          found++
        }
      } catch (err) {
        this.#log.warn({ err }, 'looking for endpoints with a backlog failed')
      }
    }
    this.#discoverEvery = found > 0 ? DISCOVER_MIN_MS : Math.min(DISCOVER_MAX_MS, this.#discoverEvery * 2)
    this.#discoverAt = Date.now() + this.#discoverEvery
  }

  /** Claims and starts attempts until nothing more is due or no slot is free; returns ms until the next look. */
  async #pump (): Promise<number> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      this.#again = false
      const room = Math.min(this.#free, this.#pendingCap - this.#results.length - this.#releases.length)
      if (room <= 0 || this.#stopping) return POLL_MS // a finishing attempt or flush kicks again
      if ((this.#backlog.size > 0 || this.#blocked) && Date.now() >= this.#discoverAt) await this.#discover()
      const now = Date.now()
      const excluded = this.#exclusions(now)
      // Slots focus leaves are for the general scan (none left: it is skipped).
      const candidates = Math.min(CLAIM_MAX, 2 * (room - this.#planFocus(excluded, room)))
      const r = await claimDeliveries(this.#sql, {
        holder: this.#holder,
        candidates,
        window: WINDOW_FACTOR * candidates,
        leaseMs: this.#leaseMs,
        excludedEndpoints: excluded,
        focus: this.#focus,
      }, this.#planner)
      // A focus endpoint that gave fewer due rows than asked has no backlog left here.
      const f = this.#focus
      for (let i = 0; i < f.size; i++) if ((r.focusFound.get(f.ids[i]!) ?? 0) < f.caps[i]!) this.#backlog.delete(f.ids[i]!)
      for (const id of r.plan.full) if (this.#full.size < EXCLUDED_MAX) this.#full.set(id, now + FULL_BACKOFF_MS)
      for (const d of r.leased) this.#start(d)
      this.#blocked = false
      if (r.candidates === 0) {
        if (this.#again) continue
        const at = await nextDueAt(this.#sql)
        if (at === null) return POLL_MS
        const ms = at.getTime() - Date.now()
        if (ms > 0) return Math.min(POLL_MS, ms)
        this.#blocked = true
        return BLOCKED_POLL_MS
      }
      // Candidates but no progress: their endpoints are full here or held by another claimer.
      if (r.leased.length === 0 && r.moved === 0) {
        this.#blocked = true
        return this.#again ? 1 : BLOCKED_POLL_MS
      }
    }
    return 1 // still busy after MAX_ROUNDS: yield to the event loop, then continue
  }

  #target (url: string): Target | null {
    let t = this.#urls.get(url)
    if (t === undefined) {
      t = parseTarget(url)
      if (this.#urls.size >= URL_CACHE_MAX) this.#urls.clear()
      this.#urls.set(url, t)
    }
    return t
  }

  #start (d: ClaimedDelivery): void {
    this.#free--
    this.#inFlight.set(d.endpointId, (this.#inFlight.get(d.endpointId) ?? 0) + 1)
    const target = this.#target(d.url)
    if (target === null) {
      this.settled(d, new AttemptResult('network', 0, 'invalid webhook URL', null, Date.now()), null)
      return
    }
    this.#dispatcher.attempt(d, target)
  }

  /** Settler: an attempt of `d` ended (called once per started attempt); `span` is ended here, with the verdict. */
  settled (d: ClaimedDelivery, r: AttemptResult, span: AttemptSpan | null): void {
    const now = Date.now()
    this.#free++
    const n = (this.#inFlight.get(d.endpointId) ?? 1) - 1
    if (n === 0) this.#inFlight.delete(d.endpointId)
    else this.#inFlight.set(d.endpointId, n)
    this.#full.delete(d.endpointId)
    if (r.kind === 'aborted') {
      this.#releases.push(new Release(d.organizationId, d.eventId, d.endpointId, d.attempts, r.error))
      if (span !== null) span.end(r, LOG_OUTCOME[r.kind], 'released')
    } else {
      const dec = decide(r, d.seriesAttempt, this.#delays, now, Math.random())
      const status = STATUS[dec.verdict]
      if (span !== null) span.end(r, LOG_OUTCOME[r.kind], status)
      if (this.#metrics !== null) {
        this.#metrics.delivery(OUTCOME[dec.verdict], r.durationMs / 1000)
        this.#metrics.attempt(LOG_OUTCOME[r.kind], r.durationMs / 1000)
        if (dec.verdict === 'delivered') this.#metrics.delivered((now - d.createdAt.getTime()) / 1000)
      }
      const trigger: AttemptTrigger = d.seriesAttempt <= 1 ? (d.trigger as AttemptTrigger) : 'retry'
      this.#results.push(new Completion(d.organizationId, d.eventId, d.endpointId, d.attempts, status, dec.delayMs,
        r.status === 0 ? null : r.status, r.error, uuidv7At(r.startedAt), trigger, d.url, d.type, r.startedAt, r.durationMs,
        LOG_OUTCOME[r.kind], r.headers, r.body, r.truncated))
      this.#recordHealth(d, r, now)
      if (dec.verdict !== 'delivered') {
        const line = {
          event_id: d.eventId,
          organization_id: d.organizationId,
          endpoint_id: d.endpointId,
          attempt: d.attempts,
          series_attempt: d.seriesAttempt,
          outcome: r.kind,
          response_status: r.status === 0 ? null : r.status,
          next: status,
          delay_ms: dec.delayMs,
        }
        if (dec.verdict === 'dead') this.#log.warn(line, 'delivery dead-lettered')
        else this.#log.info(line, 'delivery attempt failed')
      }
    }
    this.#scheduleFlush(this.#results.length >= FLUSH_AT || r.kind !== 'success' ? 0 : FLUSH_DELAY_MS)
    if (this.#running() === 0 && this.#idleWaiter !== null) this.#idleWaiter()
    this.#kick()
  }

  /** The endpoint's health from this result (written with the batch), skipping no-op success writes. */
  #recordHealth (d: ClaimedDelivery, r: AttemptResult, now: number): void {
    const ok = r.kind === 'success'
    let h = this.#health.get(d.endpointId)
    if (h === undefined) {
      if (ok && d.endpointFailures === 0 && now - (this.#successWritten.get(d.endpointId) ?? 0) < SUCCESS_WRITE_MS) return
      h = new EndpointHealth(d.organizationId, d.endpointId)
      this.#health.set(d.endpointId, h)
    }
    if (ok) {
      h.success(now)
      if (this.#successWritten.size >= HEALTH_MEMORY_MAX) this.#successWritten.clear()
      this.#successWritten.set(d.endpointId, now)
      return
    }
    h.failure(now)
    if (r.kind === 'http') {
      if (r.status === 410) h.gone = true
      if (r.status === 429 || r.status === 503) {
        const ms = parseRetryAfter(r.retryAfter, now)
        if (ms !== null && ms > 0) h.throttleUntil = Math.max(h.throttleUntil, now + ms)
      }
    }
  }

  #scheduleFlush (delayMs: number): void {
    // While stopping, stop() writes everything itself once attempts have settled.
    if (this.#stopping) return
    if (this.#flushing !== null) return
    if (this.#flushTimer !== null) {
      if (delayMs > 0) return
      clearTimeout(this.#flushTimer)
    }
    this.#flushTimer = setTimeout(this.#onFlushTimer, delayMs)
  }

  /** Writes pending results, releases and health changes, one transaction per round. */
  async #flush (): Promise<void> {
    for (let round = 0; round < 100 && this.#pendingWrites(); round++) {
      const completions = this.#results.length <= FLUSH_MAX ? this.#results : this.#results.slice(0, FLUSH_MAX)
      this.#results = completions === this.#results ? [] : this.#results.slice(FLUSH_MAX)
      const releases = this.#releases
      this.#releases = []
      const health = [...this.#health.values()]
      this.#health.clear()
      for (const h of health) if (h.failures > 0) this.#healthWriting.add(h.endpointId)
      let written = 0
      try {
        written = await writeResults(this.#sql, { completions, releases, health, logAttempts: this.#logAttempts }, this.#policy)
      } catch (err) {
        this.#results = completions.concat(this.#results)
        this.#releases = releases.concat(this.#releases)
        for (const h of health) if (!this.#health.has(h.endpointId)) this.#health.set(h.endpointId, h)
        throw err
      } finally {
        this.#healthWriting.clear()
      }
      this.#log.debug({ results: completions.length, written, released: releases.length, endpoints: health.length }, 'delivery batch written')
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
