/**
 * Webhook endpoints and fan-out against the real service (docs/api.md "Webhook endpoints and
 * subscriptions", "Flow control per endpoint", "Webhook delivery"): the routes and every validation
 * rule of the endpoint object, listing and paging, stats, changes, deletion, secrets, replay, and
 * fan-out end to end through the real delivery thread to real node:http receivers, with signatures
 * verified by standardwebhooks. Every test uses its own organization; every wait is on a condition.
 */
import { after, afterEach, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestService, type ApiResponse, type TestService } from '../helpers/server.ts'
import { waitFor } from '../helpers/db.ts'
import { OK, Receiver, verify, type Handler, type Reply, type Seen } from '../helpers/delivery.ts'
import { untilFreshWindow } from '../helpers/fresh.ts'
import { uuidv7 } from '../../src/lib/uuid.ts'

const MAX_ENDPOINTS = 6
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/
const ENDPOINT_KEYS = ['created_at', 'description', 'disabled_at', 'disabled_reason', 'event_types', 'id', 'is_default', 'max_concurrency',
  'metadata', 'rate_limit', 'status', 'updated_at', 'url']
const DELIVERY_KEYS = ['attempts', 'delivered_at', 'endpoint_id', 'last_error', 'next_attempt_at', 'response_status', 'status']
/** A failure whose retry is ten minutes away: the delivery stays `failed` for the whole test. */
const FAIL_LATER: Reply = { status: 500, headers: { 'retry-after': '600' }, body: 'later' }
const FAIL: Reply = { status: 500, body: 'down' }

let s: TestService
before(async () => {
  s = await startTestService({
    DELIVERY_ENABLED: 'true',
    ALLOW_PRIVATE_WEBHOOKS: 'true',
    DELIVERY_RETRY_DELAYS_MS: '50,100',
    // Long enough that a receiver holding a request open is still "in flight" whenever a test looks;
    // every such receiver is released or closed by its test.
    DELIVERY_TIMEOUT_MS: '30000',
    DELIVERY_PER_ENDPOINT_CONCURRENCY: '4',
    MAX_ENDPOINTS_PER_ORG: String(MAX_ENDPOINTS),
  })
})
after(async () => { await s.stop() })

interface Org { readonly key: string, readonly id: string }
const orgs: string[] = []
const receivers: Receiver[] = []

afterEach(async () => {
  // Nothing of this test is attempted any more (leases in flight end with their receivers).
  if (orgs.length > 0) await s.db.sql`update endpoints set status = 'disabled' where organization_id = any(${orgs.splice(0)}::uuid[])`
  for (const r of receivers.splice(0)) await r.close()
})

async function newOrg (tier = 'enterprise'): Promise<Org> {
  const o = await s.createOrg(tier)
  orgs.push(o.id)
  return o
}

async function receiver (h: Handler = () => OK): Promise<Receiver> {
  const r = await Receiver.start(h)
  receivers.push(r)
  return r
}

function gate (): { wait: Promise<void>, open: () => void } {
  let open!: () => void
  const wait = new Promise<void>(resolve => { open = resolve })
  return { wait, open }
}

async function call (o: Org, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  return await s.api(method, path, { key: o.key, body })
}

function expectError (r: ApiResponse, status: number, code: string): any {
  assert.equal(r.status, status, r.text)
  assert.equal(r.json?.code, code, r.text)
  assert.equal(typeof r.json.error, 'string')
  return r.json
}

async function createEndpoint (o: Org, body: Record<string, unknown>): Promise<any> {
  const r = await call(o, 'POST', '/api/endpoints', body)
  assert.equal(r.status, 201, r.text)
  return r.json
}

async function getEndpoint (o: Org, id: string): Promise<any> {
  const r = await call(o, 'GET', `/api/endpoints/${id}`)
  assert.equal(r.status, 200, r.text)
  return r.json
}

async function patch (o: Org, id: string, body: Record<string, unknown>): Promise<any> {
  const r = await call(o, 'PATCH', `/api/endpoints/${id}`, body)
  assert.equal(r.status, 200, r.text)
  return r.json
}

interface Created { id: string, type: string, created_at: string }

async function ingest (o: Org, type: string, payload: Record<string, unknown> = {}): Promise<Created> {
  const r = await call(o, 'POST', '/api/events', { type, payload })
  assert.equal(r.status, 201, r.text)
  return r.json
}

/** Ingests one event after another with strictly increasing created_at (a clock condition, not a sleep). */
async function ingestInOrder (o: Org, types: readonly string[]): Promise<Created[]> {
  const out: Created[] = []
  for (const t of types) {
    const prev = out.at(-1)
    if (prev !== undefined) await waitFor(() => Date.now() > Date.parse(prev.created_at) + 1, 1000, 'the clock to pass the previous event')
    out.push(await ingest(o, t))
  }
  return out
}

async function deliveries (o: Org, eventId: string): Promise<any[]> {
  const r = await call(o, 'GET', `/api/events/${eventId}/deliveries`)
  assert.equal(r.status, 200, r.text)
  assert.equal(r.json.event_id, eventId)
  return r.json.deliveries
}

async function deliveryTo (o: Org, eventId: string, endpointId: string): Promise<any> {
  return (await deliveries(o, eventId)).find(d => d.endpoint_id === endpointId)
}

async function waitDelivery (o: Org, eventId: string, endpointId: string, ok: (d: any) => boolean, what: string): Promise<any> {
  return await waitFor(async () => {
    const d = await deliveryTo(o, eventId, endpointId)
    return d !== undefined && ok(d) ? d : null
  }, 30_000, `${what} (event ${eventId}, endpoint ${endpointId})`)
}

const status = (st: string, attempts?: number) => (d: any): boolean => d.status === st && (attempts === undefined || d.attempts === attempts)
const held = (d: any): boolean => d.status === 'pending' && d.next_attempt_at === null

/** The event as the inbox shows it (open view, then delivered). */
async function inboxEvent (o: Org, id: string, include = false): Promise<any> {
  for (const q of ['limit=1000', 'status=delivered&limit=1000']) {
    const r = await call(o, 'GET', `/api/inbox?${q}${include ? '&include=deliveries' : ''}`)
    assert.equal(r.status, 200, r.text)
    const e = r.json.events.find((x: any) => x.id === id)
    if (e !== undefined) return e
  }
  return undefined
}

async function waitEventStatus (o: Org, id: string, st: string): Promise<any> {
  return await waitFor(async () => {
    const e = await inboxEvent(o, id)
    return e?.status === st ? e : null
  }, 15_000, `event ${id} to be ${st}`)
}

const fromEndpoint = (rx: Receiver, endpointId: string): Seen[] => rx.seen.filter(x => x.headers['x-endpoint-id'] === endpointId)

