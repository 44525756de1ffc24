/**
 * Where a node leases rate-limit tokens from: the database shared by every node
 * (db/queries/lease-rate-windows.ts), or anything else with the same two operations (tests and the
 * micro-benchmark use an in-memory store). Listener threads only.
 */
import type { Sql } from '../db/client.ts'
import { giveBack, leaseWindow, type LeaseParams, type LeaseRow, type RateTable } from '../db/queries/lease-rate-windows.ts'

export type { LeaseParams, LeaseRow, RateTable }

export interface LeaseStore {
  /** One lease of `p.window`; null when the key does not exist (an unknown organization). */
  lease: (p: LeaseParams) => Promise<LeaseRow | null>
  /** Gives back unspent tokens and holder registrations of one window. */
  giveBack: (table: RateTable, window: number, ids: readonly number[], counts: readonly number[], holders: readonly number[]) => Promise<number>
}

export function databaseLeases (sql: Sql): LeaseStore {
  return {
    lease: async p => await leaseWindow(sql, p),
    giveBack: async (table, window, ids, counts, holders) => await giveBack(sql, table, window, ids, counts, holders),
  }
}
