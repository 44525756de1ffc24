/**
 * POST /api/events/batch against the real service (uWS listeners, writer, PostgreSQL): every rule of
 * docs/api.md "Batch ingest" — the order of checks, per-item results in request order, duplicates within
 * the batch and against the window, atomic batches, N-token rate limiting all or nothing, one
 * transaction with the fan-out deliveries, and the body cap decided while streaming.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { startTestService, type TestService } from '../helpers/server.ts'
import { untilFreshWindow } from '../helpers/fresh.ts'

let s: TestService
before(async () => { s = await startTestService({ BATCH_MAX_EVENTS: '200', BATCH_MAX_BODY_BYTES: String(4 * 1024 * 1024) }) })
after(async () => { await s.stop() })

const batch = (events: unknown[], atomic?: boolean): unknown => atomic === undefined ? { events } : { events, atomic }

describe('POST /api/events/batch', () => {
  test('200: one result per item in request order; duplicates within the batch and against the window; invalid items', async () => {
    const org = await s.createOrg()
    const prior = await s.api('POST', '/api/events', { key: org.key, body: { type: 't', payload: {}, dedup_id: 'seen-before' } })
    assert.equal(prior.status, 201)
    const big = 'x'.repeat(262_145)
    const r = await s.api('POST', '/api/events/batch', {
      key: org.key,
      raw: '{"events":[' +
        '{"type":"a","payload":{"n":12345678901234567890,"k":1.0}},' +
        '{"type":"b","data":{"z":1},"dedup_id":"d1"},' +
        '{"type":"c","payload":{},"dedup_id":"d1"},' +
        '{"type":"d","payload":{},"dedup_id":"seen-before"},' +
        '{"payload":{}},' +
        '{"type":"f","payload":{"s":"' + big + '"}},' +
        '"not an object",' +
        '{"type":"h","payload":{"bad":"\\u0000"}},' +
        '{"type":"i","payload":{}}]}',
      headers: { 'content-type': 'application/json' },
    })
    assert.equal(r.status, 200, r.text)
    assert.deepEqual([r.json.created, r.json.duplicates, r.json.invalid], [3, 2, 4])
    const res = r.json.results
    assert.deepEqual(res.map((x: { index: number }) => x.index), [0, 1, 2, 3, 4, 5, 6, 7, 8])
    assert.deepEqual(res.map((x: { status: string }) => x.status), ['created', 'created', 'duplicate', 'duplicate', 'invalid', 'invalid', 'invalid', 'invalid', 'created'])
    assert.deepEqual(Object.keys(res[0]).sort(), ['created_at', 'dedup_id', 'id', 'index', 'status', 'type'])
    assert.equal(res[1].dedup_id, 'd1')
    assert.deepEqual(res[2], { index: 2, status: 'duplicate', dedup_id: 'd1', event_id: res[1].id })
    assert.deepEqual(res[3], { index: 3, status: 'duplicate', dedup_id: 'seen-before', event_id: prior.json.id })
    assert.equal(res[4].code, 'invalid_event')
    assert.equal(res[4].details.type, 'is required')
    assert.equal(res[5].code, 'payload_too_large')
    assert.equal(res[5].limit, 262_144)
    assert.ok(res[5].size > 262_144)
    assert.equal(res[6].code, 'invalid_event')
    assert.equal(res[7].code, 'invalid_event')
    // Ids increase in array order; all share the batch's commit time.
    assert.ok(res[0].id < res[1].id && res[1].id < res[8].id)
    assert.equal(res[0].created_at, res[8].created_at)
    // Created events are in the inbox at once, payloads exactly as sent.
    const inbox = await s.api('GET', '/api/inbox?limit=10', { key: org.key })
    const ids = inbox.json.events.map((e: { id: string }) => e.id)
    for (const i of [0, 1, 8]) assert.ok(ids.includes(res[i].id))
    assert.ok(inbox.text.includes('{"n":12345678901234567890,"k":1.0}'), 'payload stored as sent')
    const b = inbox.json.events.find((e: { id: string }) => e.id === res[1].id)
    assert.deepEqual(b.payload, { z: 1 }, 'the older name data is accepted')
  })

  test('atomic: any invalid item rejects the batch, nothing stored and no dedup_id reserved; duplicates do not', async () => {
    const org = await s.createOrg()
    const before = await s.api('GET', '/api/inbox?limit=1000', { key: org.key })
    const r = await s.api('POST', '/api/events/batch', { key: org.key, body: batch([{ type: 'a', payload: {}, dedup_id: 'keep-free' }, { type: '', payload: {} }], true) })
    assert.equal(r.status, 422, r.text)
    assert.equal(r.json.code, 'batch_rejected')
    assert.deepEqual(r.json.results.map((x: { status: string }) => x.status), ['not_created', 'invalid'])
    assert.equal(r.json.results[1].code, 'invalid_event')
    const after = await s.api('GET', '/api/inbox?limit=1000', { key: org.key })
    assert.equal(after.json.events.length, before.json.events.length, 'nothing stored')
    const single = await s.api('POST', '/api/events', { key: org.key, body: { type: 'a', payload: {}, dedup_id: 'keep-free' } })
    assert.equal(single.status, 201, 'the dedup_id of the rejected batch was not reserved')

    const retry = await s.api('POST', '/api/events/batch', { key: org.key, body: batch([{ type: 'a', payload: {}, dedup_id: 'keep-free' }, { type: 'b', payload: {} }], true) })
    assert.equal(retry.status, 200, retry.text)
    assert.deepEqual(retry.json.results.map((x: { status: string }) => x.status), ['duplicate', 'created'])
    assert.equal(retry.json.results[0].event_id, single.json.id)
  })

  test('the order of checks: 401, 413 while streaming, 400 invalid_json, 400 invalid_batch, 422 batch_too_large', async () => {
    const org = await s.createOrg()
    assert.equal((await s.api('POST', '/api/events/batch', { body: batch([{ type: 'a', payload: {} }]) })).status, 401)
    assert.equal((await s.api('POST', '/api/events/batch', { key: 'zap_live_' + 'x'.repeat(55), raw: 'not json' })).status, 401)
    const bad = await s.api('POST', '/api/events/batch', { key: org.key, raw: '{"events":[' })
    assert.deepEqual([bad.status, bad.json.code], [400, 'invalid_json'])
    // Refused before the rate-limit step: the headers are there, and nothing was taken.
    assert.equal(bad.headers.get('x-ratelimit-limit'), '100000')
    const left = Number(bad.headers.get('x-ratelimit-remaining'))
    const again = await s.api('POST', '/api/events/batch', { key: org.key, raw: '{"events":[' })
    assert.equal(Number(again.headers.get('x-ratelimit-remaining')), left, 'a refused batch takes no token')
    for (const [body, field] of [[{}, 'events'], [{ events: {} }, 'events'], [{ events: [] }, 'events'], [{ events: [{}], atomic: 'yes' }, 'atomic']] as const) {
      const r = await s.api('POST', '/api/events/batch', { key: org.key, body })
      assert.deepEqual([r.status, r.json.code], [400, 'invalid_batch'], JSON.stringify(body))
      assert.ok(field in r.json.details)
    }
    const tooMany = await s.api('POST', '/api/events/batch', { key: org.key, body: batch(Array.from({ length: 201 }, () => ({ type: 'a', payload: {} }))) })
    assert.deepEqual([tooMany.status, tooMany.json.code, tooMany.json.max_events], [422, 'batch_too_large', 200])
    // The free tier allows 100 a minute: a batch of 101 can never be admitted.
    const free = await s.createOrg('free')
    const overTier = await s.api('POST', '/api/events/batch', { key: free.key, body: batch(Array.from({ length: 101 }, () => ({ type: 'a', payload: {} }))) })
    assert.deepEqual([overTier.status, overTier.json.code, overTier.json.max_events], [422, 'batch_too_large', 100])
  })

  test('a body between 1 and 4 MiB is accepted here while the same size on POST /api/events gets 413', async () => {
    const org = await s.createOrg()
    const item = { type: 'big', payload: { s: 'y'.repeat(200_000) } }
    const body = batch(Array.from({ length: 10 }, () => item))
    const size = Buffer.byteLength(JSON.stringify(body))
    assert.ok(size > 1024 * 1024 && size < 4 * 1024 * 1024)
    const r = await s.api('POST', '/api/events/batch', { key: org.key, body })
    assert.equal(r.status, 200, r.text.slice(0, 200))
    assert.equal(r.json.created, 10)
    const single = await s.api('POST', '/api/events', { key: org.key, raw: JSON.stringify({ type: 'big', payload: { s: 'y'.repeat(size) } }) })
    assert.deepEqual([single.status, single.json.code], [413, 'body_too_large'])
    const over = await s.api('POST', '/api/events/batch', { key: org.key, raw: JSON.stringify(batch([{ type: 'a', payload: { s: 'z'.repeat(4 * 1024 * 1024) } }])) })
    assert.deepEqual([over.status, over.json.code], [413, 'body_too_large'])
  })

  test('rate limit: N tokens all or nothing; a refused batch stores nothing and reserves no dedup_id', async () => {
    await untilFreshWindow(10_000)
    const org = await s.createOrg('free')
    const first = await s.api('POST', '/api/events/batch', { key: org.key, body: batch(Array.from({ length: 60 }, (_, i) => ({ type: 'a', payload: {}, dedup_id: `a${i}` }))) })
    assert.equal(first.status, 200)
    assert.equal(first.headers.get('x-ratelimit-remaining'), '40')
    const refused = await s.api('POST', '/api/events/batch', { key: org.key, body: batch(Array.from({ length: 50 }, (_, i) => ({ type: 'b', payload: {}, dedup_id: `b${i}` }))) })
    assert.equal(refused.status, 429, refused.text)
    assert.equal(refused.json.code, 'rate_limit_exceeded')
    assert.ok(Number(refused.headers.get('retry-after')) >= 1)
    assert.equal(refused.headers.get('x-ratelimit-remaining'), '40', 'nothing was taken')
    const [n] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from events where organization_id = ${org.id}`
    assert.equal(n?.n, 60)
    const [k] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from dedup_keys where organization_id = ${org.id} and dedup_id like 'b%'`
    assert.equal(k?.n, 0)
    const rest = await s.api('POST', '/api/events/batch', { key: org.key, body: batch(Array.from({ length: 40 }, (_, i) => ({ type: 'b', payload: {}, dedup_id: `b${i}` }))) })
    assert.equal(rest.status, 200)
    assert.equal(rest.json.created, 40)
    assert.equal(rest.headers.get('x-ratelimit-remaining'), '0')
  })

  test('concurrent batches sharing a dedup_id: exactly one creates the event', async () => {
    const org = await s.createOrg()
    const shared = randomUUID()
    const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => s.api('POST', '/api/events/batch', {
      key: org.key, body: batch([{ type: 'x', payload: { i }, dedup_id: shared }, { type: 'y', payload: { i } }]),
    })))
    for (const r of rs) assert.equal(r.status, 200, r.text)
    const firsts = rs.map(r => r.json.results[0])
    const created = firsts.filter((x: { status: string }) => x.status === 'created')
    assert.equal(created.length, 1)
    for (const d of firsts.filter((x: { status: string }) => x.status === 'duplicate')) assert.equal(d.event_id, created[0].id)
  })

  test('one transaction with the fan-out deliveries: every created event has its delivery when the 200 arrives', async () => {
    const org = await s.createOrg()
    const ep = await s.api('POST', '/api/endpoints', { key: org.key, body: { url: 'http://127.0.0.1:9/hook', event_types: ['order.*'] } })
    assert.equal(ep.status, 201, ep.text)
    const r = await s.api('POST', '/api/events/batch', { key: org.key, body: batch([{ type: 'order.created', payload: {} }, { type: 'invoice.paid', payload: {} }, { type: 'order.paid', payload: {} }]) })
    assert.equal(r.status, 200)
    const ids = r.json.results.map((x: { id: string }) => x.id)
    const rows = await s.db.sql<{ event_id: string }[]>`select event_id from deliveries where event_id = any(${s.db.sql.array(ids)}::uuid[])`
    assert.deepEqual(rows.map(x => x.event_id).sort(), [ids[0], ids[2]].sort())
  })
})
