/**
 * Writing attempt results back (delivery threads), batched: one transaction per batch holding
 *
 *   A  one `unnest` UPDATE of the deliveries (status, schedule, last response; lease released)
 *   B  the events' summaries (triggers_refresh_events, sql/0003_endpoints.sql)
 *   C  the attempt log rows of the batch (delivery_attempts), unless the log is off
 *   D  the endpoints' health (consecutive failures, breaker, throttle, 410/auto disable), when it changed
 *
 * pipelined after BEGIN, so a batch costs three round trips. No attempt is logged without its state
 * change and no state change is lost without its attempt: they commit together.
 *
 * Durability. Claims and result batches commit with synchronous_commit off: they do not wait for
 * their WAL to reach disk (on a machine whose fsync is the bottleneck, that wait was most of a drain's
 * time). Visibility and atomicity are unchanged; only a PostgreSQL crash can lose the last fraction of
 * a second of them (wal_writer_delay, 3 × 200 ms at most), and what it loses goes back whole: a lost
 * result batch leaves its deliveries leased, with no attempt logged, so they are attempted again when
 * the lease expires — a duplicate delivery, which at-least-once allows, never a lost or half-written
 * one. Everything a client is answered about (ingest, acks, endpoint changes, redeliveries) still
 * commits synchronously.
 *
 * LOCK ORDER. Every statement family that writes events, endpoints and deliveries in one transaction
 * locks them in this order — events (by key), endpoints (by key), deliveries — so two of them never
 * wait on each other in a cycle: result batches (lockEvents first), acks (the event, then its
 * deliveries), redelivery and replay (events first: schedule-deliveries.ts), endpoint deletion (its
 * deliveries' events, then the endpoint: endpoints.ts). Claims lock deliveries, then endpoints, but
 * with SKIP LOCKED: they never wait.
 *
 * Every delivery write is guarded `attempts = <attempts at claim> AND status IN ('pending', 'failed')`:
 *   - an ack or an endpoint deletion (status 'cancelled') that lands while an attempt is in flight wins:
 *     the result is dropped, only the lease is released (its attempt is still logged: it happened);
 *   - a worker whose lease expired while its attempt hung cannot overwrite the newer attempt another
 *     worker claimed meanwhile (that claim incremented attempts).
 */
import type { Sql, TransactionSql } from '../client.ts'

export type CompletionStatus = 'delivered' | 'failed' | 'dead_letter'
export type AttemptOutcome = 'success' | 'http_error' | 'timeout' | 'network_error' | 'blocked'
export type AttemptTrigger = 'initial' | 'retry' | 'redeliver' | 'replay'

/** One attempt result to write (fixed shape, STYLE C7). */
export class Completion {
  readonly organizationId: string
  readonly eventId: string
  readonly endpointId: string
  /** The attempts value the claim returned (the guard, and the attempt number). */
  readonly attempts: number
  readonly status: CompletionStatus
  /** Milliseconds until the next attempt for 'failed'; ignored otherwise. */
  readonly delayMs: number
  /** HTTP status of the response, or null when none arrived. */
  readonly responseStatus: number | null
  readonly lastError: string | null
  // The attempt log row:
  readonly attemptId: string
  readonly trigger: AttemptTrigger
  readonly url: string
  readonly eventType: string
  /** ms since the epoch */
  readonly startedAt: number
  readonly durationMs: number
  readonly outcome: AttemptOutcome
  /** JSON text of the allowed response headers, or null. */
  readonly responseHeaders: string | null
  readonly responseBody: string | null
  readonly responseBodyTruncated: boolean

  constructor (organizationId: string, eventId: string, endpointId: string, attempts: number, status: CompletionStatus, delayMs: number,
    responseStatus: number | null, lastError: string | null, attemptId: string, trigger: AttemptTrigger, url: string, eventType: string,
    startedAt: number, durationMs: number, outcome: AttemptOutcome, responseHeaders: string | null, responseBody: string | null, responseBodyTruncated: boolean) {
    this.organizationId = organizationId
    this.eventId = eventId
    this.endpointId = endpointId
    this.attempts = attempts
    this.status = status
    this.delayMs = delayMs
    this.responseStatus = responseStatus
    this.lastError = lastError
    this.attemptId = attemptId
    this.trigger = trigger
    this.url = url
    this.eventType = eventType
    this.startedAt = startedAt
    this.durationMs = durationMs
    this.outcome = outcome
    this.responseHeaders = responseHeaders
    this.responseBody = responseBody
    this.responseBodyTruncated = responseBodyTruncated
  }
}

