/**
 * Endpoints: create (with the per-organization limit), list, read with stats, update, delete, secrets,
 * and the organization's default endpoint (its `webhook_url`). Parameterized tagged templates only.
 * Listener threads.
 *
 * Status changes and deliveries (the contract, docs/api.md "Flow control per endpoint"):
 *   - to `paused` or `disabled`: only the endpoint row changes; claims hold its due deliveries as they
 *     come due (claim-deliveries.ts), so a pause costs one row write however large the backlog;
 *   - back to `active`: its held deliveries become due now, in the same transaction, after the row
 *     lock (which waits for a claim holding the row), so no claim can hold a delivery after it;
 *   - delete: its `pending`/`failed` deliveries become `cancelled`, the events' summaries follow, and a
 *     deleted default endpoint hands its secrets back to the organization.
 */
import type { Sql, TransactionSql } from '../client.ts'
import { DELIVERY_CHANNEL } from './schedule-deliveries.ts'

export type EndpointStatus = 'active' | 'paused' | 'disabled'
export type DisabledReason = 'manual' | 'gone' | 'failing'

export interface EndpointRow {
  organization_id: string
  id: string
  url: string
  description: string | null
  event_types: string[]
  status: EndpointStatus
  disabled_reason: DisabledReason | null
  disabled_at: Date | null
  rate_limit: number | null
  rate_period_seconds: number | null
  max_concurrency: number | null
  metadata: Record<string, string>
  is_default: boolean
  created_at: Date
  updated_at: Date
}

export interface EndpointStatsRow {
  pending: number
  held: number
  failed: number
  dead_letter: number
  oldest_pending_at: Date | null
  throttled_until: Date | null
  last_success_at: Date | null
  last_failure_at: Date | null
  consecutive_failures: number
}

/** The columns of the API's endpoint object (and the organization id). */
const COLUMNS = 'organization_id, id, url, description, event_types, status, disabled_reason, disabled_at, rate_limit, ' +
  'rate_period_seconds, max_concurrency, metadata, is_default, created_at, updated_at'

export interface NewEndpoint {
  readonly organizationId: string
  readonly id: string
  readonly url: string
  readonly description: string | null
  readonly eventTypes: readonly string[]
  readonly status: 'active' | 'paused'
  readonly rateLimit: number | null
  readonly ratePeriodSeconds: number | null
  readonly maxConcurrency: number | null
  readonly metadata: Record<string, string>
  readonly signingSecret: string
  readonly deliverPending: boolean
}

/** Most deliveries one backfill statement creates; larger backlogs take several statements. */
const BACKFILL_CHUNK = 5000
const BACKFILL_MAX_CHUNKS = 5000

/**
 * Creates an endpoint unless the organization has `maxPerOrg` already ('limit'). The organization row
 * is locked for the count, so concurrent creations cannot pass the limit together.
 */
export async function createEndpoint (sql: Sql, e: NewEndpoint, maxPerOrg: number): Promise<EndpointRow | 'limit'> {
  return await sql.begin(async tx => {
    await tx`select 1 from organizations where id = ${e.organizationId} for update`
    const [count] = await tx<{ n: number }[]>`select count(*)::int as n from endpoints where organization_id = ${e.organizationId}`
    if ((count?.n ?? 0) >= maxPerOrg) return 'limit' as const
    const [row] = await tx<EndpointRow[]>`
      insert into endpoints (organization_id, id, url, description, event_types, status, rate_limit, rate_period_seconds,
                             max_concurrency, metadata, signing_secret, backfill_since, created_at, updated_at)
      values (${e.organizationId}, ${e.id}, ${e.url}, ${e.description}, ${tx.array([...e.eventTypes])}::text[], ${e.status},
              ${e.rateLimit}, ${e.ratePeriodSeconds}, ${e.maxConcurrency}, ${tx.json(e.metadata)}, ${e.signingSecret},
              ${e.deliverPending ? new Date() : null}, now(), now())
      returning ${tx.unsafe(COLUMNS)}`
    if (row === undefined) throw new Error('insert returned no row')
    return row
  })
}

/**
 * Gives the organization's `pending` events that match the endpoint's filter and have no delivery to
 * it a delivery (due now, or held when the endpoint is paused). Returns how many were created.
 */
