/**
 * Rate limits across nodes: two real service processes (`triggers-api serve`, two listener threads
 * each) on one database, and clients spreading their requests over both. A free-tier organization
 * (100 per minute) never gets more than 100 201s in a window, and a client alternating between the
 * nodes gets at least 95 of them before its first 429; a burst spread over both nodes at once gets
 * no more than 100 either. The same for key generation per client IP (KEYGEN_RATE_LIMIT_PER_MINUTE,
 * the IP from X-Forwarded-For). A node that stops gives its unspent tokens back to the other.
 * Windows are clock minutes, so each run first makes sure it fits in one (untilFreshWindow).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { spawnService, type ChildService } from '../helpers/child-service.ts'
import { freshBurst, freshRequest, untilFreshWindow, type FreshResponse } from '../helpers/fresh.ts'
import { freePort } from '../../src/lib/free-port.ts'
import { keygen } from '../../src/auth/keygen.ts'

const KEYGEN_LIMIT = 20

let db: TestDatabase
let nodes: ChildService[] = []

before(async () => {
  db = await createTestDatabase()
  const ports = [await freePort(), await freePort()]
  nodes = await Promise.all(ports.map(async port => await spawnService({
    DATABASE_URL: db.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    METRICS_PORT: '0',
    THREADS: '2',
    DELIVERY_ENABLED: 'false',
    LOG_LEVEL: 'info',
    TRUST_PROXY: 'true',
    KEYGEN_RATE_LIMIT_PER_MINUTE: String(KEYGEN_LIMIT),
  }, { port })))
})

after(async () => {
  for (const n of nodes) await n.ensureStopped()
  await db.drop()
})

async function freeOrg (name: string): Promise<string> {
  const body = await keygen(db.url, name, 'free')
  const key = body.api_key
  if (typeof key !== 'string') throw new Error('keygen returned no key')
  return key
}

function event (i: number): { type: string, payload: { i: number } } {
  return { type: 'spread', payload: { i } }
}

/** The rate-limit headers every answer carries: Remaining a whole number ≥ 0, Reset the end of a minute. */
function assertHeaders (r: FreshResponse, limit: number): void {
  assert.equal(r.headers['x-ratelimit-limit'], String(limit))
  const remaining = Number(r.headers['x-ratelimit-remaining'])
  assert.ok(Number.isInteger(remaining) && remaining >= 0 && remaining <= limit, `X-RateLimit-Remaining ${String(r.headers['x-ratelimit-remaining'])}`)
  assert.equal(Number(r.headers['x-ratelimit-reset']) % 60, 0)
}

/**
 * `count` requests one after the other, alternating between the nodes; returns the 201s before the
 * first 429 and in all.
 */
async function alternate (count: number, send: (base: string, i: number) => Promise<FreshResponse>, limit: number, created: number): Promise<{ beforeFirst: number, total: number, overstated: number }> {
  let beforeFirst = -1
  let total = 0
  let overstated = 0
  for (let i = 0; i < count; i++) {
    const r = await send(nodes[i % 2]!.base, i)
    assertHeaders(r, limit)
    if (r.status === created) {
      total++
      // Best effort across nodes: a node counts what the other had leased at its own latest lease, so
      // Remaining may run ahead of what is truly left by what the other spent since.
      overstated = Math.max(overstated, Number(r.headers['x-ratelimit-remaining']) - (limit - total))
    } else {
      assert.equal(r.status, 429, r.text)
      assert.equal(r.headers['x-ratelimit-remaining'], '0')
      assert.match(String(r.headers['retry-after']), /^\d+$/)
      assert.deepEqual(r.json, { error: 'Rate limit exceeded', code: 'rate_limit_exceeded', limit, window: '1 minute', retry_after: Number(r.headers['retry-after']) })
      if (beforeFirst < 0) beforeFirst = total
    }
  }
  return { beforeFirst, total, overstated }
}

test('a free-tier organization alternating between two nodes: ≥ 95 201s before the first 429, never more than 100', async t => {
  const key = await freeOrg('Spread')
  await untilFreshWindow(15_000)
  const r = await alternate(130, async (base, i) => await freshRequest(base, 'POST', '/api/events', { key, body: event(i) }), 100, 201)
  t.diagnostic(`201s before the first 429: ${r.beforeFirst}, in all: ${r.total}; Remaining at most ${r.overstated} ahead`)
  assert.ok(r.total <= 100, `${r.total} 201s`)
  assert.ok(r.beforeFirst >= 95, `first 429 after ${r.beforeFirst} 201s`)
  assert.ok(r.overstated <= 10, `X-RateLimit-Remaining ran ${r.overstated} ahead of what was left`)
})

test('a burst of 130 at once, half to each node: no more than 100 pass', async t => {
  const key = await freeOrg('Burst')
  await untilFreshWindow(15_000)
  const rs = (await Promise.all(nodes.map(async n => await freshBurst(65, n.base, 'POST', '/api/events', { key, body: event(0) })))).flat()
  for (const r of rs) {
    assertHeaders(r, 100)
    assert.ok(r.status === 201 || r.status === 429, `${r.status} ${r.text}`)
  }
  const ok = rs.filter(r => r.status === 201).length
  t.diagnostic(`201s: ${ok}`)
  assert.ok(ok <= 100, `${ok} 201s`)
  // Both nodes wanted more than they could get, so no token stayed unspent.
  assert.ok(ok >= 95, `${ok} 201s`)
})

test(`key generation per client IP (${KEYGEN_LIMIT} per minute) alternating between two nodes`, async t => {
  await untilFreshWindow(15_000)
  const headers = { 'x-forwarded-for': '198.51.100.23' }
  const r = await alternate(KEYGEN_LIMIT + 10, async (base, i) => await freshRequest(base, 'POST', '/api/keys/generate', { headers, body: { organization_name: `Keygen ${i}` } }), KEYGEN_LIMIT, 201)
  t.diagnostic(`keys before the first 429: ${r.beforeFirst}, in all: ${r.total}`)
  assert.ok(r.total <= KEYGEN_LIMIT, `${r.total} keys`)
  assert.ok(r.beforeFirst >= Math.ceil(KEYGEN_LIMIT * 0.95), `first 429 after ${r.beforeFirst} keys`)
  // Another address has a budget of its own.
  const other = await freshRequest(nodes[1]!.base, 'POST', '/api/keys/generate', { headers: { 'x-forwarded-for': '198.51.100.24' }, body: { organization_name: 'Other' } })
  assert.equal(other.status, 201)
})

test('a node that stops gives its unspent tokens back: the other node can spend them', async () => {
  const key = await freeOrg('Handover')
  await untilFreshWindow(20_000)
  const [a, b] = nodes
  assert.ok(a !== undefined && b !== undefined)
  for (let i = 0; i < 10; i++) assert.equal((await freshRequest(b.base, 'POST', '/api/events', { key, body: event(i) })).status, 201)
  const exit = await b.ensureStopped()
  assert.equal(exit.code, 0, b.stderr())
  let ok = 0
  for (let i = 0; i < 110; i++) if ((await freshRequest(a.base, 'POST', '/api/events', { key, body: event(i) })).status === 201) ok++
  // Without the hand-back the stopped node's unspent slice would be lost for the rest of the minute.
  assert.equal(ok, 90)
})
