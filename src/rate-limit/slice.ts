/**
 * The slice arithmetic of cross-node rate limits (pure; any thread). A node leases tokens of a
 * window from PostgreSQL; the database computes each grant with `rate_window_grant`
 * (sql/0004_rate_windows.sql), and `sliceGrant` is the same function for the node's own reasoning and
 * for tests (test/integration/rate-limit-lease.test.ts checks that the two agree).
 *
 *   R = limit − leased (by every node); H = nodes that leased in this window, at least the previous
 *   window's count, or COLD_HOLDERS when the key was idle then; need = tokens the waiting request
 *   needs now (0 for a refill ahead of need)
 *
 *   grant = 0                       when R < need          (all or nothing: nothing is taken)
 *         = max(need, ⌊R / (4·H)⌋)  when ⌊R / (4·H)⌋ ≥ 2   (a slice: the surplus is spent later)
 *         = need                    otherwise              (the tail: exactly what is needed)
 *
 * Why 4·H: a node never takes more than a quarter of its fair share of what is left, so while the
 * others spend at about the same pace it has spent its slice (and leased a smaller one) before the
 * window runs dry; in the tail (R < 8·H) nobody takes tokens it does not spend at once. A client
 * spreading its requests over the nodes therefore meets its first 429 within a few tokens of the
 * limit: test/unit/rate-slice.test.ts simulates 1–8 nodes, round robin and at random, and asserts
 * ≥ 95 % (they all reach 100 %). Why COLD_HOLDERS: with nothing known, the node that happens to lease
 * first would otherwise take R/4 and sit on it while up to 8 nodes join (≈ 86 % measured with 8).
 * Refills are leased once fewer than half of the latest slice's surplus is unspent (`refillBelow`).
 * One node alone spends a fully used window of 100,000 tokens in 42 leases (161 in a key's first
 * active minute).
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