export async function backfillPending (sql: Sql, orgId: string, endpointId: string): Promise<number> {
  let total = 0
  for (let i = 0; i < BACKFILL_MAX_CHUNKS; i++) {
    const rows = await sql<{ n: number }[]>`
      with ep as (
        select organization_id, id, event_types, status from endpoints
         where organization_id = ${orgId} and id = ${endpointId} and status <> 'disabled'
      ), ins as (
        insert into deliveries (organization_id, event_id, endpoint_id, next_attempt_at, created_at, updated_at)
        select e.organization_id, e.id, ep.id, case when ep.status = 'active' then now() end, e.created_at, now()
          from ep
          join events e on e.organization_id = ep.organization_id
         where e.status = 'pending' and e.status <> 'delivered' and e.acknowledged_at is null
           and triggers_type_matches(ep.event_types, e.type)
           and not exists (select 1 from deliveries d
                            where d.organization_id = e.organization_id and d.event_id = e.id and d.endpoint_id = ep.id)
         limit ${BACKFILL_CHUNK}
        on conflict do nothing
        returning 1
      )
      select (select count(*) from ins)::int as n,
             case when exists (select 1 from ins) then pg_notify(${DELIVERY_CHANNEL}, '') end as notified`
    const n = rows[0]?.n ?? 0
    total += n
    if (n < BACKFILL_CHUNK) break
  }
  return total
}

export interface ListQuery {
  readonly organizationId: string
  readonly status: EndpointStatus | null
  readonly limit: number
  readonly after: { createdAt: Date, id: string } | null
  readonly offset: number
}

/**
 * Oldest first, keyset-paged on (created_at, id); `limit + 1` rows so the caller knows if there are more.
 * created_at is stored with microseconds (now()) but a cursor carries milliseconds, so both the order
 * and the keyset use created_at truncated to milliseconds: a cursor then never repeats or skips a row.
 */
export async function listEndpoints (sql: Sql, q: ListQuery): Promise<EndpointRow[]> {
  const status = q.status === null ? sql`` : sql`and status = ${q.status}`
  const keyset = q.after === null ? sql`` : sql`and (date_trunc('milliseconds', created_at), id) > (${q.after.createdAt}::timestamptz, ${q.after.id}::uuid)`
  const offset = q.after === null && q.offset > 0 ? sql`offset ${q.offset}` : sql``
  return await sql<EndpointRow[]>`
    select ${sql.unsafe(COLUMNS)} from endpoints
     where organization_id = ${q.organizationId} ${status} ${keyset}
     order by date_trunc('milliseconds', created_at), id
     limit ${q.limit + 1} ${offset}`
}

export async function findEndpoint (sql: Sql, orgId: string, id: string): Promise<EndpointRow | null> {
  const [row] = await sql<EndpointRow[]>`select ${sql.unsafe(COLUMNS)} from endpoints where organization_id = ${orgId} and id = ${id}`
  return row ?? null
}

/**
 * The endpoint's backlog and health. `pending`, `failed` and `dead_letter` count its deliveries by
 * status; `held` counts those pending or failed deliveries that wait for the endpoint itself: all of
 * them while it is paused or disabled, else the ones not yet rescheduled after it came back.
 */
export async function endpointStats (sql: Sql, orgId: string, id: string): Promise<EndpointStatsRow | null> {
  const [row] = await sql<EndpointStatsRow[]>`
    select coalesce(s.pending, 0)::int as pending,
           case when e.status = 'active' then coalesce(s.held, 0) else coalesce(s.pending, 0) + coalesce(s.failed, 0) end::int as held,
           coalesce(s.failed, 0)::int as failed, coalesce(s.dead_letter, 0)::int as dead_letter,
           s.oldest_pending_at,
           case when e.throttled_until > now() then e.throttled_until end as throttled_until,
           e.last_success_at, e.last_failure_at, e.consecutive_failures
      from endpoints e
      left join lateral (
        select count(*) filter (where d.status = 'pending') as pending,
               count(*) filter (where d.status = 'failed') as failed,
               count(*) filter (where d.status = 'dead_letter') as dead_letter,
               count(*) filter (where d.status in ('pending', 'failed') and d.next_attempt_at is null) as held,
               min(d.created_at) filter (where d.status = 'pending') as oldest_pending_at
          from deliveries d
         where d.organization_id = e.organization_id and d.endpoint_id = e.id
           and d.status in ('pending', 'failed', 'dead_letter')
      ) s on true
     where e.organization_id = ${orgId} and e.id = ${id}`
  return row ?? null
}

/** Fields a PATCH may set; `undefined` leaves a field alone, `null` clears a nullable one. */
export interface EndpointPatch {
  url?: string
  description?: string | null
  eventTypes?: readonly string[]
  status?: EndpointStatus
  rateLimit?: { limit: number, periodSeconds: number } | null
  maxConcurrency?: number | null
  metadata?: Record<string, string>
}

/**
 * Applies a PATCH. Entering `disabled` sets disabled_at and reason `manual`; leaving it clears both;
 * back to `active`, held deliveries become due now (oldest first by their schedule). Transitions are
 * idempotent: setting the current status changes nothing but updated_at.
 */
