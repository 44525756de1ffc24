/**
 * Per-organization rate limits against the real service with two listener threads: the tier's limit
 * holds for the organization as a whole (the count lives in shared memory, not per thread), every
 * request over it is a 429 with the contract's body and Retry-After, and a rejected request stores
 * nothing. Windows are clock minutes, so each burst first makes sure it fits in one.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestService, type TestService } from '../helpers/server.ts'
import { freshBurst, threadOf, untilFreshWindow, type FreshResponse } from '../helpers/fresh.ts'

let s: TestService
before(async () => { s = await startTestService({ THREADS: '2' }) })
after(async () => { await s.stop() })

async function eventCount (organizationId: string): Promise<number> {
  const [row] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from events where organization_id = ${organizationId}`
  return row?.n ?? -1
}

function assertLimited (r: FreshResponse, limit: number): void {
  assert.equal(r.status, 429, r.text)
  assert.equal(r.headers['content-type'], 'application/json')
  const header = r.headers['retry-after']
  assert.match(String(header), /^\d+$/, 'Retry-After is whole seconds')
  const retry = Number(header)
  // The window is the clock minute: Retry-After is the time left in it.
  const left = Math.ceil((60_000 - (Date.now() % 60_000)) / 1000)
  assert.ok(retry >= 1 && retry <= 60 && Math.abs(retry - left) <= 2, `Retry-After ${retry}, ${left} s left in the minute`)
  assert.deepEqual(r.json, { error: 'Rate limit exceeded', code: 'rate_limit_exceeded', limit, window: '1 minute', retry_after: retry })
  assert.equal(r.headers['x-ratelimit-limit'], String(limit))
  assert.equal(r.headers['x-ratelimit-remaining'], '0')
}

describe('organization rate limit (free tier, 100 per minute)', () => {
  test('130 concurrent requests over both threads: exactly 100 pass, exactly 30 get 429', async () => {
    const org = await s.createOrg('free', 'Burst')
    await untilFreshWindow()
    const rs = await freshBurst(130, s.base, 'POST', '/api/events', { key: org.key, body: { type: 'burst', payload: { ok: true } } })
    const ok = rs.filter(r => r.status === 201)
    const limited = rs.filter(r => r.status === 429)
    assert.equal(ok.length, 100, `201s: ${ok.length}; statuses: ${[...new Set(rs.map(r => r.status))].join(',')}`)
    assert.equal(limited.length, 30)
    for (const r of limited) assertLimited(r, 100)

    // Both threads answered, and the 100 passes drew 100 distinct counts from one shared window:
    // their Remaining values are exactly 99, 98, …, 0.
    const threads = new Set(rs.map(r => threadOf(r.headers)))
    assert.equal(threads.size, 2, 'both listener threads served the burst')
    const okThreads = new Set(ok.map(r => threadOf(r.headers)))
    assert.equal(okThreads.size, 2, 'both threads let requests through, against one count')
    const remaining = ok.map(r => Number(r.headers['x-ratelimit-remaining'])).sort((a, b) => a - b)
    assert.deepEqual(remaining, Array.from({ length: 100 }, (_, i) => i))
    for (const r of rs) {
      const rem = Number(r.headers['x-ratelimit-remaining'])
      assert.ok(Number.isInteger(rem) && rem >= 0, `X-RateLimit-Remaining ${String(r.headers['x-ratelimit-remaining'])}`)
      assert.equal(r.headers['x-ratelimit-limit'], '100')
      const reset = Number(r.headers['x-ratelimit-reset'])
      assert.equal(reset % 60, 0)
      assert.ok(reset > Date.now() / 1000 - 1)
    }

    // Only the accepted requests stored events.
    const okIds = new Set(ok.map(r => r.json.id))
    assert.equal(okIds.size, 100)
    assert.equal(await eventCount(org.id), 100)
    const stored = await s.db.sql<{ id: string }[]>`select id from events where organization_id = ${org.id}`
    assert.deepEqual(stored.map(r => r.id).sort(), [...okIds].sort())

    // The limit covers every authenticated route of the organization, not only ingest.
    const more = await freshBurst(6, s.base, 'GET', '/api/keys', { key: org.key })
    for (const r of more) assertLimited(r, 100)
    const inbox = await freshBurst(4, s.base, 'GET', '/api/inbox', { key: org.key })
    for (const r of inbox) assertLimited(r, 100)
  })

  test('a rejected request creates no event and reserves no dedup_id; other organizations are unaffected', async () => {
    const org = await s.createOrg('free', 'Exhausted')
    const other = await s.createOrg('free', 'Bystander')
    await untilFreshWindow()
    const fill = await freshBurst(100, s.base, 'GET', '/api/keys', { key: org.key })
    for (const r of fill) assert.equal(r.status, 200, r.text)

    const rejected = await freshBurst(10, s.base, 'POST', '/api/events', { key: org.key, body: { type: 'late', payload: {}, dedup_id: 'reserved?' } })
    for (const r of rejected) assertLimited(r, 100)
    assert.equal(await eventCount(org.id), 0)
    const [dedup] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from dedup_keys where organization_id = ${org.id}`
    assert.equal(dedup?.n, 0, 'no dedup_id was reserved')

    const fine = await freshBurst(10, s.base, 'POST', '/api/events', { key: other.key, body: { type: 'fine', payload: {}, dedup_id: 'reserved?' } })
    const statuses = fine.map(r => r.status).sort()
    assert.equal(statuses.filter(x => x === 201).length, 1, 'the other organization is not limited: one 201')
    assert.equal(statuses.filter(x => x === 409).length, 9, 'and nine duplicates of it')
    for (const r of fine) assert.equal(r.headers['x-ratelimit-limit'], '100')
    assert.equal(await eventCount(other.id), 1)
  })

  test('invalid keys do not spend the organization\'s budget', async () => {
    const org = await s.createOrg('free', 'Spared')
    await untilFreshWindow()
    const wrong = org.key.slice(0, 25) + 'A'.repeat(39)
    const refused = await freshBurst(20, s.base, 'GET', '/api/keys', { key: wrong })
    for (const r of refused) assert.equal(r.status, 401, r.text)
    const r = await freshBurst(1, s.base, 'GET', '/api/keys', { key: org.key })
    assert.equal(r[0]!.status, 200)
    assert.equal(r[0]!.headers['x-ratelimit-remaining'], '99')
  })
})
