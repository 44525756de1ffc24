/**
 * Claiming due deliveries (delivery thread). One statement picks the oldest due events with
 * `FOR UPDATE SKIP LOCKED` and, in the same statement, either parks them or leases them:
 *
 *   cand    the oldest due rows (next_attempt_at <= now()), skipping rows another claimer holds and
 *           organizations this node is not admitting right now (busy or broken endpoints)
 *   picked  per organization at most what its endpoint can take now (or `perOrg`), so one
 *           organization's backlog cannot fill a batch that other organizations need (the rest stay
 *           untouched and are unlocked at commit)
 *   parked  no webhook URL (or no longer pending/failed): next_attempt_at = NULL until a URL is set
 *   claimed next_attempt_at = now() + lease, attempts + 1, series_attempt + 1
 *
 * The lease is the attempt timeout plus a margin: an attempt lost with its node becomes due again by
 * itself. Because the lease moves next_attempt_at into the future in the same statement that locked
 * the row, no other claimer (on any node) can see the row as due until the lease expires or the
 * result is written: each attempt is handed to exactly one worker.
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
  /** Most attempts of one organization in this batch. */
  readonly perOrg: number
  readonly leaseMs: number
  /**
   * Per-organization room left on this node (bounded by the caller): organizations with 0 are not
   * claimed at all, others get at most their number instead of `perOrg`.
   */
  readonly capOrgs: readonly string[]
  readonly capRemaining: readonly number[]
}

/** Leases up to `limit` due attempts (and parks due events that have nowhere to go). */
export async function claimDeliveries (sql: Sql, o: ClaimOptions): Promise<ClaimedDelivery[]> {
  // Candidates are over-fetched 4x so the per-organization cap can still fill the batch from others.
  const excluded: string[] = []
  for (let i = 0; i < o.capOrgs.length; i++) if (o.capRemaining[i] === 0) excluded.push(o.capOrgs[i]!)
  const rows = await sql<ClaimRow[]>`
    with cand as (
      select e.organization_id, e.id, e.next_attempt_at, e.status, o.webhook_url, o.signing_secret,
             case when o.previous_secret_expires_at > now() then o.previous_signing_secret end as previous_secret
        from events e
        left join organizations o on o.id = e.organization_id
       where e.next_attempt_at <= now()
         and e.organization_id <> all(${sql.array(excluded)}::uuid[])
       order by e.next_attempt_at
       limit ${o.limit * 4}
         for update of e skip locked
    ), picked as (
      select r.* from (
        select c.*, row_number() over (partition by c.organization_id order by c.next_attempt_at) as rn from cand c
      ) r
      left join unnest(${sql.array([...o.capOrgs])}::uuid[], ${sql.array([...o.capRemaining])}::int[])
             as cap(organization_id, remaining) on cap.organization_id = r.organization_id
       where r.rn <= coalesce(cap.remaining, ${o.perOrg})
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
