/**
 * Key management against the real service (two listener threads, real Argon2 pool, real PostgreSQL):
 * POST /api/keys/generate (shape, alias, defaults, validation, the per-IP limit), GET /api/keys (never
 * the key), authentication refusals (one 401 body for every invalid key), and rotation — the old key
 * must fail on every listener thread as soon as the rotate response arrives, even where it was cached.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Client } from 'undici'
import { startTestService, type TestService } from '../helpers/server.ts'
import { freshBurst, freshRequest, threadOf, untilFreshWindow } from '../helpers/fresh.ts'

const KEY_RE = /^zap_live_[A-Za-z0-9_-]{55}$/
const ISO_MS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const GENERATED_MESSAGE = "Save this API key securely - it won't be shown again"
const ROTATED_MESSAGE = 'API key rotated successfully - update your applications immediately'
const MISSING = { error: 'Missing X-API-Key header', code: 'unauthorized' }
const INVALID = { error: 'Invalid API key', code: 'unauthorized' }
const TIER_LIMITS: Record<string, number> = { free: 100, pro: 1000, business: 10000, enterprise: 100000 }

/** 55 random URL-safe characters: a well-formed key body. */
function randomKeyBody (n = 55): string {
  return randomBytes(64).toString('base64url').slice(0, n)
}

/** Same lookup part (the first 25 characters), a different secret. */
function wrongSecret (key: string): string {
  let tail = randomKeyBody(39)
  while (tail === key.slice(25)) tail = randomKeyBody(39)
  return key.slice(0, 25) + tail
}

function assertIsoNear (value: unknown, name: string, slackMs = 60_000): void {
  assert.equal(typeof value, 'string', `${name} is a string`)
  assert.match(String(value), ISO_MS_RE, `${name} is ISO-8601 with milliseconds and Z`)
  const ms = Date.parse(String(value))
  assert.ok(Math.abs(Date.now() - ms) < slackMs, `${name} (${String(value)}) is close to now`)
}

let s: TestService
before(async () => { s = await startTestService() })
after(async () => { await s.stop() })

