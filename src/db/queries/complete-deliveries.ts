/**
 * Writing attempt results back (delivery thread), batched: one `unnest` UPDATE per batch.
 *
 * Every write is guarded `attempts = <attempts at claim> AND status <> 'delivered'`:
 *   - an ack (status 'delivered') that lands while an attempt is in flight wins: the result is dropped;
 *   - a worker whose lease expired while its attempt hung cannot overwrite the newer attempt another
 *     worker claimed meanwhile (that claim incremented attempts).
 * Rows the guard drops are simply not updated; the count of written rows is returned for logging.
 */
import type { Sql } from '../client.ts'

export type CompletionStatus = 'delivered' | 'failed' | 'dead_letter'

/** One attempt result to write (fixed shape, STYLE C7). */
export class Completion {
  readonly organizationId: string
  readonly id: string
  /** The attempts value the claim returned (the guard). */
  readonly attempts: number
  readonly status: CompletionStatus
  /** Milliseconds until the next attempt for 'failed'; ignored otherwise. */
  readonly delayMs: number
  /** HTTP status of the response, or null when none arrived. */
  readonly responseStatus: number | null
  readonly lastError: string | null

  constructor (organizationId: string, id: string, attempts: number, status: CompletionStatus, delayMs: number, responseStatus: number | null, lastError: string | null) {
    this.organizationId = organizationId
    this.id = id
    this.attempts = attempts
    this.status = status
    this.delayMs = delayMs
    this.responseStatus = responseStatus
    this.lastError = lastError
  }
}

/**
 * A claimed attempt handed back without a result: deferred before it started (the endpoint is busy or
 * its breaker is open; `revertAttempt` undoes the claim's attempts + 1), or cut short at shutdown
 * (`revertAttempt` false: the request may have reached the receiver, so its number is not reused).
 * Either way the series position is given back, so deferrals never shorten the retry schedule.
 */
export class Release {
  readonly organizationId: string
  readonly id: string
  readonly attempts: number
  readonly revertAttempt: boolean
  readonly delayMs: number
  readonly lastError: string | null

  constructor (organizationId: string, id: string, attempts: number, revertAttempt: boolean, delayMs: number, lastError: string | null) {
    this.organizationId = organizationId
    this.id = id
    this.attempts = attempts
    this.revertAttempt = revertAttempt
    this.delayMs = delayMs
    this.lastError = lastError
  }
}

/** Writes a batch of results; returns how many rows the guard let through. */
export async function completeDeliveries (sql: Sql, batch: readonly Completion[]): Promise<number> {
  if (batch.length === 0) return 0
  const n = batch.length
  const orgs: string[] = new Array<string>(n)
  const ids: string[] = new Array<string>(n)
  const attempts: number[] = new Array<number>(n)
  const statuses: string[] = new Array<string>(n)
  const delays: number[] = new Array<number>(n)
  const codes: (number | null)[] = new Array<number | null>(n)
  const errors: (string | null)[] = new Array<string | null>(n)
  for (let i = 0; i < n; i++) {
    const c = batch[i]!
    orgs[i] = c.organizationId
    ids[i] = c.id
    attempts[i] = c.attempts
    statuses[i] = c.status
    delays[i] = Math.max(0, Math.round(c.delayMs))
    codes[i] = c.responseStatus
    errors[i] = c.lastError
  }
  const rows = await sql<{ id: string }[]>`
    update events e
       set status = r.status,
           next_attempt_at = case when r.status = 'failed' then now() + r.delay_ms * interval '1 millisecond' end,
           delivered_at = case when r.status = 'delivered' then now() else e.delivered_at end,
           response_status = r.response_status,
           last_error = case when r.status = 'delivered' then null else r.last_error end,
           updated_at = now()
      from unnest(${sql.array(orgs)}::uuid[], ${sql.array(ids)}::uuid[], ${sql.array(attempts)}::int[],
                  ${sql.array(statuses)}::text[], ${sql.array(delays)}::int[], ${sql.array(codes)}::int[],
                  ${sql.array(errors)}::text[])
           as r(organization_id, id, attempts, status, delay_ms, response_status, last_error)
     where e.organization_id = r.organization_id and e.id = r.id
       and e.attempts = r.attempts and e.status <> 'delivered'
    returning e.id`
  return rows.length
}

/** Hands claimed attempts back (see Release); returns how many rows the guard let through. */
export async function releaseDeliveries (sql: Sql, batch: readonly Release[]): Promise<number> {
  if (batch.length === 0) return 0
  const n = batch.length
  const orgs: string[] = new Array<string>(n)
  const ids: string[] = new Array<string>(n)
  const attempts: number[] = new Array<number>(n)
  const reverts: number[] = new Array<number>(n)
  const delays: number[] = new Array<number>(n)
  const errors: (string | null)[] = new Array<string | null>(n)
  for (let i = 0; i < n; i++) {
    const r = batch[i]!
    orgs[i] = r.organizationId
    ids[i] = r.id
    attempts[i] = r.attempts
    reverts[i] = r.revertAttempt ? 1 : 0
    delays[i] = Math.max(0, Math.round(r.delayMs))
    errors[i] = r.lastError
  }
  const rows = await sql<{ id: string }[]>`
    update events e
       set attempts = e.attempts - r.revert,
           series_attempt = greatest(e.series_attempt - 1, 0),
           next_attempt_at = now() + r.delay_ms * interval '1 millisecond',
           last_error = coalesce(r.last_error, e.last_error),
           updated_at = case when r.revert = 1 then e.updated_at else now() end
      from unnest(${sql.array(orgs)}::uuid[], ${sql.array(ids)}::uuid[], ${sql.array(attempts)}::int[],
                  ${sql.array(reverts)}::int[], ${sql.array(delays)}::int[], ${sql.array(errors)}::text[])
           as r(organization_id, id, attempts, revert, delay_ms, last_error)
     where e.organization_id = r.organization_id and e.id = r.id
       and e.attempts = r.attempts and e.status <> 'delivered'
    returning e.id`
  return rows.length
}
