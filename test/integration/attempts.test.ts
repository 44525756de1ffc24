/**
 * The attempt log end to end (docs/api.md "Delivery attempts"): the real service with its delivery thread,
 * real node:http receivers on 127.0.0.1, every outcome produced for real — a 2xx, a 500, a 410, a
 * receiver that never answers (timeout), a closed port (network_error) and, on a second service that
 * refuses private targets, an endpoint row pointing at loopback (blocked: nothing is sent). Then the
 * four routes read what was logged: order, paging, filters, stats, by id, isolation between
 * organizations, and the attempt histogram on /metrics. Every wait is on a condition; nothing asserts
 * elapsed time.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startTestService, type TestService } from '../helpers/server.ts'
import { waitFor } from '../helpers/db.ts'
import { Receiver, Rows, type Handler } from '../helpers/delivery.ts'
import { freePort } from '../../src/lib/free-port.ts'
import { uuidv7, uuidv7Time } from '../../src/lib/uuid.ts'
import { SCAN_MAX } from '../../src/db/queries/find-attempts.ts'

const EXCERPT = 64
const TIMEOUT_MS = 1000
/** 1 + 2 retries per failing delivery. */
const TRIES = 3
const ATTEMPT_KEYS = ['id', 'event_id', 'endpoint_id', 'attempt_number', 'trigger', 'url', 'started_at', 'duration_ms', 'outcome',
  'response_status', 'response_headers', 'response_body', 'response_body_truncated', 'error', 'next_attempt_at', 'response_body_expired']

type Attempt = Record<string, any>

/** Every page of a list route, following next_cursor with `limit`. */
async function allPages (s: TestService, key: string, path: string, limit: number): Promise<{ rows: Attempt[], pages: number }> {
  const rows: Attempt[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const sep = path.includes('?') ? '&' : '?'
    const r = await s.api('GET', `${path}${sep}limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`, { key })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.json.limit, limit)
    assert.ok(r.json.attempts.length <= limit)
    assert.equal(r.json.has_more, r.json.next_cursor !== null)
    rows.push(...r.json.attempts)
    cursor = r.json.next_cursor
    pages++
  } while (cursor !== null)
  return { rows, pages }
}

/** Waits until every delivery of `eventIds` is finished (delivered or dead_letter): their attempts are then logged. */
async function settled (s: TestService, eventIds: readonly string[]): Promise<void> {
  await waitFor(async () => {
    const [row] = await s.db.sql<{ open: number, total: number }[]>`
      select count(*) filter (where status not in ('delivered', 'dead_letter'))::int as open, count(*)::int as total
        from deliveries where event_id = any(${s.db.sql.array([...eventIds])}::uuid[])`
    return row !== undefined && row.total > 0 && row.open === 0
  }, 30_000, `the deliveries of ${eventIds.length} events to finish`)
}

function sortedAsc (rows: readonly Attempt[]): boolean {
  return rows.every((r, i) => i === 0 || rows[i - 1]!.started_at < r.started_at || (rows[i - 1]!.started_at === r.started_at && rows[i - 1]!.id < r.id))
}

/** percentile_disc: the first value whose cumulative share reaches `f`. */
function percentileDisc (values: readonly number[], f: number): number {
  const v = [...values].sort((a, b) => a - b)
  return v[Math.max(0, Math.ceil(f * v.length) - 1)]!
}

function sample (text: string, name: string, labels: string): number {
  const line = text.split('\n').find(l => l.startsWith(`${name}{${labels}}`))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
}

