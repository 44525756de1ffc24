/**
 * Scheduling deliveries outside the attempt loop: redelivery of one event, replay of many (by status,
 * or the `missed` events of an endpoint), and the delivery thread's safety sweeps.
 *
 * Scheduling means a delivery due now (or NULL, held, when its endpoint is paused); replays and
 * released backlogs are due at their event's creation time, so claims — oldest due first — deliver
 * them in event order; the delivery threads find the work by claiming (claim-deliveries.ts). A fresh series resets
 * `series_attempt` and names its `trigger` ('redeliver' | 'replay'); `attempts` keeps counting. Every
 * function that scheduled something notifies DELIVERY_CHANNEL, so every node's delivery threads wake at
 * once instead of at their next poll, and refreshes the events' summaries (triggers_refresh_events).
 * Called from listener threads (routes) and the delivery thread (sweeps).
 */
import type { Sql, TransactionSql } from '../client.ts'

/**
 * The LISTEN/NOTIFY channel delivery threads listen on. The ingest writer notifies it after commits
 * that created due deliveries (throttled, src/http/thread.ts).
 */
export const DELIVERY_CHANNEL = 'triggers_events'

export const REPLAY_MAX = 10_000
const SWEEP_CHUNK = 5000

/** Wakes every delivery thread listening on DELIVERY_CHANNEL (all nodes sharing the database). */
export async function notifyDeliveries (sql: Sql): Promise<void> {
  await sql`select pg_notify(${DELIVERY_CHANNEL}, '')`
}

async function refreshEvents (tx: TransactionSql, orgId: string, eventIds: readonly string[]): Promise<void> {
  if (eventIds.length === 0) return
  await tx`select triggers_refresh_events(${tx.array(eventIds.map(() => orgId))}::uuid[], ${tx.array([...eventIds])}::uuid[]),
                  pg_notify(${DELIVERY_CHANNEL}, '')`
}

export type RedeliverResult = 'ok' | 'not_found' | 'endpoint_not_found' | 'endpoint_disabled' | 'no_webhook'

/**
 * POST /api/events/:id/redeliver. Without `endpointId`: every delivery of the event to an endpoint that
 * is not disabled gets a fresh series; an event with none is matched against the current endpoints
 * ('no_webhook' when still none; 'endpoint_disabled' when its only endpoints are disabled). With it:
 * that endpoint's delivery, created if missing, whatever the endpoint's filter. The event leaves the
 * acknowledged state (it is pending again).
 */
export async function redeliverEvent (sql: Sql, orgId: string, eventId: string, endpointId: string | null): Promise<RedeliverResult> {
  return await sql.begin(async tx => {
    const [ev] = await tx<{ type: string, created_at: Date }[]>`
      select type, created_at from events where organization_id = ${orgId} and id = ${eventId} for update`
    if (ev === undefined) return 'not_found' as const
    let scheduled: { n: number, disabled: number }
    if (endpointId !== null) {
      const [ep] = await tx<{ status: string }[]>`select status from endpoints where organization_id = ${orgId} and id = ${endpointId}`
      if (ep === undefined) return 'endpoint_not_found' as const
      if (ep.status === 'disabled') return 'endpoint_disabled' as const
      await tx`
        insert into deliveries (organization_id, event_id, endpoint_id, trigger, next_attempt_at, created_at, updated_at)
        values (${orgId}, ${eventId}, ${endpointId}, 'redeliver', case when ${ep.status} = 'active' then now() end,
                ${ev.created_at}, now())
        on conflict (organization_id, event_id, endpoint_id) do update
           set status = 'pending', series_attempt = 0, trigger = 'redeliver', rate_reserved = false,
               next_attempt_at = excluded.next_attempt_at, delivered_at = null, updated_at = now()`
      scheduled = { n: 1, disabled: 0 }
    } else {
      scheduled = await resetEventDeliveries(tx, orgId, eventId)
      if (scheduled.n === 0) {
        const [m] = await tx<{ n: number }[]>`
          with ins as (
            insert into deliveries (organization_id, event_id, endpoint_id, trigger, next_attempt_at, created_at, updated_at)
            select ${orgId}, ${eventId}, ep.id, 'redeliver', case when ep.status = 'active' then now() end, ${ev.created_at}, now()
              from endpoints ep
             where ep.organization_id = ${orgId} and ep.status in ('active', 'paused')
               and triggers_type_matches(ep.event_types, ${ev.type})
            on conflict do nothing
            returning 1
          ) select count(*)::int as n from ins`
        scheduled = { n: m?.n ?? 0, disabled: scheduled.disabled }
      }
      if (scheduled.n === 0) return scheduled.disabled > 0 ? 'endpoint_disabled' as const : 'no_webhook' as const
    }
    await tx`update events set acknowledged_at = null, updated_at = now() where organization_id = ${orgId} and id = ${eventId}`
    await refreshEvents(tx, orgId, [eventId])
    return 'ok' as const
  })
}