export async function updateEndpoint (sql: Sql, orgId: string, id: string, p: EndpointPatch): Promise<EndpointRow | null> {
  return await sql.begin(async tx => {
    const [cur] = await tx<{ status: EndpointStatus }[]>`
      select status from endpoints where organization_id = ${orgId} and id = ${id} for update`
    if (cur === undefined) return null
    const set: Record<string, string | number | boolean | Date | null | ReturnType<typeof tx.json>> = { updated_at: new Date() }
    if (p.url !== undefined) set.url = p.url
    if (p.description !== undefined) set.description = p.description
    if (p.maxConcurrency !== undefined) set.max_concurrency = p.maxConcurrency
    if (p.metadata !== undefined) set.metadata = tx.json(p.metadata)
    if (p.rateLimit !== undefined) {
      set.rate_limit = p.rateLimit?.limit ?? null
      set.rate_period_seconds = p.rateLimit?.periodSeconds ?? null
      set.rate_tat = null
    }
    if (p.status !== undefined && p.status !== cur.status) {
      set.status = p.status
      if (p.status === 'disabled') { set.disabled_reason = 'manual'; set.disabled_at = new Date() } else { set.disabled_reason = null; set.disabled_at = null }
    }
    const columns = Object.keys(set)
    const [row] = await tx<EndpointRow[]>`
      update endpoints set ${tx(set, columns)}
        ${p.eventTypes === undefined ? tx`` : tx`, event_types = ${tx.array([...p.eventTypes])}::text[]`}
       where organization_id = ${orgId} and id = ${id}
      returning ${tx.unsafe(COLUMNS)}`
    if (row !== undefined && p.status === 'active' && cur.status !== 'active') await unholdDeliveries(tx, orgId, id)
    return row ?? null
  })
}

/**
 * The endpoint's held deliveries become due now (it is active again), oldest first: claims take due
 * rows by next_attempt_at, so each gets now() less one microsecond per younger held delivery.
 */
async function unholdDeliveries (tx: TransactionSql, orgId: string, endpointId: string): Promise<void> {
  // Due at once, and oldest first: the due time is the event's own creation time (in the past), so the
  // claims, which take the oldest due first, drain the backlog in event order. One pass over the
  // endpoint's open deliveries (deliveries_open), no join: a join on the held set, planned with
  // statistics older than the backlog, ran quadratically (4.5 s for 2,500 held).
  await tx`
    update deliveries set next_attempt_at = least(created_at, now()), rate_reserved = false
     where organization_id = ${orgId} and endpoint_id = ${endpointId}
       and status in ('pending', 'failed') and next_attempt_at is null`
  await tx`select pg_notify(${DELIVERY_CHANNEL}, '')`
}

/**
 * Deletes the endpoint: its pending and failed deliveries become cancelled (the events' summaries
 * follow). A deleted default endpoint hands its secrets back to the organization, so a later webhook
 * configuration signs with the same secret. Returns false when there was no such endpoint.
 */
export async function deleteEndpoint (sql: Sql, orgId: string, id: string): Promise<boolean> {
  return await sql.begin(async tx => {
    // LOCK ORDER (complete-deliveries.ts): the events of its open deliveries, then the endpoint.
    await tx`
      select 1 from events e
       where e.organization_id = ${orgId}
         and e.id in (select event_id from deliveries where organization_id = ${orgId} and endpoint_id = ${id} and status in ('pending', 'failed'))
       order by e.organization_id, e.id
         for no key update of e`
    const [gone] = await tx<{ is_default: boolean, signing_secret: string, previous_signing_secret: string | null, previous_secret_expires_at: Date | null }[]>`
      delete from endpoints where organization_id = ${orgId} and id = ${id}
      returning is_default, signing_secret, previous_signing_secret, previous_secret_expires_at`
    if (gone === undefined) return false
    const cancelled = await tx<{ event_id: string }[]>`
      update deliveries set status = 'cancelled', next_attempt_at = null, rate_reserved = false, updated_at = now()
       where organization_id = ${orgId} and endpoint_id = ${id} and status in ('pending', 'failed')
      returning event_id`
    if (cancelled.length > 0) {
      const ids = cancelled.map(r => r.event_id)
      await tx`select triggers_refresh_events(${tx.array(ids.map(() => orgId))}::uuid[], ${tx.array(ids)}::uuid[])`
    }
    if (gone.is_default) {
      await tx`
        update organizations
           set signing_secret = ${gone.signing_secret}, previous_signing_secret = ${gone.previous_signing_secret},
               previous_secret_expires_at = ${gone.previous_secret_expires_at}, updated_at = now()
         where id = ${orgId}`
    }
    return true
  })
}

export interface SecretRow { signing_secret: string, previous_secret_expires_at: Date | null }

