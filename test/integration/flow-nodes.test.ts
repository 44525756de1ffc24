/**
 * Flow control across nodes (docs/api.md "Flow control per endpoint"): two real service processes
 * (`triggers-api serve`, delivery on) share one database, and both deliver to one local receiver. An
 * endpoint's max_concurrency holds for the two nodes together, and its rate limit's starts follow one
 * token bucket: a burst of at most `limit`, then evenly. Assertions are bounds on what the receiver saw
 * (in flight at once, starts per window) and counts; slowness can only make them easier to meet.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.ts'
import { spawnService, type ChildService } from '../helpers/child-service.ts'
import { freshRequest } from '../helpers/fresh.ts'
import { Receiver } from '../helpers/delivery.ts'
import { freePort } from '../../src/lib/free-port.ts'
import { keygen } from '../../src/auth/keygen.ts'

let db: TestDatabase
let nodes: ChildService[] = []
let rx: Receiver
const inFlight = new Map<string, number>()
const maxInFlight = new Map<string, number>()
const holders = new Set<string>()

before(async () => {
  db = await createTestDatabase()
  rx = await Receiver.start(async (s) => {
    const ep = String(s.headers['x-endpoint-id'])
    inFlight.set(ep, (inFlight.get(ep) ?? 0) + 1)
    maxInFlight.set(ep, Math.max(maxInFlight.get(ep) ?? 0, inFlight.get(ep)!))
    await delay(25)
    inFlight.set(ep, inFlight.get(ep)! - 1)
    return { status: 200, body: 'ok' }
  })
  const ports = [await freePort(), await freePort()]
  nodes = await Promise.all(ports.map(async port => await spawnService({
    DATABASE_URL: db.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    METRICS_PORT: '0',
    THREADS: '1',
    DELIVERY_ENABLED: 'true',
    // Each node may run only 2 attempts at once, so an endpoint allowing 3 needs both nodes to reach
    // its limit — and a node that ignored the other's leases would go past it.
    DELIVERY_CONCURRENCY: '2',
    ALLOW_PRIVATE_WEBHOOKS: 'true',
    LOG_LEVEL: 'warn',
  }, { port, waitForStarted: false })))
})

after(async () => {
  for (const n of nodes) await n.ensureStopped()
  await rx.close()
  await db.drop()
})

async function org (): Promise<string> {
  const body = await keygen(db.url, 'flow across nodes', 'enterprise')
  if (typeof body.api_key !== 'string') throw new Error('keygen returned no key')
  return body.api_key
}

async function endpoint (key: string, body: Record<string, unknown>): Promise<string> {
  const r = await freshRequest(nodes[0]!.base, 'POST', '/api/endpoints', { key, body })
  assert.equal(r.status, 201, r.text)
  return r.json.id
}

/** `n` events through both nodes (half each), so both nodes' writers and delivery threads are involved. */
async function ingest (key: string, type: string, n: number): Promise<void> {
  for (const [i, node] of nodes.entries()) {
    const events = Array.from({ length: n / 2 }, (_, j) => ({ type, payload: { node: i, j } }))
    const r = await freshRequest(node.base, 'POST', '/api/events/batch', { key, body: { events } })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.json.created, n / 2)
  }
}

async function delivered (endpointId: string): Promise<number> {
  const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where endpoint_id = ${endpointId} and status = 'delivered'`
  return r?.n ?? 0
}

test('max_concurrency holds for two nodes together', async () => {
  const key = await org()
  const ep = await endpoint(key, { url: rx.url('/concurrency'), event_types: ['c.*'], max_concurrency: 3 })
  // Who holds the leases while the deliveries run: both nodes should take part.
  const watch = setInterval(() => {
    db.sql<{ leased_by: string }[]>`select distinct leased_by::text from deliveries where endpoint_id = ${ep} and leased_by is not null`
      .then(rows => { for (const r of rows) holders.add(r.leased_by) }, () => {})
  }, 10)
  try {
    await ingest(key, 'c.x', 80)
    await waitFor(async () => await delivered(ep) === 80, 60_000, 'all 80 delivered')
  } finally {
    clearInterval(watch)
  }
  assert.ok((maxInFlight.get(ep) ?? 0) <= 3, `${maxInFlight.get(ep)} attempts in flight at once (max_concurrency 3, two nodes)`)
  assert.equal(rx.seen.filter(s => s.path === '/concurrency').length, 80, 'each delivered once')
  assert.ok(holders.size >= 2, `leases held by ${holders.size} delivery thread(s): both nodes delivered`)
})

test('a rate limit is one token bucket for both nodes: a burst of `limit`, then evenly', async () => {
  const key = await org()
  const limit = 4
  const ep = await endpoint(key, { url: rx.url('/rate'), event_types: ['r.*'], rate_limit: { limit, period_seconds: 1 } })
  await ingest(key, 'r.x', 20)
  await waitFor(async () => await delivered(ep) === 20, 60_000, 'all 20 delivered')
  // Start times are the senders' (the attempt log), not the arrivals at this busy test process.
  const at = (await db.sql<{ t: number }[]>`
    select (extract(epoch from started_at) * 1000)::float8 as t from delivery_attempts where endpoint_id = ${ep}`).map(r => r.t).sort((x, y) => x - y)
  assert.equal(at.length, 20)
  for (let i = 0; i < at.length; i++) {
    const inWindow = at.filter(t => t >= at[i]! && t < at[i]! + 1000).length
    assert.ok(inWindow <= 2 * limit, `${inWindow} starts within one period from start ${i} (limit ${limit} per second, two nodes)`)
  }
  const spread = at[at.length - 1]! - at[0]!
  assert.ok(spread >= (20 - limit) * (1000 / limit) - 300, `20 starts at ${limit}/s took ${spread} ms`)
  const [r] = await db.sql<{ max: number }[]>`select max(attempts)::int as max from deliveries where endpoint_id = ${ep}`
  assert.equal(r?.max, 1, 'waiting for a token is not an attempt')
})
