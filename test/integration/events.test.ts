/**
 * POST /api/events against the real service (uWS listener threads, Argon2 pool, PostgreSQL): the 201
 * shape and where the id leads, the field rules, JSON storability (depth, NUL, lone surrogates), the
 * payload-size boundary in UTF-8 bytes, the contract's check order, and deduplication — per
 * organization, never reserved by a rejected request, atomic under 50 concurrent connections, and
 * released when its window ends.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { Client } from 'undici'
import { startTestService, type ApiResponse } from '../helpers/server.ts'
import { waitFor } from '../helpers/db.ts'

const s = await startTestService()
after(() => s.stop())

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const ISO_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const LIMIT = 262_144

async function post (key: string, body: unknown): Promise<ApiResponse> {
  return await s.api('POST', '/api/events', { key, body })
}

async function postRaw (key: string, raw: string | Buffer): Promise<ApiResponse> {
  return await s.api('POST', '/api/events', { key, raw, headers: { 'content-type': 'application/json' } })
}

async function countEvents (organizationId: string): Promise<number> {
  const [row] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from events where organization_id = ${organizationId}`
  return row?.n ?? -1
}

async function countDedupKeys (organizationId: string, dedupId: string): Promise<number> {
  const [row] = await s.db.sql<{ n: number }[]>`
    select count(*)::int as n from dedup_keys where organization_id = ${organizationId} and dedup_id = ${dedupId}`
  return row?.n ?? -1
}

function assertInvalidEvent (r: ApiResponse, fields: string[]): void {
  assert.equal(r.status, 400, r.text)
  assert.equal(r.json?.code, 'invalid_event', r.text)
  assert.equal(typeof r.json.error, 'string')
  assert.ok(r.json.details !== null && typeof r.json.details === 'object', r.text)
  assert.deepEqual(Object.keys(r.json.details).sort(), [...fields].sort(), r.text)
  for (const f of fields) assert.equal(typeof r.json.details[f], 'string')
}

function assertInvalidJson (r: ApiResponse): void {
  assert.equal(r.status, 400, r.text)
  assert.equal(r.json?.code, 'invalid_json', r.text)
  assert.equal(typeof r.json.error, 'string')
}

/** An object nested `n` levels: nest(1) = {}, nest(2) = {"a":{}}. */
function nest (n: number): string {
  return '{"a":'.repeat(n - 1) + '{}' + '}'.repeat(n - 1)
}

/** A payload whose compact JSON is exactly `bytes` UTF-8 bytes, made of `unit` (1-3 bytes) and ASCII filler. */
function payloadOfBytes (bytes: number, unit = 'x'): { a: string } {
  const overhead = Buffer.byteLength('{"a":""}')
  const unitBytes = Buffer.byteLength(unit)
  const count = Math.floor((bytes - overhead) / unitBytes)
  const s = unit.repeat(count) + 'x'.repeat(bytes - overhead - count * unitBytes)
  const p = { a: s }
  assert.equal(Buffer.byteLength(JSON.stringify(p)), bytes)
  return p
}

test('201: exactly {id, type, dedup_id, status, created_at}; the id is the stored row and is in the inbox at once', async () => {
  const org = await s.createOrg('pro', 'Shape Org')
  const before = Date.now()
  const r = await post(org.key, { type: 'order.created', payload: { n: 1, s: 'é ✓' }, dedup_id: 'shape-1' })
  assert.equal(r.status, 201, r.text)
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/)
  assert.deepEqual(Object.keys(r.json).sort(), ['created_at', 'dedup_id', 'id', 'status', 'type'])
  assert.match(r.json.id, UUID_V7)
  assert.equal(r.json.type, 'order.created')
  assert.equal(r.json.dedup_id, 'shape-1')
  assert.equal(r.json.status, 'pending')
  assert.match(r.json.created_at, ISO_MS_Z)
  const createdMs = Date.parse(r.json.created_at)
  assert.ok(createdMs >= before - 1000 && createdMs <= Date.now() + 1000, `created_at ${r.json.created_at} is not now`)
  // The id's 48-bit timestamp is the creation time (within the batch's latency).
  const idMs = parseInt(r.json.id.replace(/-/g, '').slice(0, 12), 16)
  assert.ok(Math.abs(idMs - createdMs) < 5000, `id time ${idMs} vs created_at ${createdMs}`)

  const rows = await s.db.sql<{ id: string, organization_id: string, type: string, payload: unknown, dedup_id: string | null, status: string, created_at: Date }[]>`
    select id, organization_id, type, payload, dedup_id, status, created_at from events where id = ${r.json.id}`
  assert.equal(rows.length, 1)
  const row = rows[0]!
  assert.equal(row.organization_id, org.id)
  assert.equal(row.type, 'order.created')
  assert.deepEqual(row.payload, { n: 1, s: 'é ✓' })
  assert.equal(row.dedup_id, 'shape-1')
  assert.equal(row.status, 'pending')
  assert.equal(row.created_at.toISOString(), r.json.created_at)

  const inbox = await s.api('GET', '/api/inbox', { key: org.key })
  assert.equal(inbox.status, 200)
  const listed = inbox.json.events.find((e: { id: string }) => e.id === r.json.id)
  assert.ok(listed !== undefined, 'the new event is not in the inbox')
  assert.deepEqual(listed.payload, { n: 1, s: 'é ✓' })
  assert.equal(listed.created_at, r.json.created_at)

  // Without dedup_id the answer says null, not absent.
  const r2 = await post(org.key, { type: 'order.created', payload: {} })
  assert.equal(r2.status, 201, r2.text)
  assert.equal(r2.json.dedup_id, null)
  assert.notEqual(r2.json.id, r.json.id)
})

