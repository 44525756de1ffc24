/**
 * Claiming due deliveries (delivery threads of every node). One short transaction:
 *
 *   S1  candidates  two sources, both FOR NO KEY UPDATE SKIP LOCKED:
 *                   - focus: for each endpoint the thread knows has a backlog beyond its concurrency
 *                     (a focus endpoint), up to its free slots of its oldest due pending deliveries,
 *                     read through the endpoint's own index (deliveries_open);
 *                   - general: the oldest due deliveries (next_attempt_at <= now()) among the first
 *                     `window` entries of the due index, leaving out the focus endpoints and those the
 *                     caller excludes (at their limit here, or with a failure not yet written). The
 *                     window bounds the scan: one endpoint's backlog at the head of the queue is served
 *                     through focus, and the endpoints behind it are found by findBacklogged (below),
 *                     not by reading past thousands of its rows.
 *                   Both are written so that their plan does not depend on the statistics, which lag
 *                   far behind a table whose due set grows by thousands a second (planned when the
 *                   statistics said "no row is due", a join of the window with `deliveries` became a
 *                   nested loop re-reading the window for every due row: one claim took 13.6 s): the
 *                   window is read first and each of its rows locked through the primary key
 *                   (LATERAL); the row reads cannot use the partial due index (`coalesce(…)` does not
 *                   imply its predicate), which a plan expecting one due row would otherwise prefer, as
 *                   a whole-index scan, over the primary key or the endpoint's own index.
 *   S2  endpoints   their endpoint rows, locked FOR NO KEY UPDATE SKIP LOCKED: one claimer per endpoint
 *                   at a time across all nodes, so the flow state below is read and written atomically;
 *                   candidates of an endpoint another claimer holds are left for later
 *   S3  leases      the live leases other threads hold on each locked endpoint (max_concurrency across
 *                   nodes; the claimer knows its own in-flight attempts exactly and adds them) — a
 *                   statement of its own, so its snapshot is taken after S2's locks and sees every lease
 *                   committed by a claimer that held the lock before
 *   plan            a pure function of the above (src/delivery/flow.ts): per candidate lease now, defer
 *                   to a time (rate limit, throttle, breaker), hold (endpoint paused or disabled), or
 *                   leave due; per endpoint its new rate-limit state and breaker probe
 *   S4  deliveries  one `unnest` UPDATE applies the plan and returns the leased rows with their events
 *   S5  endpoints   one `unnest` UPDATE writes the changed flow state (only when there is any)
 *
 * Leasing moves next_attempt_at (and leased_until) to now() + lease in the statement that holds the
 * row lock, so no other claimer on any node sees the row as due until the lease expires or the result
 * is written: each attempt is handed to exactly one worker, and an attempt lost with its node becomes
 * due again by itself. S2+S3 and S4+S5 are pipelined: a claim is four round trips. It commits
 * asynchronously (complete-deliveries.ts "Durability").
 */
import type { Sql } from '../client.ts'

/** A due delivery as S1 found it. */
export interface Candidate {
  readonly organization_id: string
  readonly event_id: string
  readonly endpoint_id: string
  readonly rate_reserved: boolean
  /** When it became due (ms since the epoch): a reserved rate-limit slot is kept only while on time. */
  readonly due_ms: number
}

/** An endpoint's configuration and flow state as S2 read it under its lock. */
export interface EndpointFlow {
  readonly organization_id: string
  readonly id: string
  readonly url: string
  readonly status: 'active' | 'paused' | 'disabled'
  readonly is_default: boolean
  readonly signing_secret: string
  readonly previous_secret: string | null
  readonly rate_limit: number | null
  readonly rate_period_seconds: number | null
  readonly max_concurrency: number | null
  /** ms since the epoch, or null */
  readonly rate_tat: number | null
  readonly throttled_until: number | null
  readonly breaker_until: number | null
  readonly consecutive_failures: number
  /** Live leases of the endpoint held by other delivery threads, on any node (S3); the claimer adds its own. */
  leased: number
}