async function attemptsLogged (eventId: string): Promise<number> {
  const [r] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from delivery_attempts where event_id = ${eventId}`
  return r?.n ?? 0
}

// ── POST /api/endpoints ──────────────────────────────────────────────────────────────────────────

describe('POST /api/endpoints: validation', () => {
  test('url: missing (400 missing_field) before anything else; not a string, empty, not absolute http(s), too long, credentials (422)', async () => {
    const o = await newOrg()
    for (const body of [{}, { url: null }, { description: 5, event_types: [] }]) {
      assert.equal(expectError(await call(o, 'POST', '/api/endpoints', body), 400, 'missing_field').field, 'url')
    }
    for (const raw of ['{"url":', '[1]', '"x"', 'null']) {
      expectError(await s.api('POST', '/api/endpoints', { key: o.key, raw, headers: { 'content-type': 'application/json' } }), 400, 'invalid_json')
    }
    const long = 'https://example.com/' + 'a'.repeat(2048 - 20)
    assert.equal(long.length, 2048)
    for (const url of [123, true, {}, ['http://x.example'], '', 'not a url', '/relative/path', 'ftp://example.com/x', 'mailto:a@example.com',
      'http://', 'javascript:alert(1)', 'https://user:pw@example.com/h', long + 'a']) {
      const e = expectError(await call(o, 'POST', '/api/endpoints', { url }), 422, 'invalid_webhook_url')
      assert.equal(typeof e.details?.url, 'string', JSON.stringify(url))
    }
    assert.equal((await createEndpoint(o, { url: long })).url, long)
    assert.equal((await createEndpoint(o, { url: 'HTTP://Example.COM:80/a b?q=1' })).url, 'http://example.com/a%20b?q=1', 'stored as normalized')
    // Several endpoints may share a URL.
    assert.equal((await createEndpoint(o, { url: long })).url, long)
  })

  test('url: private and loopback targets are refused unless the operator allows them', async () => {
    const strict = await startTestService({ ALLOW_PRIVATE_WEBHOOKS: 'false', THREADS: '1' })
    try {
      const o = await strict.createOrg()
      for (const url of ['http://127.0.0.1/h', 'http://10.1.2.3/h', 'http://192.168.0.1/', 'http://172.16.0.1/', 'http://169.254.169.254/latest',
        'http://[::1]/', 'http://[fe80::1]/', 'http://[::ffff:127.0.0.1]/', 'http://2130706433/', 'http://0x7f000001/', 'http://localhost:8080/',
        'http://a.localhost/', 'http://100.64.0.1/', 'http://0.0.0.0/']) {
        const r = await strict.api('POST', '/api/endpoints', { key: o.key, body: { url } })
        expectError(r, 422, 'invalid_webhook_url')
      }
      const ok = await strict.api('POST', '/api/endpoints', { key: o.key, body: { url: 'https://93.184.215.14/hooks' } })
      assert.equal(ok.status, 201, ok.text)
      const p = await strict.api('PATCH', `/api/endpoints/${ok.json.id}`, { key: o.key, body: { url: 'http://127.0.0.1/' } })
      expectError(p, 422, 'invalid_webhook_url')
    } finally {
      await strict.stop()
    }
  })

  test('description and metadata limits (422 validation_error with details)', async () => {
    const o = await newOrg()
    const url = 'https://example.com/h'
    assert.equal((await createEndpoint(o, { url, description: 'd'.repeat(255) })).description, 'd'.repeat(255))
    assert.equal((await createEndpoint(o, { url, description: '🎉'.repeat(255) })).description, '🎉'.repeat(255))
    assert.equal((await createEndpoint(o, { url, description: null })).description, null)
    for (const description of ['d'.repeat(256), '🎉'.repeat(256), 5, ['x'], {}]) {
      const e = expectError(await call(o, 'POST', '/api/endpoints', { url, description }), 422, 'validation_error')
      assert.deepEqual(Object.keys(e.details), ['description'])
    }
    const sixteen = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, `v${i}`]))
    assert.deepEqual((await createEndpoint(o, { url, metadata: sixteen })).metadata, sixteen)
    const edge = { ['k'.repeat(64)]: 'v'.repeat(512), é: '🎉' }
    assert.deepEqual((await createEndpoint(o, { url, metadata: edge })).metadata, edge)
    for (const metadata of [{ ...sixteen, k16: 'x' }, { ['k'.repeat(65)]: 'v' }, { '': 'v' }, { k: 'v'.repeat(513) }, { k: 5 }, { k: null },
      { k: { nested: 'x' } }, [], ['a'], 'x', 5]) {
      const e = expectError(await call(o, 'POST', '/api/endpoints', { url, metadata }), 422, 'validation_error')
      assert.deepEqual(Object.keys(e.details), ['metadata'], JSON.stringify(metadata).slice(0, 80))
    }
  })

  test('event_types: default ["*"], duplicates removed, empty or misplaced "*" → 422 invalid_event_types with details', async () => {
    const o = await newOrg()
    const url = 'https://example.com/h'
    assert.deepEqual((await createEndpoint(o, { url })).event_types, ['*'])
    assert.deepEqual((await createEndpoint(o, { url, event_types: ['b', 'a.*', 'b', 'a.*', '*'] })).event_types, ['b', 'a.*', '*'])
    const hundred = Array.from({ length: 100 }, (_, i) => `t.${i}`)
    assert.deepEqual((await createEndpoint(o, { url, event_types: hundred })).event_types, hundred)
    for (const eventTypes of [[], ['a*'], ['*a'], ['.*'], ['a.*.b'], ['**'], ['ok', 'a.b*'], [''], ['x'.repeat(256)], [5], [null], 'order.*', null, {},
      [...hundred, 't.100']]) {
      const e = expectError(await call(o, 'POST', '/api/endpoints', { url, event_types: eventTypes }), 422, 'invalid_event_types')
      assert.equal(typeof e.details?.event_types, 'string', JSON.stringify(eventTypes).slice(0, 80))
    }
  })

  test('status only active | paused on create; rate_limit and max_concurrency ranges (422 validation_error with details)', async () => {
    const o = await newOrg()
    const url = 'https://example.com/h'
    assert.equal((await createEndpoint(o, { url, status: 'paused' })).status, 'paused')
    const full = await createEndpoint(o, { url, status: 'active', rate_limit: { limit: 10_000, period_seconds: 3600 }, max_concurrency: 100 })
    assert.deepEqual([full.status, full.rate_limit, full.max_concurrency], ['active', { limit: 10_000, period_seconds: 3600 }, 100])
    const low = await createEndpoint(o, { url, rate_limit: { limit: 1, period_seconds: 1 }, max_concurrency: 1 })
    assert.deepEqual([low.rate_limit, low.max_concurrency], [{ limit: 1, period_seconds: 1 }, 1])
    const nulls = await createEndpoint(o, { url, rate_limit: null, max_concurrency: null, metadata: null })
    assert.deepEqual([nulls.rate_limit, nulls.max_concurrency, nulls.metadata], [null, null, {}])
    const bad: [Record<string, unknown>, string[]][] = [
      [{ status: 'disabled' }, ['status']],
      [{ status: 'PAUSED' }, ['status']],
      [{ status: 1 }, ['status']],
      [{ status: null }, ['status']],
      [{ rate_limit: { limit: 0, period_seconds: 1 } }, ['rate_limit.limit']],
      [{ rate_limit: { limit: 10_001, period_seconds: 1 } }, ['rate_limit.limit']],
      [{ rate_limit: { limit: 1.5, period_seconds: 1 } }, ['rate_limit.limit']],
      [{ rate_limit: { limit: '5', period_seconds: 1 } }, ['rate_limit.limit']],
      [{ rate_limit: { limit: 5, period_seconds: 0 } }, ['rate_limit.period_seconds']],
      [{ rate_limit: { limit: 5, period_seconds: 3601 } }, ['rate_limit.period_seconds']],
      [{ rate_limit: { limit: 5 } }, ['rate_limit.period_seconds']],
      [{ rate_limit: 5 }, ['rate_limit']],
      [{ rate_limit: [] }, ['rate_limit']],
      [{ max_concurrency: 0 }, ['max_concurrency']],
      [{ max_concurrency: 101 }, ['max_concurrency']],
      [{ max_concurrency: 2.5 }, ['max_concurrency']],
      [{ max_concurrency: '3' }, ['max_concurrency']],
      [{ deliver_pending: 'yes' }, ['deliver_pending']],
      [{ status: 'disabled', rate_limit: { limit: 0, period_seconds: 0 }, max_concurrency: 0, description: 5, metadata: [] },
        ['description', 'max_concurrency', 'metadata', 'rate_limit.limit', 'rate_limit.period_seconds', 'status']],
    ]
    for (const [body, keys] of bad) {
      const e = expectError(await call(o, 'POST', '/api/endpoints', { url, ...body }), 422, 'validation_error')
      assert.deepEqual(Object.keys(e.details).sort(), keys, JSON.stringify(body))
    }
    // The order of the checks: url, then event_types, then the other fields.
    expectError(await call(o, 'POST', '/api/endpoints', { url: 'ftp://x', event_types: [], max_concurrency: 0 }), 422, 'invalid_webhook_url')
    expectError(await call(o, 'POST', '/api/endpoints', { url, event_types: [], max_concurrency: 0 }), 422, 'invalid_event_types')
    const [n] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from endpoints where organization_id = ${o.id}`
    assert.equal(n?.n, 4, 'no refused request created anything')
  })

  test('201: the endpoint object plus its own signing secret; the REST Hooks shape', async () => {
    const o = await newOrg()
    const body = {
      url: 'https://hooks.example.com/in', description: 'orders to the ERP', event_types: ['order.created', 'invoice.*'], status: 'active',
      rate_limit: { limit: 50, period_seconds: 1 }, max_concurrency: 4, metadata: { team: 'billing' }, unknown_field: 'ignored',
    }
    const r = await call(o, 'POST', '/api/endpoints', body)
    assert.equal(r.status, 201, r.text)
    assert.equal(r.headers.get('content-type'), 'application/json')
    const ep = r.json
    assert.deepEqual(Object.keys(ep).sort(), [...ENDPOINT_KEYS, 'signing_secret'].sort())
    assert.match(ep.id, UUID_V7)
    assert.match(ep.signing_secret, SECRET)
    assert.equal(Buffer.from(ep.signing_secret.slice(6), 'base64').length, 32)
    assert.match(ep.created_at, ISO)
    assert.match(ep.updated_at, ISO)
    assert.deepEqual({ ...ep, id: 0, signing_secret: 0, created_at: 0, updated_at: 0 }, {
      id: 0, url: body.url, description: body.description, event_types: body.event_types, status: 'active', disabled_reason: null,
      disabled_at: null, rate_limit: body.rate_limit, max_concurrency: 4, metadata: { team: 'billing' }, is_default: false,
      signing_secret: 0, created_at: 0, updated_at: 0,
    })
    const minimal = await createEndpoint(o, { url: 'https://hooks.example.com/in' })
    assert.deepEqual([minimal.description, minimal.event_types, minimal.status, minimal.rate_limit, minimal.max_concurrency, minimal.metadata],
      [null, ['*'], 'active', null, null, {}])
    assert.notEqual(minimal.signing_secret, ep.signing_secret, 'each endpoint has its own secret')
    // The secret is shown by create and by the secret route, never in the endpoint object.
    const { stats: _stats, ...got } = await getEndpoint(o, ep.id)
    const { signing_secret: _secret, ...shown } = ep
    assert.deepEqual(got, shown)

    // REST Hooks: {target_url, event} is url + event_types [event].
    const hook = await createEndpoint(o, { target_url: 'https://zapier.example/hooks/1', event: 'order.created' })
    assert.deepEqual([hook.url, hook.event_types], ['https://zapier.example/hooks/1', ['order.created']])
    const noEvent = await createEndpoint(o, { target_url: 'https://zapier.example/hooks/2' })
    assert.deepEqual(noEvent.event_types, ['*'])
    expectError(await call(o, 'POST', '/api/endpoints', { target_url: 'https://zapier.example/hooks/3', event: 'order*' }), 422, 'invalid_event_types')
    expectError(await call(o, 'POST', '/api/endpoints', { target_url: 'nope', event: 'a' }), 422, 'invalid_webhook_url')
    const both = await createEndpoint(o, { url: 'https://a.example/x', target_url: 'https://b.example/y', event_types: ['p'], event: 'q' })
    assert.deepEqual([both.url, both.event_types], ['https://a.example/x', ['p']], 'explicit url and event_types win')
  })

  test('endpoint_limit_reached past MAX_ENDPOINTS_PER_ORG, also under concurrent creation', async () => {
    const o = await newOrg()
    const rs = await Promise.all(Array.from({ length: MAX_ENDPOINTS + 3 }, async (_, i) => await call(o, 'POST', '/api/endpoints', { url: `https://example.com/${i}` })))
    assert.equal(rs.filter(r => r.status === 201).length, MAX_ENDPOINTS)
    const refused = rs.filter(r => r.status !== 201)
    assert.equal(refused.length, 3)
    for (const r of refused) {
      const e = expectError(r, 422, 'endpoint_limit_reached')
      assert.equal(e.limit, MAX_ENDPOINTS)
    }
    const list = await call(o, 'GET', '/api/endpoints')
    assert.equal(list.json.endpoints.length, MAX_ENDPOINTS)
    // Another organization is not affected; deleting one makes room again.
    await createEndpoint(await newOrg(), { url: 'https://example.com/other' })
    assert.equal((await call(o, 'DELETE', `/api/endpoints/${list.json.endpoints[0].id}`)).status, 204)
    await createEndpoint(o, { url: 'https://example.com/again' })
    expectError(await call(o, 'POST', '/api/endpoints', { url: 'https://example.com/too-many' }), 422, 'endpoint_limit_reached')
  })

  test('deliver_pending: matching pending events get a delivery (held when paused); default false', async () => {
    const o = await newOrg()
    const rx = await receiver()
    const a1 = await ingest(o, 'a.1')
    const b1 = await ingest(o, 'b.1')
    const acked = await ingest(o, 'a.2')
    assert.equal((await call(o, 'POST', `/api/ack/${acked.id}`)).status, 200)
    const plain = await createEndpoint(o, { url: rx.url('/plain'), event_types: ['a.*'] })
    assert.deepEqual(await deliveries(o, a1.id), [], 'without deliver_pending, events already stored are not given to it')
    const backfill = await createEndpoint(o, { url: rx.url('/backfill'), event_types: ['a.*'], deliver_pending: true })
    await waitDelivery(o, a1.id, backfill.id, status('delivered', 1), 'the pending event delivered to the new endpoint')
    assert.deepEqual(await deliveries(o, b1.id), [], 'only matching events')
    assert.deepEqual(await deliveries(o, acked.id), [], 'only pending events')
    const paused = await createEndpoint(o, { url: rx.url('/paused'), status: 'paused', deliver_pending: true })
    assert.ok(held(await deliveryTo(o, b1.id, paused.id)), 'a paused endpoint gets its backfill held')
    assert.deepEqual(rx.seen.map(x => x.path), ['/backfill'])
    assert.equal(fromEndpoint(rx, plain.id).length, 0)
  })
})