/**
 * A leased attempt handed back without a result: cut short at shutdown. The request may have reached
 * the receiver, so its number is not reused (attempts stays); the series position is given back, so
 * the interruption never shortens the retry schedule. Due again now.
 */
export class Release {
  readonly organizationId: string
  readonly eventId: string
  readonly endpointId: string
  readonly attempts: number
  readonly lastError: string | null

  constructor (organizationId: string, eventId: string, endpointId: string, attempts: number, lastError: string | null) {
    this.organizationId = organizationId
    this.eventId = eventId
    this.endpointId = endpointId
    this.attempts = attempts
    this.lastError = lastError
  }
}

/** An endpoint's health change from one batch of results, in the order they happened. */
export class EndpointHealth {
  readonly organizationId: string
  readonly endpointId: string
  /** A success happened: consecutive failures restart from `failures` (those after the last success). */
  reset = false
  failures = 0
  /** ms since the epoch of the first failure counted in `failures` (0: none). */
  firstFailureAt = 0
  lastSuccessAt = 0
  lastFailureAt = 0
  /** Receiver backpressure: hold new attempts until this time (ms, 0: none). */
  throttleUntil = 0
  /** A 410 Gone arrived. */
  gone = false

  constructor (organizationId: string, endpointId: string) {
    this.organizationId = organizationId
    this.endpointId = endpointId
  }

  success (at: number): void {
    this.reset = true
    this.failures = 0
    this.firstFailureAt = 0
    this.lastSuccessAt = Math.max(this.lastSuccessAt, at)
  }

  failure (at: number): void {
    if (this.failures === 0) this.firstFailureAt = at
    this.failures++
    this.lastFailureAt = Math.max(this.lastFailureAt, at)
  }
}

export interface HealthPolicy {
  readonly breakerThreshold: number
  readonly disableOnGone: boolean
  /** ENDPOINT_AUTO_DISABLE_HOURS (0: off) */
  readonly autoDisableHours: number
}

export interface WriteBatch {
  readonly completions: readonly Completion[]
  readonly releases: readonly Release[]
  readonly health: readonly EndpointHealth[]
  /** Write the attempt log rows (ATTEMPT_LOG). */
  readonly logAttempts: boolean
}

/** Writes one batch in one transaction (see the header); returns how many deliveries the guard let through. */
export async function writeResults (sql: Sql, b: WriteBatch, policy: HealthPolicy): Promise<number> {
  if (b.completions.length === 0 && b.releases.length === 0 && b.health.length === 0) return 0
  let written = 0
  await sql.begin(tx => {
    // Queries issued without awaiting in between are pipelined on the transaction's connection. Locks
    // are taken in the order every writer uses (LOCK ORDER below): events, then endpoints, then
    // deliveries — so a result batch cannot deadlock with an ack, a redelivery, a replay or a deletion.
    const queries: Promise<unknown>[] = [tx`set local synchronous_commit to off`]
    if (b.completions.length > 0) queries.push(lockEvents(tx, b.completions))
    if (b.health.length > 0) queries.push(updateHealth(tx, b.health, policy))
    if (b.completions.length > 0) {
      queries.push(completeDeliveries(tx, b.completions).then(rows => { written = rows.length }))
      queries.push(refreshEvents(tx, b.completions))
      if (b.logAttempts) queries.push(insertAttempts(tx, b.completions))
    }
    if (b.releases.length > 0) queries.push(releaseDeliveries(tx, b.releases))
    return queries
  })
  return written
}