/** What to do with one candidate: Lease now, Defer to `at`, Hold (NULL), or leave it due (null). */
export type Action = 'L' | 'D' | 'H'

/** The plan for one claim (filled by the planner; arrays are parallel to the candidates). */
export class ClaimPlan {
  readonly actions: (Action | null)[] = []
  /** ms since the epoch for 'D' */
  readonly at: number[] = []
  /** The delivery keeps a rate-limit slot it was granted (a 'D' for the rate limit). */
  readonly reserved: boolean[] = []
  /** Endpoint id → new GCRA theoretical arrival time (ms), for endpoints whose rate state changed. */
  readonly tat = new Map<string, number>()
  /** Endpoints whose breaker lets this claim's lease through as the probe. */
  readonly probes = new Set<string>()
  /** Endpoints that reached their concurrency limit in this claim. */
  readonly full = new Set<string>()
}

export type Planner = (candidates: readonly Candidate[], endpoints: ReadonlyMap<string, EndpointFlow>, nowMs: number, plan: ClaimPlan) => void

/** One leased attempt (fixed shape, STYLE C7). `secrets` holds the current secret first, then a still-valid previous one. */
export class ClaimedDelivery {
  readonly organizationId: string
  readonly eventId: string
  readonly endpointId: string
  readonly type: string
  /** The stored payload JSON text, spliced into the body as is. */
  readonly payload: string
  readonly createdAt: Date
  /** attempts after this claim: the X-Delivery-Attempt value and the guard for writing the result. */
  readonly attempts: number
  /** 1-based index of this attempt in the current retry series. */
  readonly seriesAttempt: number
  /** What started the series ('initial' | 'redeliver' | 'replay'). */
  readonly trigger: string
  readonly url: string
  readonly secrets: readonly string[]
  /** The endpoint's consecutive failures when claimed (result writes skip no-op health updates). */
  readonly endpointFailures: number
  /** The W3C traceparent of the span that ingested the event (docs/tracing.md), or null. */
  readonly traceparent: string | null

  constructor (row: LeasedRow, ep: EndpointFlow) {
    this.organizationId = row.organization_id
    this.eventId = row.event_id
    this.endpointId = row.endpoint_id
    this.type = row.type
    this.payload = row.payload
    this.createdAt = row.created_at
    this.attempts = row.attempts
    this.seriesAttempt = row.series_attempt
    this.trigger = row.trigger
    this.url = ep.url
    this.secrets = ep.previous_secret === null ? [ep.signing_secret] : [ep.signing_secret, ep.previous_secret]
    this.endpointFailures = ep.consecutive_failures
    this.traceparent = row.traceparent ?? null
  }
}

interface LeasedRow {
  organization_id: string
  event_id: string
  endpoint_id: string
  type: string
  payload: string
  created_at: Date
  attempts: number
  series_attempt: number
  trigger: string
  /** Always returned by S4; absent only in rows made by hand. */
  traceparent?: string | null
}

interface EndpointRowRaw extends Omit<EndpointFlow, 'rate_tat' | 'throttled_until' | 'breaker_until' | 'leased'> {
  rate_tat: Date | null
  throttled_until: Date | null
  breaker_until: Date | null
  now: Date
}

export interface ClaimOptions {
  /** This delivery thread's lease holder id. */
  readonly holder: string
  /** Most candidates to look at (the planner starts at most as many as the thread has free slots). */
  readonly candidates: number
  readonly leaseMs: number
  /** Endpoints not to look at (at their concurrency limit here, or with a failure not yet written; bounded by the caller). */
  readonly excludedEndpoints: ReadonlySet<string>
  /** How many entries of the due index the general scan reads at most (≥ candidates). */
  readonly window: number
  /** Focus endpoints (parallel arrays): their due pending deliveries are read per endpoint, up to `caps[i]`. */
  readonly focus: FocusList
}