describe('POST /api/keys/generate', () => {
  test('201 with every field, typed, for each tier', async () => {
    for (const tier of ['free', 'pro', 'business', 'enterprise']) {
      const r = await s.api('POST', '/api/keys/generate', { body: { organization_name: `Org ${tier}`, tier } })
      assert.equal(r.status, 201, r.text)
      assert.equal(r.headers.get('content-type'), 'application/json')
      assert.deepEqual(Object.keys(r.json).sort(),
        ['api_key', 'created_at', 'message', 'organization_id', 'organization_name', 'rate_limit_per_minute', 'tier'])
      assert.match(r.json.api_key, KEY_RE)
      assert.equal(r.json.api_key.length, 64)
      assert.match(r.json.organization_id, UUID_RE)
      assert.equal(r.json.organization_name, `Org ${tier}`)
      assert.equal(r.json.tier, tier)
      assert.equal(r.json.rate_limit_per_minute, TIER_LIMITS[tier])
      assertIsoNear(r.json.created_at, 'created_at')
      assert.equal(r.json.message, GENERATED_MESSAGE)
    }
  })

  test('every key and organization id is distinct', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, async (_, i) =>
      await s.api('POST', '/api/keys/generate', { body: { organization_name: `Distinct ${i}` } })))
    for (const r of rs) assert.equal(r.status, 201, r.text)
    assert.equal(new Set(rs.map(r => r.json.api_key)).size, 8)
    assert.equal(new Set(rs.map(r => r.json.organization_id)).size, 8)
  })

  test('org_name is accepted as an alias of organization_name', async () => {
    const r = await s.api('POST', '/api/keys/generate', { body: { org_name: 'Alias Co', tier: 'pro' } })
    assert.equal(r.status, 201, r.text)
    assert.equal(r.json.organization_name, 'Alias Co')
    assert.equal(r.json.tier, 'pro')
  })

  test('tier defaults to free', async () => {
    const r = await s.api('POST', '/api/keys/generate', { body: { organization_name: 'Default Tier' } })
    assert.equal(r.status, 201, r.text)
    assert.equal(r.json.tier, 'free')
    assert.equal(r.json.rate_limit_per_minute, 100)
  })

  test('the name is trimmed, and its length is counted after trimming', async () => {
    const r = await s.api('POST', '/api/keys/generate', { body: { organization_name: '  \t Padded Org \n ' } })
    assert.equal(r.status, 201, r.text)
    assert.equal(r.json.organization_name, 'Padded Org')
    const max = 'n'.repeat(255)
    const r2 = await s.api('POST', '/api/keys/generate', { body: { organization_name: `   ${max}   ` } })
    assert.equal(r2.status, 201, r2.text)
    assert.equal(r2.json.organization_name, max)
    const [row] = await s.db.sql<{ name: string }[]>`select name from organizations where id = ${r.json.organization_id}`
    assert.equal(row?.name, 'Padded Org')
  })

  test('400 missing_field without a name', async () => {
    for (const body of [{}, { tier: 'pro' }, { organization_name: null }]) {
      const r = await s.api('POST', '/api/keys/generate', { body })
      assert.equal(r.status, 400, r.text)
      assert.equal(r.json.code, 'missing_field')
      assert.equal(typeof r.json.error, 'string')
      assert.equal(r.headers.get('content-type'), 'application/json')
    }
  })

  test('422 validation_error with details: bad tier, name too long, blank name, non-string name', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ organization_name: 'Gold Co', tier: 'gold' }, 'tier'],
      [{ organization_name: 'Free Co', tier: 'FREE' }, 'tier'],
      [{ organization_name: 'x'.repeat(256) }, 'organization_name'],
      [{ organization_name: '   ' }, 'organization_name'],
      [{ organization_name: '' }, 'organization_name'],
      [{ organization_name: 42 }, 'organization_name'],
    ]
    for (const [body, field] of cases) {
      const r = await s.api('POST', '/api/keys/generate', { body })
      assert.equal(r.status, 422, `${JSON.stringify(body).slice(0, 80)} → ${r.text}`)
      assert.equal(r.json.code, 'validation_error')
      assert.equal(typeof r.json.error, 'string')
      assert.equal(typeof r.json.details, 'object')
      assert.equal(typeof r.json.details[field], 'string', `details names ${field}: ${r.text}`)
    }
    // Both problems at once are both reported.
    const both = await s.api('POST', '/api/keys/generate', { body: { organization_name: ' ', tier: 'gold' } })
    assert.equal(both.status, 422)
    assert.deepEqual(Object.keys(both.json.details).sort(), ['organization_name', 'tier'])
  })

  test('nothing is stored for a refused request', async () => {
    const [before] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from organizations`
    await s.api('POST', '/api/keys/generate', { body: { organization_name: 'Never Stored', tier: 'gold' } })
    await s.api('POST', '/api/keys/generate', { body: { organization_name: 'y'.repeat(256) } })
    const [afterRow] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from organizations`
    assert.equal(afterRow?.n, before?.n)
    const found = await s.db.sql`select 1 from organizations where name = 'Never Stored'`
    assert.equal(found.length, 0)
  })

  test('400 invalid_json for malformed JSON, a non-object body, or an empty body', async () => {
    for (const raw of ['{"organization_name":', '[{"organization_name":"A"}]', '"A"', 'null', '', '{"organization_name":"A"} x']) {
      const r = await s.api('POST', '/api/keys/generate', { raw, headers: { 'content-type': 'application/json' } })
      assert.equal(r.status, 400, `${JSON.stringify(raw)} → ${r.text}`)
      assert.equal(r.json.code, 'invalid_json')
    }
  })

  test('per-IP limit: the 4th request in a minute gets 429 with Retry-After (limit 3, across threads)', async t => {
    const limited = await startTestService({ KEYGEN_RATE_LIMIT_PER_MINUTE: '3' })
    t.after(() => limited.stop())
    await untilFreshWindow()
    // Fresh connections: the requests land on both listener threads, so the count must be shared.
    const first = await freshBurst(3, limited.base, 'POST', '/api/keys/generate', { body: { organization_name: 'Limited' } })
    for (const r of first) {
      assert.equal(r.status, 201, r.text)
      assert.equal(r.headers['x-ratelimit-limit'], '3')
    }
    assert.deepEqual(first.map(r => r.headers['x-ratelimit-remaining']).sort(), ['0', '1', '2'])
    const rs = await freshBurst(20, limited.base, 'POST', '/api/keys/generate', { body: { organization_name: 'Limited' } })
    for (const r of rs) {
      assert.equal(r.status, 429, r.text)
      const retry = Number(r.headers['retry-after'])
      assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${String(r.headers['retry-after'])}`)
      assert.deepEqual(r.json, { error: 'Rate limit exceeded', code: 'rate_limit_exceeded', limit: 3, window: '1 minute', retry_after: retry })
      assert.equal(r.headers['content-type'], 'application/json')
      assert.equal(r.headers['x-ratelimit-remaining'], '0')
    }
    assert.ok(new Set([...first, ...rs].map(r => threadOf(r.headers))).size === 2, 'both listener threads answered')
    const [row] = await limited.db.sql<{ n: number }[]>`select count(*)::int as n from organizations`
    assert.equal(row?.n, 3, 'a limited request creates no organization')
  })
})

describe('GET /api/keys', () => {
  test('the organization, never the key; webhook_url null until configured', async () => {
    const gen = await s.api('POST', '/api/keys/generate', { body: { organization_name: 'Info Org', tier: 'business' } })
    assert.equal(gen.status, 201)
    const key: string = gen.json.api_key
    const r = await s.api('GET', '/api/keys', { key })
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(Object.keys(r.json).sort(),
      ['created_at', 'endpoints_count', 'organization_id', 'organization_name', 'rate_limit_per_minute', 'tier', 'updated_at', 'webhook_url'])
    assert.equal(r.json.endpoints_count, 0)
    assert.equal(r.json.organization_id, gen.json.organization_id)
    assert.equal(r.json.organization_name, 'Info Org')
    assert.equal(r.json.tier, 'business')
    assert.equal(r.json.rate_limit_per_minute, 10000)
    assert.equal(r.json.webhook_url, null)
    assert.equal(r.json.created_at, gen.json.created_at)
    assertIsoNear(r.json.updated_at, 'updated_at')
    assert.ok(!r.text.includes(key), 'the key is not in the body')
    assert.ok(!r.text.includes(key.slice(9)), 'no part of the secret is in the body')
    assert.ok(!r.text.includes('argon2'), 'the hash is not in the body')

    const url = 'http://127.0.0.1:9/hooks/info'
    const cfg = await s.api('POST', '/api/webhook/config', { key, body: { webhook_url: url } })
    assert.equal(cfg.status, 200, cfg.text)
    assert.equal(cfg.json.webhook_url, url)
    const r2 = await s.api('GET', '/api/keys', { key })
    assert.equal(r2.status, 200)
    assert.equal(r2.json.webhook_url, url)
    assert.equal(r2.json.endpoints_count, 1, 'the webhook URL is the default endpoint')
    assert.ok(Date.parse(r2.json.updated_at) >= Date.parse(r.json.updated_at), 'updated_at does not go back')
    assert.ok(!r2.text.includes(key))
    assert.ok(!r2.text.includes(cfg.json.signing_secret), 'the signing secret is not repeated')
  })
})

describe('authentication', () => {
  test('missing header: 401 with the exact body', async () => {
    for (const [method, path] of [['GET', '/api/keys'], ['GET', '/api/inbox'], ['POST', '/api/keys/rotate']] as const) {
      const r = await s.api(method, path)
      assert.equal(r.status, 401, `${method} ${path}`)
      assert.deepEqual(r.json, MISSING)
      assert.equal(r.headers.get('content-type'), 'application/json')
    }
    const empty = await s.api('GET', '/api/keys', { headers: { 'x-api-key': '' } })
    assert.equal(empty.status, 401)
    assert.deepEqual(empty.json, MISSING)
  })

  test('the header name is case-insensitive', async () => {
    const org = await s.createOrg('pro', 'Case Org')
    const r = await freshRequest(s.base, 'GET', '/api/keys', { headers: { 'X-API-KEY': org.key } })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.json.organization_id, org.id)
  })

  test('unknown, malformed and wrong-secret keys: the same 401 body', async () => {
    const org = await s.createOrg('pro', 'Victim Org')
    const bad = [
      'zap_live_' + randomKeyBody(),                // well-formed, unknown lookup part
      'hello',                                      // malformed
      'zap_live_short',                             // too short
      org.key + 'x',                                // too long
      'zap_test_' + org.key.slice(9),               // wrong prefix
      org.key.slice(0, 63) + '!',                   // a character outside the alphabet
      ' ' + org.key.slice(1),                       // leading space
      wrongSecret(org.key),                         // known lookup part, wrong secret (Argon2 says no)
      wrongSecret(org.key),
    ]
    const bodies = new Set<string>()
    for (const key of bad) {
      for (const [method, path, body] of [['GET', '/api/keys', undefined], ['POST', '/api/events', { type: 't', payload: {} }]] as const) {
        const r = await s.api(method, path, { key, body })
        assert.equal(r.status, 401, `${key} ${method} ${path} → ${r.text}`)
        assert.deepEqual(r.json, INVALID)
        assert.equal(r.headers.get('x-ratelimit-limit'), null, 'no rate-limit headers before authentication')
        bodies.add(r.text)
      }
    }
    assert.equal(bodies.size, 1, 'byte-identical bodies')
    // A wrong secret neither creates events nor poisons the real key.
    const [row] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from events where organization_id = ${org.id}`
    assert.equal(row?.n, 0)
    const ok = await s.api('GET', '/api/keys', { key: org.key })
    assert.equal(ok.status, 200)
    assert.equal(ok.json.organization_id, org.id)
  })
})

