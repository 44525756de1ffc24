/**
 * The Limiter (src/rate-limit/limiter.ts) against an in-memory lease store with the database's
 * semantics: the decision and its headers, N tokens all or nothing (also across nodes), concurrent
 * requests of one node sharing one lease, a key known to be out answered without the database,
 * giving unspent tokens back, a full node-local table, and a database that fails or does not answer.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Decision, Limiter, WINDOW_MS } from '../../src/rate-limit/limiter.ts'
import { allocateWindows } from '../../src/rate-limit/shared-window.ts'
import { coarseClock } from '../../src/lib/coarse-clock.ts'
import { ApiError } from '../../src/errors.ts'
import { MemoryLeases } from '../helpers/memory-leases.ts'

/** A node: its own shared-memory tables, leasing from `store`. */
function node (store: MemoryLeases, slots = 64, waitMs?: number): Limiter {
  return new Limiter(allocateWindows(slots), allocateWindows(slots), store, err => { throw err }, waitMs)
}

async function settle (r: Decision | Promise<Decision>): Promise<Decision> {
  return r instanceof Decision ? r : await r
}

/** Lets background refills land. */
async function turn (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

const WINDOW = Math.floor(coarseClock.now() / WINDOW_MS)

test('a decision: allowed, limit, remaining, the end of the clock minute, Retry-After ≥ 1', async () => {
  const l = node(new MemoryLeases())
  const first = l.organization(42, 5, new Decision())
  assert.ok(first instanceof Promise, 'the first request of a window waits for the first lease')
  const d = await first
  assert.equal(d.allowed, true)
  assert.equal(d.limit, 5)
  assert.equal(d.remaining, 4)
  assert.equal(d.reset, (WINDOW + 1) * 60)
  assert.ok(d.retryAfter >= 1 && d.retryAfter <= 60)
  const out = new Decision()
  for (let left = 3; left >= 0; left--) {
    const r = await settle(l.organization(42, 5, out))
    assert.equal(r.allowed, true)
    assert.equal(r.remaining, left)
  }
  const no = await settle(l.organization(42, 5, out))
  assert.equal(no.allowed, false)
  assert.equal(no.remaining, 0)
  assert.equal(no.reset % 60, 0)
  // Per-IP limits are a table of their own.
  assert.equal((await settle(l.clientIp('203.0.113.7', 1, out))).allowed, true)
  assert.equal((await settle(l.clientIp('203.0.113.7', 1, out))).allowed, false)
  assert.equal((await settle(l.clientIp('203.0.113.8', 1, out))).allowed, true)
})

test('one node: the hot path is synchronous once a slice is leased, and Remaining counts down exactly', async () => {
  const store = new MemoryLeases()
  store.warm('org', 7, WINDOW, 1)
  const l = node(store)
  const out = new Decision()
  const seen: number[] = []
  let sync = 0
  for (let i = 0; i < 1000; i++) {
    const r = l.organization(7, 1000, out)
    if (r instanceof Decision) sync++
    seen.push((await settle(r)).remaining)
    await turn()
  }
  assert.deepEqual(seen, Array.from({ length: 1000 }, (_, i) => 999 - i))
  // Refills run ahead of need: only the first request and the exact tail (under 8 left) waited.
  assert.ok(sync >= 990, `${sync} of 1000 answered synchronously`)
  assert.equal((await settle(l.organization(7, 1000, out))).allowed, false)
})

test('N tokens: all or nothing, and nothing is taken by a refusal', async () => {
  const l = node(new MemoryLeases())
  const out = new Decision()
  let d = await settle(l.organization(9, 10, out, 7))
  assert.deepEqual([d.allowed, d.remaining], [true, 3])
  d = await settle(l.organization(9, 10, out, 5))
  assert.deepEqual([d.allowed, d.remaining], [false, 3], 'five asked, three left: refused, and Remaining says three')
  d = await settle(l.organization(9, 10, out, 3))
  assert.deepEqual([d.allowed, d.remaining], [true, 0])
  d = await settle(l.organization(9, 10, out, 1))
  assert.deepEqual([d.allowed, d.remaining], [false, 0])
  // More than the limit can never pass.
  d = await settle(l.organization(10, 10, out, 11))
  assert.equal(d.allowed, false)
  assert.equal((await settle(l.organization(10, 10, out, 10))).allowed, true, 'and took nothing')
  assert.throws(() => l.organization(10, 10, out, 0), RangeError)
})

test('N tokens across two nodes: a batch is refused while the tokens it needs are spread over nodes, and takes nothing', async () => {
  const store = new MemoryLeases()
  const a = node(store)
  const b = node(store)
  const out = new Decision()
  assert.equal((await settle(a.organization(3, 100, out, 60))).allowed, true)
  assert.equal((await settle(b.organization(3, 100, out, 30))).allowed, true)
  // 10 are left in all (some may sit on a as an unspent slice): 11 is refused on either node…
  assert.equal((await settle(b.organization(3, 100, out, 11))).allowed, false)
  assert.equal((await settle(a.organization(3, 100, out, 11))).allowed, false)
  // …and 10 one-token requests still pass, spread over both.
  let passed = 0
  for (let i = 0; i < 20; i++) if ((await settle((i % 2 === 0 ? a : b).organization(3, 100, out))).allowed) passed++
  assert.equal(passed, 10)
  assert.equal(store.row('org', 3, WINDOW)?.leased, 100)
})

test('concurrent requests of one node share one lease at a time; exactly the limit passes', async () => {
  const store = new MemoryLeases()
  store.delay = async () => { await new Promise(resolve => setTimeout(resolve, 2)) }
  // Two "threads" of one node: two Limiters over the same shared-memory tables.
  const orgs = allocateWindows(64)
  const ips = allocateWindows(64)
  const threads = [0, 1].map(() => new Limiter(orgs, ips, store, err => { throw err }))
  const rs = await Promise.all(Array.from({ length: 130 }, async (_, i) => await settle(threads[i % 2]!.organization(5, 100, new Decision()))))
  const ok = rs.filter(d => d.allowed)
  assert.equal(ok.length, 100)
  assert.deepEqual(ok.map(d => d.remaining).sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i))
  for (const d of rs.filter(x => !x.allowed)) assert.equal(d.remaining, 0)
  assert.ok(store.leases < 100, `${store.leases} leases for 130 requests`)
})