// ── GET /api/endpoints ───────────────────────────────────────────────────────────────────────────

describe('GET /api/endpoints', () => {
  test('oldest first; status filter; cursor paging stable while endpoints are created; limit, status and cursor errors', async () => {
    const o = await newOrg()
    const first = []
    for (let i = 0; i < 4; i++) first.push((await createEndpoint(o, { url: `https://example.com/${i}` })).id)
    const all = await call(o, 'GET', '/api/endpoints')
    assert.equal(all.status, 200, all.text)
    assert.deepEqual(Object.keys(all.json).sort(), ['endpoints', 'has_more', 'limit', 'next_cursor'])
    assert.deepEqual([all.json.limit, all.json.has_more, all.json.next_cursor], [100, false, null])
    assert.deepEqual(all.json.endpoints.map((e: any) => e.id), first)
    for (const e of all.json.endpoints) assert.deepEqual(Object.keys(e).sort(), ENDPOINT_KEYS)

    const p1 = await call(o, 'GET', '/api/endpoints?limit=3')
    assert.deepEqual([p1.json.limit, p1.json.has_more, p1.json.endpoints.length], [3, true, 3])
    // New endpoints arrive while paging: they come after the ones already listed, nothing repeats.
    const later = [(await createEndpoint(o, { url: 'https://example.com/4' })).id, (await createEndpoint(o, { url: 'https://example.com/5' })).id]
    const seen: string[] = p1.json.endpoints.map((e: any) => e.id)
    let cursor = p1.json.next_cursor
    while (cursor !== null) {
      const p = await call(o, 'GET', `/api/endpoints?limit=2&cursor=${encodeURIComponent(cursor)}`)
      assert.equal(p.status, 200, p.text)
      seen.push(...p.json.endpoints.map((e: any) => e.id))
      assert.equal(p.json.has_more, p.json.next_cursor !== null)
      cursor = p.json.next_cursor
    }
    assert.deepEqual(seen, [...first, ...later])

    await patch(o, first[1]!, { status: 'paused' })
    await patch(o, later[0]!, { status: 'paused' })
    await patch(o, first[2]!, { status: 'disabled' })
    const ids = async (q: string): Promise<string[]> => (await call(o, 'GET', `/api/endpoints?${q}`)).json.endpoints.map((e: any) => e.id)
    assert.deepEqual(await ids('status=paused'), [first[1], later[0]])
    assert.deepEqual(await ids('status=disabled'), [first[2]])
    assert.deepEqual(await ids('status=active'), [first[0], first[3], later[1]])
    assert.deepEqual(await ids('status=paused&limit=1'), [first[1]])

    for (const q of ['status=bogus', 'status=pending', 'status=', 'status=ACTIVE']) expectError(await call(o, 'GET', `/api/endpoints?${q}`), 400, 'invalid_status')
    for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'limit=1.5', 'limit=-1', 'limit=']) expectError(await call(o, 'GET', `/api/endpoints?${q}`), 400, 'invalid_limit')
    for (const q of ['cursor=!!!', 'cursor=abc', `cursor=${Buffer.from('yesterday|x').toString('base64url')}`]) {
      expectError(await call(o, 'GET', `/api/endpoints?${q}`), 400, 'invalid_cursor')
    }
    // Another organization sees none of them.
    assert.deepEqual((await call(await newOrg(), 'GET', '/api/endpoints')).json.endpoints, [])
  })
})

// ── GET /api/endpoints/:id (stats) ───────────────────────────────────────────────────────────────

describe('GET /api/endpoints/:id', () => {
  test('a new endpoint: the object and empty stats; an upper-case id works', async () => {
    const o = await newOrg()
    const ep = await createEndpoint(o, { url: 'https://example.com/h' })
    const got = await getEndpoint(o, ep.id.toUpperCase())
    assert.deepEqual(Object.keys(got).sort(), [...ENDPOINT_KEYS, 'stats'].sort())
    assert.equal(got.id, ep.id)
    assert.deepEqual(got.stats, {
      pending: 0, held: 0, failed: 0, dead_letter: 0, oldest_pending_at: null, throttled_until: null, last_success_at: null,
      last_failure_at: null, consecutive_failures: 0,
    })
  })

  test('stats follow the deliveries: held backlog, failed, dead_letter, throttling and health', async () => {
    const o = await newOrg()
    const rx = await receiver(x => {
      switch (x.path) {
        case '/failed': return FAIL_LATER
        case '/throttled': return { status: 503, headers: { 'retry-after': '600' } }
        case '/dead': return FAIL
        default: return OK
      }
    })
    const paused = await createEndpoint(o, { url: rx.url('/paused'), event_types: ['p'], status: 'paused' })
    const failed = await createEndpoint(o, { url: rx.url('/failed'), event_types: ['f'] })
    const throttled = await createEndpoint(o, { url: rx.url('/throttled'), event_types: ['t'] })
    const dead = await createEndpoint(o, { url: rx.url('/dead'), event_types: ['d'] })
    const ok = await createEndpoint(o, { url: rx.url('/ok'), event_types: ['k'] })
    const [p1] = await ingestInOrder(o, ['p', 'p'])
    const f = await ingest(o, 'f')
    const t = await ingest(o, 't')
    const d = await ingest(o, 'd')
    const k = await ingest(o, 'k')

    const ps = (await getEndpoint(o, paused.id)).stats
    assert.deepEqual([ps.pending, ps.held, ps.failed, ps.dead_letter, ps.oldest_pending_at], [2, 2, 0, 0, p1!.created_at])

    await waitDelivery(o, f.id, failed.id, status('failed', 1), 'failed')
    const fs = (await getEndpoint(o, failed.id)).stats
    assert.deepEqual([fs.pending, fs.held, fs.failed, fs.dead_letter, fs.consecutive_failures, fs.throttled_until, fs.last_success_at],
      [0, 0, 1, 0, 1, null, null])
    assert.match(fs.last_failure_at, ISO)

    await waitDelivery(o, t.id, throttled.id, status('failed', 1), 'throttled')
    const ts = await waitFor(async () => { const st = (await getEndpoint(o, throttled.id)).stats; return st.throttled_until !== null ? st : null }, 10_000, 'throttled_until')
    assert.ok(Date.parse(ts.throttled_until) > Date.now() + 60_000, 'throttled by Retry-After: 600')
    assert.equal(ts.failed, 1)

    await waitDelivery(o, d.id, dead.id, status('dead_letter', 3), 'dead_letter')
    const ds = await waitFor(async () => { const st = (await getEndpoint(o, dead.id)).stats; return st.consecutive_failures === 3 ? st : null }, 10_000, 'health of the dead endpoint')
    assert.deepEqual([ds.pending, ds.failed, ds.dead_letter, ds.oldest_pending_at], [0, 0, 1, null])

    await waitDelivery(o, k.id, ok.id, status('delivered', 1), 'delivered')
    const ks = await waitFor(async () => { const st = (await getEndpoint(o, ok.id)).stats; return st.last_success_at !== null ? st : null }, 10_000, 'last_success_at')
    assert.deepEqual([ks.pending, ks.failed, ks.dead_letter, ks.consecutive_failures, ks.last_failure_at], [0, 0, 0, 0, null])
  })
})

// ── PATCH ────────────────────────────────────────────────────────────────────────────────────────