function completeDeliveries (tx: TransactionSql, batch: readonly Completion[]) {
  const n = batch.length
  const orgs = new Array<string>(n)
  const events = new Array<string>(n)
  const eps = new Array<string>(n)
  const attempts = new Array<number>(n)
  const statuses = new Array<string>(n)
  const delays = new Array<number>(n)
  const codes = new Array<number | null>(n)
  const errors = new Array<string | null>(n)
  const started = new Array<number>(n)
  for (let i = 0; i < n; i++) {
    const c = batch[i]!
    orgs[i] = c.organizationId
    events[i] = c.eventId
    eps[i] = c.endpointId
    attempts[i] = c.attempts
    statuses[i] = c.status
    delays[i] = Math.max(0, Math.round(c.delayMs))
    codes[i] = c.responseStatus
    errors[i] = c.lastError
    started[i] = c.startedAt
  }
  // A delivery cancelled while its attempt was in flight (an ack, its endpoint deleted) keeps its
  // cancelled state: only its lease is released.
  return tx<{ event_id: string }[]>`
    update deliveries d
       set status = case when (d.status in ('pending', 'failed')) then r.status else d.status end,
           next_attempt_at = case when not (d.status in ('pending', 'failed')) then d.next_attempt_at
                                  when r.status = 'failed' then now() + r.delay_ms * interval '1 millisecond' end,
           leased_until = null,
           leased_by = null,
           rate_reserved = false,
           response_status = case when (d.status in ('pending', 'failed')) then r.response_status else d.response_status end,
           last_error = case when not (d.status in ('pending', 'failed')) then d.last_error when r.status = 'delivered' then null else r.last_error end,
           last_attempt_at = case when (d.status in ('pending', 'failed')) then to_timestamp(r.started_ms / 1000.0) else d.last_attempt_at end,
           delivered_at = case when (d.status in ('pending', 'failed')) and r.status = 'delivered' then now() else d.delivered_at end,
           updated_at = case when (d.status in ('pending', 'failed')) then now() else d.updated_at end
      from unnest(${tx.array(orgs)}::uuid[], ${tx.array(events)}::uuid[], ${tx.array(eps)}::uuid[], ${tx.array(attempts)}::int[],
                  ${tx.array(statuses)}::text[], ${tx.array(delays)}::int[], ${tx.array(codes)}::int[],
                  ${tx.array(errors)}::text[], ${tx.array(started)}::float8[])
           as r(organization_id, event_id, endpoint_id, attempts, status, delay_ms, response_status, last_error, started_ms)
     where d.organization_id = r.organization_id and d.event_id = r.event_id and d.endpoint_id = r.endpoint_id
       and d.attempts = r.attempts and (d.status in ('pending', 'failed') or d.leased_until is not null)
    returning d.event_id`
}

/** The batch's events, locked in key order before anything else (see LOCK ORDER). */
function lockEvents (tx: TransactionSql, batch: readonly Completion[]) {
  const orgs = new Array<string>(batch.length)
  const events = new Array<string>(batch.length)
  for (let i = 0; i < batch.length; i++) { orgs[i] = batch[i]!.organizationId; events[i] = batch[i]!.eventId }
  return tx`
    select 1 from events e
      join unnest(${tx.array(orgs)}::uuid[], ${tx.array(events)}::uuid[]) as t(organization_id, id)
        on e.organization_id = t.organization_id and e.id = t.id
     order by e.organization_id, e.id
       for no key update of e`
}

function refreshEvents (tx: TransactionSql, batch: readonly Completion[]) {
  const orgs = new Array<string>(batch.length)
  const events = new Array<string>(batch.length)
  for (let i = 0; i < batch.length; i++) { orgs[i] = batch[i]!.organizationId; events[i] = batch[i]!.eventId }
  return tx`select triggers_refresh_events(${tx.array(orgs)}::uuid[], ${tx.array(events)}::uuid[])`
}

/**
 * The attempt log's `error`: the cause when no response arrived (timeout, network_error, blocked).
 * For a response it is null, or why a 3xx failed: last_error carries the start of the body, which in
 * the log is the excerpt, and a copy in `error` would outlive ATTEMPT_BODY_RETENTION_DAYS.
 */
function attemptError (c: Completion): string | null {
  if (c.responseStatus === null) return c.lastError
  return c.responseStatus >= 300 && c.responseStatus < 400 ? 'redirects are not followed' : null
}