test('a key known to be out is refused without the database until RECHECK_MS has passed', async () => {
  const store = new MemoryLeases()
  const l = node(store)
  const out = new Decision()
  for (let i = 0; i < 3; i++) assert.equal((await settle(l.organization(11, 3, out))).allowed, true)
  assert.equal((await settle(l.organization(11, 3, out))).allowed, false)
  const leases = store.leases
  for (let i = 0; i < 100; i++) {
    const r = l.organization(11, 3, out)
    assert.ok(r instanceof Decision, 'answered synchronously')
    assert.equal(r.allowed, false)
  }
  assert.equal(store.leases, leases)
})

test('giving back: a stopping node returns its unspent tokens and leaves the holders; another node can use them', async () => {
  const store = new MemoryLeases()
  const a = node(store)
  const b = node(store)
  const out = new Decision()
  assert.equal((await settle(a.organization(21, 100, out))).allowed, true)
  assert.equal((await settle(a.clientIp('198.51.100.1', 40, out))).allowed, true)
  const row = store.row('org', 21, WINDOW)
  assert.ok(row !== undefined && row.leased > 1 && row.holders === 1, `leased ${row?.leased}`)
  const given = await a.giveBack()
  assert.ok(given >= row.leased - 1, `${given} given back`)
  assert.equal(row.leased, 1, 'only the spent token stays leased')
  assert.equal(row.holders, 0)
  assert.equal(await a.giveBack(), 0, 'nothing twice')
  let passed = 0
  for (let i = 0; i < 120; i++) if ((await settle(b.organization(21, 100, out))).allowed) passed++
  assert.equal(passed, 99)
})

test('a full node-local table: every request of an untracked key takes exactly its tokens from the database', async () => {
  const store = new MemoryLeases()
  const l = node(store, 2)
  const out = new Decision()
  await settle(l.organization(1, 10, out))
  await settle(l.organization(2, 10, out))
  let passed = 0
  for (let i = 0; i < 8; i++) {
    const r = l.organization(3, 5, out)
    assert.ok(r instanceof Promise)
    const d = await r
    if (d.allowed) { passed++; assert.equal(d.remaining, 5 - passed) } else assert.equal(d.remaining, 0)
  }
  assert.equal(passed, 5)
  assert.equal(store.row('org', 3, WINDOW)?.leased, 5, 'nothing held beyond what was spent')
})

test('an unknown organization is refused', async () => {
  const store = new MemoryLeases()
  store.known = new Set([1])
  const d = await settle(node(store).organization(77, 100, new Decision()))
  assert.equal(d.allowed, false)
})

test('the database failing: the request is answered 503 unavailable; a failed refill is reported and requests go on', async () => {
  const store = new MemoryLeases()
  const errors: unknown[] = []
  const l = new Limiter(allocateWindows(16), allocateWindows(16), store, err => { errors.push(err) })
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  store.fail = refused
  await assert.rejects(settle(l.organization(1, 100, new Decision())), (err: unknown) => err instanceof ApiError && err.code === 'unavailable' && err.cause === refused)
  store.fail = null
  const out = new Decision()
  assert.equal((await settle(l.organization(1, 100, out))).allowed, true)
  // Spend down to the refill mark with the database failing: the refill fails, is reported, and the
  // node keeps spending what it has, then leases for itself once the database is back.
  store.fail = refused
  let spent = 1
  while (errors.length === 0) {
    const r = l.organization(1, 100, out)
    if (!(r instanceof Decision)) break
    assert.equal(r.allowed, true)
    spent++
    await turn()
  }
  assert.equal(errors.length, 1)
  assert.equal(errors[0], refused)
  store.fail = null
  for (; spent < 100; spent++) assert.equal((await settle(l.organization(1, 100, out))).allowed, true)
  assert.equal((await settle(l.organization(1, 100, out))).allowed, false)
})

test('a database that does not answer: the request gets 503 after the lease wait, not a hang', async () => {
  const store = new MemoryLeases()
  let release: () => void = () => {}
  const stuck = new Promise<void>(resolve => { release = resolve })
  store.delay = async () => { await stuck }
  const l = node(store, 16, 200)
  const first = settle(l.organization(1, 100, new Decision()))
  // A second request of the same key waits for the same lease, and gives up too.
  const second = settle(l.organization(1, 100, new Decision()))
  for (const p of [first, second]) await assert.rejects(p, (err: unknown) => err instanceof ApiError && err.code === 'unavailable')
  release()
  // The late reply still lands: the tokens it brought are spent, not lost.
  await new Promise(resolve => setTimeout(resolve, 0))
  const d = await settle(l.organization(1, 100, new Decision()))
  assert.equal(d.allowed, true)
})