/** Fresh series for the event's deliveries to endpoints that are not disabled. */
async function resetEventDeliveries (tx: TransactionSql, orgId: string, eventId: string): Promise<{ n: number, disabled: number }> {
  const [row] = await tx<{ n: number, disabled: number }[]>`
    with upd as (
      update deliveries d
         set status = 'pending', series_attempt = 0, trigger = 'redeliver', rate_reserved = false,
             next_attempt_at = case when ep.status = 'active' then now() end, delivered_at = null, updated_at = now()
        from endpoints ep
       where d.organization_id = ${orgId} and d.event_id = ${eventId}
         and ep.organization_id = d.organization_id and ep.id = d.endpoint_id and ep.status <> 'disabled'
      returning 1
    )
    select (select count(*) from upd)::int as n,
           (select count(*) from deliveries d join endpoints ep on ep.organization_id = d.organization_id and ep.id = d.endpoint_id
             where d.organization_id = ${orgId} and d.event_id = ${eventId} and ep.status = 'disabled')::int as disabled`
  return row ?? { n: 0, disabled: 0 }
}

export interface ReplayQuery {
  readonly organizationId: string
  readonly status: 'dead_letter' | 'failed'
  readonly since: Date | null
  readonly until: Date | null
  /** null: every endpoint of the organization that is not disabled. */
  readonly endpointId: string | null
}

/**
 * Re-schedules up to 10,000 deliveries in `status` whose event was created in [since, until), oldest
 * first, each with a fresh series (trigger 'replay'). Deliveries to disabled endpoints are left alone.
 * Returns how many were scheduled.
 */
export async function replayDeliveries (sql: Sql, q: ReplayQuery): Promise<number> {
  return await sql.begin(async tx => {
    const endpoint = q.endpointId === null ? tx`` : tx`and d.endpoint_id = ${q.endpointId}`
    const window = tx`and (${q.since}::timestamptz is null or d.created_at >= ${q.since}::timestamptz)
           and (${q.until}::timestamptz is null or d.created_at < ${q.until}::timestamptz)`
    // LOCK ORDER (complete-deliveries.ts): the events first, then their deliveries.
    await tx`
      select 1 from events e
       where e.organization_id = ${q.organizationId}
         and e.id in (select d.event_id from deliveries d
                       where d.organization_id = ${q.organizationId} and d.status = ${q.status} ${endpoint} ${window}
                       order by d.created_at, d.event_id limit ${REPLAY_MAX})
       order by e.organization_id, e.id
         for no key update of e`
    const rows = await tx<{ event_id: string }[]>`
      with t as (
        select d.organization_id, d.event_id, d.endpoint_id, ep.status as endpoint_status
          from deliveries d
          join endpoints ep on ep.organization_id = d.organization_id and ep.id = d.endpoint_id
         where d.organization_id = ${q.organizationId} and d.status = ${q.status} ${endpoint} ${window}
           and ep.status <> 'disabled'
         order by d.created_at, d.event_id
         limit ${REPLAY_MAX}
           for update of d
      )
      update deliveries d
         set status = 'pending', series_attempt = 0, trigger = 'replay', rate_reserved = false,
             next_attempt_at = case when t.endpoint_status = 'active' then least(d.created_at, now()) end, updated_at = now()
        from t
       where d.organization_id = t.organization_id and d.event_id = t.event_id and d.endpoint_id = t.endpoint_id
      returning d.event_id`
    await refreshEvents(tx, q.organizationId, rows.map(r => r.event_id))
    return rows.length
  })
}

/**
 * Replay `missed`: deliveries to the endpoint for the organization's events created in [since, until)
 * that match its current filter and have none to it (a new endpoint, a widened filter, time spent
 * disabled), oldest first, at most 10,000. Returns how many were created.
 */