test('`data` is accepted when `payload` is absent; payload {} is allowed; `payload` wins over `data`', async () => {
  const org = await s.createOrg('pro', 'Alias Org')
  const a = await post(org.key, { type: 'legacy', data: { from: 'data' } })
  assert.equal(a.status, 201, a.text)
  const b = await post(org.key, { type: 'empty', payload: {} })
  assert.equal(b.status, 201, b.text)
  const c = await post(org.key, { type: 'both', payload: { from: 'payload' }, data: { from: 'data' } })
  assert.equal(c.status, 201, c.text)
  const rows = await s.db.sql<{ id: string, payload: unknown }[]>`select id, payload from events where organization_id = ${org.id}`
  const byId = new Map(rows.map(r => [r.id, r.payload]))
  assert.deepEqual(byId.get(a.json.id), { from: 'data' })
  assert.deepEqual(byId.get(b.json.id), {})
  assert.deepEqual(byId.get(c.json.id), { from: 'payload' })
  // `data` is checked like `payload`, under its own name.
  assertInvalidEvent(await post(org.key, { type: 'legacy', data: [1, 2] }), ['data'])
  assert.equal(await countEvents(org.id), 3)
})

test('field rules: 400 invalid_event with details naming each bad field, several at once; nothing stored', async () => {
  const org = await s.createOrg('pro', 'Validation Org')
  const cases: [unknown, string[]][] = [
    [{ payload: {} }, ['type']],
    [{ type: '', payload: {} }, ['type']],
    [{ type: 'x'.repeat(256), payload: {} }, ['type']],
    [{ type: 42, payload: {} }, ['type']],
    [{ type: 't', payload: [] }, ['payload']],
    [{ type: 't', payload: 'text' }, ['payload']],
    [{ type: 't', payload: null }, ['payload']],
    [{ type: 't', payload: 7 }, ['payload']],
    [{ type: 't' }, ['payload']],
    [{ type: 't', payload: {}, dedup_id: '' }, ['dedup_id']],
    [{ type: 't', payload: {}, dedup_id: 'd'.repeat(256) }, ['dedup_id']],
    [{ type: 't', payload: {}, dedup_id: 12 }, ['dedup_id']],
    [{ type: 't', payload: {}, dedup_id: ['a'] }, ['dedup_id']],
    [{}, ['type', 'payload']],
    [{ type: '', payload: [], dedup_id: 5 }, ['type', 'payload', 'dedup_id']],
  ]
  for (const [body, fields] of cases) {
    const r = await post(org.key, body)
    assertInvalidEvent(r, fields)
  }
  assert.equal(await countEvents(org.id), 0)

  // The boundaries themselves are accepted.
  const ok = await post(org.key, { type: 'x'.repeat(255), payload: {}, dedup_id: 'd'.repeat(255) })
  assert.equal(ok.status, 201, ok.text)
  const one = await post(org.key, { type: 'x', payload: {}, dedup_id: 'd' })
  assert.equal(one.status, 201, one.text)
  assert.equal(await countEvents(org.id), 2)
})

