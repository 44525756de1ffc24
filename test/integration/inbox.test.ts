/**
 * The pull model against the real service: GET /api/inbox (order, status filter, limit, keyset cursor
 * stable under concurrent inserts, offset), POST /api/ack/:event_id and the batch POST /api/ack, and
 * strict isolation between organizations. Statuses the API cannot produce without a delivery engine
 * (failed, dead_letter) are set directly in SQL.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { startTestService, type TestService } from '../helpers/server.ts'
import { waitFor } from '../helpers/db.ts'

const ISO_MS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const EVENT_FIELDS = ['acknowledged_at', 'attempts', 'created_at', 'dedup_id', 'id', 'last_error', 'payload', 'response_status', 'status', 'type', 'updated_at']

type InboxEvent = { id: string, status: string, created_at: string, acknowledged_at: string | null } & Record<string, unknown>

let s: TestService
before(async () => { s = await startTestService() })
after(async () => { await s.stop() })

async function postEvent (key: string, type = 'thing.happened', payload: Record<string, unknown> = {}, dedupId?: string): Promise<string> {
  const body: Record<string, unknown> = { type, payload }
  if (dedupId !== undefined) body.dedup_id = dedupId
  const r = await s.api('POST', '/api/events', { key, body })
  assert.equal(r.status, 201, r.text)
  return r.json.id
}

async function postMany (key: string, n: number, type = 'bulk'): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i += 40) {
    const chunk = await Promise.all(Array.from({ length: Math.min(40, n - i) }, async (_, j) => await postEvent(key, type, { n: i + j })))
    ids.push(...chunk)
  }
  return ids
}

async function inbox (key: string, query = ''): Promise<{ events: InboxEvent[], limit: number, next_cursor: string | null, has_more: boolean }> {
  const r = await s.api('GET', '/api/inbox' + query, { key })
  assert.equal(r.status, 200, `${query} → ${r.text}`)
  return r.json
}

function ids (events: InboxEvent[]): string[] { return events.map(e => e.id) }

/** Newest first: created_at DESC, then id DESC. */
function assertNewestFirst (events: InboxEvent[]): void {
  for (let i = 1; i < events.length; i++) {
    const a = events[i - 1]!
    const b = events[i]!
    const ok = a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id)
    assert.ok(ok, `event ${i - 1} (${a.created_at} ${a.id}) comes before event ${i} (${b.created_at} ${b.id})`)
  }
}