/** The current secret and when the previous one stops signing (null when none is valid). */
export async function findEndpointSecret (sql: Sql, orgId: string, id: string): Promise<SecretRow | null> {
  const [row] = await sql<SecretRow[]>`
    select signing_secret,
           case when previous_secret_expires_at > now() then previous_secret_expires_at end as previous_secret_expires_at
      from endpoints where organization_id = ${orgId} and id = ${id}`
  return row ?? null
}

/** New secret; the current one keeps signing for `graceSeconds` (both appear in webhook-signature). */
export async function rotateEndpointSecret (sql: Sql, orgId: string, id: string, newSecret: string, graceSeconds: number): Promise<SecretRow | null> {
  const [row] = await sql<SecretRow[]>`
    update endpoints
       set previous_signing_secret = signing_secret,
           previous_secret_expires_at = now() + make_interval(secs => ${graceSeconds}),
           signing_secret = ${newSecret}, updated_at = now()
     where organization_id = ${orgId} and id = ${id}
    returning signing_secret, previous_secret_expires_at`
  return row ?? null
}

export interface DefaultEndpoint { endpoint_id: string, url: string, signing_secret: string, created: boolean }

/**
 * POST /api/webhook/config: creates the default endpoint (taking over the organization's secret, or
 * `newSecret` when it has none) or changes its URL. A created one gets the pending events (backfill).
 */
export async function upsertDefaultEndpoint (sql: Sql, orgId: string, url: string, newId: string, newSecret: string): Promise<DefaultEndpoint | null> {
  const result = await sql.begin(async tx => {
    const [org] = await tx<{ signing_secret: string | null, previous_signing_secret: string | null, previous_secret_expires_at: Date | null }[]>`
      select signing_secret, previous_signing_secret, previous_secret_expires_at from organizations where id = ${orgId} for update`
    if (org === undefined) return null
    // Configuring the webhook URL is an explicit wish to be delivered to: a default endpoint that was
    // disabled (by hand, a 410 or failures) is enabled again — a client of the single-URL API has no
    // other way to do it. A paused one stays paused (only the endpoint API pauses).
    const [updated] = await tx<{ id: string, url: string, signing_secret: string, was_disabled: boolean }[]>`
      update endpoints e
         set url = ${url}, updated_at = now(),
             status = case when e.status = 'disabled' then 'active' else e.status end,
             disabled_reason = null, disabled_at = null
        from (select id, status = 'disabled' as was_disabled from endpoints
               where organization_id = ${orgId} and is_default for update) old
       where e.organization_id = ${orgId} and e.id = old.id
      returning e.id, e.url, e.signing_secret, old.was_disabled`
    if (updated !== undefined) {
      if (updated.was_disabled) await unholdDeliveries(tx, orgId, updated.id)
      return { endpoint_id: updated.id, url: updated.url, signing_secret: updated.signing_secret, created: false }
    }
    const [row] = await tx<{ id: string, url: string, signing_secret: string }[]>`
      insert into endpoints (organization_id, id, url, event_types, status, is_default, signing_secret,
                             previous_signing_secret, previous_secret_expires_at, backfill_since, created_at, updated_at)
      values (${orgId}, ${newId}, ${url}, array['*'], 'active', true, ${org.signing_secret ?? newSecret},
              ${org.previous_signing_secret}, ${org.previous_secret_expires_at}, now(), now(), now())
      returning id, url, signing_secret`
    if (row === undefined) throw new Error('insert returned no row')
    await tx`
      update organizations set signing_secret = null, previous_signing_secret = null, previous_secret_expires_at = null
       where id = ${orgId}`
    return { endpoint_id: row.id, url: row.url, signing_secret: row.signing_secret, created: true }
  })
  if (result?.created === true) await backfillPending(sql, orgId, result.endpoint_id)
  return result
}

/**
 * POST /api/webhook/secret/rotate: rotates the default endpoint's secret, or — before the first
 * configuration or after the default endpoint was deleted — the organization's own, which the next
 * default endpoint takes over.
 */
export async function rotateDefaultSecret (sql: Sql, orgId: string, newSecret: string, graceSeconds: number): Promise<SecretRow | null> {
  const [ep] = await sql<SecretRow[]>`
    update endpoints
       set previous_signing_secret = signing_secret,
           previous_secret_expires_at = now() + make_interval(secs => ${graceSeconds}),
           signing_secret = ${newSecret}, updated_at = now()
     where organization_id = ${orgId} and is_default
    returning signing_secret, previous_secret_expires_at`
  if (ep !== undefined) return ep
  const [org] = await sql<SecretRow[]>`
    update organizations
       set previous_signing_secret = signing_secret,
           previous_secret_expires_at = case when signing_secret is null then null
                                             else now() + make_interval(secs => ${graceSeconds}) end,
           signing_secret = ${newSecret}, updated_at = now()
     where id = ${orgId}
    returning signing_secret, previous_secret_expires_at`
  return org ?? null
}
