/**
 * Rate-limit window leases (sql/0004_rate_windows.sql; the node side is src/rate-limit/). `leaseWindow`
 * hands a node tokens of a key's current clock-minute window in one statement: it registers the node
 * as a holder on its first lease of the window, computes the grant from the remainder under the row's
 * lock (`rate_window_grant`: all or nothing for `need`, plus a slice that shrinks with the remainder),
 * and deletes a few rows of windows that ended more than a minute ago (SKIP LOCKED: never waits on
 * another node's purge). `giveBack` takes back what a stopping node did not spend.
 *
 * Organizations are keyed by `org_no` here (the id the node-local table uses) and stored under their
 * organization_id; client addresses by their 31-bit hash (`ip_key`). Windows are minutes since the
 * epoch (`window_start` = to_timestamp(window × 60)).
 */
import type { Sql } from '../client.ts'

export type RateTable = 'org' | 'ip'

export interface LeaseParams {
  readonly table: RateTable
  /** org_no, or the client address's ip_key. */
  readonly id: number
  /** Minutes since the epoch. */
  readonly window: number
  readonly limit: number
  /** Tokens the caller needs now: granted in full or not at all. */
  readonly need: number
  /** This node's first lease of the window: count it as a holder. */
  readonly first: boolean
  /** A slice is remaining / (divisor × holders) … */
  readonly divisor: number
  /** … and handed out only when it is at least this large. */
  readonly minSlice: number
  /** Holders assumed for the window when the key had none in the previous one. */
  readonly coldHolders: number
}

export interface LeaseRow {
  /** Tokens this statement handed out (0: fewer than `need` remained, or no slice and need 0). */
  readonly granted: number
  /** Tokens leased by every node in the window, this grant included. */
  readonly leased: number
  readonly holders: number
}

/** Table, key column, and the key of the row for the parameter row `r` (its column `id`). */
function target (sql: Sql, table: RateTable) {
  return table === 'org'
    ? { t: sql('org_rate_windows'), k: sql('organization_id'), key: sql`(select o.id from organizations o where o.org_no = r.id)` }
    : { t: sql('ip_rate_windows'), k: sql('ip_key'), key: sql`r.id` }
}

/** One lease; null when the organization does not exist. */
export async function leaseWindow (sql: Sql, p: LeaseParams): Promise<LeaseRow | null> {
  const { t, k, key } = target(sql, p.table)
  const first = p.first ? 1 : 0
  const [row] = await sql<LeaseRow[]>`
    with purge as (
      delete from ${t} where ctid = any(array(
        select ctid from ${t} where window_start < to_timestamp((${p.window}::int - 1) * 60)
         limit 16 for update skip locked))
    )
    insert into ${t} as w (${k}, window_start, leased, holders, holders_before, last_grant)
    select c.key, to_timestamp(${p.window}::int * 60), g.n, ${first}::int, b.h, g.n
      from (select ${key} as key from (select ${p.id}::int as id) r) c
     cross join lateral (select coalesce(nullif((select prev.holders from ${t} prev
                                                   where prev.${k} = c.key
                                                     and prev.window_start = to_timestamp((${p.window}::int - 1) * 60)), 0),
                                         ${p.coldHolders}::int) as h) b
     cross join lateral (select rate_window_grant(${p.limit}::int, greatest(${first}::int, b.h), ${p.need}::int, ${p.divisor}::int, ${p.minSlice}::int) as n) g
     where c.key is not null
    on conflict (${k}, window_start) do update
       set holders = w.holders + excluded.holders,
           leased = w.leased + rate_window_grant(${p.limit}::int - w.leased, greatest(w.holders + excluded.holders, w.holders_before), ${p.need}::int, ${p.divisor}::int, ${p.minSlice}::int),
           last_grant = rate_window_grant(${p.limit}::int - w.leased, greatest(w.holders + excluded.holders, w.holders_before), ${p.need}::int, ${p.divisor}::int, ${p.minSlice}::int)
    returning last_grant as granted, leased, holders`
  return row ?? null
}

/**
 * Gives back unspent tokens of `window`: `counts[i]` for `ids[i]`, and `dropHolder[i]` (1 or 0) takes
 * that node off the window's holders. Returns the rows changed.
 */
export async function giveBack (sql: Sql, table: RateTable, window: number, ids: readonly number[], counts: readonly number[], dropHolder: readonly number[]): Promise<number> {
  const { t, k, key } = target(sql, table)
  const r = await sql`
    update ${t} as w
       set leased = greatest(0, w.leased - r.n), holders = greatest(0, w.holders - r.h)
      from (select unnest(${ids as number[]}::int[]) as id, unnest(${counts as number[]}::int[]) as n,
                   unnest(${dropHolder as number[]}::int[]) as h) r
     where w.${k} = ${key} and w.window_start = to_timestamp(${window}::int * 60)`
  return r.count
}