describe('GET /api/inbox', () => {
  test('an event as posted: every field, typed', async () => {
    const org = await s.createOrg('enterprise', 'Fields')
    const created = await s.api('POST', '/api/events', { key: org.key, body: { type: 'order.created', payload: { n: 1, nested: { ok: true, list: [1, 'two', null] } }, dedup_id: 'd-1' } })
    assert.equal(created.status, 201)
    const page = await inbox(org.key)
    assert.deepEqual(Object.keys(page).sort(), ['events', 'has_more', 'limit', 'next_cursor'])
    assert.equal(page.events.length, 1)
    const e: Record<string, unknown> = page.events[0]!
    assert.deepEqual(Object.keys(e).sort(), EVENT_FIELDS)
    assert.equal(e.id, created.json.id)
    assert.equal(e.type, 'order.created')
    assert.deepEqual(e.payload, { n: 1, nested: { ok: true, list: [1, 'two', null] } })
    assert.equal(e.dedup_id, 'd-1')
    assert.equal(e.status, 'pending')
    assert.equal(e.attempts, 0)
    assert.equal(e.response_status, null)
    assert.equal(e.last_error, null)
    assert.equal(e.created_at, created.json.created_at)
    assert.match(String(e.created_at), ISO_MS_RE)
    assert.match(String(e.updated_at), ISO_MS_RE)
    assert.equal(e.acknowledged_at, null)
    assert.equal(page.limit, 100)
    assert.equal(page.next_cursor, null)
    assert.equal(page.has_more, false)
  })

  test('newest first: created_at DESC, ties broken by id DESC', async () => {
    const org = await s.createOrg('enterprise', 'Order')
    const [a, b, c, d, e] = await postMany(org.key, 5, 'order')
    // Fix the times so the order is known: c newest; b and d tie (id decides); a and e oldest, tied.
    const at = async (id: string | undefined, iso: string): Promise<void> => {
      await s.db.sql`update events set created_at = ${iso}::timestamptz where id = ${id!}`
    }
    await at(a, '2030-01-01T00:00:00.001Z')
    await at(e, '2030-01-01T00:00:00.001Z')
    await at(b, '2030-01-01T00:00:05.000Z')
    await at(d, '2030-01-01T00:00:05.000Z')
    await at(c, '2030-01-01T00:00:09.999Z')
    const desc = (x: string, y: string): number => (x < y ? 1 : -1)
    const expected = [c!, ...[b!, d!].sort(desc), ...[a!, e!].sort(desc)]
    const page = await inbox(org.key)
    assert.deepEqual(ids(page.events), expected)
    assert.deepEqual(page.events.map(ev => ev.created_at),
      ['2030-01-01T00:00:09.999Z', '2030-01-01T00:00:05.000Z', '2030-01-01T00:00:05.000Z', '2030-01-01T00:00:00.001Z', '2030-01-01T00:00:00.001Z'])
    // The same order holds across pages of one.
    const paged: string[] = []
    let cursor: string | null = null
    do {
      const p = await inbox(org.key, '?limit=1' + (cursor === null ? '' : `&cursor=${cursor}`))
      paged.push(...ids(p.events))
      cursor = p.next_cursor
    } while (cursor !== null)
    assert.deepEqual(paged, expected)
  })

  test('status filter; the default view hides delivered (acknowledged) events', async () => {
    const org = await s.createOrg('enterprise', 'Statuses')
    const [p1, f, dl, p2, acked] = await postMany(org.key, 5, 'status')
    await s.db.sql`update events set status = 'failed', attempts = 1, response_status = 500, last_error = 'HTTP 500' where id = ${f!}`
    await s.db.sql`update events set status = 'dead_letter', attempts = 6, response_status = 410, last_error = 'HTTP 410' where id = ${dl!}`
    const ack = await s.api('POST', `/api/ack/${acked!}`, { key: org.key })
    assert.equal(ack.status, 200)

    const sorted = (xs: (string | undefined)[]): string[] => xs.map(x => x!).sort()
    assert.deepEqual(ids((await inbox(org.key)).events).sort(), sorted([p1, f, dl, p2]))
    assert.deepEqual(ids((await inbox(org.key, '?status=pending')).events).sort(), sorted([p1, p2]))
    const failed = await inbox(org.key, '?status=failed')
    assert.deepEqual(ids(failed.events), [f!])
    const fe: Record<string, unknown> = failed.events[0]!
    assert.equal(fe.status, 'failed')
    assert.equal(fe.attempts, 1)
    assert.equal(fe.response_status, 500)
    assert.equal(fe.last_error, 'HTTP 500')
    const dead = await inbox(org.key, '?status=dead_letter')
    assert.deepEqual(ids(dead.events), [dl!])
    assert.equal(dead.events[0]!.status, 'dead_letter')
    const delivered = await inbox(org.key, '?status=delivered')
    assert.deepEqual(ids(delivered.events), [acked!])
    assert.equal(delivered.events[0]!.status, 'delivered')
    assert.equal(delivered.events[0]!.acknowledged_at, ack.json.acknowledged_at)
    for (const st of ['pending', 'failed', 'dead_letter', 'delivered']) {
      for (const e of (await inbox(org.key, `?status=${st}`)).events) assert.equal(e.status, st)
    }
  })

  test('400 invalid_status for anything else', async () => {
    const org = await s.createOrg('enterprise', 'Bad Status')
    for (const q of ['bogus', 'PENDING', 'acknowledged', '', 'pending,failed', "pending'--"]) {
      const r = await s.api('GET', `/api/inbox?status=${encodeURIComponent(q)}`, { key: org.key })
      assert.equal(r.status, 400, `${q} → ${r.text}`)
      assert.equal(r.json.code, 'invalid_status')
      assert.equal(typeof r.json.error, 'string')
    }
  })

  test('limit: 1–1000 integers only, default 100', async () => {
    const org = await s.createOrg('enterprise', 'Limits')
    const all = await postMany(org.key, 105, 'limit')
    for (const q of ['0', '1001', 'abc', '1.5', '-1', '', ' 5', '1e2', '0x10', '99999999999']) {
      const r = await s.api('GET', `/api/inbox?limit=${encodeURIComponent(q)}`, { key: org.key })
      assert.equal(r.status, 400, `limit=${q} → ${r.text}`)
      assert.equal(r.json.code, 'invalid_limit')
      assert.equal(r.headers.get('content-type'), 'application/json')
    }
    const one = await inbox(org.key, '?limit=1')
    assert.equal(one.events.length, 1)
    assert.equal(one.limit, 1)
    assert.equal(one.has_more, true)
    assert.equal(typeof one.next_cursor, 'string')
    const def = await inbox(org.key)
    assert.equal(def.events.length, 100)
    assert.equal(def.limit, 100)
    assert.equal(def.has_more, true)
    const max = await inbox(org.key, '?limit=1000')
    assert.equal(max.limit, 1000)
    assert.equal(max.events.length, 105)
    assert.equal(max.has_more, false)
    assert.equal(max.next_cursor, null)
    assert.deepEqual(ids(max.events).sort(), [...all].sort())
    assertNewestFirst(max.events)
    const exact = await inbox(org.key, '?limit=105')
    assert.equal(exact.events.length, 105)
    assert.equal(exact.has_more, false, 'a page that ends exactly at the last event has no more')
    assert.equal(exact.next_cursor, null)
  })

  test('cursor paging is stable while new events arrive: every earlier event exactly once', async () => {
    const org = await s.createOrg('enterprise', 'Paging')
    const existing = await postMany(org.key, 120, 'page')
    assert.equal(new Set(existing).size, 120)

    let stop = false
    let made = 0
    const newer: string[] = []
    const writer = async (): Promise<void> => {
      while (!stop) { newer.push(await postEvent(org.key, 'page.new')); made++ }
    }
    const writers = [writer(), writer()]
    const seen: string[] = []
    let pages = 0
    try {
      let cursor: string | null = null
      for (;;) {
        // Make sure new events really arrive between pages.
        const before = made
        await waitFor(() => made > before, 10_000, 'a concurrent insert')
        const page = await inbox(org.key, '?limit=25' + (cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`))
        pages++
        assert.equal(page.limit, 25)
        assert.ok(page.events.length <= 25)
        assertNewestFirst(page.events)
        seen.push(...ids(page.events))
        if (!page.has_more) { assert.equal(page.next_cursor, null); break }
        assert.equal(typeof page.next_cursor, 'string')
        cursor = page.next_cursor
        assert.ok(pages < 100, 'paging ends')
      }
    } finally {
      stop = true
      await Promise.all(writers)
    }
    assert.ok(made >= pages, `events were inserted during paging (${made})`)
    assert.equal(new Set(seen).size, seen.length, 'no event is repeated across pages')
    const seenSet = new Set(seen)
    const missing = existing.filter(id => !seenSet.has(id))
    assert.deepEqual(missing, [], 'no earlier event is skipped')
    const foreign = seen.filter(id => !existing.includes(id) && !newer.includes(id))
    assert.deepEqual(foreign, [], 'only this organization\'s events')
  })

  test('a garbage cursor is 400 invalid_cursor', async () => {
    const org = await s.createOrg('enterprise', 'Garbage Cursor')
    await postEvent(org.key)
    const b64 = (t: string): string => Buffer.from(t).toString('base64url')
    for (const c of ['garbage!!', 'abc', b64('not a date|not a uuid'), b64(`2030-01-01T00:00:00.000Z|${'z'.repeat(36)}`), b64('2030-01-01T00:00:00.000Z'), 'x'.repeat(500)]) {
      const r = await s.api('GET', `/api/inbox?cursor=${encodeURIComponent(c)}`, { key: org.key })
      assert.equal(r.status, 400, `${c} → ${r.text}`)
      assert.equal(r.json.code, 'invalid_cursor')
    }
  })

  test('offset for older clients (when no cursor is given)', async () => {
    const org = await s.createOrg('enterprise', 'Offset')
    await postMany(org.key, 30, 'offset')
    const all = ids((await inbox(org.key, '?limit=1000')).events)
    assert.equal(all.length, 30)
    assert.deepEqual(ids((await inbox(org.key, '?limit=10&offset=0')).events), all.slice(0, 10))
    const second = await inbox(org.key, '?limit=10&offset=10')
    assert.deepEqual(ids(second.events), all.slice(10, 20))
    assert.equal(second.has_more, true)
    const tail = await inbox(org.key, '?limit=10&offset=25')
    assert.deepEqual(ids(tail.events), all.slice(25))
    assert.equal(tail.has_more, false)
    assert.deepEqual((await inbox(org.key, '?offset=30')).events, [])
    // A cursor wins over an offset.
    const first = await inbox(org.key, '?limit=10')
    const viaCursor = await inbox(org.key, `?limit=10&offset=5&cursor=${encodeURIComponent(first.next_cursor!)}`)
    assert.deepEqual(ids(viaCursor.events), all.slice(10, 20))
    for (const q of ['-1', 'x', '1.5']) {
      const r = await s.api('GET', `/api/inbox?offset=${q}`, { key: org.key })
      assert.equal(r.status, 400, `offset=${q} → ${r.text}`)
      assert.equal(r.json.code, 'invalid_cursor')
    }
  })
})

describe('POST /api/ack/:event_id', () => {
  test('200 marks delivered; a repeat returns the first acknowledged_at', async () => {
    const org = await s.createOrg('enterprise', 'Acker')
    const id = await postEvent(org.key, 'ack.me')
    const r = await s.api('POST', `/api/ack/${id}`, { key: org.key })
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(Object.keys(r.json).sort(), ['acknowledged_at', 'event_id', 'status'])
    assert.equal(r.json.event_id, id)
    assert.equal(r.json.status, 'delivered')
    assert.match(r.json.acknowledged_at, ISO_MS_RE)
    assert.ok(Math.abs(Date.parse(r.json.acknowledged_at) - Date.now()) < 60_000)

    // The repeat comes later (by the database clock), and still answers the first time.
    const first = r.json.acknowledged_at
    await waitFor(async () => {
      const [row] = await s.db.sql<{ later: boolean }[]>`select now() > ${first}::timestamptz + interval '2 milliseconds' as later`
      return row?.later
    }, 5000, 'the clock to move')
    const again = await s.api('POST', `/api/ack/${id}`, { key: org.key })
    assert.equal(again.status, 200, again.text)
    assert.deepEqual(again.json, r.json)
    const upper = await s.api('POST', `/api/ack/${id.toUpperCase()}`, { key: org.key })
    assert.equal(upper.status, 200)
    assert.deepEqual(upper.json, r.json, 'an upper-case id is the same event')

    const [row] = await s.db.sql<{ status: string }[]>`select status from events where id = ${id}`
    assert.equal(row?.status, 'delivered')
    const [due] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where event_id = ${id} and next_attempt_at is not null`
    assert.equal(due?.n, 0, 'nothing scheduled')
    assert.ok(!ids((await inbox(org.key)).events).includes(id), 'gone from the default inbox')
    const delivered = await inbox(org.key, '?status=delivered')
    assert.deepEqual(ids(delivered.events), [id])
    assert.equal(delivered.events[0]!.acknowledged_at, first)
  })

  test('400 invalid_id for a non-UUID', async () => {
    const org = await s.createOrg('enterprise', 'Bad Id')
    for (const bad of ['not-a-uuid', '123', randomUUID().replaceAll('-', ''), randomUUID() + 'a', `{${randomUUID()}}`.slice(0, 36), 'g' + randomUUID().slice(1)]) {
      const r = await s.api('POST', `/api/ack/${encodeURIComponent(bad)}`, { key: org.key })
      assert.equal(r.status, 400, `${bad} → ${r.text}`)
      assert.equal(r.json.code, 'invalid_id')
    }
  })

  test('404 not_found for an unknown event and for another organization\'s, with the same body', async () => {
    const a = await s.createOrg('enterprise', 'Owner')
    const b = await s.createOrg('enterprise', 'Intruder')
    const theirs = await postEvent(a.key, 'private')
    const unknown = await s.api('POST', `/api/ack/${randomUUID()}`, { key: b.key })
    assert.equal(unknown.status, 404, unknown.text)
    assert.equal(unknown.json.code, 'not_found')
    const foreign = await s.api('POST', `/api/ack/${theirs}`, { key: b.key })
    assert.equal(foreign.status, 404, foreign.text)
    assert.equal(foreign.text, unknown.text, 'indistinguishable')
    const [row] = await s.db.sql<{ status: string, acknowledged_at: Date | null }[]>`select status, acknowledged_at from events where id = ${theirs}`
    assert.equal(row?.status, 'pending')
    assert.equal(row?.acknowledged_at, null)
    assert.deepEqual(ids((await inbox(a.key)).events), [theirs])
  })
})

describe('POST /api/ack (batch)', () => {
  test('{acknowledged, not_found}; another organization\'s ids are not found and untouched', async () => {
    const a = await s.createOrg('enterprise', 'Batch A')
    const b = await s.createOrg('enterprise', 'Batch B')
    const [x, y, z] = await postMany(a.key, 3, 'batch')
    const theirs = await postEvent(b.key, 'batch.b')
    const unknown = randomUUID()
    const body = { event_ids: [x!, y!.toUpperCase(), unknown, theirs, x!] }
    const r = await s.api('POST', '/api/ack', { key: a.key, body })
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(Object.keys(r.json).sort(), ['acknowledged', 'not_found'])
    assert.equal(r.json.acknowledged, 2)
    assert.deepEqual([...r.json.not_found].sort(), [unknown, theirs].sort())
    const pending = ids((await inbox(a.key)).events)
    assert.deepEqual(pending, [z!])
    const delivered = await inbox(a.key, '?status=delivered')
    assert.deepEqual(ids(delivered.events).sort(), [x!, y!].sort())
    for (const e of delivered.events) assert.match(String(e.acknowledged_at), ISO_MS_RE)
    const [row] = await s.db.sql<{ status: string }[]>`select status from events where id = ${theirs}`
    assert.equal(row?.status, 'pending')
    assert.deepEqual(ids((await inbox(b.key)).events), [theirs])

    // Idempotent like the single ack: already-acknowledged ids still count, their time is kept.
    const firstAt = delivered.events.map(e => e.acknowledged_at)
    const again = await s.api('POST', '/api/ack', { key: a.key, body })
    assert.equal(again.status, 200)
    assert.equal(again.json.acknowledged, 2)
    assert.deepEqual((await inbox(a.key, '?status=delivered')).events.map(e => e.acknowledged_at), firstAt)
  })

  test('exactly 1000 ids are accepted', async () => {
    const org = await s.createOrg('enterprise', 'Batch Max')
    const id = await postEvent(org.key)
    const list = [id, ...Array.from({ length: 999 }, () => randomUUID())]
    const r = await s.api('POST', '/api/ack', { key: org.key, body: { event_ids: list } })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.json.acknowledged, 1)
    assert.equal(r.json.not_found.length, 999)
  })

  test('400 for non-UUID entries, more than 1000 ids, a missing or malformed event_ids', async () => {
    const org = await s.createOrg('enterprise', 'Batch Bad')
    const id = await postEvent(org.key)
    const cases: [unknown, string | null][] = [
      [{ event_ids: [id, 'nope'] }, 'invalid_id'],
      [{ event_ids: [id, 42] }, 'invalid_id'],
      [{ event_ids: [id, null] }, 'invalid_id'],
      [{ event_ids: Array.from({ length: 1001 }, () => randomUUID()) }, null],
      [{}, 'missing_field'],
      [{ ids: [id] }, 'missing_field'],
      [{ event_ids: id }, null],
      [{ event_ids: [] }, null],
    ]
    for (const [body, code] of cases) {
      const r = await s.api('POST', '/api/ack', { key: org.key, body })
      assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)} → ${r.text}`)
      assert.equal(typeof r.json.code, 'string')
      if (code !== null) assert.equal(r.json.code, code)
    }
    const bad = await s.api('POST', '/api/ack', { key: org.key, raw: '{"event_ids": [', headers: { 'content-type': 'application/json' } })
    assert.equal(bad.status, 400)
    assert.equal(bad.json.code, 'invalid_json')
    // None of the refused batches acknowledged the valid id they carried.
    assert.deepEqual(ids((await inbox(org.key)).events), [id])
  })
})

describe('isolation', () => {
  test('an organization never sees another\'s events, whatever the filter or cursor', async () => {
    const a = await s.createOrg('enterprise', 'Iso A')
    const b = await s.createOrg('enterprise', 'Iso B')
    const aIds = await postMany(a.key, 12, 'iso.a')
    const bIds = await postMany(b.key, 3, 'iso.b')
    await s.db.sql`update events set status = 'failed' where id = ${aIds[0]!}`
    await s.db.sql`update events set status = 'dead_letter' where id = ${aIds[1]!}`
    assert.equal((await s.api('POST', `/api/ack/${aIds[2]!}`, { key: a.key })).status, 200)

    for (const q of ['', '?status=pending', '?status=failed', '?status=dead_letter', '?status=delivered', '?limit=1000']) {
      const seenB = ids((await inbox(b.key, q)).events)
      for (const id of seenB) assert.ok(bIds.includes(id), `B sees only its own events (${q})`)
      const seenA = ids((await inbox(a.key, q)).events)
      for (const id of seenA) assert.ok(aIds.includes(id), `A sees only its own events (${q})`)
    }
    assert.deepEqual(ids((await inbox(b.key)).events).sort(), [...bIds].sort())
    // A's cursor in B's hands pages B's events only.
    const aPage = await inbox(a.key, '?limit=2')
    assert.ok(aPage.next_cursor !== null)
    const bWithA = await inbox(b.key, `?cursor=${encodeURIComponent(aPage.next_cursor)}`)
    for (const id of ids(bWithA.events)) assert.ok(bIds.includes(id))
    assert.ok(!ids(bWithA.events).some(id => aIds.includes(id)))
  })
})