/** Focus endpoints for one claim (parallel arrays; see the header). */
export class FocusList {
  readonly orgs: string[] = []
  readonly ids: string[] = []
  readonly caps: number[] = []
  get size (): number { return this.ids.length }
  clear (): void { this.orgs.length = 0; this.ids.length = 0; this.caps.length = 0 }
  add (org: string, id: string, cap: number): void { this.orgs.push(org); this.ids.push(id); this.caps.push(cap) }
}

export interface ClaimResult {
  readonly leased: ClaimedDelivery[]
  /** Candidates deferred or held (they left the due set without an attempt). */
  readonly moved: number
  readonly candidates: number
  readonly plan: ClaimPlan
  /** Candidates found per focus endpoint (fewer than its cap: its due backlog is used up here). */
  readonly focusFound: ReadonlyMap<string, number>
}

const NO_FOCUS: ReadonlyMap<string, number> = new Map()

const ms = (d: Date | null): number | null => d === null ? null : d.getTime()

/** Runs one claim with `planner` deciding; see the header. */
export async function claimDeliveries (sql: Sql, o: ClaimOptions, planner: Planner): Promise<ClaimResult> {
  return await sql.begin(async tx => {
    // Asynchronous commit (see complete-deliveries.ts "Durability"), pipelined with S1: no round trip.
    const f = o.focus
    const general = o.candidates <= 0
      ? null
      : tx<Candidate[]>`
      select x.organization_id, x.event_id, x.endpoint_id, x.rate_reserved,
             (extract(epoch from x.next_attempt_at) * 1000)::float8 as due_ms
        from (select organization_id, event_id, endpoint_id, next_attempt_at
                from deliveries
               where next_attempt_at <= now()
               order by next_attempt_at
               limit ${o.window}) w
        cross join lateral (
          select d.organization_id, d.event_id, d.endpoint_id, d.rate_reserved, d.next_attempt_at
            from deliveries d
           where d.organization_id = w.organization_id and d.event_id = w.event_id and d.endpoint_id = w.endpoint_id
             and coalesce(d.next_attempt_at, 'infinity') <= now()
             for no key update skip locked) x
       where w.endpoint_id <> all(${tx.array([...o.excludedEndpoints])}::uuid[])
         and w.endpoint_id <> all(${tx.array(f.ids)}::uuid[])
       order by w.next_attempt_at
       limit ${o.candidates}`
    const focused = f.size === 0
      ? null
      : tx<Candidate[]>`
      select x.organization_id, x.event_id, x.endpoint_id, x.rate_reserved,
             (extract(epoch from x.next_attempt_at) * 1000)::float8 as due_ms
        from unnest(${tx.array(f.orgs)}::uuid[], ${tx.array(f.ids)}::uuid[], ${tx.array(f.caps)}::int[]) as f(organization_id, id, cap)
        cross join lateral (
          select d.organization_id, d.event_id, d.endpoint_id, d.rate_reserved, d.next_attempt_at
            from deliveries d
           where d.organization_id = f.organization_id and d.endpoint_id = f.id
             and d.status = 'pending' and coalesce(d.next_attempt_at, 'infinity') <= now()
           order by d.created_at
           limit f.cap
             for no key update skip locked) x`
    const [, found, generalRows] = await Promise.all([tx`set local synchronous_commit to off`, focused, general])
    const plan = new ClaimPlan()
    let focusFound = NO_FOCUS
    let candidates: readonly Candidate[] = generalRows ?? []
    if (found !== null) {
      const counts = new Map<string, number>()
      for (const c of found) counts.set(c.endpoint_id, (counts.get(c.endpoint_id) ?? 0) + 1)
      focusFound = counts
      // The general scan leaves focus endpoints out: no row is taken twice.
      if (found.length > 0) candidates = candidates.length === 0 ? found : [...found, ...candidates]
    }
    if (candidates.length === 0) return { leased: [], moved: 0, candidates: 0, plan, focusFound }
    const keys = new Map<string, string>()
    for (const c of candidates) keys.set(c.endpoint_id, c.organization_id)
    const epOrgs = [...keys.values()]
    const epIds = [...keys.keys()]
    const [rows, leases] = await Promise.all([
      tx<EndpointRowRaw[]>`
        select e.organization_id, e.id, e.url, e.status, e.is_default, e.signing_secret,
               case when e.previous_secret_expires_at > now() then e.previous_signing_secret end as previous_secret,
               e.rate_limit, e.rate_period_seconds, e.max_concurrency, e.rate_tat, e.throttled_until,
               e.breaker_until, e.consecutive_failures, now() as now
          from endpoints e
          join unnest(${tx.array(epOrgs)}::uuid[], ${tx.array(epIds)}::uuid[]) as t(organization_id, id)
            on e.organization_id = t.organization_id and e.id = t.id
         order by e.organization_id, e.id
           for no key update of e skip locked`,
      tx<{ endpoint_id: string, n: number }[]>`
        select d.endpoint_id, count(*)::int as n
          from deliveries d
          join unnest(${tx.array(epOrgs)}::uuid[], ${tx.array(epIds)}::uuid[]) as t(organization_id, id)
            on d.organization_id = t.organization_id and d.endpoint_id = t.id
         where d.leased_until > now() and d.leased_by is distinct from ${o.holder}::uuid
         group by d.endpoint_id`,
    ])
    const endpoints = new Map<string, EndpointFlow>()
    let now = Date.now()
    for (const r of rows) {
      now = r.now.getTime()
      endpoints.set(r.id, {
        organization_id: r.organization_id, id: r.id, url: r.url, status: r.status, is_default: r.is_default,
        signing_secret: r.signing_secret, previous_secret: r.previous_secret, rate_limit: r.rate_limit,
        rate_period_seconds: r.rate_period_seconds, max_concurrency: r.max_concurrency, rate_tat: ms(r.rate_tat),
        throttled_until: ms(r.throttled_until), breaker_until: ms(r.breaker_until),
        consecutive_failures: r.consecutive_failures, leased: 0,
      })
    }
    for (const l of leases) { const ep = endpoints.get(l.endpoint_id); if (ep !== undefined) ep.leased = l.n }
    planner(candidates, endpoints, now, plan)

    const n = candidates.length
    const orgs: string[] = []
    const events: string[] = []
    const eps: string[] = []
    const actions: string[] = []
    const ats: number[] = []
    const reserved: boolean[] = []
    for (let i = 0; i < n; i++) {
      const a = plan.actions[i]
      if (a === null || a === undefined) continue
      const c = candidates[i]!
      orgs.push(c.organization_id)
      events.push(c.event_id)
      eps.push(c.endpoint_id)
      actions.push(a)
      ats.push(a === 'D' ? plan.at[i]! : 0)
      reserved.push(plan.reserved[i] === true)
    }
    if (orgs.length === 0) return { leased: [], moved: 0, candidates: n, plan, focusFound }
    const flowOrgs: string[] = []
    const flowIds: string[] = []
    const tats: (number | null)[] = []
    const probes: boolean[] = []
    for (const id of new Set([...plan.tat.keys(), ...plan.probes])) {
      const ep = endpoints.get(id)
      if (ep === undefined) continue
      flowOrgs.push(ep.organization_id)
      flowIds.push(id)
      tats.push(plan.tat.get(id) ?? null)
      probes.push(plan.probes.has(id))
    }
    const updated = tx<(LeasedRow & { action: Action })[]>`
      update deliveries d
         set attempts = d.attempts + (r.action = 'L')::int,
             series_attempt = d.series_attempt + (r.action = 'L')::int,
             next_attempt_at = case r.action when 'L' then now() + ${o.leaseMs} * interval '1 millisecond'
                                             when 'D' then to_timestamp(r.at_ms / 1000.0) end,
             leased_until = case when r.action = 'L' then now() + ${o.leaseMs} * interval '1 millisecond' end,
             leased_by = case when r.action = 'L' then ${o.holder}::uuid end,
             rate_reserved = r.reserved
        from unnest(${tx.array(orgs)}::uuid[], ${tx.array(events)}::uuid[], ${tx.array(eps)}::uuid[],
                    ${tx.array(actions)}::text[], ${tx.array(ats)}::float8[], ${tx.array(reserved)}::bool[])
               as r(organization_id, event_id, endpoint_id, action, at_ms, reserved)
        join events e on e.organization_id = r.organization_id and e.id = r.event_id
       where d.organization_id = r.organization_id and d.event_id = r.event_id and d.endpoint_id = r.endpoint_id
      returning d.organization_id, d.event_id, d.endpoint_id, r.action, e.type,
                case when r.action = 'L' then e.payload::text end as payload, e.created_at,
                d.attempts, d.series_attempt, d.trigger, case when r.action = 'L' then e.traceparent end as traceparent`
    const flow = flowIds.length === 0
      ? null
      : tx`
        update endpoints e
           set rate_tat = coalesce(to_timestamp(r.tat_ms / 1000.0), e.rate_tat),
               breaker_until = case when r.probe then now() + ${o.leaseMs} * interval '1 millisecond' else e.breaker_until end
          from unnest(${tx.array(flowOrgs)}::uuid[], ${tx.array(flowIds)}::uuid[], ${tx.array(tats)}::float8[], ${tx.array(probes)}::bool[])
                 as r(organization_id, id, tat_ms, probe)
         where e.organization_id = r.organization_id and e.id = r.id`
    const [rowsOut] = await Promise.all([updated, flow])
    const leased: ClaimedDelivery[] = []
    let moved = 0
    for (const r of rowsOut) {
      if (r.action !== 'L') { moved++; continue }
      const ep = endpoints.get(r.endpoint_id)
      if (ep !== undefined) leased.push(new ClaimedDelivery(r, ep))
    }
    return { leased, moved, candidates: n, plan, focusFound }
  })
}