describe('PATCH /api/endpoints/:id', () => {
  test('each field; null clears a nullable one; refused patches change nothing', async () => {
    const o = await newOrg()
    const ep = await createEndpoint(o, {
      url: 'https://example.com/a', description: 'd', event_types: ['a.*'], rate_limit: { limit: 5, period_seconds: 10 }, max_concurrency: 3, metadata: { k: 'v' },
    })
    const steps: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ url: 'https://example.com/b' }, { url: 'https://example.com/b' }],
      [{ description: 'new' }, { description: 'new' }],
      [{ description: null }, { description: null }],
      [{ event_types: ['x.*', 'x.*', 'y'] }, { event_types: ['x.*', 'y'] }],
      [{ rate_limit: { limit: 2, period_seconds: 60 } }, { rate_limit: { limit: 2, period_seconds: 60 } }],
      [{ rate_limit: null }, { rate_limit: null }],
      [{ max_concurrency: 7 }, { max_concurrency: 7 }],
      [{ max_concurrency: null }, { max_concurrency: null }],
      [{ metadata: { a: 'b' } }, { metadata: { a: 'b' } }],
      [{ metadata: null }, { metadata: {} }],
      [{ status: 'paused' }, { status: 'paused' }],
      [{}, {}],
      [{ is_default: true, id: uuidv7(), signing_secret: 'whsec_x' }, {}],
    ]
    let cur = await getEndpoint(o, ep.id)
    delete cur.stats
    for (const [body, change] of steps) {
      const next = await patch(o, ep.id, body)
      assert.deepEqual(Object.keys(next).sort(), ENDPOINT_KEYS)
      assert.deepEqual({ ...next, updated_at: 0 }, { ...cur, ...change, updated_at: 0 }, JSON.stringify(body))
      assert.ok(next.updated_at >= cur.updated_at)
      cur = next
    }
    const refused: [Record<string, unknown>, number, string][] = [
      [{ url: '' }, 422, 'invalid_webhook_url'],
      [{ url: null }, 422, 'invalid_webhook_url'],
      [{ url: 'ftp://example.com' }, 422, 'invalid_webhook_url'],
      [{ event_types: [] }, 422, 'invalid_event_types'],
      [{ event_types: null }, 422, 'invalid_event_types'],
      [{ event_types: ['a*'] }, 422, 'invalid_event_types'],
      [{ status: 'bogus' }, 422, 'validation_error'],
      [{ status: null }, 422, 'validation_error'],
      [{ max_concurrency: 0 }, 422, 'validation_error'],
      [{ rate_limit: { limit: 0, period_seconds: 1 } }, 422, 'validation_error'],
      [{ description: 'x'.repeat(256) }, 422, 'validation_error'],
      [{ metadata: { k: 1 } }, 422, 'validation_error'],
      [{ description: 'changed', max_concurrency: 0 }, 422, 'validation_error'],
    ]
    for (const [body, st, code] of refused) expectError(await call(o, 'PATCH', `/api/endpoints/${ep.id}`, body), st, code)
    expectError(await s.api('PATCH', `/api/endpoints/${ep.id}`, { key: o.key, raw: '{', headers: { 'content-type': 'application/json' } }), 400, 'invalid_json')
    const after = await getEndpoint(o, ep.id)
    delete after.stats
    assert.deepEqual(after, cur, 'a refused patch changes nothing')
  })

  test('status transitions are idempotent; disabled_at and disabled_reason are set on entering disabled and cleared on leaving', async () => {
    const o = await newOrg()
    const ep = await createEndpoint(o, { url: 'https://example.com/h' })
    const st = (e: any): unknown[] => [e.status, e.disabled_reason, e.disabled_at]
    assert.deepEqual(st(await patch(o, ep.id, { status: 'active' })), ['active', null, null])
    assert.deepEqual(st(await patch(o, ep.id, { status: 'paused' })), ['paused', null, null])
    assert.deepEqual(st(await patch(o, ep.id, { status: 'paused' })), ['paused', null, null])
    const disabled = await patch(o, ep.id, { status: 'disabled' })
    assert.deepEqual(st(disabled).slice(0, 2), ['disabled', 'manual'])
    assert.match(disabled.disabled_at, ISO)
    const again = await patch(o, ep.id, { status: 'disabled', description: 'still off' })
    assert.deepEqual(st(again), st(disabled), 'entering a status it already has changes nothing')
    assert.deepEqual(st(await patch(o, ep.id, { status: 'paused' })), ['paused', null, null])
    assert.deepEqual(st(await patch(o, ep.id, { status: 'disabled' })).slice(0, 2), ['disabled', 'manual'])
    assert.deepEqual(st(await patch(o, ep.id, { status: 'active' })), ['active', null, null])
    assert.deepEqual(st(await getEndpoint(o, ep.id)), ['active', null, null])
  })

  test('a new url applies to every attempt not yet in flight', async () => {
    const o = await newOrg()
    const b = await receiver()
    let epId = ''
    const a = await receiver(async () => {
      // The attempt in flight finishes here; the change lands before its retry is claimed.
      const r = await call(o, 'PATCH', `/api/endpoints/${epId}`, { url: b.url('/new') })
      assert.equal(r.status, 200, r.text)
      return FAIL
    })
    const ep = await createEndpoint(o, { url: a.url('/old') })
    epId = ep.id
    const e = await ingest(o, 'moved')
    await waitDelivery(o, e.id, ep.id, status('delivered', 2), 'the retry at the new url')
    assert.equal(a.seen.length, 1)
    assert.equal(b.seen.length, 1)
    const x = b.seen[0]!
    assert.deepEqual([x.path, x.headers['x-delivery-attempt'], x.headers['webhook-id'], x.headers['x-endpoint-id']], ['/new', '2', e.id, ep.id])
    assert.doesNotThrow(() => verify(ep.signing_secret, x))
  })

  test('new event_types apply to events ingested after the change', async () => {
    const o = await newOrg()
    const rx = await receiver()
    const ep = await createEndpoint(o, { url: rx.url(), event_types: ['a.*'] })
    const b1 = await ingest(o, 'b.1')
    assert.deepEqual(await deliveries(o, b1.id), [])
    await patch(o, ep.id, { event_types: ['b.*'] })
    const b2 = await ingest(o, 'b.2')
    const a1 = await ingest(o, 'a.1')
    await waitDelivery(o, b2.id, ep.id, status('delivered', 1), 'the event ingested after the change')
    assert.deepEqual(await deliveries(o, b1.id), [], 'earlier events are not matched again (replay missed does that)')
    assert.deepEqual(await deliveries(o, a1.id), [])
    assert.deepEqual(rx.seen.map(x => x.headers['x-event-id']), [b2.id])
  })
})

// ── DELETE ───────────────────────────────────────────────────────────────────────────────────────

