/**
 * The delivery thread's safety sweeps (src/db/queries/schedule-deliveries.ts sweepEndpoints), on a real
 * PostgreSQL: the rows the two races leave behind are repaired, and only rows created within a minute
 * of the endpoint's change are looked at (the bound that keeps a sweep cheap under a large backlog).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { Rows } from '../helpers/delivery.ts'
import { sweepEndpoints } from '../../src/db/queries/schedule-deliveries.ts'

const WINDOW_MS = 10 * 60_000
let db: TestDatabase
let rows: Rows

before(async () => {
  db = await createTestDatabase()
  rows = new Rows(db)
})

after(async () => { await db.drop() })

/** An event stored `offsetS` seconds from now with no delivery to `endpointId` (as if its ingest missed the endpoint). */
async function eventWithout (orgId: string, endpointId: string, offsetS: number): Promise<string> {
  const id = await rows.event(orgId, 'order.created')
  await db.sql`update events set created_at = now() + ${offsetS} * interval '1 second' where id = ${id}`
  await db.sql`delete from deliveries where event_id = ${id} and endpoint_id = ${endpointId}`
  return id
}

async function hasDelivery (eventId: string, endpointId: string): Promise<boolean> {
  const r = await db.sql`select 1 from deliveries where event_id = ${eventId} and endpoint_id = ${endpointId}`
  return r.length === 1
}

test('backfill: a pending event committed around the deliver_pending backfill gets its delivery; one far from it is not read', async () => {
  const orgId = await rows.org()
  const ep = await rows.endpoint(orgId, 'http://127.0.0.1:9/in')
  await db.sql`update endpoints set backfill_since = now(), updated_at = now() where id = ${ep.id}`
  const raced = await eventWithout(orgId, ep.id, -20)
  const far = await eventWithout(orgId, ep.id, 300)
  const n = await sweepEndpoints(db.sql, WINDOW_MS)
  assert.equal(n, 1)
  assert.equal(await hasDelivery(raced, ep.id), true)
  assert.equal(await hasDelivery(far, ep.id), false, 'outside the minute around backfill_since')
  // Idempotent: a second sweep finds nothing more.
  assert.equal(await sweepEndpoints(db.sql, WINDOW_MS), 0)
})

test('unhold: a delivery held by an ingest that read the endpoint as paused just before its resume becomes due', async () => {
  const orgId = await rows.org()
  const ep = await rows.endpoint(orgId, 'http://127.0.0.1:9/in', { status: 'paused' })
  const raced = await rows.event(orgId, 'order.created')
  const old = await rows.event(orgId, 'order.created')
  await db.sql`update deliveries set created_at = now() - interval '10 minutes' where event_id = ${old}`
  // Resumed (as updateEndpoint does: the held rows it saw become due) — but these two were not seen.
  await db.sql`update endpoints set status = 'active', updated_at = now() where id = ${ep.id}`
  const n = await sweepEndpoints(db.sql, WINDOW_MS)
  assert.equal(n, 1)
  assert.notEqual((await rows.delivery(raced, ep.id)).next_attempt_at, null)
  assert.equal((await rows.delivery(old, ep.id)).next_attempt_at, null, 'created long before the resume: not the race, not read')
})
