/**
 * The slice arithmetic of cross-node rate limits (src/rate-limit/slice.ts), and what it is for, checked
 * on real Limiter instances: several "nodes" (each with shared-memory tables of its own) leasing from
 * one in-memory store with the database's semantics, and a client spreading its requests over them
 * one after the other (round robin, or at random with a fixed seed). Whatever the spread, no window
 * admits more than the limit; spread evenly, the first 429 comes after at least 95 % of it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { COLD_HOLDERS, MIN_SLICE, NO_SLICE, SLICE_DIVISOR, refillBelow, sliceGrant } from '../../src/rate-limit/slice.ts'
import { Decision, Limiter, WINDOW_MS } from '../../src/rate-limit/limiter.ts'
import { allocateWindows } from '../../src/rate-limit/shared-window.ts'
import { coarseClock } from '../../src/lib/coarse-clock.ts'
import { MemoryLeases } from '../helpers/memory-leases.ts'

test('sliceGrant: all or nothing for the need, a slice of remaining / (4 × holders), exact in the tail', () => {
  assert.equal(SLICE_DIVISOR, 4)
  assert.equal(MIN_SLICE, 2)
  // [remaining, holders, need] → grant
  const cases: Array<[number, number, number, number]> = [
    [100, 1, 1, 25], // one node: a quarter of what is left
    [100, 2, 1, 12], // two: an eighth
    [100, 0, 1, 25], // no holder yet counts as one
    [75, 1, 0, 18], // a refill (need 0) takes a slice too
    [100, 1, 40, 40], // a batch larger than the slice gets exactly its need…
    [100, 1, 100, 100], // …up to everything that is left
    [100, 1, 101, 0], // more than is left: nothing
    [0, 1, 1, 0],
    [7, 1, 1, 1], // the tail: ⌊7 / 4⌋ = 1 < MIN_SLICE, exactly the need
    [7, 1, 0, 0], // and no refill there
    [8, 1, 1, 2], // ⌊8 / 4⌋ = 2 is a slice again
    [15, 2, 1, 1], // two holders: the tail is below 16
    [16, 2, 3, 3],
    [16, 2, 1, 2],
    [-5, 1, 0, 0], // over the limit (it was lowered): nothing, not a negative grant
  ]
  for (const [remaining, holders, need, want] of cases) {
    assert.equal(sliceGrant(remaining, holders, need), want, `sliceGrant(${remaining}, ${holders}, ${need})`)
  }
  // NO_SLICE: exactly the need, for a node that cannot hold tokens.
  assert.equal(sliceGrant(100_000, 1, 3, SLICE_DIVISOR, NO_SLICE), 3)
  assert.equal(sliceGrant(2, 1, 3, SLICE_DIVISOR, NO_SLICE), 0)
})

test('refillBelow: half the surplus of the latest grant; none after a grant without surplus', () => {
  assert.equal(refillBelow(25, 1), 12)
  assert.equal(refillBelow(18, 0), 9)
  assert.equal(refillBelow(40, 40), 0)
  assert.equal(refillBelow(2, 0), 1)
  assert.equal(refillBelow(2, 1), 0)
  assert.equal(refillBelow(0, 0), 0)
})

/** A deterministic generator in [0, 1) (LCG), so a failure can be replayed. */
function seeded (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 }
}

interface Spread {
  readonly limit: number
  readonly nodes: number
  /** The node that gets request i. */
  readonly pick: (i: number) => number
  /** The key was spent on by every node in the previous window (its holders are known). */
  readonly warm?: boolean
  /** Event-loop turns each lease takes (refills land that many requests later). */
  readonly lag?: number
}

/** Sends 1.5 × limit requests one after the other; counts the 201s before the first 429 and in all. */
async function spread (o: Spread): Promise<{ beforeFirst: number, total: number, leases: number, leased: number }> {
  const store = new MemoryLeases()
  const lag = o.lag ?? 0
  store.delay = async () => { for (let i = 0; i < lag; i++) await new Promise(resolve => setImmediate(resolve)) }
  const window = Math.floor(coarseClock.now() / WINDOW_MS)
  if (o.warm === true) store.warm('org', 1, window, o.nodes)
  const nodes = Array.from({ length: o.nodes }, () => new Limiter(allocateWindows(16), allocateWindows(16), store, err => { throw err }))
  const out = new Decision()
  let beforeFirst = -1
  let total = 0
  for (let i = 0; i < o.limit * 1.5; i++) {
    const r = nodes[o.pick(i)]!.organization(1, o.limit, out)
    const d = r instanceof Decision ? r : await r
    if (d.allowed) total++
    else if (beforeFirst < 0) beforeFirst = total
    assert.ok(d.remaining >= 0)
    // The next request arrives a turn later: refills in flight progress meanwhile.
    await new Promise(resolve => setImmediate(resolve))
  }
  return { beforeFirst, total, leases: store.leases, leased: store.row('org', 1, window)?.leased ?? 0 }
}