describe('storage', () => {
  test('only an Argon2id hash is stored; the plaintext key is nowhere in the table', async () => {
    const org = await s.createOrg('free', 'Stored Org')
    const [row] = await s.db.sql<{ key_hash: string, row: string }[]>`
      select key_hash, row_to_json(o)::text as row from organizations o where id = ${org.id}`
    assert.ok(row !== undefined)
    assert.ok(row.key_hash.startsWith('$argon2id$'), row.key_hash.slice(0, 20))
    assert.ok(!row.row.includes(org.key), 'the key is not in its row')
    assert.ok(!row.row.includes(org.key.slice(25)), 'the secret part is not in its row')
    const [all] = await s.db.sql<{ n: number }[]>`
      select count(*)::int as n from organizations o where strpos(row_to_json(o)::text, ${org.key.slice(25)}) > 0`
    assert.equal(all?.n, 0, 'no row of the table holds the secret')
  })
})

describe('POST /api/keys/rotate', () => {
  test('the old key fails on every listener thread right after the response; the new one works', async () => {
    const org = await s.createOrg('enterprise', 'Rotating Org')
    const oldKey = org.key
    const [before] = await s.db.sql<{ key_hash: string }[]>`select key_hash from organizations where id = ${org.id}`

    // Warm the old key's cache entry on both threads (fresh connections spread over the threads).
    const warm = await freshBurst(24, s.base, 'GET', '/api/keys', { key: oldKey })
    for (const r of warm) assert.equal(r.status, 200, r.text)
    assert.equal(new Set(warm.map(r => threadOf(r.headers))).size, 2, 'both threads served (and cached) the old key')

    const rot = await s.api('POST', '/api/keys/rotate', { key: oldKey })
    assert.equal(rot.status, 200, rot.text)
    assert.deepEqual(Object.keys(rot.json).sort(), ['api_key', 'message', 'rotated_at'])
    assert.equal(rot.json.message, ROTATED_MESSAGE)
    assertIsoNear(rot.json.rotated_at, 'rotated_at')
    const newKey: string = rot.json.api_key
    assert.match(newKey, KEY_RE)
    assert.notEqual(newKey, oldKey)
    assert.notEqual(newKey.slice(0, 25), oldKey.slice(0, 25), 'a new lookup part')

    // Immediately: the old key is refused everywhere.
    const stale = await freshBurst(24, s.base, 'GET', '/api/keys', { key: oldKey })
    for (const r of stale) {
      assert.equal(r.status, 401, r.text)
      assert.deepEqual(r.json, INVALID)
    }
    assert.equal(new Set(stale.map(r => threadOf(r.headers))).size, 2, 'both threads refused the old key')
    const staleWrite = await freshBurst(6, s.base, 'POST', '/api/events', { key: oldKey, body: { type: 'x', payload: {} } })
    for (const r of staleWrite) assert.equal(r.status, 401, r.text)
    const staleRotate = await s.api('POST', '/api/keys/rotate', { key: oldKey })
    assert.equal(staleRotate.status, 401)

    // The new key works on both threads, for the same organization.
    const fresh = await freshBurst(24, s.base, 'GET', '/api/keys', { key: newKey })
    for (const r of fresh) {
      assert.equal(r.status, 200, r.text)
      assert.equal(r.json.organization_id, org.id)
      assert.ok(!r.text.includes(newKey))
    }
    assert.equal(new Set(fresh.map(r => threadOf(r.headers))).size, 2)

    const [after] = await s.db.sql<{ key_hash: string, row: string }[]>`
      select key_hash, row_to_json(o)::text as row from organizations o where id = ${org.id}`
    assert.ok(after !== undefined && before !== undefined)
    assert.ok(after.key_hash.startsWith('$argon2id$'))
    assert.notEqual(after.key_hash, before.key_hash)
    assert.ok(!after.row.includes(newKey.slice(25)) && !after.row.includes(oldKey.slice(25)), 'neither key is stored')
  })

  test('a request sent after the rotate response never rides on a verification begun before it', async t => {
    // One connection per Client, so each stays on one listener thread (learnt from its request id).
    const clients: Client[] = []
    t.after(async () => { await Promise.all(clients.map(async c => { await c.close() })) })
    const send = async (c: Client, method: 'GET' | 'POST', path: string, key?: string): Promise<{ status: number, thread: string }> => {
      const r = await c.request({ method, path, headers: key === undefined ? {} : { 'x-api-key': key } })
      await r.body.text()
      return { status: r.statusCode, thread: threadOf({ 'x-request-id': String(r.headers['x-request-id']) }) }
    }
    const connect = async (): Promise<{ c: Client, thread: string }> => {
      const c = new Client(s.base)
      clients.push(c)
      return { c, thread: (await send(c, 'GET', '/health')).thread }
    }
    const onThread = async (want: (thread: string) => boolean): Promise<{ c: Client, thread: string }> => {
      for (let i = 0; i < 64; i++) {
        const got = await connect()
        if (want(got.thread)) return got
      }
      throw new Error('could not reach the wanted listener thread')
    }
    const a = await onThread(() => true)
    const b = await onThread(th => th !== a.thread)
    const c = await onThread(th => th === b.thread)

    for (let round = 0; round < 3; round++) {
      const org = await s.createOrg('pro', `Race ${round}`)
      // The key is cached on a's thread only, so the rotate request authenticates at once and its new
      // key's Argon2 hash is queued first; the request on b's thread (a cache miss there) finds the
      // old row and queues its verification behind that hash.
      assert.equal((await send(a.c, 'GET', '/api/keys', org.key)).status, 200)
      const rotating = send(a.c, 'POST', '/api/keys/rotate', org.key)
      const early = send(b.c, 'GET', '/api/keys', org.key)
      const rot = await rotating
      assert.equal(rot.status, 200)
      // Sent after the rotate response, on the thread where the old key's verification may still run.
      const late = await send(c.c, 'GET', '/api/keys', org.key)
      assert.equal(late.status, 401, `round ${round}: the old key was accepted after its rotation was answered`)
      const e = await early
      assert.ok(e.status === 200 || e.status === 401)
    }
  })

  test('a rotated key can be rotated again; only the latest works', async () => {
    const org = await s.createOrg('pro', 'Twice Rotated')
    const r1 = await s.api('POST', '/api/keys/rotate', { key: org.key })
    assert.equal(r1.status, 200)
    const r2 = await s.api('POST', '/api/keys/rotate', { key: r1.json.api_key })
    assert.equal(r2.status, 200)
    const keys = [org.key, r1.json.api_key, r2.json.api_key]
    const statuses = await Promise.all(keys.map(async key => (await s.api('GET', '/api/keys', { key })).status))
    assert.deepEqual(statuses, [401, 401, 200])
  })
})