function insertAttempts (tx: TransactionSql, batch: readonly Completion[]) {
  const n = batch.length
  const cols = {
    org: new Array<string>(n), id: new Array<string>(n), event: new Array<string>(n), ep: new Array<string>(n),
    num: new Array<number>(n), trigger: new Array<string>(n), url: new Array<string>(n), type: new Array<string>(n),
    started: new Array<number>(n), duration: new Array<number>(n), outcome: new Array<string>(n),
    status: new Array<number | null>(n), headers: new Array<string | null>(n), body: new Array<string | null>(n),
    truncated: new Array<boolean>(n), error: new Array<string | null>(n), next: new Array<number | null>(n),
  }
  for (let i = 0; i < n; i++) {
    const c = batch[i]!
    cols.org[i] = c.organizationId
    cols.id[i] = c.attemptId
    cols.event[i] = c.eventId
    cols.ep[i] = c.endpointId
    cols.num[i] = c.attempts
    cols.trigger[i] = c.trigger
    cols.url[i] = c.url
    cols.type[i] = c.eventType
    cols.started[i] = c.startedAt
    cols.duration[i] = Math.max(0, Math.round(c.durationMs))
    cols.outcome[i] = c.outcome
    cols.status[i] = c.responseStatus
    cols.headers[i] = c.responseHeaders
    cols.body[i] = c.responseBody
    cols.truncated[i] = c.responseBodyTruncated
    cols.error[i] = attemptError(c)
    cols.next[i] = c.status === 'failed' ? Math.max(0, Math.round(c.delayMs)) : null
  }
  return tx`
    insert into delivery_attempts (organization_id, id, event_id, endpoint_id, attempt_number, trigger, url, event_type,
                                   started_at, duration_ms, outcome, response_status, response_headers, response_body,
                                   response_body_truncated, error, next_attempt_at)
    select r.organization_id, r.id, r.event_id, r.endpoint_id, r.attempt_number, r.trigger, r.url, r.event_type,
           to_timestamp(r.started_ms / 1000.0), r.duration_ms, r.outcome, r.response_status, r.response_headers::jsonb,
           r.response_body, r.truncated, r.error,
           case when r.next_ms is not null then now() + r.next_ms * interval '1 millisecond' end
      from unnest(${tx.array(cols.org)}::uuid[], ${tx.array(cols.id)}::uuid[], ${tx.array(cols.event)}::uuid[], ${tx.array(cols.ep)}::uuid[],
                  ${tx.array(cols.num)}::int[], ${tx.array(cols.trigger)}::text[], ${tx.array(cols.url)}::text[], ${tx.array(cols.type)}::text[],
                  ${tx.array(cols.started)}::float8[], ${tx.array(cols.duration)}::int[], ${tx.array(cols.outcome)}::text[],
                  ${tx.array(cols.status)}::int[], ${tx.array(cols.headers)}::text[], ${tx.array(cols.body)}::text[],
                  ${tx.array(cols.truncated)}::bool[], ${tx.array(cols.error)}::text[], ${tx.array(cols.next)}::float8[])
           as r(organization_id, id, event_id, endpoint_id, attempt_number, trigger, url, event_type, started_ms, duration_ms,
                outcome, response_status, response_headers, response_body, truncated, error, next_ms)`
}

function releaseDeliveries (tx: TransactionSql, batch: readonly Release[]) {
  const n = batch.length
  const orgs = new Array<string>(n)
  const events = new Array<string>(n)
  const eps = new Array<string>(n)
  const attempts = new Array<number>(n)
  const errors = new Array<string | null>(n)
  for (let i = 0; i < n; i++) {
    const r = batch[i]!
    orgs[i] = r.organizationId
    events[i] = r.eventId
    eps[i] = r.endpointId
    attempts[i] = r.attempts
    errors[i] = r.lastError
  }
  return tx`
    update deliveries d
       set series_attempt = greatest(d.series_attempt - 1, 0),
           next_attempt_at = now(),
           leased_until = null,
           leased_by = null,
           last_error = coalesce(r.last_error, d.last_error),
           updated_at = now()
      from unnest(${tx.array(orgs)}::uuid[], ${tx.array(events)}::uuid[], ${tx.array(eps)}::uuid[], ${tx.array(attempts)}::int[],
                  ${tx.array(errors)}::text[])
           as r(organization_id, event_id, endpoint_id, attempts, last_error)
     where d.organization_id = r.organization_id and d.event_id = r.event_id and d.endpoint_id = r.endpoint_id
       and d.attempts = r.attempts and d.status in ('pending', 'failed')`
}