/** An active endpoint with due pending deliveries (findBacklogged). */
export interface Backlogged { readonly organization_id: string, readonly id: string, readonly max_concurrency: number | null }

/**
 * Up to `limit` active endpoints, other than `known`, that have due pending deliveries and are not
 * throttled or behind an open breaker: the endpoints waiting behind another endpoint's backlog at the
 * head of the due queue (the claim's general scan reads only a window of it). One index probe per
 * active endpoint at most; the scheduler runs it only while some endpoint has a backlog, and backs off
 * when it finds nothing.
 */
export async function findBacklogged (sql: Sql, known: readonly string[], limit: number): Promise<Backlogged[]> {
  return await sql<Backlogged[]>`
    select e.organization_id, e.id, e.max_concurrency
      from endpoints e
     where e.status = 'active' and e.id <> all(${sql.array([...known])}::uuid[])
       and (e.throttled_until is null or e.throttled_until <= now())
       and (e.breaker_until is null or e.breaker_until <= now())
       and exists (select 1 from deliveries d
                    where d.organization_id = e.organization_id and d.endpoint_id = e.id
                      and d.status = 'pending' and coalesce(d.next_attempt_at, 'infinity') <= now())
     limit ${limit}`
}

/**
 * The earliest scheduled attempt (including other workers' leases), or null when nothing is scheduled.
 * Reads the first entry of the deliveries_due index; used to wake precisely instead of polling.
 */
export async function nextDueAt (sql: Sql): Promise<Date | null> {
  const [row] = await sql<{ at: Date | null }[]>`select min(next_attempt_at) as at from deliveries where next_attempt_at is not null`
  return row?.at ?? null
}
