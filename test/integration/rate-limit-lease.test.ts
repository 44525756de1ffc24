/**
 * The database half of cross-node rate limits against a real PostgreSQL: `rate_window_grant`
 * (sql/0004_rate_windows.sql) computes what `sliceGrant` computes; the lease statement registers
 * holders, sizes slices from the previous window, and deletes ended windows; giving back; and
 * Limiters of two "nodes" leasing from the same database: never more than the limit, at least 95 %
 * before the first 429 when requests alternate, N tokens all or nothing.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { MemoryLeases } from '../helpers/memory-leases.ts'
import { insertOrganization } from '../../src/db/queries/organizations.ts'
import { giveBack, leaseWindow, type LeaseParams } from '../../src/db/queries/lease-rate-windows.ts'
import { COLD_HOLDERS, MIN_SLICE, NO_SLICE, SLICE_DIVISOR, sliceGrant } from '../../src/rate-limit/slice.ts'
import { Decision, Limiter, WINDOW_MS } from '../../src/rate-limit/limiter.ts'
import { databaseLeases } from '../../src/rate-limit/lease-store.ts'
import { allocateWindows } from '../../src/rate-limit/shared-window.ts'
import { coarseClock } from '../../src/lib/coarse-clock.ts'

let db: TestDatabase
before(async () => { db = await createTestDatabase() })
after(async () => { await db.drop() })

async function org (): Promise<{ id: string, orgNo: number }> {
  const id = randomUUID()
  const row = await insertOrganization(db.sql, { id, name: 'Lease Org', tier: 'free', keyLookup: randomUUID(), keyHash: 'x' })
  return { id, orgNo: row.org_no }
}

const params = (p: Partial<LeaseParams> & Pick<LeaseParams, 'id' | 'window'>): LeaseParams => ({
  table: 'org', limit: 100, need: 1, first: false, divisor: SLICE_DIVISOR, minSlice: MIN_SLICE, coldHolders: COLD_HOLDERS, ...p,
})

test('rate_window_grant computes what sliceGrant computes', async () => {
  const rows = await db.sql<{ r: number, h: number, n: number, m: number, g: number }[]>`
    select r, h, n, m, rate_window_grant(r, h, n, 4, m) as g
      from generate_series(-3, 130) r, generate_series(0, 9) h, unnest(array[0, 1, 2, 3, 7, 40, 130]) n,
           unnest(array[${MIN_SLICE}::int, ${NO_SLICE}::int]) m`
  assert.equal(rows.length, 134 * 10 * 7 * 2)
  for (const x of rows) assert.equal(x.g, sliceGrant(x.r, x.h, x.n, 4, x.m), `rate_window_grant(${x.r}, ${x.h}, ${x.n}, 4, ${x.m})`)
})

test('a sequence of leases gives the database and the in-memory model the same grants', async () => {
  const a = await org()
  const b = await org()
  const mem = new MemoryLeases()
  const w = 29_000_000
  // Org a: idle before (cold); org b: two holders in the previous window (warm); an IP key too.
  const warm = params({ id: b.orgNo, window: w - 1, first: true, need: 0 })
  for (const p of [warm, { ...warm }]) { await leaseWindow(db.sql, p); await mem.lease({ ...p, id: b.orgNo }) }
  const seq: LeaseParams[] = []
  for (let i = 0; i < 40; i++) {
    const id = i % 3 === 0 ? b.orgNo : a.orgNo
    seq.push(params({ id, window: w, first: i < 4, need: [1, 0, 3, 1, 12][i % 5]! }))
    if (i % 7 === 0) seq.push(params({ table: 'ip', id: 12345, window: w, limit: 20, first: i === 0 }))
  }
  for (const p of seq) {
    const got = await leaseWindow(db.sql, p)
    const want = await mem.lease(p)
    assert.deepEqual(got, want, `lease ${JSON.stringify(p)}`)
  }
  assert.equal(await leaseWindow(db.sql, params({ id: 999_999, window: w })), null, 'an unknown organization')
  const [ra] = await db.sql<{ leased: number, holders: number, holders_before: number }[]>`
    select leased, holders, holders_before from org_rate_windows where organization_id = ${a.id} and window_start = to_timestamp(${w}::int * 60)`
  assert.ok(ra !== undefined && ra.leased <= 100 && ra.holders === 2 && ra.holders_before === COLD_HOLDERS, JSON.stringify(ra))
})

test('a lease deletes windows that ended more than a minute ago, and keeps the previous one', async () => {
  const a = await org()
  const w = 29_100_000
  for (const old of [w - 30, w - 5, w - 2, w - 1]) await leaseWindow(db.sql, params({ id: a.orgNo, window: old, first: true }))
  await leaseWindow(db.sql, params({ table: 'ip', id: 7, window: w - 9, limit: 10, first: true }))
  await leaseWindow(db.sql, params({ id: a.orgNo, window: w, first: true }))
  const left = await db.sql<{ m: number }[]>`
    select (extract(epoch from window_start) / 60)::int as m from org_rate_windows where organization_id = ${a.id} order by 1`
  assert.deepEqual(left.map(r => r.m), [w - 1, w])
  await leaseWindow(db.sql, params({ table: 'ip', id: 8, window: w, limit: 10, first: true }))
  const [ips] = await db.sql<{ n: number }[]>`select count(*)::int as n from ip_rate_windows where window_start < to_timestamp(${w - 1}::int * 60)`
  assert.equal(ips?.n, 0)
})

test('giving back lowers leased and holders, never below zero', async () => {
  const a = await org()
  const w = 29_200_000
  const first = await leaseWindow(db.sql, params({ id: a.orgNo, window: w, first: true, need: 10 }))
  assert.deepEqual(first, { granted: 10, leased: 10, holders: 1 })
  assert.equal(await giveBack(db.sql, 'org', w, [a.orgNo, 424242], [4, 1], [1, 1]), 1)
  const again = await leaseWindow(db.sql, params({ id: a.orgNo, window: w, need: 90 }))
  assert.deepEqual(again, { granted: 90, leased: 96, holders: 0 })
  await giveBack(db.sql, 'org', w, [a.orgNo], [500], [5])
  assert.deepEqual(await leaseWindow(db.sql, params({ id: a.orgNo, window: w, need: 0 })), { granted: 6, leased: 6, holders: 0 })
})

test('two nodes on one database: alternating requests get ≥ 95 % before the first 429, never more than the limit; N tokens all or nothing', async () => {
  const a = await org()
  const nodes = [0, 1].map(() => new Limiter(allocateWindows(64), allocateWindows(64), databaseLeases(db.sql), err => { throw err }))
  const window = Math.floor(coarseClock.now() / WINDOW_MS)
  let beforeFirst = -1
  let total = 0
  for (let i = 0; i < 150; i++) {
    const r = nodes[i % 2]!.organization(a.orgNo, 100, new Decision())
    const d = r instanceof Decision ? r : await r
    if (d.allowed) total++
    else if (beforeFirst < 0) beforeFirst = total
    await new Promise(resolve => setImmediate(resolve))
  }
  assert.ok(total <= 100, `${total} admitted`)
  assert.ok(beforeFirst >= 95, `first 429 after ${beforeFirst}`)
  const [row] = await db.sql<{ leased: number }[]>`
    select leased from org_rate_windows where organization_id = ${a.id} and window_start = to_timestamp(${window}::int * 60)`
  assert.ok(row !== undefined && row.leased <= 100)

  // A batch of 30 against 20 left (a fresh organization): refused on both nodes, and nothing taken.
  const b = await org()
  const out = new Decision()
  const n0 = nodes[0]!
  const n1 = nodes[1]!
  const take = async (l: Limiter, n: number): Promise<Decision> => { const r = l.organization(b.orgNo, 100, out, n); return r instanceof Decision ? r : await r }
  assert.equal((await take(n0, 50)).allowed, true)
  assert.equal((await take(n1, 30)).allowed, true)
  assert.equal((await take(n0, 30)).allowed, false)
  assert.equal((await take(n1, 30)).allowed, false)
  assert.equal((await take(n1, 20)).allowed, true, 'the refused batches took nothing')
  assert.equal((await take(n0, 1)).allowed, false)
})
