/**
 * An in-memory LeaseStore with the semantics of db/queries/lease-rate-windows.ts (grant computed by
 * `sliceGrant` under the "row lock", holders counted per window, the previous window's holders, or
 * COLD_HOLDERS, as a floor), for unit tests of the node side of the rate limits: several Limiter
 * instances with tables of their own are several nodes sharing one "database". `delay` runs before each lease is decided (to
 * interleave requests with leases in flight); `fail` makes leases reject.
 */
import type { LeaseParams, LeaseRow, LeaseStore, RateTable } from '../../src/rate-limit/lease-store.ts'
import { sliceGrant } from '../../src/rate-limit/slice.ts'

interface Row { leased: number, holders: number, holdersBefore: number }

export class MemoryLeases implements LeaseStore {
  readonly rows = new Map<string, Row>()
  /** Organization numbers that exist (leases for others return null); null: every number exists. */
  known: Set<number> | null = null
  leases = 0
  delay: () => Promise<void> = async () => {}
  fail: unknown = null

  #key (table: RateTable, id: number, window: number): string { return `${table}:${id}:${window}` }

  row (table: RateTable, id: number, window: number): Row | undefined {
    return this.rows.get(this.#key(table, id, window))
  }

  /** Pretends `holders` nodes leased in the window before `window` (a warm key). */
  warm (table: RateTable, id: number, window: number, holders: number): void {
    this.rows.set(this.#key(table, id, window - 1), { leased: 0, holders, holdersBefore: 0 })
  }

  lease = async (p: LeaseParams): Promise<LeaseRow | null> => {
    this.leases++
    await this.delay()
    if (this.fail !== null) throw this.fail
    if (p.table === 'org' && this.known !== null && !this.known.has(p.id)) return null
    const k = this.#key(p.table, p.id, p.window)
    let row = this.rows.get(k)
    if (row === undefined) {
      row = { leased: 0, holders: 0, holdersBefore: (this.row(p.table, p.id, p.window - 1)?.holders ?? 0) || p.coldHolders }
      this.rows.set(k, row)
    }
    row.holders += p.first ? 1 : 0
    const granted = sliceGrant(p.limit - row.leased, Math.max(row.holders, row.holdersBefore), p.need, p.divisor, p.minSlice)
    row.leased += granted
    return { granted, leased: row.leased, holders: row.holders }
  }

  giveBack = async (table: RateTable, window: number, ids: readonly number[], counts: readonly number[], holders: readonly number[]): Promise<number> => {
    let n = 0
    ids.forEach((id, i) => {
      const row = this.row(table, id, window)
      if (row === undefined) return
      row.leased = Math.max(0, row.leased - (counts[i] ?? 0))
      row.holders = Math.max(0, row.holders - (holders[i] ?? 0))
      n++
    })
    return n
  }
}