/**
 * Consecutive failures, the breaker (open for 5 s doubling every `threshold` failures up to 60 s, as
 * delivery/flow.ts breakerCooldownMs), receiver backpressure, and disabling: a 410 Gone (unless
 * ENDPOINT_DISABLE_ON_GONE=false) or, with ENDPOINT_AUTO_DISABLE_HOURS > 0, at least 10 consecutive
 * failures over that many hours with no success.
 */
function updateHealth (tx: TransactionSql, batch: readonly EndpointHealth[], p: HealthPolicy) {
  const n = batch.length
  const orgs = new Array<string>(n)
  const ids = new Array<string>(n)
  const resets = new Array<boolean>(n)
  const failures = new Array<number>(n)
  const firstFailure = new Array<number | null>(n)
  const lastSuccess = new Array<number | null>(n)
  const lastFailure = new Array<number | null>(n)
  const throttle = new Array<number | null>(n)
  const gone = new Array<boolean>(n)
  for (let i = 0; i < n; i++) {
    const h = batch[i]!
    orgs[i] = h.organizationId
    ids[i] = h.endpointId
    resets[i] = h.reset
    failures[i] = h.failures
    firstFailure[i] = h.firstFailureAt === 0 ? null : h.firstFailureAt
    lastSuccess[i] = h.lastSuccessAt === 0 ? null : h.lastSuccessAt
    lastFailure[i] = h.lastFailureAt === 0 ? null : h.lastFailureAt
    throttle[i] = h.throttleUntil === 0 ? null : h.throttleUntil
    gone[i] = h.gone
  }
  const t = Math.max(1, p.breakerThreshold)
  return tx`
    with r as (
      select * from unnest(${tx.array(orgs)}::uuid[], ${tx.array(ids)}::uuid[], ${tx.array(resets)}::bool[], ${tx.array(failures)}::int[],
                           ${tx.array(firstFailure)}::float8[], ${tx.array(lastSuccess)}::float8[], ${tx.array(lastFailure)}::float8[],
                           ${tx.array(throttle)}::float8[], ${tx.array(gone)}::bool[])
        as r(organization_id, id, reset, failures, first_failure_ms, success_ms, failure_ms, throttle_ms, gone)
    ), n as (
      select e.organization_id, e.id, e.status, r.gone, r.success_ms, r.failure_ms, r.throttle_ms,
             case when r.reset then r.failures else e.consecutive_failures + r.failures end as cf,
             case when (case when r.reset then r.failures else e.consecutive_failures + r.failures end) = 0 then null
                  when r.reset then to_timestamp(r.first_failure_ms / 1000.0)
                  else coalesce(e.failing_since, to_timestamp(r.first_failure_ms / 1000.0)) end as failing_since
        from endpoints e join r on e.organization_id = r.organization_id and e.id = r.id
       order by e.organization_id, e.id
         for no key update of e
    ), d as (
      select n.*,
             case when n.status = 'disabled' then null
                  when n.gone and ${p.disableOnGone} then 'gone'
                  when ${p.autoDisableHours} > 0 and n.cf >= 10
                       and n.failing_since <= now() - ${p.autoDisableHours} * interval '1 hour' then 'failing'
             end as disable
        from n
    )
    update endpoints e
       set consecutive_failures = d.cf,
           failing_since = d.failing_since,
           breaker_until = case when d.cf >= ${t}
                                then now() + least(60000, 5000 * power(2, least(4, floor((d.cf - ${t}) / ${t}::float8)))) * interval '1 millisecond'
                           end,
           throttled_until = greatest(e.throttled_until, to_timestamp(d.throttle_ms / 1000.0)),
           last_success_at = greatest(e.last_success_at, to_timestamp(d.success_ms / 1000.0)),
           last_failure_at = greatest(e.last_failure_at, to_timestamp(d.failure_ms / 1000.0)),
           status = case when d.disable is not null then 'disabled' else e.status end,
           disabled_reason = coalesce(d.disable, e.disabled_reason),
           disabled_at = case when d.disable is not null then now() else e.disabled_at end,
           updated_at = case when d.disable is not null then now() else e.updated_at end
      from d
     where e.organization_id = d.organization_id and e.id = d.id`
}