export async function replayMissed (sql: Sql, orgId: string, endpointId: string, since: Date, until: Date | null): Promise<number> {
  return await sql.begin(async tx => {
    const rows = await tx<{ event_id: string }[]>`
      insert into deliveries (organization_id, event_id, endpoint_id, trigger, next_attempt_at, created_at, updated_at)
      select e.organization_id, e.id, ep.id, 'replay', case when ep.status = 'active' then least(e.created_at, now()) end, e.created_at, now()
        from endpoints ep
        join events e on e.organization_id = ep.organization_id
       where ep.organization_id = ${orgId} and ep.id = ${endpointId} and ep.status <> 'disabled'
         and e.created_at >= ${since} and (${until}::timestamptz is null or e.created_at < ${until}::timestamptz)
         and triggers_type_matches(ep.event_types, e.type)
         and not exists (select 1 from deliveries d
                          where d.organization_id = e.organization_id and d.event_id = e.id and d.endpoint_id = ep.id)
       order by e.created_at, e.id
       limit ${REPLAY_MAX}
      on conflict do nothing
      returning event_id`
    await refreshEvents(tx, orgId, rows.map(r => r.event_id))
    return rows.length
  })
}

/**
 * Safety sweeps, run every few seconds by the delivery thread; each closes a race the routes cannot
 * close alone, and looks only at endpoints changed in the last `windowMs`, and only at rows created
 * within a minute of the change, so it stays cheap however large the endpoint's backlog (without that
 * bound it read every pending event or delivery of the endpoint every few seconds: under a saturating
 * fan-out ingest, statements of seconds each):
 *   - backfill: an event committed just after an endpoint's `deliver_pending` backfill read the
 *     events (its ingest statement began before the endpoint existed) gets its delivery; such an
 *     event's created_at (the writer's clock, taken before its statement) is before the endpoint's
 *     commit, so within a minute of `backfill_since` (the minute covers clock skew between nodes);
 *   - unhold: a delivery held by an ingest statement that read its endpoint as paused just before it
 *     was resumed becomes due; likewise created within a minute of the resume (`updated_at`). A
 *     further change of the endpoint more than a minute later moves that window: by then sweeps,
 *     every few seconds on every delivering node, have had a minute to see the held rows.
 * Returns how many deliveries were created or scheduled (at most one chunk each per call).
 */
export async function sweepEndpoints (sql: Sql, windowMs: number): Promise<number> {
  const [row] = await sql<{ backfilled: number, unheld: number }[]>`
    with recent as (
      select organization_id, id, event_types, status, backfill_since, updated_at from endpoints
       where updated_at > now() - ${windowMs} * interval '1 millisecond' and status <> 'disabled'
    ), backfilled as (
      insert into deliveries (organization_id, event_id, endpoint_id, next_attempt_at, created_at, updated_at)
      select e.organization_id, e.id, r.id, case when r.status = 'active' then now() end, e.created_at, now()
        from recent r
        join events e on e.organization_id = r.organization_id
       where r.backfill_since is not null and r.backfill_since > now() - ${windowMs} * interval '1 millisecond'
         and e.created_at >= r.backfill_since - interval '1 minute'
         and e.created_at < r.backfill_since + interval '1 minute'
         and e.status = 'pending' and e.status <> 'delivered' and e.acknowledged_at is null
         and triggers_type_matches(r.event_types, e.type)
         and not exists (select 1 from deliveries d
                          where d.organization_id = e.organization_id and d.event_id = e.id and d.endpoint_id = r.id)
       limit ${SWEEP_CHUNK}
      on conflict do nothing
      returning 1
    ), unheld as (
      update deliveries d set next_attempt_at = least(d.created_at, now()), rate_reserved = false
        from (select d2.organization_id, d2.event_id, d2.endpoint_id
                from recent r
                join deliveries d2 on d2.organization_id = r.organization_id and d2.endpoint_id = r.id
               where r.status = 'active' and d2.status in ('pending', 'failed') and d2.next_attempt_at is null
                 and d2.created_at >= r.updated_at - interval '1 minute' and d2.created_at < r.updated_at + interval '1 minute'
               limit ${SWEEP_CHUNK}) t
       where d.organization_id = t.organization_id and d.event_id = t.event_id and d.endpoint_id = t.endpoint_id
         and d.next_attempt_at is null and d.status in ('pending', 'failed')
      returning 1
    )
    select (select count(*) from backfilled)::int as backfilled, (select count(*) from unheld)::int as unheld`
  return (row?.backfilled ?? 0) + (row?.unheld ?? 0)
}
