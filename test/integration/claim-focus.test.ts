/**
 * Claims when one endpoint's backlog sits at the head of the due queue (src/db/queries/claim-deliveries.ts):
 * the general scan reads only a window of the due index, so the endpoints behind that backlog are found
 * by findBacklogged and read per endpoint (focus) in the same claim as the backlogged one. Real
 * PostgreSQL, the real claim statements and planner; no HTTP (nothing is dispatched).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { Rows } from '../helpers/delivery.ts'
import { claimDeliveries, findBacklogged, FocusList, type Planner } from '../../src/db/queries/claim-deliveries.ts'
import { planClaim } from '../../src/delivery/flow.ts'
import { uuidv7 } from '../../src/lib/uuid.ts'

let db: TestDatabase
let rows: Rows
let orgId: string
let a: string
let b: string

const planner: Planner = (candidates, endpoints, now, plan) => {
  planClaim({ free: 1000, defaultConcurrency: 16, breakerThreshold: 5, probeWaitMs: 1000 }, candidates, endpoints, now, plan)
}

before(async () => {
  db = await createTestDatabase()
  rows = new Rows(db)
  orgId = await rows.org()
  a = (await rows.endpoint(orgId, 'http://127.0.0.1:9/a', { eventTypes: ['a.*'], maxConcurrency: 3 })).id
  b = (await rows.endpoint(orgId, 'http://127.0.0.1:9/b', { eventTypes: ['b.*'] })).id
  // A's 40 deliveries became due a minute before B's 5: the whole head of the due queue is A's.
  for (let i = 0; i < 40; i++) await rows.event(orgId, 'a.thing', { i }, { dueInMs: -60_000 + i })
  for (let i = 0; i < 5; i++) await rows.event(orgId, 'b.thing', { i }, { dueInMs: -1000 + i })
})

after(async () => { await db.drop() })

const holder = uuidv7()
const claim = async (o: { candidates: number, window: number, excluded?: string[], focus?: FocusList, holder?: string }) =>
  await claimDeliveries(db.sql, {
    holder: o.holder ?? holder, leaseMs: 60_000, candidates: o.candidates, window: o.window,
    excludedEndpoints: new Set(o.excluded ?? []), focus: o.focus ?? new FocusList(),
  }, planner)

test('a window full of one endpoint\'s backlog: the general scan sees only it, and the endpoint is reported full', async () => {
  const r = await claim({ candidates: 8, window: 16 })
  assert.equal(r.candidates, 8)
  assert.deepEqual(new Set(r.leased.map(d => d.endpointId)), new Set([a]))
  assert.equal(r.leased.length, 3, 'max_concurrency 3')
  assert.ok(r.plan.full.has(a))
})

test('findBacklogged finds the endpoint waiting behind it, not the known one', async () => {
  const found = await findBacklogged(db.sql, [a], 10)
  assert.deepEqual(found.map(e => e.id), [b])
  const none = await findBacklogged(db.sql, [a, b], 10)
  assert.equal(none.length, 0)
})

test('one claim takes the focus endpoint\'s backlog up to its cap and the general scan\'s rows of others, never a row twice', async () => {
  // A has 3 leased: with max_concurrency 3 it has no room, so the caller excludes it; B is the focus.
  const focus = new FocusList()
  focus.add(orgId, b, 4)
  // B is not excluded by the caller: the general scan leaves focus endpoints out by itself.
  const r = await claim({ candidates: 8, window: 64, excluded: [a], focus })
  assert.equal(r.focusFound.get(b), 4)
  const ids = r.leased.map(d => d.eventId)
  assert.equal(new Set(ids).size, ids.length, 'no delivery leased twice')
  assert.deepEqual(r.leased.map(d => d.endpointId), [b, b, b, b])
  // The fifth of B's: asking for more than is due reports fewer found (its backlog is used up).
  const more = new FocusList()
  more.add(orgId, b, 4)
  const r2 = await claim({ candidates: 0, window: 0, excluded: [a, b], focus: more })
  assert.equal(r2.focusFound.get(b), 1)
  assert.equal(r2.leased.length, 1)
  const leasedB = await db.sql<{ n: number }[]>`
    select count(*)::int as n from deliveries where endpoint_id = ${b} and leased_until is not null`
  assert.equal(leasedB[0]!.n, 5)
})

test('focus skips rows another claimer holds and rows already leased', async () => {
  const focus = new FocusList()
  focus.add(orgId, a, 10)
  await db.sql.begin(async other => {
    // Another claimer holds the two oldest due rows of A.
    const held = await other<{ event_id: string }[]>`
      select event_id from deliveries where endpoint_id = ${a} and next_attempt_at <= now()
       order by created_at limit 2 for no key update skip locked`
    assert.equal(held.length, 2)
    // Another thread's claim: A's 3 live leases (from the first test) count against its max_concurrency.
    const r = await claim({ candidates: 0, window: 0, excluded: [a], focus, holder: uuidv7() })
    const heldIds = new Set(held.map(h => h.event_id))
    assert.equal(r.focusFound.get(a), 10)
    // A's 3 live leases from the first test fill its max_concurrency: nothing leased, nothing found twice.
    assert.equal(r.leased.length, 0)
    assert.ok(r.plan.full.has(a))
    const leasedNow = await db.sql<{ event_id: string }[]>`select event_id from deliveries where endpoint_id = ${a} and leased_until is not null`
    for (const l of leasedNow) assert.ok(!heldIds.has(l.event_id))
  })
})

test('a paused endpoint is not reported as backlogged', async () => {
  await db.sql`update endpoints set status = 'paused' where id = ${a}`
  try {
    const found = await findBacklogged(db.sql, [], 10)
    assert.ok(!found.some(e => e.id === a))
  } finally {
    await db.sql`update endpoints set status = 'active' where id = ${a}`
  }
})