test('malformed JSON, invalid UTF-8 and non-object bodies are 400 invalid_json', async () => {
  const org = await s.createOrg('pro', 'Json Org')
  const bodies: (string | Buffer)[] = [
    '{"type":"t","payload":{}',
    '{type: "t"}',
    '',
    'null',
    '42',
    '"a string"',
    '[]',
    '[{"type":"t","payload":{}}]',
    Buffer.from([0xff, 0xfe]),
    // Valid JSON text around an invalid UTF-8 byte inside a string.
    Buffer.concat([Buffer.from('{"type":"t","payload":{"a":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]),
    // A UTF-8-encoded surrogate (CESU-style) is not UTF-8 either.
    Buffer.concat([Buffer.from('{"type":"t","payload":{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}}')]),
  ]
  for (const raw of bodies) assertInvalidJson(await postRaw(org.key, raw))
  assert.equal(await countEvents(org.id), 0)
})

test('nesting: 128 levels are accepted, 129 are 400 invalid_event with details, arrays count too', async () => {
  const org = await s.createOrg('pro', 'Depth Org')
  // The body object is level 1, so a payload nested 127 levels makes a 128-level document.
  const ok = await postRaw(org.key, `{"type":"deep","payload":${nest(127)}}`)
  assert.equal(ok.status, 201, ok.text)
  const deep = await postRaw(org.key, `{"type":"deep","payload":${nest(128)}}`)
  assert.equal(deep.status, 400, deep.text)
  assert.equal(deep.json.code, 'invalid_event')
  assert.ok(Object.keys(deep.json.details).length > 0, deep.text)
  const arrays = await postRaw(org.key, `{"type":"deep","payload":{"a":${'['.repeat(127)}${']'.repeat(127)}}}`)
  assert.equal(arrays.status, 400, arrays.text)
  assert.equal(arrays.json.code, 'invalid_event')
  assert.ok(Object.keys(arrays.json.details).length > 0, arrays.text)
  // Many brackets that are not nesting (siblings, or inside strings) are fine.
  const wide = await post(org.key, { type: 'wide', payload: { list: Array.from({ length: 300 }, () => ({ x: [1] })), s: '{'.repeat(500) } })
  assert.equal(wide.status, 201, wide.text)
  assert.equal(await countEvents(org.id), 2)
})

test('strings holding \\u0000 or a lone surrogate (values and keys) are 400 invalid_event naming the field; nothing stored', async () => {
  const org = await s.createOrg('pro', 'Unstorable Org')
  const cases: [string, string][] = [
    [String.raw`{"type":"t","payload":{"a":"x\u0000y"}}`, 'payload'],
    [String.raw`{"type":"t","payload":{"a":"\ud800"}}`, 'payload'],
    [String.raw`{"type":"t","payload":{"a":"\udc00x"}}`, 'payload'],
    [String.raw`{"type":"t","payload":{"a":["ok","\ud800"]}}`, 'payload'],
    [String.raw`{"type":"t","payload":{"a":{"b":"\u0000"}}}`, 'payload'],
    [String.raw`{"type":"t","payload":{"k\u0000":1}}`, 'payload'],
    [String.raw`{"type":"t","payload":{"\ud800":1}}`, 'payload'],
    [String.raw`{"type":"t","payload":{"a":{"\udfff":1}}}`, 'payload'],
    [String.raw`{"type":"t\u0000","payload":{}}`, 'type'],
    [String.raw`{"type":"\ud800","payload":{}}`, 'type'],
    [String.raw`{"type":"t","payload":{},"dedup_id":"\ud800"}`, 'dedup_id'],
    [String.raw`{"type":"t","data":{"a":"\u0000"}}`, 'data'],
  ]
  for (const [raw, field] of cases) {
    const r = await postRaw(org.key, raw)
    assert.equal(r.status, 400, `${raw} → ${r.text}`)
    assert.equal(r.json.code, 'invalid_event', raw)
    assert.ok(field in r.json.details, `${raw}: details ${JSON.stringify(r.json.details)} do not name ${field}`)
  }
  assert.equal(await countEvents(org.id), 0)
  const [keys] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from dedup_keys where organization_id = ${org.id}`
  assert.equal(keys?.n, 0)

  // Well-formed pairs and an escaped backslash before "u0000" are ordinary text.
  const pair = await postRaw(org.key, String.raw`{"type":"t","payload":{"a":"\ud83d\ude00","b":"\\u0000"}}`)
  assert.equal(pair.status, 201, pair.text)
  const [row] = await s.db.sql<{ payload: { a: string, b: string } }[]>`select payload from events where id = ${pair.json.id}`
  assert.equal(row?.payload.a, '😀')
  assert.equal(row?.payload.b, '\\u0000')
})

test('payload size: 262144 compact UTF-8 bytes → 201, 262145 → 413 with size and limit', async () => {
  const org = await s.createOrg('pro', 'Size Org')
  const exact = await post(org.key, { type: 'big', payload: payloadOfBytes(LIMIT) })
  assert.equal(exact.status, 201, exact.text.slice(0, 300))
  const over = await post(org.key, { type: 'big', payload: payloadOfBytes(LIMIT + 1) })
  assert.equal(over.status, 413, over.text.slice(0, 300))
  assert.deepEqual(over.json, { error: 'Payload exceeds 256KB limit', code: 'payload_too_large', size: LIMIT + 1, limit: LIMIT })

  // Multi-byte characters count as their UTF-8 bytes, not as characters.
  const euroExact = payloadOfBytes(LIMIT, '€')
  assert.ok(euroExact.a.length < LIMIT / 2)
  const e1 = await post(org.key, { type: 'euro', payload: euroExact })
  assert.equal(e1.status, 201, e1.text.slice(0, 300))
  const e2 = await post(org.key, { type: 'euro', payload: payloadOfBytes(LIMIT + 1, '€') })
  assert.equal(e2.status, 413, e2.text.slice(0, 300))
  assert.deepEqual(e2.json, { error: 'Payload exceeds 256KB limit', code: 'payload_too_large', size: LIMIT + 1, limit: LIMIT })
  const e3 = await post(org.key, { type: 'e', payload: payloadOfBytes(LIMIT + 2, 'é') })
  assert.equal(e3.status, 413)
  assert.equal(e3.json.size, LIMIT + 2)
  // 4-byte characters: 65535 of them plus the 8 bytes of {"a":""} is 262148 bytes (131070 UTF-16 units).
  const e4 = await post(org.key, { type: 'emoji', payload: { a: '😀'.repeat(65535) } })
  assert.equal(e4.status, 413)
  assert.equal(e4.json.size, 65535 * 4 + 8)

  // The size is of the compact serialization, not of the request's text: escapes and whitespace do not count.
  const escaped = '{ "type" : "escaped" , "payload" : { "a" : "' + '\\u20ac'.repeat(euroExact.a.length - 2) + 'xx" } }'
  assert.ok(Buffer.byteLength(escaped) > LIMIT * 1.5)
  const e5 = await postRaw(org.key, escaped)
  assert.equal(e5.status, 201, e5.text.slice(0, 300))

  const rows = await s.db.sql<{ id: string, bytes: number, payload: string }[]>`
    select id, octet_length(payload::text)::int as bytes, payload::text as payload from events where organization_id = ${org.id}`
  assert.equal(rows.length, 3)
  for (const r of rows) {
    // The escaped one is stored as the client wrote it (compacted), so it is longer than its measured size.
    if (r.id === e5.json.id) assert.equal(r.payload, '{"a":"' + '\\u20ac'.repeat(euroExact.a.length - 2) + 'xx"}')
    else assert.equal(r.bytes, LIMIT, `stored payload of ${r.id}`)
  }
})

test('payloads are stored and returned exactly as sent: big integers, 1.0, key order, duplicate keys', async () => {
  const org = await s.createOrg('pro', 'Fidelity Org')
  const payloadText = '{"big":12345678901234567890,"f":1.0,"e":1E+2,"z":1,"10":"ten","2":"two","s":"a \\" b","d":1,"d":2}'
  const r = await postRaw(org.key, '{ "type": "exact", "payload": ' + payloadText.replace(/,/g, ' , ') + ' }')
  assert.equal(r.status, 201, r.text)
  const [row] = await s.db.sql<{ payload: string }[]>`select payload::text as payload from events where id = ${r.json.id}`
  assert.equal(row?.payload, payloadText)
  const inbox = await s.api('GET', '/api/inbox', { key: org.key })
  assert.equal(inbox.status, 200)
  assert.ok(inbox.text.includes('"payload":' + payloadText), inbox.text.slice(0, 300))
})

test('check order: 401 before anything, 400 before 413, 413 before 409', async () => {
  const org = await s.createOrg('pro', 'Order Org')
  // No key / a wrong key + malformed JSON → 401.
  const noKey = await s.api('POST', '/api/events', { raw: '{bad' })
  assert.equal(noKey.status, 401)
  assert.deepEqual(noKey.json, { error: 'Missing X-API-Key header', code: 'unauthorized' })
  const badKey = await s.api('POST', '/api/events', { raw: '{bad', key: 'zap_live_' + 'A'.repeat(55) })
  assert.equal(badKey.status, 401)
  assert.deepEqual(badKey.json, { error: 'Invalid API key', code: 'unauthorized' })
  // No key + a valid event with an oversized payload → 401, not 413.
  const noKeyBig = await s.api('POST', '/api/events', { body: { type: 't', payload: payloadOfBytes(LIMIT + 1) } })
  assert.equal(noKeyBig.status, 401)

  // Invalid fields + oversized payload → 400 (fields first).
  const both = await post(org.key, { type: '', payload: payloadOfBytes(LIMIT + 10) })
  assertInvalidEvent(both, ['type'])
  const both2 = await post(org.key, { payload: payloadOfBytes(LIMIT + 10), dedup_id: 7 })
  assertInvalidEvent(both2, ['type', 'dedup_id'])

  // Oversized payload with a dedup_id that is taken → 413, not 409.
  const first = await post(org.key, { type: 't', payload: {}, dedup_id: 'order-1' })
  assert.equal(first.status, 201)
  const bigDup = await post(org.key, { type: 't', payload: payloadOfBytes(LIMIT + 1), dedup_id: 'order-1' })
  assert.equal(bigDup.status, 413)
  assert.equal(bigDup.json.code, 'payload_too_large')
  assert.equal(await countEvents(org.id), 1)
})

test('over the rate limit, malformed JSON is 429; rejected requests store nothing and reserve no dedup_id', async () => {
  const org = await s.createOrg('free', 'Limited Org')
  // Every request below is malformed JSON: those inside the limit are 400, then 429 (the limit is
  // checked before the body is parsed). A new clock minute may reset the count once, hence the bound.
  const seen: number[] = []
  let limited: ApiResponse | null = null
  for (let i = 0; i < 250 && limited === null; i++) {
    const r = await postRaw(org.key, '{"type":')
    seen.push(r.status)
    if (r.status === 429) limited = r
    else assertInvalidJson(r)
  }
  assert.ok(limited !== null, `no 429 after ${seen.length} requests`)
  assert.equal(limited.json.code, 'rate_limit_exceeded')
  assert.equal(limited.json.limit, 100)
  assert.equal(limited.headers.get('x-ratelimit-remaining'), '0')
  assert.ok(Number(limited.headers.get('retry-after')) >= 1)
  // Still over the limit: valid and invalid bodies alike are 429, and a dedup_id is not reserved.
  const valid = await post(org.key, { type: 't', payload: {}, dedup_id: 'while-limited' })
  const invalid = await post(org.key, { type: '', payload: [] })
  if (valid.status !== 429 || invalid.status !== 429) {
    // Only a new minute may have let them through; then the window must have changed.
    assert.notEqual(limited.headers.get('x-ratelimit-reset'), valid.headers.get('x-ratelimit-reset'))
  } else {
    assert.equal(valid.json.code, 'rate_limit_exceeded')
    assert.equal(invalid.json.code, 'rate_limit_exceeded')
    assert.equal(await countDedupKeys(org.id, 'while-limited'), 0)
    assert.equal(await countEvents(org.id), 0)
  }
})

test('409 duplicate_event names the original; dedup is per organization', async () => {
  const a = await s.createOrg('pro', 'Dedup A')
  const b = await s.createOrg('pro', 'Dedup B')
  const first = await post(a.key, { type: 't', payload: { n: 1 }, dedup_id: 'same' })
  assert.equal(first.status, 201)
  const again = await post(a.key, { type: 'other.type', payload: { n: 2 }, dedup_id: 'same' })
  assert.equal(again.status, 409, again.text)
  assert.deepEqual(again.json, {
    error: 'Duplicate event detected within 24-hour window',
    code: 'duplicate_event',
    dedup_id: 'same',
    event_id: first.json.id,
  })
  const other = await post(b.key, { type: 't', payload: { n: 1 }, dedup_id: 'same' })
  assert.equal(other.status, 201, other.text)
  assert.notEqual(other.json.id, first.json.id)
  // Events without dedup_id are never duplicates of each other.
  const n1 = await post(a.key, { type: 't', payload: { n: 1 } })
  const n2 = await post(a.key, { type: 't', payload: { n: 1 } })
  assert.equal(n1.status, 201)
  assert.equal(n2.status, 201)
  assert.equal(await countEvents(a.id), 3)
  assert.equal(await countEvents(b.id), 1)
})

test('a rejected request (400, 413, 401) never reserves its dedup_id', async () => {
  const org = await s.createOrg('pro', 'Reserve Org')
  const r400 = await post(org.key, { type: '', payload: {}, dedup_id: 'x-400' })
  assert.equal(r400.status, 400)
  const r400b = await postRaw(org.key, String.raw`{"type":"t","payload":{"a":"\u0000"},"dedup_id":"x-400b"}`)
  assert.equal(r400b.status, 400)
  const r413 = await post(org.key, { type: 't', payload: payloadOfBytes(LIMIT + 1), dedup_id: 'x-413' })
  assert.equal(r413.status, 413)
  const r401 = await s.api('POST', '/api/events', { key: org.key.slice(0, -1) + (org.key.endsWith('A') ? 'B' : 'A'), body: { type: 't', payload: {}, dedup_id: 'x-401' } })
  assert.equal(r401.status, 401)
  assert.equal(await countEvents(org.id), 0)
  for (const d of ['x-400', 'x-400b', 'x-413', 'x-401']) {
    const ok = await post(org.key, { type: 't', payload: {}, dedup_id: d })
    assert.equal(ok.status, 201, `${d}: ${ok.text}`)
  }
  assert.equal(await countEvents(org.id), 4)
})

test('dedup race: 50 concurrent requests on 50 connections → exactly one 201, 49 409 naming it, one row', async () => {
  const org = await s.createOrg('enterprise', 'Race Org')
  // Warm the key on the listener threads so the race is decided by the writer, not by Argon2.
  for (let i = 0; i < 8; i++) assert.equal((await post(org.key, { type: 'warm', payload: {} })).status, 201)
  for (const dedupId of ['race-1', 'race-2']) {
    const clients = Array.from({ length: 50 }, () => new Client(s.base, { pipelining: 0 }))
    try {
      const results = await Promise.all(clients.map(async (c, i) => {
        const r = await c.request({
          method: 'POST',
          path: '/api/events',
          headers: { 'x-api-key': org.key, 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'race', payload: { i }, dedup_id: dedupId }),
        })
        const text = await r.body.text()
        return { status: r.statusCode, json: JSON.parse(text) }
      }))
      const created = results.filter(r => r.status === 201)
      const dups = results.filter(r => r.status === 409)
      assert.equal(created.length, 1, JSON.stringify(results.map(r => r.status)))
      assert.equal(dups.length, 49)
      const id: string = created[0]!.json.id
      for (const d of dups) {
        assert.equal(d.json.code, 'duplicate_event')
        assert.equal(d.json.event_id, id)
        assert.equal(d.json.dedup_id, dedupId)
      }
      const rows = await s.db.sql<{ id: string }[]>`select id from events where organization_id = ${org.id} and dedup_id = ${dedupId}`
      assert.deepEqual(rows.map(r => r.id), [id])
    } finally {
      await Promise.all(clients.map(async c => { await c.close() }))
    }
  }
})

test('dedup window: after DEDUP_WINDOW_SECONDS the same dedup_id makes a new event', async t => {
  const short = await startTestService({ DEDUP_WINDOW_SECONDS: '1' })
  t.after(() => short.stop())
  const org = await short.createOrg('pro', 'Window Org')
  const send = async (): Promise<ApiResponse> =>
    await short.api('POST', '/api/events', { key: org.key, body: { type: 't', payload: {}, dedup_id: 'window' } })
  const first = await send()
  assert.equal(first.status, 201)
  const acceptedAt = Date.now()
  const within = await send()
  if (Date.now() - acceptedAt < 900) {
    assert.equal(within.status, 409)
    assert.equal(within.json.event_id, first.json.id)
  }
  await waitFor(() => Date.now() - acceptedAt >= 1100, 5000, '1.1 s to pass')
  const later = await send()
  assert.equal(later.status, 201, later.text)
  assert.notEqual(later.json.id, first.json.id)
  // The new event now holds the dedup_id for a new window.
  const again = await send()
  assert.equal(again.status, 409)
  assert.equal(again.json.event_id, later.json.id)
  const rows = await short.db.sql<{ id: string }[]>`select id from events where organization_id = ${org.id} order by id`
  assert.deepEqual(rows.map(r => r.id), [first.json.id, later.json.id])
})
