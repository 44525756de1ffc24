/**
 * Claiming due deliveries (delivery thread). One statement picks the oldest due events with
 * `FOR UPDATE SKIP LOCKED` and, in the same statement, either parks them or leases them:
 *
 *   cand    the oldest due rows (next_attempt_at <= now()), skipping rows another claimer holds and
 *           organizations whose endpoint this node cannot take anything for right now (full or broken)
 *   picked  per webhook origin at most what that origin can take now on this node (`capOrigins`, else
 *           `perOrigin`), so a batch never holds more attempts for one receiver than it can start or
 *           queue, however many organizations share it, and one origin's backlog cannot fill a batch
 *           that others need (the rest stay untouched and are unlocked at commit); rows without a URL
 *           are grouped per organization
 *   parked  no webhook URL (or no longer pending/failed): next_attempt_at = NULL until a URL is set
 *   claimed next_attempt_at = now() + lease, attempts + 1, series_attempt + 1
 *
 * The origin is computed as `<scheme>//<host[:port]>` from the stored URL, which equals WHATWG
 * `URL.origin` (what the scheduler keys endpoints by) for the normalized URLs checkWebhookUrl stores;
 * for anything else the cap is only approximate, and the scheduler's per-endpoint gate still holds.
 *
 * The lease must cover the attempt's wait for an endpoint slot plus the attempt itself (the scheduler
 * chooses it). Because the lease moves next_attempt_at into the future in the same statement that locked
 * the row, no other claimer (on any node) can see the row as due until the lease expires or the result
 * is written: each attempt is handed to exactly one worker.
 */
import type { Sql } from '../client.ts'

/** One leased attempt (fixed shape, STYLE C7). `secrets` holds the current secret first, then a still-valid previous one. */
export class ClaimedDelivery {
  readonly organizationId: string
  readonly id: string
  readonly type: string
  /** The stored payload JSON text, spliced into the body as is. */
  readonly payload: string
  readonly createdAt: Date
  /** attempts after this claim: the X-Delivery-Attempt value and the guard for writing the result. */
  readonly attempts: number
  /** 1-based index of this attempt in the current retry series. */
  readonly seriesAttempt: number
  readonly webhookUrl: string
  readonly secrets: readonly string[]

  constructor (row: ClaimRow) {
    this.organizationId = row.organization_id
    this.id = row.id
    this.type = row.type
    this.payload = row.payload
    this.createdAt = row.created_at
    this.attempts = row.attempts
    this.seriesAttempt = row.series_attempt
    this.webhookUrl = row.webhook_url
    const secrets: string[] = []
    if (row.signing_secret !== null) secrets.push(row.signing_secret)
    if (row.previous_secret !== null) secrets.push(row.previous_secret)
    this.secrets = secrets
  }
}

interface ClaimRow {
  organization_id: string
  id: string
  type: string
  payload: string
  created_at: Date
  attempts: number
  series_attempt: number
  webhook_url: string
  signing_secret: string | null
  previous_secret: string | null
}

export interface ClaimOptions {
  /** Most attempts to lease. */
  readonly limit: number
  /** Most attempts for one webhook origin in this batch, unless `capOrigins` lists it. */
  readonly perOrigin: number
  readonly leaseMs: number
  /** Organizations not to claim for at all (their endpoint has no room on this node; bounded by the caller). */
  readonly excludedOrgs: readonly string[]
  /** Origins with less room than `perOrigin` on this node, and that room (bounded by the caller). */
  readonly capOrigins: readonly string[]
  readonly capRooms: readonly number[]
}

/** Leases up to `limit` due attempts (and parks due events that have nowhere to go). */
export async function claimDeliveries (sql: Sql, o: ClaimOptions): Promise<ClaimedDelivery[]> {
  // Candidates are over-fetched 4x so the per-origin cap can still fill the batch from others.
  const rows = await sql<ClaimRow[]>`
    with cand as (
      select e.organization_id, e.id, e.next_attempt_at, e.status, o.webhook_url, o.signing_secret,
             case when o.previous_secret_expires_at > now() then o.previous_signing_secret end as previous_secret,
             coalesce(split_part(o.webhook_url, '/', 1) || '//' || split_part(o.webhook_url, '/', 3),
                      e.organization_id::text) as grp
        from events e
        left join organizations o on o.id = e.organization_id
       where e.next_attempt_at <= now()
         and e.organization_id <> all(${sql.array([...o.excludedOrgs])}::uuid[])
       order by e.next_attempt_at
       limit ${o.limit * 4}
         for update of e skip locked
    ), picked as (
      select r.* from (
        select c.*, row_number() over (partition by c.grp order by c.next_attempt_at) as rn from cand c
      ) r
      left join unnest(${sql.array([...o.capOrigins])}::text[], ${sql.array([...o.capRooms])}::int[])
             as cap(origin, room) on cap.origin = r.grp
       where r.rn <= coalesce(cap.room, ${o.perOrigin})
       order by r.next_attempt_at
       limit ${o.limit}
    ), parked as (
      update events e set next_attempt_at = null
        from picked p
       where e.organization_id = p.organization_id and e.id = p.id
         and (p.webhook_url is null or p.status not in ('pending', 'failed'))
      returning e.id
    )
    update events e
       set next_attempt_at = now() + ${o.leaseMs} * interval '1 millisecond',
           attempts = e.attempts + 1,
           series_attempt = e.series_attempt + 1
      from picked p
     where e.organization_id = p.organization_id and e.id = p.id
       and p.webhook_url is not null and p.status in ('pending', 'failed')
    returning e.organization_id, e.id, e.type, e.payload::text as payload, e.created_at, e.attempts,
              e.series_attempt, p.webhook_url, p.signing_secret, p.previous_secret`
  const out: ClaimedDelivery[] = []
  for (const r of rows) out.push(new ClaimedDelivery(r))
  return out
}

/**
 * The earliest scheduled attempt (including other workers' leases), or null when nothing is scheduled.
 * Reads the first entry of the events_due partial index; used to wake precisely instead of polling.
 */
export async function nextDueAt (sql: Sql): Promise<Date | null> {
  const [row] = await sql<{ at: Date | null }[]>`select min(next_attempt_at) as at from events where next_attempt_at is not null`
  return row?.at ?? null
}