function check (what: string, r: { beforeFirst: number, total: number, leased: number }, limit: number): void {
  assert.ok(r.total <= limit, `${what}: ${r.total} admitted, limit ${limit}`)
  assert.ok(r.leased <= limit, `${what}: ${r.leased} leased`)
  assert.ok(r.beforeFirst >= Math.ceil(limit * 0.95), `${what}: first 429 after ${r.beforeFirst} of ${limit}`)
}

/** Leases to spend a whole window alone with `holders` assumed: slices of R / (4·holders), then the exact tail. */
function leasesFor (limit: number, holders: number): number {
  const kh = SLICE_DIVISOR * holders
  const tail = MIN_SLICE * kh
  return Math.ceil(Math.log(Math.max(limit, tail) / tail) / Math.log(kh / (kh - 1))) + tail
}

test('one node: exactly the limit, with few leases per window', async () => {
  for (const limit of [1, 10, 100, 1000, 100_000]) {
    // A key idle in the previous window: COLD_HOLDERS assumed (161 leases for 100,000); a warm one: its
    // previous holder alone (42 for 100,000).
    for (const warm of [false, true]) {
      const r = await spread({ limit, nodes: 1, warm, pick: () => 0 })
      assert.equal(r.beforeFirst, limit)
      assert.equal(r.total, limit)
      assert.equal(r.leased, limit)
      const bound = leasesFor(limit, warm ? 1 : COLD_HOLDERS) + 5
      assert.ok(r.leases <= bound, `limit ${limit}, ${warm ? 'warm' : 'cold'}: ${r.leases} leases, expected at most ${bound}`)
    }
  }
})

test('nodes in a key\'s first window, round robin: ≥ 95 % before the first 429, never more than the limit', async () => {
  for (const nodes of [2, 3, 5, 8]) {
    for (const limit of [10, 20, 100, 1000]) {
      check(`${nodes} nodes, limit ${limit}`, await spread({ limit, nodes, pick: i => i % nodes }), limit)
    }
  }
})

test('2 and 5 nodes, requests spread at random (10 seeds each)', async () => {
  for (const nodes of [2, 5]) {
    for (const limit of [20, 100, 1000]) {
      for (let seed = 1; seed <= 10; seed++) {
        const r = seeded(seed)
        check(`${nodes} nodes, limit ${limit}, seed ${seed}`, await spread({ limit, nodes, pick: () => Math.floor(r() * nodes) }), limit)
      }
    }
  }
})

test('up to 8 nodes that spent on the key in the previous window, round robin and at random', async () => {
  for (const nodes of [5, 8]) {
    for (const limit of [100, 1000]) {
      check(`${nodes} nodes, limit ${limit}`, await spread({ limit, nodes, warm: true, pick: i => i % nodes }), limit)
      const r = seeded(nodes * limit)
      check(`${nodes} nodes, limit ${limit}, random`, await spread({ limit, nodes, warm: true, pick: () => Math.floor(r() * nodes) }), limit)
    }
  }
})

test('refills that land several requests late change nothing', async () => {
  for (const lag of [2, 5]) {
    check(`lag ${lag}`, await spread({ limit: 1000, nodes: 2, lag, pick: i => i % 2 }), 1000)
  }
})

test('however unevenly the requests are spread, never more than the limit', async () => {
  const r = seeded(99)
  const skewed = await spread({ limit: 100, nodes: 3, pick: () => (r() < 0.8 ? 0 : r() < 0.5 ? 1 : 2) })
  assert.ok(skewed.total <= 100)
  const one = await spread({ limit: 100, nodes: 3, pick: i => (i < 60 ? 1 : 2) })
  assert.ok(one.total <= 100)
})