describe('DELETE /api/endpoints/:id', () => {
  test('204; its pending and failed deliveries are cancelled and the events follow; its attempt log stays', async () => {
    const o = await newOrg()
    const rx = await receiver(x => x.path === '/failing' ? FAIL_LATER : OK)
    const good = await createEndpoint(o, { url: rx.url('/good') })
    const paused = await createEndpoint(o, { url: rx.url('/paused'), status: 'paused' })
    const failing = await createEndpoint(o, { url: rx.url('/failing') })
    const e = await ingest(o, 'deleted.around')
    await waitDelivery(o, e.id, good.id, status('delivered'), 'delivered')
    await waitDelivery(o, e.id, failing.id, status('failed'), 'failed')
    assert.ok(held(await deliveryTo(o, e.id, paused.id)))
    assert.equal((await waitEventStatus(o, e.id, 'failed')).status, 'failed')

    const del = await call(o, 'DELETE', `/api/endpoints/${failing.id}`)
    assert.equal(del.status, 204)
    assert.equal(del.text, '')
    assert.equal((await deliveryTo(o, e.id, failing.id)).status, 'cancelled')
    assert.equal((await inboxEvent(o, e.id)).status, 'pending', 'the paused delivery is still pending')
    assert.equal((await call(o, 'DELETE', `/api/endpoints/${paused.id}`)).status, 204)
    assert.equal((await deliveryTo(o, e.id, paused.id)).status, 'cancelled')
    assert.equal((await inboxEvent(o, e.id)).status, 'delivered', 'every non-cancelled delivery is delivered')
    assert.equal((await deliveryTo(o, e.id, good.id)).status, 'delivered')

    expectError(await call(o, 'GET', `/api/endpoints/${failing.id}`), 404, 'not_found')
    expectError(await call(o, 'DELETE', `/api/endpoints/${failing.id}`), 404, 'not_found')
    assert.deepEqual((await call(o, 'GET', '/api/endpoints')).json.endpoints.map((x: any) => x.id), [good.id])
    assert.equal((await call(o, 'GET', '/api/keys')).json.endpoints_count, 1)
    const [log] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from delivery_attempts where endpoint_id = ${failing.id}`
    assert.equal(log?.n, 1, 'the attempt log of a deleted endpoint stays')
    // The cancelled delivery is never attempted again.
    assert.equal(fromEndpoint(rx, failing.id).length, 1)
  })

  test('deleting the default endpoint clears webhook_url; a later configuration signs with the same secret', async () => {
    const o = await newOrg()
    const rx = await receiver()
    const cfg = await call(o, 'POST', '/api/webhook/config', { webhook_url: rx.url('/first') })
    assert.equal(cfg.status, 200, cfg.text)
    const rot = await call(o, 'POST', '/api/webhook/secret/rotate')
    assert.equal(rot.status, 200, rot.text)
    const current = rot.json.signing_secret
    assert.notEqual(current, cfg.json.signing_secret)
    assert.deepEqual([(await call(o, 'GET', '/api/keys')).json.webhook_url, (await call(o, 'GET', '/api/keys')).json.endpoints_count], [rx.url('/first'), 1])
    assert.equal((await call(o, 'DELETE', `/api/endpoints/${cfg.json.endpoint_id}`)).status, 204)
    const keys = (await call(o, 'GET', '/api/keys')).json
    assert.deepEqual([keys.webhook_url, keys.endpoints_count], [null, 0])

    const again = await call(o, 'POST', '/api/webhook/config', { webhook_url: rx.url('/second') })
    assert.equal(again.status, 200, again.text)
    assert.equal(again.json.signing_secret, current, 'the same secret')
    assert.notEqual(again.json.endpoint_id, cfg.json.endpoint_id)
    const secret = (await call(o, 'GET', `/api/endpoints/${again.json.endpoint_id}/secret`)).json
    assert.equal(secret.signing_secret, current)
    assert.ok(secret.previous_secret_expires_at !== null, 'and the running overlap')
    const e = await ingest(o, 'after.delete')
    await waitDelivery(o, e.id, again.json.endpoint_id, status('delivered'), 'delivered')
    const x = rx.forEvent(e.id)[0]!
    assert.equal(x.path, '/second')
    assert.doesNotThrow(() => verify(current, x))
    assert.doesNotThrow(() => verify(cfg.json.signing_secret, x))
  })
})

// ── secrets ──────────────────────────────────────────────────────────────────────────────────────

describe('endpoint secrets', () => {
  test('GET secret and rotate: both secrets sign for 24 hours, verified with standardwebhooks', async () => {
    const o = await newOrg()
    const rx = await receiver()
    const ep = await createEndpoint(o, { url: rx.url() })
    const other = await createEndpoint(o, { url: rx.url('/other'), event_types: ['none'] })
    const s1 = ep.signing_secret
    assert.deepEqual((await call(o, 'GET', `/api/endpoints/${ep.id}/secret`)).json, { signing_secret: s1, previous_secret_expires_at: null })
    const r = await call(o, 'POST', `/api/endpoints/${ep.id}/secret/rotate`)
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(Object.keys(r.json).sort(), ['previous_secret_expires_at', 'signing_secret'])
    const s2 = r.json.signing_secret
    assert.match(s2, SECRET)
    assert.notEqual(s2, s1)
    const expires = Date.parse(r.json.previous_secret_expires_at)
    assert.ok(Math.abs(expires - (Date.now() + 24 * 3600_000)) < 10 * 60_000, 'the previous secret signs for 24 hours')
    assert.deepEqual((await call(o, 'GET', `/api/endpoints/${ep.id}/secret`)).json, r.json)

    const e1 = await ingest(o, 'after.rotation')
    await waitDelivery(o, e1.id, ep.id, status('delivered'), 'delivered')
    const x1 = rx.forEvent(e1.id)[0]!
    assert.equal(String(x1.headers['webhook-signature']).split(' ').length, 2)
    assert.deepEqual(verify(s2, x1), JSON.parse(x1.body))
    assert.deepEqual(verify(s1, x1), JSON.parse(x1.body))
    assert.throws(() => verify(other.signing_secret, x1))

    const s3 = (await call(o, 'POST', `/api/endpoints/${ep.id}/secret/rotate`)).json.signing_secret
    const e2 = await ingest(o, 'second.rotation')
    await waitDelivery(o, e2.id, ep.id, status('delivered'), 'delivered')
    const x2 = rx.forEvent(e2.id)[0]!
    assert.equal(String(x2.headers['webhook-signature']).split(' ').length, 2)
    assert.doesNotThrow(() => verify(s3, x2))
    assert.doesNotThrow(() => verify(s2, x2))
    assert.throws(() => verify(s1, x2), 'only the latest previous secret still signs')
  })
})

// ── replay ───────────────────────────────────────────────────────────────────────────────────────

describe('POST /api/endpoints/:id/replay', () => {
  test('dead_letter and failed: a fresh series for that endpoint only; window and status errors', async () => {
    const o = await newOrg()
    let fixed = false
    const rx = await receiver(x => fixed ? OK : x.path === '/later' ? FAIL_LATER : FAIL)
    const a = await createEndpoint(o, { url: rx.url('/a'), event_types: ['d'] })
    const b = await createEndpoint(o, { url: rx.url('/b'), event_types: ['d'] })
    const later = await createEndpoint(o, { url: rx.url('/later'), event_types: ['f'] })
    const d = await ingest(o, 'd')
    const f = await ingest(o, 'f')
    await waitDelivery(o, d.id, a.id, status('dead_letter', 3), 'dead at a')
    await waitDelivery(o, d.id, b.id, status('dead_letter', 3), 'dead at b')
    await waitDelivery(o, f.id, later.id, status('failed', 1), 'failed')

    const replay = async (id: string, body: unknown): Promise<ApiResponse> => await call(o, 'POST', `/api/endpoints/${id}/replay`, body)
    for (const body of [{}, { status: 'bogus' }, { status: 'pending' }, { status: 'delivered' }, { status: null }]) expectError(await replay(a.id, body), 400, 'invalid_status')
    for (const body of [{ status: 'dead_letter', since: 'yesterday' }, { status: 'dead_letter', since: 5 }, { status: 'dead_letter', until: 'soon' }]) {
      const e = expectError(await replay(a.id, body), 400, 'invalid_event')
      assert.ok(e.details !== undefined)
    }
    expectError(await s.api('POST', `/api/endpoints/${a.id}/replay`, { key: o.key, raw: 'nope', headers: { 'content-type': 'application/json' } }), 400, 'invalid_json')
    assert.deepEqual((await replay(a.id, { status: 'dead_letter', since: new Date(Date.now() + 60_000).toISOString() })).json, { scheduled: 0 })
    assert.deepEqual((await replay(a.id, { status: 'dead_letter', until: d.created_at })).json, { scheduled: 0 }, 'until is exclusive')
    assert.deepEqual((await replay(a.id, { status: 'failed' })).json, { scheduled: 0 })

    fixed = true
    const r = await replay(a.id, { status: 'dead_letter', since: d.created_at })
    assert.equal(r.status, 202, r.text)
    assert.deepEqual(r.json, { scheduled: 1 })
    await waitDelivery(o, d.id, a.id, status('delivered', 4), 'replayed at a')
    assert.equal((await deliveryTo(o, d.id, b.id)).status, 'dead_letter', 'the other endpoint is untouched')
    assert.deepEqual(fromEndpoint(rx, a.id).map(x => x.headers['x-delivery-attempt']), ['1', '2', '3', '4'])

    assert.deepEqual((await replay(later.id, { status: 'dead_letter' })).json, { scheduled: 0 })
    assert.deepEqual((await replay(later.id, { status: 'failed' })).json, { scheduled: 1 })
    await waitDelivery(o, f.id, later.id, status('delivered', 2), 'the failed one replayed now, not in ten minutes')
    const [trig] = await s.db.sql<{ trigger: string }[]>`select trigger from delivery_attempts where event_id = ${f.id} order by started_at desc limit 1`
    assert.equal(trig?.trigger, 'replay')
  })

  test('missed: since required; [since, until); only events that match the current filter and have no delivery to it', async () => {
    const o = await newOrg()
    const rx = await receiver()
    const ep = await createEndpoint(o, { url: rx.url(), event_types: ['x.*'] })
    const [x1, y1, y2, z1] = await ingestInOrder(o, ['x.1', 'y.1', 'y.2', 'z.1'])
    await waitDelivery(o, x1!.id, ep.id, status('delivered'), 'x.1')
    const replay = async (body: unknown): Promise<ApiResponse> => await call(o, 'POST', `/api/endpoints/${ep.id}/replay`, body)
    const e = expectError(await replay({ status: 'missed' }), 400, 'invalid_event')
    assert.ok('since' in e.details)
    expectError(await replay({ status: 'missed', since: 'then' }), 400, 'invalid_event')
    assert.deepEqual((await replay({ status: 'missed', since: x1!.created_at })).json, { scheduled: 0 }, 'nothing missed under the current filter')

    await patch(o, ep.id, { event_types: ['x.*', 'y.*'] })
    const first = await replay({ status: 'missed', since: x1!.created_at, until: y2!.created_at })
    assert.equal(first.status, 202, first.text)
    assert.deepEqual(first.json, { scheduled: 1 })
    await waitDelivery(o, y1!.id, ep.id, status('delivered'), 'y.1')
    assert.deepEqual(await deliveries(o, y2!.id), [], 'until is exclusive')
    assert.deepEqual((await replay({ status: 'missed', since: x1!.created_at })).json, { scheduled: 1 })
    await waitDelivery(o, y2!.id, ep.id, status('delivered'), 'y.2')
    assert.deepEqual((await replay({ status: 'missed', since: x1!.created_at })).json, { scheduled: 0 })
    assert.deepEqual(await deliveries(o, z1!.id), [])
    assert.deepEqual(rx.seen.map(x => x.headers['x-event-id']), [x1!.id, y1!.id, y2!.id], 'each once')
  })

  test("a replay follows the endpoint's rate limit: a burst of `limit`, the rest wait without an attempt", async () => {
    const o = await newOrg()
    let fixed = false
    const rx = await receiver(() => fixed ? OK : FAIL_LATER)
    const ep = await createEndpoint(o, { url: rx.url() })
    const events = await Promise.all(Array.from({ length: 4 }, async (_, i) => await ingest(o, `burst.${i}`)))
    for (const e of events) await waitDelivery(o, e.id, ep.id, status('failed', 1), 'failed')
    await patch(o, ep.id, { rate_limit: { limit: 2, period_seconds: 3600 } })
    fixed = true
    assert.deepEqual((await call(o, 'POST', `/api/endpoints/${ep.id}/replay`, { status: 'failed' })).json, { scheduled: 4 })
    const ds = await waitFor(async () => {
      const all = await Promise.all(events.map(async e => await deliveryTo(o, e.id, ep.id)))
      const waiting = all.filter(d => d.status === 'pending' && d.next_attempt_at !== null && Date.parse(d.next_attempt_at) > Date.now() + 600_000)
      return all.filter(status('delivered', 2)).length === 2 && waiting.length === 2 ? waiting : null
    }, 15_000, 'two started, two deferred to their slots')
    assert.deepEqual(ds.map(d => d.attempts), [1, 1], 'waiting for a slot is not an attempt')
    assert.equal(rx.seen.length, 4 + 2)
  })

  test('a disabled endpoint: 422 endpoint_disabled; a paused one: accepted and held until resumed', async () => {
    const o = await newOrg()
    let fixed = false
    const rx = await receiver(() => fixed ? OK : FAIL)
    const ep = await createEndpoint(o, { url: rx.url() })
    const e = await ingest(o, 'dead.then.paused')
    await waitDelivery(o, e.id, ep.id, status('dead_letter', 3), 'dead')
    await patch(o, ep.id, { status: 'paused' })
    fixed = true
    const r = await call(o, 'POST', `/api/endpoints/${ep.id}/replay`, { status: 'dead_letter' })
    assert.equal(r.status, 202, r.text)
    assert.deepEqual(r.json, { scheduled: 1 })
    const d = await deliveryTo(o, e.id, ep.id)
    assert.ok(held(d), 'held: pending with nothing scheduled, so no claim can take it')
    assert.equal(d.attempts, 3)
    assert.equal((await getEndpoint(o, ep.id)).stats.held, 1)
    assert.equal(rx.seen.length, 3)
    await patch(o, ep.id, { status: 'active' })
    await waitDelivery(o, e.id, ep.id, status('delivered', 4), 'delivered on resume')

    await patch(o, ep.id, { status: 'disabled' })
    for (const body of [{ status: 'dead_letter' }, { status: 'failed' }, { status: 'missed', since: e.created_at }]) {
      expectError(await call(o, 'POST', `/api/endpoints/${ep.id}/replay`, body), 422, 'endpoint_disabled')
    }
  })
})

// ── ids and rate limit ───────────────────────────────────────────────────────────────────────────

describe('endpoint routes: ids and the tier limit', () => {
  const routes = (id: string): [string, string, unknown][] => [
    ['GET', `/api/endpoints/${id}`, undefined],
    ['PATCH', `/api/endpoints/${id}`, { description: 'x' }],
    ['DELETE', `/api/endpoints/${id}`, undefined],
    ['GET', `/api/endpoints/${id}/secret`, undefined],
    ['POST', `/api/endpoints/${id}/secret/rotate`, undefined],
    ['POST', `/api/endpoints/${id}/replay`, { status: 'dead_letter' }],
  ]

  test("400 invalid_id for a path id that is not a UUID; 404 not_found for an unknown one and for another organization's", async () => {
    const o = await newOrg()
    const mine = await createEndpoint(o, { url: 'https://example.com/mine', description: 'mine' })
    const intruder = await newOrg()
    for (const [method, path, body] of routes('not-a-uuid')) expectError(await call(o, method, path, body), 400, 'invalid_id')
    for (const [method, path, body] of routes('0190a0a0-0000-7000-8000-00000000000')) expectError(await call(o, method, path, body), 400, 'invalid_id')
    for (const [method, path, body] of routes(uuidv7())) expectError(await call(o, method, path, body), 404, 'not_found')
    for (const [method, path, body] of routes(mine.id)) {
      const r = await call(intruder, method, path, body)
      expectError(r, 404, 'not_found')
      assert.equal(r.text.includes(mine.url), false)
    }
    const still = await getEndpoint(o, mine.id)
    assert.equal(still.description, 'mine', 'untouched by the other organization')
    assert.deepEqual((await call(o, 'GET', `/api/endpoints/${mine.id}/secret`)).json, { signing_secret: mine.signing_secret, previous_secret_expires_at: null })
  })

  test('every endpoint route counts one request against the tier limit (X-RateLimit headers)', async () => {
    const o = await newOrg('free')
    await untilFreshWindow(15_000)
    const ep = await createEndpoint(o, { url: 'https://example.com/limited' })
    const responses: ApiResponse[] = []
    const go = async (method: string, path: string, body?: unknown): Promise<void> => { responses.push(await call(o, method, path, body)) }
    await go('POST', '/api/endpoints', { url: 'https://example.com/limited/2' })
    await go('POST', '/api/endpoints', { url: 'ftp://refused' })
    await go('GET', '/api/endpoints')
    await go('GET', `/api/endpoints/${ep.id}`)
    await go('GET', `/api/endpoints/${uuidv7()}`)
    await go('GET', '/api/endpoints/not-a-uuid')
    await go('PATCH', `/api/endpoints/${ep.id}`, { description: 'x' })
    await go('GET', `/api/endpoints/${ep.id}/secret`)
    await go('POST', `/api/endpoints/${ep.id}/secret/rotate`)
    await go('POST', `/api/endpoints/${ep.id}/replay`, { status: 'failed' })
    await go('DELETE', `/api/endpoints/${ep.id}`)
    const remaining: number[] = []
    for (const r of responses) {
      assert.equal(r.headers.get('x-ratelimit-limit'), '100', `${r.status} ${r.text}`)
      assert.match(r.headers.get('x-ratelimit-reset') ?? '', /^\d+$/)
      remaining.push(Number(r.headers.get('x-ratelimit-remaining')))
    }
    const first = remaining[0]!
    assert.ok(first <= 98, 'the create before counted too')
    assert.deepEqual(remaining, remaining.map((_, i) => first - i), `each request counted once: ${remaining.join(',')}`)
  })
})

// ── fan-out end to end ───────────────────────────────────────────────────────────────────────────

describe('fan-out', () => {
  test('endpoints with different filters get the right events, one delivery per (event, endpoint), each signed with its own secret', async () => {
    const o = await newOrg()
    const rx = await receiver()
    const orders = await createEndpoint(o, { url: rx.url('/orders'), event_types: ['order.*'] })
    const billing = await createEndpoint(o, { url: rx.url('/billing'), event_types: ['invoice.*', 'order.created'] })
    const overlapping = await createEndpoint(o, { url: rx.url('/overlap'), event_types: ['order.*', 'order.created', 'order.created.*'] })
    const [created, paid, invoice, nobody] = await ingestInOrder(o, ['order.created', 'order.paid', 'invoice.sent', 'user.signed_up'])
    const want = new Map([
      [created!.id, [orders.id, billing.id, overlapping.id]],
      [paid!.id, [orders.id, overlapping.id]],
      [invoice!.id, [billing.id]],
      [nobody!.id, []],
    ])
    for (const [id, eps] of want) {
      for (const ep of eps) await waitDelivery(o, id, ep, status('delivered', 1), 'delivered')
      const ds = await deliveries(o, id)
      assert.deepEqual(ds.map(d => d.endpoint_id).sort(), [...eps].sort(), 'one delivery per matching endpoint, however many patterns match')
      for (const d of ds) assert.deepEqual(Object.keys(d).sort(), DELIVERY_KEYS)
    }
    assert.equal(rx.seen.length, 6)
    const secrets = new Map([[orders.id, orders.signing_secret], [billing.id, billing.signing_secret], [overlapping.id, overlapping.signing_secret]])
    for (const [id, eps] of want) {
      const got = rx.forEvent(id)
      assert.deepEqual(got.map(x => x.headers['x-endpoint-id']).sort(), [...eps].sort())
      for (const x of got) {
        assert.equal(x.headers['webhook-id'], id)
        assert.equal(x.body, got[0]!.body, 'every endpoint receives the same body')
        for (const [epId, secret] of secrets) {
          if (epId === x.headers['x-endpoint-id']) assert.deepEqual(verify(secret, x), JSON.parse(x.body))
          else assert.throws(() => verify(secret, x))
        }
      }
    }
    // An event that matches no endpoint is stored and stays pending in the inbox.
    const lonely = await inboxEvent(o, nobody!.id, true)
    assert.deepEqual([lonely.status, lonely.attempts, lonely.deliveries], ['pending', 0, []])
    assert.equal((await inboxEvent(o, created!.id)).status, 'delivered')
  })

  test('GET /api/inbox?include=deliveries and GET /api/events/:id/deliveries', async () => {
    const o = await newOrg()
    const rx = await receiver(x => x.path === '/bad' ? FAIL_LATER : OK)
    const good = await createEndpoint(o, { url: rx.url('/good') })
    const bad = await createEndpoint(o, { url: rx.url('/bad') })
    const paused = await createEndpoint(o, { url: rx.url('/paused'), status: 'paused' })
    const e = await ingest(o, 'listed')
    await waitDelivery(o, e.id, good.id, status('delivered'), 'good')
    await waitDelivery(o, e.id, bad.id, status('failed'), 'bad')
    const r = await call(o, 'GET', '/api/inbox?include=deliveries')
    assert.equal(r.status, 200, r.text)
    const ev = r.json.events.find((x: any) => x.id === e.id)
    const by = new Map<string, any>(ev.deliveries.map((d: any) => [d.endpoint_id, d]))
    assert.equal(by.size, 3)
    const g = by.get(good.id)
    assert.deepEqual([g.status, g.attempts, g.response_status, g.last_error, g.next_attempt_at], ['delivered', 1, 200, null, null])
    assert.match(g.delivered_at, ISO)
    const b = by.get(bad.id)
    assert.deepEqual([b.status, b.attempts, b.response_status, b.delivered_at], ['failed', 1, 500, null])
    assert.match(b.last_error, /^HTTP 500/)
    assert.ok(Date.parse(b.next_attempt_at) > Date.now() + 60_000, 'its retry, as Retry-After asked')
    assert.deepEqual(by.get(paused.id), { endpoint_id: paused.id, status: 'pending', attempts: 0, response_status: null, last_error: null, next_attempt_at: null, delivered_at: null })
    assert.deepEqual(ev.deliveries, await deliveries(o, e.id))
    const plain = (await call(o, 'GET', '/api/inbox')).json.events.find((x: any) => x.id === e.id)
    assert.equal('deliveries' in plain, false, 'deliveries only when asked for')
    expectError(await call(o, 'GET', '/api/inbox?include=attempts'), 400, 'invalid_filter')

    expectError(await call(o, 'GET', '/api/events/not-a-uuid/deliveries'), 400, 'invalid_id')
    expectError(await call(o, 'GET', `/api/events/${uuidv7()}/deliveries`), 404, 'not_found')
    expectError(await call(await newOrg(), 'GET', `/api/events/${e.id}/deliveries`), 404, 'not_found')
  })

  test("an event's status follows its deliveries (rule 7); its summary is the default endpoint's delivery, else the latest attempted", async () => {
    const o = await newOrg()
    let fixed = false
    const rx = await receiver(x => x.path === '/flaky' && !fixed ? FAIL_LATER : OK)
    const cfg = await call(o, 'POST', '/api/webhook/config', { webhook_url: rx.url('/default') })
    assert.equal(cfg.status, 200, cfg.text)
    const flaky = await createEndpoint(o, { url: rx.url('/flaky') })
    const e = await ingest(o, 'summarized')
    await waitDelivery(o, e.id, cfg.json.endpoint_id, status('delivered'), 'default delivered')
    await waitDelivery(o, e.id, flaky.id, status('failed'), 'flaky failed')
    const failed = await waitEventStatus(o, e.id, 'failed')
    assert.deepEqual([failed.attempts, failed.response_status, failed.last_error], [1, 200, null], "the default endpoint's delivery")
    fixed = true
    assert.deepEqual((await call(o, 'POST', `/api/endpoints/${flaky.id}/replay`, { status: 'failed' })).json, { scheduled: 1 })
    const delivered = await waitEventStatus(o, e.id, 'delivered')
    assert.deepEqual([delivered.attempts, delivered.response_status], [1, 200])

    // No default endpoint: dead_letter if any is dead (and none failed); the latest attempted one's summary.
    const o2 = await newOrg()
    const rx2 = await receiver(x => x.path === '/dead' ? FAIL : OK)
    const ok2 = await createEndpoint(o2, { url: rx2.url('/ok') })
    const dead2 = await createEndpoint(o2, { url: rx2.url('/dead') })
    const e2 = await ingest(o2, 'half.dead')
    await waitDelivery(o2, e2.id, ok2.id, status('delivered'), 'ok')
    await waitDelivery(o2, e2.id, dead2.id, status('dead_letter', 3), 'dead')
    const d2 = await waitEventStatus(o2, e2.id, 'dead_letter')
    assert.deepEqual([d2.attempts, d2.response_status], [3, 500])
    assert.match(d2.last_error, /^HTTP 500/)
    // pending while any delivery is still pending, even if the others are delivered
    const o3 = await newOrg()
    const paused3 = await createEndpoint(o3, { url: rx2.url('/ok'), status: 'paused' })
    const ok3 = await createEndpoint(o3, { url: rx2.url('/ok') })
    const p = await ingest(o3, 'p')
    await waitDelivery(o3, p.id, ok3.id, status('delivered'), 'delivered')
    assert.ok(held(await deliveryTo(o3, p.id, paused3.id)))
    const pending = await inboxEvent(o3, p.id)
    assert.deepEqual([pending.status, pending.attempts, pending.response_status], ['pending', 1, 200], 'the attempted delivery is the summary')
  })

  test('ack cancels every delivery and wins over an attempt in flight', async () => {
    const o = await newOrg()
    let acked: any = null
    const rx = await receiver(async x => {
      acked = await call(o, 'POST', `/api/ack/${String(x.headers['x-event-id'])}`)
      return { status: 500, body: 'answered after the ack' }
    })
    const paused = await createEndpoint(o, { url: rx.url('/paused'), status: 'paused' })
    const live = await createEndpoint(o, { url: rx.url('/live') })
    const e = await ingest(o, 'acked.in.flight')
    await waitFor(async () => await attemptsLogged(e.id) === 1, 15_000, 'the attempt to be written back')
    assert.equal(acked?.status, 200, acked?.text)
    const ds = await deliveries(o, e.id)
    assert.deepEqual(ds.map(d => [d.endpoint_id, d.status, d.next_attempt_at]).sort(), [[live.id, 'cancelled', null], [paused.id, 'cancelled', null]].sort())
    const ev = await inboxEvent(o, e.id)
    assert.equal(ev.status, 'delivered')
    assert.equal(ev.acknowledged_at, acked.json.acknowledged_at)
    assert.equal(rx.seen.length, 1, 'no retry after the ack')
    const again = await call(o, 'POST', `/api/ack/${e.id}`)
    assert.deepEqual(again.json, acked.json, 'idempotent: the first acknowledged_at')
  })

  test('redeliver: every delivery, one endpoint, a non-matching one; unknown, disabled and paused endpoints', async () => {
    const o = await newOrg()
    const rx = await receiver()
    const all = await createEndpoint(o, { url: rx.url('/all') })
    const orders = await createEndpoint(o, { url: rx.url('/orders'), event_types: ['order.*'] })
    const other = await createEndpoint(o, { url: rx.url('/other'), event_types: ['zzz'] })
    const paused = await createEndpoint(o, { url: rx.url('/paused'), status: 'paused' })
    const off = await createEndpoint(o, { url: rx.url('/off') })
    const e = await ingest(o, 'order.created')
    for (const ep of [all, orders, off]) await waitDelivery(o, e.id, ep.id, status('delivered', 1), 'first delivery')
    await patch(o, off.id, { status: 'disabled' })

    const r = await call(o, 'POST', `/api/events/${e.id}/redeliver`)
    assert.equal(r.status, 202, r.text)
    assert.deepEqual(r.json, { event_id: e.id, status: 'pending' })
    await waitDelivery(o, e.id, all.id, status('delivered', 2), 'redelivered to all')
    await waitDelivery(o, e.id, orders.id, status('delivered', 2), 'redelivered to orders')
    assert.ok(held(await deliveryTo(o, e.id, paused.id)))
    assert.deepEqual([(await deliveryTo(o, e.id, off.id)).attempts, fromEndpoint(rx, off.id).length], [1, 1], 'a disabled endpoint is left alone')
    assert.deepEqual(fromEndpoint(rx, all.id).map(x => x.headers['x-delivery-attempt']), ['1', '2'])

    const one = await call(o, 'POST', `/api/events/${e.id}/redeliver`, { endpoint_id: all.id.toUpperCase() })
    assert.equal(one.status, 202, one.text)
    await waitDelivery(o, e.id, all.id, status('delivered', 3), 'redelivered to one endpoint')
    assert.equal((await deliveryTo(o, e.id, orders.id)).attempts, 2, 'only the named endpoint')

    assert.equal((await call(o, 'POST', `/api/events/${e.id}/redeliver`, { endpoint_id: other.id })).status, 202)
    const x = (await waitFor(() => fromEndpoint(rx, other.id)[0], 15_000, 'the non-matching endpoint to get it'))
    assert.deepEqual([x.headers['webhook-id'], x.headers['x-delivery-attempt']], [e.id, '1'])
    assert.doesNotThrow(() => verify(other.signing_secret, x))

    const toPaused = await call(o, 'POST', `/api/events/${e.id}/redeliver`, { endpoint_id: paused.id })
    assert.equal(toPaused.status, 202, 'a paused endpoint: accepted')
    assert.ok(held(await deliveryTo(o, e.id, paused.id)), 'and held')
    assert.equal(fromEndpoint(rx, paused.id).length, 0)

    expectError(await call(o, 'POST', `/api/events/${e.id}/redeliver`, { endpoint_id: off.id }), 422, 'endpoint_disabled')
    expectError(await call(o, 'POST', `/api/events/${e.id}/redeliver`, { endpoint_id: uuidv7() }), 404, 'not_found')
    const foreign = await createEndpoint(await newOrg(), { url: rx.url('/foreign') })
    expectError(await call(o, 'POST', `/api/events/${e.id}/redeliver`, { endpoint_id: foreign.id }), 404, 'not_found')
    expectError(await call(o, 'POST', `/api/events/${e.id}/redeliver`, { endpoint_id: 'nope' }), 400, 'invalid_id')
    expectError(await call(o, 'POST', `/api/events/${uuidv7()}/redeliver`), 404, 'not_found')
    expectError(await call(o, 'POST', '/api/events/nope/redeliver'), 400, 'invalid_id')
  })

  test('redeliver an event without deliveries: matched against the current endpoints, else 422', async () => {
    const o = await newOrg()
    const rx = await receiver()
    const e = await ingest(o, 'early')
    expectError(await call(o, 'POST', `/api/events/${e.id}/redeliver`), 422, 'no_webhook_configured')
    const off = await createEndpoint(o, { url: rx.url('/off') })
    await patch(o, off.id, { status: 'disabled' })
    expectError(await call(o, 'POST', `/api/events/${e.id}/redeliver`), 422, 'no_webhook_configured')
    const ep = await createEndpoint(o, { url: rx.url('/late'), event_types: ['early'] })
    assert.equal((await call(o, 'POST', `/api/events/${e.id}/redeliver`)).status, 202)
    await waitDelivery(o, e.id, ep.id, status('delivered', 1), 'delivered to the endpoint made later')
    assert.equal((await deliveryTo(o, e.id, off.id)), undefined)
    // Its only delivery's endpoint disabled: 422 endpoint_disabled.
    await patch(o, ep.id, { status: 'disabled' })
    expectError(await call(o, 'POST', `/api/events/${e.id}/redeliver`), 422, 'endpoint_disabled')
  })

  test('POST /api/webhook/replay with endpoint_id; counts are deliveries', async () => {
    const o = await newOrg()
    let fixed = false
    const rx = await receiver(() => fixed ? OK : FAIL)
    const a = await createEndpoint(o, { url: rx.url('/a') })
    const b = await createEndpoint(o, { url: rx.url('/b') })
    const [e1, e2] = await ingestInOrder(o, ['r.1', 'r.2'])
    for (const e of [e1!, e2!]) for (const ep of [a, b]) await waitDelivery(o, e.id, ep.id, status('dead_letter', 3), 'dead')
    fixed = true
    const replay = async (body: unknown): Promise<ApiResponse> => await call(o, 'POST', '/api/webhook/replay', body)
    expectError(await replay({ status: 'dead_letter', endpoint_id: 'x' }), 400, 'invalid_id')
    expectError(await replay({ status: 'dead_letter', endpoint_id: uuidv7() }), 404, 'not_found')
    expectError(await replay({ status: 'missed', endpoint_id: a.id, since: e1!.created_at }), 400, 'invalid_status')
    const ra = await replay({ status: 'dead_letter', endpoint_id: a.id })
    assert.equal(ra.status, 202, ra.text)
    assert.deepEqual(ra.json, { scheduled: 2 })
    for (const e of [e1!, e2!]) await waitDelivery(o, e.id, a.id, status('delivered', 4), 'replayed at a')
    for (const e of [e1!, e2!]) assert.equal((await deliveryTo(o, e.id, b.id)).status, 'dead_letter')
    await patch(o, b.id, { status: 'disabled' })
    expectError(await replay({ status: 'dead_letter', endpoint_id: b.id }), 422, 'endpoint_disabled')
    assert.deepEqual((await replay({ status: 'dead_letter' })).json, { scheduled: 0 }, 'deliveries to disabled endpoints are left alone')
    await patch(o, b.id, { status: 'active' })
    assert.deepEqual((await replay({ status: 'dead_letter', since: e2!.created_at })).json, { scheduled: 1 })
    await waitDelivery(o, e2!.id, b.id, status('delivered', 4), 'replayed at b')
    assert.deepEqual((await replay({ status: 'dead_letter' })).json, { scheduled: 1 })
    await waitDelivery(o, e1!.id, b.id, status('delivered', 4), 'replayed at b')
  })

  test('/api/webhook/config: the default endpoint; pending events become deliverable; secret rotation; GET /api/keys', async () => {
    const o = await newOrg()
    const rx = await receiver()
    const [p1, p2] = await ingestInOrder(o, ['before.1', 'before.2'])
    let keys = (await call(o, 'GET', '/api/keys')).json
    assert.deepEqual([keys.webhook_url, keys.endpoints_count], [null, 0])
    expectError(await call(o, 'POST', '/api/webhook/config', {}), 400, 'missing_field')
    for (const webhookUrl of ['', 'ftp://x.example', 5]) expectError(await call(o, 'POST', '/api/webhook/config', { webhook_url: webhookUrl }), 422, 'invalid_webhook_url')

    const cfg = await call(o, 'POST', '/api/webhook/config', { webhook_url: rx.url('/cfg') })
    assert.equal(cfg.status, 200, cfg.text)
    assert.deepEqual(Object.keys(cfg.json).sort(), ['endpoint_id', 'message', 'signing_secret', 'webhook_url'])
    assert.deepEqual([cfg.json.message, cfg.json.webhook_url], ['Webhook URL configured successfully', rx.url('/cfg')])
    assert.match(cfg.json.signing_secret, SECRET)
    const def = await getEndpoint(o, cfg.json.endpoint_id)
    assert.deepEqual([def.is_default, def.event_types, def.url, def.status], [true, ['*'], rx.url('/cfg'), 'active'])
    for (const p of [p1!, p2!]) await waitDelivery(o, p.id, cfg.json.endpoint_id, status('delivered', 1), 'the pending event delivered')
    for (const x of rx.seen) assert.doesNotThrow(() => verify(cfg.json.signing_secret, x))
    await createEndpoint(o, { url: rx.url('/extra'), event_types: ['none'] })
    keys = (await call(o, 'GET', '/api/keys')).json
    assert.deepEqual([keys.webhook_url, keys.endpoints_count], [rx.url('/cfg'), 2])

    const rot = await call(o, 'POST', '/api/webhook/secret/rotate')
    assert.equal(rot.status, 200, rot.text)
    assert.deepEqual((await call(o, 'GET', `/api/endpoints/${cfg.json.endpoint_id}/secret`)).json, rot.json, "the default endpoint's secret rotated")
    const again = await call(o, 'POST', '/api/webhook/config', { webhook_url: rx.url('/moved') })
    assert.deepEqual([again.json.endpoint_id, again.json.signing_secret, again.json.webhook_url], [cfg.json.endpoint_id, rot.json.signing_secret, rx.url('/moved')])
    assert.equal((await call(o, 'GET', '/api/keys')).json.webhook_url, rx.url('/moved'))
    const e = await ingest(o, 'after.rotate')
    await waitDelivery(o, e.id, cfg.json.endpoint_id, status('delivered'), 'delivered')
    const x = rx.forEvent(e.id)[0]!
    assert.equal(x.path, '/moved')
    assert.doesNotThrow(() => verify(rot.json.signing_secret, x))
    assert.doesNotThrow(() => verify(cfg.json.signing_secret, x))

    // A rotation before the first configuration: the default endpoint takes that secret.
    const o2 = await newOrg()
    const early = await call(o2, 'POST', '/api/webhook/secret/rotate')
    assert.equal(early.status, 200, early.text)
    const cfg2 = await call(o2, 'POST', '/api/webhook/config', { webhook_url: rx.url('/o2') })
    assert.equal(cfg2.json.signing_secret, early.json.signing_secret)
  })

  test('a failing, throttled, rate-limited or paused endpoint never delays another', async () => {
    const o = await newOrg()
    const release = gate()
    const slow = await receiver(async () => { await release.wait; return OK })
    const rx = await receiver(x => x.path === '/throttled' ? { status: 429, headers: { 'retry-after': '600' } } : x.path === '/failing' ? FAIL_LATER : OK)
    const hanging = await createEndpoint(o, { url: slow.url('/hanging'), max_concurrency: 2 })
    const throttled = await createEndpoint(o, { url: rx.url('/throttled'), max_concurrency: 1 })
    const failing = await createEndpoint(o, { url: rx.url('/failing') })
    const limited = await createEndpoint(o, { url: rx.url('/limited'), rate_limit: { limit: 1, period_seconds: 3600 } })
    const paused = await createEndpoint(o, { url: rx.url('/paused'), status: 'paused' })
    const fast = await createEndpoint(o, { url: rx.url('/fast') })
    try {
      const events = await Promise.all(Array.from({ length: 20 }, async (_, i) => await ingest(o, `busy.${i}`)))
      for (const e of events) await waitDelivery(o, e.id, fast.id, status('delivered', 1), 'the healthy endpoint')
      assert.equal(fromEndpoint(rx, fast.id).length, 20)
      // The others got no further than their own limits allow.
      // Meanwhile the slow endpoint holds its two attempts open (it answers only when released).
      await waitFor(() => slow.inFlight === 2, 10_000, 'two attempts hanging at the slow endpoint')
      assert.equal(slow.seen.length, 2, 'max_concurrency 2: no third attempt started')
      assert.equal(fromEndpoint(rx, throttled.id).length, 1, 'the throttled endpoint waits after its 429')
      assert.equal(fromEndpoint(rx, limited.id).length, 1, 'the rate-limited endpoint: one start in its hour')
      assert.equal(fromEndpoint(rx, paused.id).length, 0)
      const limitedStats = (await getEndpoint(o, limited.id)).stats
      assert.equal(limitedStats.pending, 19)
      const [waiting] = await s.db.sql<{ n: number, attempts: number }[]>`
        select count(*)::int as n, coalesce(sum(attempts), 0)::int as attempts from deliveries where endpoint_id = ${limited.id} and status = 'pending'`
      assert.deepEqual([waiting?.n, waiting?.attempts], [19, 0], 'waiting for a rate slot is not an attempt')
      assert.ok(fromEndpoint(rx, failing.id).length >= 1)
    } finally {
      release.open()
    }
    await waitFor(() => slow.inFlight === 0, 10_000, 'the slow attempts to finish')
  })

  test('a 429 with Retry-After holds every new attempt to the endpoint until then', async () => {
    const o = await newOrg()
    const rx = await receiver(() => ({ status: 429, headers: { 'retry-after': '600' } }))
    const ep = await createEndpoint(o, { url: rx.url(), max_concurrency: 1 })
    const events = await Promise.all(Array.from({ length: 20 }, async (_, i) => await ingest(o, `throttled.${i}`)))
    await waitFor(async () => (await getEndpoint(o, ep.id)).stats.throttled_until !== null, 15_000, 'throttled_until')
    // Every delivery either failed once (its attempt) or waits, deferred to throttled_until: none is due.
    await waitFor(async () => {
      const [r] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where endpoint_id = ${ep.id} and (next_attempt_at <= now() or leased_until is not null)`
      return r?.n === 0
    }, 15_000, 'nothing due or in flight')
    assert.equal(events.length, 20)
    assert.equal(rx.seen.length, 1, `${rx.seen.length} attempts started after the receiver asked to wait 600 s`)
  })

  test('disabled: not matched, its backlog is held, not lost, and drains oldest first on resume; missed events come back with replay', async () => {
    const o = await newOrg()
    const first = gate()
    const rx = await receiver(async (_x, i) => { if (i === 0) await first.wait; return OK })
    const ep = await createEndpoint(o, { url: rx.url(), max_concurrency: 1 })
    const backlog = await ingestInOrder(o, ['b.1', 'b.2', 'b.3', 'b.4', 'b.5'])
    await waitFor(() => rx.inFlight === 1, 15_000, 'the first attempt in flight')
    const off = await patch(o, ep.id, { status: 'disabled' })
    assert.deepEqual([off.status, off.disabled_reason], ['disabled', 'manual'])
    const missed = await ingest(o, 'while.disabled')
    assert.deepEqual(await deliveries(o, missed.id), [], 'a disabled endpoint is not matched')
    first.open()
    await waitDelivery(o, backlog[0]!.id, ep.id, status('delivered', 1), 'the attempt in flight completes')
    for (const e of backlog.slice(1)) await waitDelivery(o, e.id, ep.id, held, 'held while disabled')
    const st = (await getEndpoint(o, ep.id)).stats
    assert.deepEqual([st.pending, st.held, st.oldest_pending_at], [4, 4, backlog[1]!.created_at])
    assert.equal(rx.seen.length, 1)

    const on = await patch(o, ep.id, { status: 'active' })
    assert.deepEqual([on.status, on.disabled_reason, on.disabled_at], ['active', null, null])
    for (const e of backlog.slice(1)) await waitDelivery(o, e.id, ep.id, status('delivered', 1), 'drained')
    assert.deepEqual(rx.seen.map(x => x.headers['x-event-id']), backlog.map(e => e.id), 'oldest first')
    assert.deepEqual(await deliveries(o, missed.id), [])
    assert.deepEqual((await call(o, 'POST', `/api/endpoints/${ep.id}/replay`, { status: 'missed', since: backlog[0]!.created_at })).json, { scheduled: 1 })
    await waitDelivery(o, missed.id, ep.id, status('delivered', 1), 'the missed event')
  })

  test('410 Gone dead-letters the delivery and disables the endpoint (gone)', async () => {
    const o = await newOrg()
    const rx = await receiver(() => ({ status: 410 }))
    const ep = await createEndpoint(o, { url: rx.url() })
    const e = await ingest(o, 'gone')
    await waitDelivery(o, e.id, ep.id, status('dead_letter', 1), 'dead at once')
    const got = await waitFor(async () => { const g = await getEndpoint(o, ep.id); return g.status === 'disabled' ? g : null }, 10_000, 'the endpoint to be disabled')
    assert.equal(got.disabled_reason, 'gone')
    assert.match(got.disabled_at, ISO)
    assert.equal(rx.seen.length, 1)
    const later = await ingest(o, 'after.gone')
    assert.deepEqual(await deliveries(o, later.id), [])
    const on = await patch(o, ep.id, { status: 'active' })
    assert.deepEqual([on.disabled_reason, on.disabled_at], [null, null])
  })
})
