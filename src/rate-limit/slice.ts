/**
 * The slice arithmetic of cross-node rate limits (pure; any thread). A node leases tokens of a
 * window from PostgreSQL; the database computes each grant with `rate_window_grant`
 * (sql/0004_rate_windows.sql), and `sliceGrant` is the same function for the node's own reasoning and
 * for tests (test/integration/rate-limit-lease.test.ts checks that the two agree).
 *
 *   remaining R = limit − leased (by every node), holders H = nodes leasing in this window (at least
 *   the previous window's count), need = tokens the waiting request needs now (0 for a refill)
 *
 *   grant = 0                       when R < need          (all or nothing: nothing is taken)
 *         = max(need, ⌊R / (4·H)⌋)  when ⌊R / (4·H)⌋ ≥ 2   (a slice: the surplus is kept for later)
 *         = need                    otherwise              (the tail: exactly what is needed)
 *
 * Why 4·H: a node never holds more than a quarter of its fair share of what is left, so while the
 * others spend at the same pace it has spent its slice (and leased a smaller one) before the window
 * runs dry; in the tail (R < 8·H) no node holds anything unspent. A client spreading its requests over
 * the nodes therefore meets its first 429 within a few tokens of the limit (test/unit/rate-slice.test.ts
 * simulates 1–8 nodes: ≥ 99 % with the previous window's holders known, ≥ 95 % for up to three nodes
 * in an organization's very first window). One node alone takes a quarter of the remainder per lease:
 * about 19 leases for 100 tokens, 43 for 100,000 in a fully used window.
 */

/** A slice is the remainder divided by SLICE_DIVISOR × holders. */
export const SLICE_DIVISOR = 4
/** Smaller slices are not handed out: below this the node leases exactly what a request needs. */
export const MIN_SLICE = 2
/**
 * Holders assumed for a window whose key was idle in the previous one (nothing known about who will
 * spend): small first slices, so that a node that happens to lease first does not sit on a quarter of
 * the budget while the others join.
 */
export const COLD_HOLDERS = 4
/** `minSlice` for a lease that must bring exactly `need` (a node that cannot hold tokens). */
export const NO_SLICE = 0x3fffffff

export function sliceGrant (remaining: number, holders: number, need: number, divisor = SLICE_DIVISOR, minSlice = MIN_SLICE): number {
  if (remaining < need) return 0
  const slice = Math.floor(remaining / (divisor * Math.max(holders, 1)))
  return slice >= minSlice ? Math.max(need, slice) : need
}

/**
 * When to lease the next slice ahead of need: once fewer than half of the latest slice's surplus are
 * left unspent on the node. A grant without surplus (the tail) sets no refill.
 */
export function refillBelow (granted: number, need: number): number {
  const surplus = granted - need
  return surplus >= MIN_SLICE ? Math.floor(surplus / 2) : 0
}