describe('the attempt log', () => {
  let s: TestService
  let metricsPort: number
  const receivers: Receiver[] = []
  const rx = async (h: Handler): Promise<Receiver> => { const r = await Receiver.start(h); receivers.push(r); return r }
  let key: string
  let orgId: string
  let other: { key: string, id: string }
  const ep: Record<'ok' | 'e500' | 'gone' | 'hang' | 'refused', string> = { ok: '', e500: '', gone: '', hang: '', refused: '' }
  let closedPort: number
  let okRx: Receiver
  let e1: string
  let e2: string
  const okBody = 'ok ✓ "quoted" \\ \u2028 😀 ünïcode'
  const e500Body = 'a' + 'é'.repeat(100)

  before(async () => {
    metricsPort = await freePort()
    s = await startTestService({
      THREADS: '1',
      DELIVERY_ENABLED: 'true',
      ALLOW_PRIVATE_WEBHOOKS: 'true',
      DELIVERY_TIMEOUT_MS: String(TIMEOUT_MS),
      DELIVERY_RETRY_DELAYS_MS: '20,40',
      ATTEMPT_BODY_EXCERPT_BYTES: String(EXCERPT),
      METRICS_PORT: String(metricsPort),
    })
    // postgres.js learns the array types on a client's first connection: a first query passing an
    // array would go out untyped.
    await s.db.sql`select 1`
    okRx = await rx(() => ({
      status: 200,
      headers: {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': String(Buffer.byteLength(okBody)),
        'retry-after': '7',
        location: 'https://example.com/elsewhere',
        'x-secret-token': 'do-not-keep',
        'set-cookie': 'session=abc',
        server: 'receiver/1.0',
      },
      body: okBody,
    }))
    const e500Rx = await rx(() => ({ status: 500, body: e500Body }))
    const goneRx = await rx(() => ({ status: 410, body: 'gone' }))
    const hangRx = await rx(async (_s, _i, r) => { await r.closed; return { status: 200 } })
    closedPort = await freePort()

    const org = await s.createOrg('enterprise', 'Attempts Org')
    key = org.key
    orgId = org.id
    other = await s.createOrg('enterprise', 'Other Org')
    const create = async (url: string): Promise<string> => {
      const r = await s.api('POST', '/api/endpoints', { key, body: { url } })
      assert.equal(r.status, 201, r.text)
      return r.json.id
    }
    ep.ok = await create(okRx.url('/ok'))
    ep.e500 = await create(e500Rx.url('/500'))
    ep.gone = await create(goneRx.url('/gone'))
    ep.hang = await create(hangRx.url('/hang'))
    ep.refused = await create(`http://127.0.0.1:${closedPort}/hook`)

    const send = async (type: string): Promise<string> => {
      const r = await s.api('POST', '/api/events', { key, body: { type, payload: { n: 1 } } })
      assert.equal(r.status, 201, r.text)
      return r.json.id
    }
    e1 = await send('order.created')
    await settled(s, [e1])
    // The 410 disabled its endpoint: the second event goes to the other four.
    e2 = await send('order.updated')
    await settled(s, [e2])
  })
  after(async () => {
    for (const r of receivers) await r.close()
    await s?.stop()
  })

  test('one event, every outcome: its attempts oldest first, each with the fields of the contract', async () => {
    const r = await s.api('GET', `/api/events/${e1}/attempts`, { key })
    assert.equal(r.status, 200, r.text)
    const list: Attempt[] = r.json.attempts
    assert.equal(list.length, 1 + TRIES + 1 + TRIES + TRIES)
    assert.deepEqual([r.json.limit, r.json.next_cursor, r.json.has_more], [100, null, false])
    assert.ok(sortedAsc(list), 'oldest first by (started_at, id)')
    for (const a of list) {
      assert.deepEqual(Object.keys(a), ATTEMPT_KEYS)
      assert.equal(a.event_id, e1)
      assert.equal(uuidv7Time(a.id), Date.parse(a.started_at), "the id's time is started_at")
      assert.match(a.started_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      assert.ok(Number.isInteger(a.duration_ms) && a.duration_ms >= 0)
      assert.equal(a.response_body_expired, false)
    }
    const of = (id: string): Attempt[] => list.filter(a => a.endpoint_id === id)

    const [ok] = of(ep.ok)
    assert.equal(ok?.outcome, 'success')
    assert.equal(ok.response_status, 200)
    assert.equal(ok.trigger, 'initial')
    assert.equal(ok.attempt_number, 1)
    assert.equal(ok.url, okRx.url('/ok'))
    assert.equal(ok.response_body, okBody, 'any Unicode round-trips through the JSON answer')
    assert.equal(ok.response_body_truncated, false)
    assert.equal(ok.error, null)
    assert.equal(ok.next_attempt_at, null)
    // Only the four kept headers, whatever else the receiver sent.
    assert.deepEqual(ok.response_headers, {
      'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(okBody)), 'retry-after': '7', location: 'https://example.com/elsewhere',
    })
    assert.ok(!r.text.includes('do-not-keep') && !r.text.includes('session=abc'))

    const e500 = of(ep.e500)
    assert.deepEqual(e500.map(a => [a.attempt_number, a.trigger, a.outcome, a.response_status]),
      [[1, 'initial', 'http_error', 500], [2, 'retry', 'http_error', 500], [3, 'retry', 'http_error', 500]])
    for (const a of e500) {
      // The first 64 bytes: 'a' and 31 two-byte 'é' (63 bytes), then half an 'é', read as U+FFFD.
      assert.equal(a.response_body, 'a' + 'é'.repeat(31) + '\uFFFD')
      assert.equal(a.response_body_truncated, true)
      assert.equal(a.error, null, 'the body is in the excerpt, not in error')
    }
    assert.ok(e500[0]!.next_attempt_at !== null && e500[1]!.next_attempt_at !== null, 'a failed attempt names its retry')
    assert.equal(e500[2]!.next_attempt_at, null, 'the last one scheduled none (dead_letter)')

    const gone = of(ep.gone)
    assert.deepEqual(gone.map(a => [a.outcome, a.response_status, a.response_body, a.next_attempt_at]), [['http_error', 410, 'gone', null]])

    const hang = of(ep.hang)
    assert.equal(hang.length, TRIES)
    for (const a of hang) {
      assert.equal(a.outcome, 'timeout')
      assert.deepEqual([a.response_status, a.response_headers, a.response_body, a.response_body_truncated], [null, null, null, false])
      assert.match(a.error, /^timeout/)
    }

    const refused = of(ep.refused)
    assert.equal(refused.length, TRIES)
    for (const a of refused) {
      assert.equal(a.outcome, 'network_error')
      assert.equal(a.response_status, null)
      assert.equal(a.response_body, null)
      assert.ok(a.error.includes(`connect ECONNREFUSED 127.0.0.1:${closedPort}`), a.error)
    }
  })

  test('endpoint_id narrows an event\'s attempts; paging follows (started_at, id) without gaps or repeats', async () => {
    const all = (await s.api('GET', `/api/events/${e1}/attempts`, { key })).json.attempts as Attempt[]
    const paged = await allPages(s, key, `/api/events/${e1}/attempts`, 3)
    assert.equal(paged.pages, Math.ceil(all.length / 3))
    assert.deepEqual(paged.rows.map(a => a.id), all.map(a => a.id))
    const one = await s.api('GET', `/api/events/${e1}/attempts?endpoint_id=${ep.e500.toUpperCase()}`, { key })
    assert.equal(one.status, 200, one.text)
    assert.deepEqual(one.json.attempts.map((a: Attempt) => a.id), all.filter(a => a.endpoint_id === ep.e500).map(a => a.id))
    const none = await s.api('GET', `/api/events/${e1}/attempts?endpoint_id=${uuidv7()}`, { key })
    assert.deepEqual([none.status, none.json.attempts], [200, []])
  })

  test('an endpoint\'s attempts newest first, paged, across events', async () => {
    const full = await s.api('GET', `/api/endpoints/${ep.e500}/attempts`, { key })
    assert.equal(full.status, 200, full.text)
    const rows: Attempt[] = full.json.attempts
    assert.equal(rows.length, 2 * TRIES)
    assert.ok(sortedAsc([...rows].reverse()), 'newest first')
    assert.deepEqual(new Set(rows.map(a => a.event_id)), new Set([e1, e2]))
    assert.equal(rows[0]!.event_id, e2)
    const paged = await allPages(s, key, `/api/endpoints/${ep.e500}/attempts`, 4)
    assert.equal(paged.pages, 2)
    assert.deepEqual(paged.rows.map(a => a.id), rows.map(a => a.id))
  })

  test('filters: outcome, status_class, event_type, since and until, alone and together', async () => {
    const ids = async (id: string, q: string): Promise<string[]> => {
      const r = await s.api('GET', `/api/endpoints/${id}/attempts?${q}`, { key })
      assert.equal(r.status, 200, `${q}: ${r.text}`)
      return r.json.attempts.map((a: Attempt) => a.id)
    }
    const e500 = (await s.api('GET', `/api/endpoints/${ep.e500}/attempts`, { key })).json.attempts as Attempt[]
    assert.deepEqual(await ids(ep.e500, 'outcome=http_error'), e500.map(a => a.id))
    assert.deepEqual(await ids(ep.e500, 'outcome=success'), [])
    assert.deepEqual(await ids(ep.e500, 'status_class=5xx'), e500.map(a => a.id))
    assert.deepEqual(await ids(ep.e500, 'status_class=4xx'), [])
    assert.deepEqual(await ids(ep.gone, 'status_class=4xx'), await ids(ep.gone, ''))
    assert.equal((await ids(ep.gone, 'status_class=4xx')).length, 1)
    assert.equal((await ids(ep.hang, 'status_class=none&outcome=timeout')).length, 2 * TRIES)
    assert.equal((await ids(ep.refused, 'status_class=none&outcome=network_error')).length, 2 * TRIES)
    assert.deepEqual(await ids(ep.hang, 'status_class=2xx'), [])
    const ok = (await s.api('GET', `/api/endpoints/${ep.ok}/attempts`, { key })).json.attempts as Attempt[]
    assert.deepEqual(await ids(ep.ok, 'event_type=order.updated'), ok.filter(a => a.event_id === e2).map(a => a.id))
    assert.deepEqual(await ids(ep.ok, 'event_type=order.created&outcome=success&status_class=2xx'), ok.filter(a => a.event_id === e1).map(a => a.id))
    assert.deepEqual(await ids(ep.ok, 'event_type=order'), [])
    // since is inclusive, until exclusive.
    const mid = e500[2]!
    assert.deepEqual(await ids(ep.e500, `since=${mid.started_at}`), e500.slice(0, 3).map(a => a.id))
    assert.deepEqual(await ids(ep.e500, `until=${mid.started_at}`), e500.slice(3).map(a => a.id))
    assert.deepEqual(await ids(ep.e500, `since=${e500[4]!.started_at}&until=${e500[1]!.started_at}`), e500.slice(2, 5).map(a => a.id))
    // An offset given as "+00:00" unencoded in the query string arrives as " 00:00" and still counts.
    assert.deepEqual(await ids(ep.e500, 'since=2000-01-01T00:00:00+00:00&until=2999-01-01'), e500.map(a => a.id))
  })

  test('any bad filter value is 400 invalid_filter naming each; bad paging is invalid_limit / invalid_cursor', async () => {
    const bad = await s.api('GET', `/api/endpoints/${ep.e500}/attempts?outcome=bogus&status_class=6xx&event_type=&since=yesterday&until=2026-02-30T00:00:00Z`, { key })
    assert.equal(bad.status, 400, bad.text)
    assert.equal(bad.json.code, 'invalid_filter')
    assert.deepEqual(Object.keys(bad.json.details).sort(), ['event_type', 'outcome', 'since', 'status_class', 'until'])
    for (const q of ['since=2026-11-24T10:00:00', 'until=2026-11-24T25:00:00Z', 'outcome=success&outcome=timeout', 'status_class=5XX',
      `since=2026-11-24T10:00:00Z&until=2026-11-24T10:00:00Z`, `event_type=${'t'.repeat(256)}`]) {
      const r = await s.api('GET', `/api/endpoints/${ep.e500}/attempts?${q}`, { key })
      assert.deepEqual([r.status, r.json.code], [400, 'invalid_filter'], q)
      assert.equal(typeof r.json.details, 'object', q)
    }
    const badEp = await s.api('GET', `/api/events/${e1}/attempts?endpoint_id=nope`, { key })
    assert.deepEqual([badEp.status, badEp.json.code, Object.keys(badEp.json.details)], [400, 'invalid_filter', ['endpoint_id']])
    for (const path of [`/api/events/${e1}/attempts`, `/api/endpoints/${ep.e500}/attempts`]) {
      assert.equal((await s.api('GET', `${path}?limit=0`, { key })).json.code, 'invalid_limit')
      assert.equal((await s.api('GET', `${path}?limit=1001`, { key })).json.code, 'invalid_limit')
      assert.equal((await s.api('GET', `${path}?cursor=bm90LWEtY3Vyc29y`, { key })).json.code, 'invalid_cursor')
    }
  })

  test('GET /api/attempts/:id is the same object as in the lists', async () => {
    const list = (await s.api('GET', `/api/events/${e1}/attempts`, { key })).json.attempts as Attempt[]
    for (const a of [list[0]!, list[list.length - 1]!]) {
      const r = await s.api('GET', `/api/attempts/${a.id}`, { key })
      assert.equal(r.status, 200, r.text)
      assert.deepEqual(r.json, a)
    }
    const upper = await s.api('GET', `/api/attempts/${list[0]!.id.toUpperCase()}`, { key })
    assert.equal(upper.json.id, list[0]!.id)
  })

  test('stats: counts by outcome, percentile_disc of duration_ms, latest success and failure; nulls without attempts', async () => {
    const rows = (await s.api('GET', `/api/endpoints/${ep.e500}/attempts`, { key })).json.attempts as Attempt[]
    const r = await s.api('GET', `/api/endpoints/${ep.e500}/stats`, { key })
    assert.equal(r.status, 200, r.text)
    const durations = rows.map(a => a.duration_ms as number)
    assert.deepEqual(r.json, {
      success: 0, http_error: 2 * TRIES, timeout: 0, network_error: 0, blocked: 0,
      p50_ms: percentileDisc(durations, 0.5), p95_ms: percentileDisc(durations, 0.95),
      last_success_at: null, last_failure_at: rows[0]!.started_at,
    })
    const ok = (await s.api('GET', `/api/endpoints/${ep.ok}/stats`, { key })).json
    const okRows = (await s.api('GET', `/api/endpoints/${ep.ok}/attempts`, { key })).json.attempts as Attempt[]
    assert.deepEqual([ok.success, ok.http_error, ok.last_success_at, ok.last_failure_at], [2, 0, okRows[0]!.started_at, null])
    const hang = (await s.api('GET', `/api/endpoints/${ep.hang}/stats`, { key })).json
    assert.deepEqual([hang.timeout, hang.success], [2 * TRIES, 0])
    const refused = (await s.api('GET', `/api/endpoints/${ep.refused}/stats`, { key })).json
    assert.equal(refused.network_error, 2 * TRIES)

    // A window: since inclusive, until exclusive; a window ending at the oldest attempt holds none.
    const oldest = rows[rows.length - 1]!.started_at
    const before = await s.api('GET', `/api/endpoints/${ep.e500}/stats?until=${oldest}`, { key })
    assert.deepEqual(before.json, { success: 0, http_error: 0, timeout: 0, network_error: 0, blocked: 0, p50_ms: null, p95_ms: null, last_success_at: null, last_failure_at: null })
    const from = await s.api('GET', `/api/endpoints/${ep.e500}/stats?since=${oldest}`, { key })
    assert.equal(from.json.http_error, 2 * TRIES)

    const fresh = await s.api('POST', '/api/endpoints', { key, body: { url: okRx.url('/fresh'), event_types: ['nothing.matches'] } })
    const empty = await s.api('GET', `/api/endpoints/${fresh.json.id}/stats`, { key })
    assert.deepEqual(empty.json, { success: 0, http_error: 0, timeout: 0, network_error: 0, blocked: 0, p50_ms: null, p95_ms: null, last_success_at: null, last_failure_at: null })
  })

  test('stats window: at most 7 days; since must come before until; bad times refused', async () => {
    const now = Date.now()
    const iso = (ms: number): string => new Date(ms).toISOString()
    for (const q of [
      `since=${iso(now - 8 * 86_400_000)}`,
      `since=${iso(now - 10 * 86_400_000)}&until=${iso(now - 2 * 86_400_000)}`,
      `since=${iso(now)}&until=${iso(now - 1000)}`,
      'since=last-week',
      'until=2026-13-01',
    ]) {
      const r = await s.api('GET', `/api/endpoints/${ep.e500}/stats?${q}`, { key })
      assert.deepEqual([r.status, r.json.code], [400, 'invalid_filter'], q)
      assert.equal(typeof r.json.details, 'object')
    }
    const week = await s.api('GET', `/api/endpoints/${ep.e500}/stats?since=${iso(now - 7 * 86_400_000 + 60_000)}`, { key })
    assert.equal(week.status, 200, week.text)
    assert.equal(week.json.http_error, 2 * TRIES)
  })

  test('path ids: not a UUID is 400 invalid_id; unknown is 404 not_found', async () => {
    for (const path of ['/api/events/nope/attempts', '/api/endpoints/nope/attempts', '/api/endpoints/nope/stats', '/api/attempts/nope']) {
      const r = await s.api('GET', path, { key })
      assert.deepEqual([r.status, r.json.code], [400, 'invalid_id'], path)
    }
    const unknown = uuidv7()
    for (const path of [`/api/events/${unknown}/attempts`, `/api/endpoints/${unknown}/attempts`, `/api/endpoints/${unknown}/stats`, `/api/attempts/${unknown}`]) {
      const r = await s.api('GET', path, { key })
      assert.deepEqual([r.status, r.json.code], [404, 'not_found'], path)
    }
    const noKey = await s.api('GET', `/api/events/${e1}/attempts`)
    assert.equal(noKey.status, 401)
  })

  test('another organization sees none of it: 404 on every route, as for an unknown id', async () => {
    const [a] = (await s.api('GET', `/api/events/${e1}/attempts`, { key })).json.attempts as Attempt[]
    for (const path of [`/api/events/${e1}/attempts`, `/api/endpoints/${ep.e500}/attempts`, `/api/endpoints/${ep.e500}/stats`, `/api/attempts/${a!.id}`]) {
      const r = await s.api('GET', path, { key: other.key })
      assert.deepEqual([r.status, r.json.code], [404, 'not_found'], path)
      assert.ok(r.headers.get('x-ratelimit-limit') !== null, 'counted against the tier limit')
    }
  })

  test('a deleted endpoint\'s log stays readable', async () => {
    const before = (await s.api('GET', `/api/endpoints/${ep.gone}/attempts`, { key })).json.attempts as Attempt[]
    assert.equal((await s.api('DELETE', `/api/endpoints/${ep.gone}`, { key })).status, 204)
    const after = await s.api('GET', `/api/endpoints/${ep.gone}/attempts`, { key })
    assert.equal(after.status, 200, after.text)
    assert.deepEqual(after.json.attempts, before)
    assert.equal((await s.api('GET', `/api/endpoints/${ep.gone}/stats`, { key })).json.http_error, 1)
    assert.equal((await s.api('GET', `/api/endpoints/${ep.gone}`, { key })).status, 404)
  })

  test('a filter matching little: a page examines at most SCAN_MAX attempts and the next goes on where it stopped', async () => {
    const fresh = await s.api('POST', '/api/endpoints', { key, body: { url: okRx.url('/many'), event_types: ['nothing.matches'] } })
    assert.equal(fresh.status, 201, fresh.text)
    const id: string = fresh.json.id
    const n = SCAN_MAX + 50
    // The 5 oldest are timeouts, the rest successes.
    await s.db.sql`
      insert into delivery_attempts (organization_id, id, event_id, endpoint_id, attempt_number, trigger, url, event_type,
                                     started_at, duration_ms, outcome, response_status)
      select ${orgId}::uuid, gen_random_uuid(), gen_random_uuid(), ${id}::uuid, 1, 'initial', 'http://x/', 'bulk',
             now() - g * interval '1 millisecond', 1,
             case when g > ${n - 5} then 'timeout' else 'success' end, case when g > ${n - 5} then null else 200 end
        from generate_series(1, ${n}) g`
    const paged = await allPages(s, key, `/api/endpoints/${id}/attempts?outcome=timeout`, 100)
    assert.equal(paged.pages, 2, 'the first page examined SCAN_MAX successes and stopped')
    assert.equal(paged.rows.length, 5)
    assert.ok(paged.rows.every(a => a.outcome === 'timeout'))
    const first = await s.api('GET', `/api/endpoints/${id}/attempts?outcome=timeout`, { key })
    assert.deepEqual([first.json.attempts.length, first.json.has_more, typeof first.json.next_cursor], [0, true, 'string'])
    // Unfiltered pages read only what they return.
    const plain = await s.api('GET', `/api/endpoints/${id}/attempts?limit=1000`, { key })
    assert.deepEqual([plain.json.attempts.length, plain.json.has_more], [1000, true])
  })

  test('/metrics: the attempt histogram counts every attempt by outcome', async () => {
    const r = await request(`http://127.0.0.1:${metricsPort}/metrics`, { reset: true })
    const text = await r.body.text()
    assert.match(text, /^# TYPE triggers_attempt_duration_seconds histogram$/m)
    const count = (outcome: string): number => sample(text, 'triggers_attempt_duration_seconds_count', `outcome="${outcome}"`)
    assert.equal(count('success'), 2)
    assert.equal(count('http_error'), 2 * TRIES + 1)
    assert.equal(count('timeout'), 2 * TRIES)
    assert.equal(count('network_error'), 2 * TRIES)
    assert.equal(count('blocked'), 0)
    assert.equal(sample(text, 'triggers_attempt_duration_seconds_bucket', 'outcome="success",le="+Inf"'), 2)
    assert.ok(!/triggers_attempt_duration_seconds[^\n]*organization/.test(text), 'no label per organization')
  })
})

describe('blocked by the SSRF guard', () => {
  let s: TestService
  let receiver: Receiver

  before(async () => {
    s = await startTestService({
      THREADS: '1', DELIVERY_ENABLED: 'true', ALLOW_PRIVATE_WEBHOOKS: 'false', DELIVERY_TIMEOUT_MS: String(TIMEOUT_MS), DELIVERY_RETRY_DELAYS_MS: '20,40',
    })
    receiver = await Receiver.start(() => ({ status: 200 }))
    await s.db.sql`select 1`
  })
  after(async () => {
    await receiver?.close()
    await s?.stop()
  })

  test('an endpoint at a loopback address or a name resolving to one: blocked, nothing sent, the cause in error', async () => {
    const org = await s.createOrg('enterprise', 'Blocked Org')
    // The API refuses such URLs (422); rows made before, or DNS that changed since, are what the guard is for.
    const refusedByApi = await s.api('POST', '/api/endpoints', { key: org.key, body: { url: receiver.url() } })
    assert.equal(refusedByApi.status, 422)
    const rows = new Rows(s.db)
    const literal = await rows.endpoint(org.id, receiver.url('/literal'))
    const named = await rows.endpoint(org.id, `http://localhost:${receiver.port}/named`)
    const ev = await s.api('POST', '/api/events', { key: org.key, body: { type: 'ssrf.test', payload: {} } })
    assert.equal(ev.status, 201, ev.text)
    await settled(s, [ev.json.id])
    const list = (await s.api('GET', `/api/events/${ev.json.id}/attempts`, { key: org.key })).json.attempts as Attempt[]
    assert.equal(list.length, 2 * TRIES)
    for (const a of list) {
      assert.equal(a.outcome, 'blocked')
      assert.deepEqual([a.response_status, a.response_headers, a.response_body, a.duration_ms], [null, null, null, 0])
      assert.match(a.error, /non-public address/)
    }
    assert.deepEqual(new Set(list.map(a => a.endpoint_id)), new Set([literal.id, named.id]))
    assert.equal(receiver.connections, 0, 'the receiver saw no connection')
    assert.equal(receiver.seen.length, 0)
    const stats = (await s.api('GET', `/api/endpoints/${literal.id}/stats`, { key: org.key })).json
    assert.deepEqual([stats.blocked, stats.success, stats.p50_ms], [TRIES, 0, 0])
    const filtered = (await s.api('GET', `/api/endpoints/${named.id}/attempts?outcome=blocked&status_class=none`, { key: org.key })).json.attempts
    assert.equal(filtered.length, TRIES)
  })
})
