/**
 * Webhook delivery end to end: a real delivery Worker (src/delivery/thread.ts), a real PostgreSQL
 * database of its own, and real node:http receivers on 127.0.0.1. Rows are made with SQL
 * (test/helpers/delivery.ts; the ingest path is tested elsewhere). Every wait is on a condition; the
 * assertions are about the mechanism (rows, counts, order, headers), never about elapsed time.
 */
import { after, afterEach, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { redeliverEvent, replayDeliveries } from '../../src/db/queries/schedule-deliveries.ts'
import { ackEvent } from '../../src/db/queries/ack-events.ts'
import { updateEndpoint } from '../../src/db/queries/endpoints.ts'
import { newSigningSecret } from '../../src/webhooks/signing.ts'
import { USER_AGENT } from '../../src/delivery/dispatch.ts'
import { uuidv7 } from '../../src/lib/uuid.ts'
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.ts'
import { DeliveryThread, deliveryConfig, OK, Receiver, Rows, verify, type Handler } from '../helpers/delivery.ts'

let db: TestDatabase
let rows: Rows
before(async () => { db = await createTestDatabase(); rows = new Rows(db) })
after(async () => { await db.drop() })

interface AttemptRow {
  attempt_number: number
  trigger: string
  outcome: string
  response_status: number | null
  response_body: string | null
  response_body_truncated: boolean
  response_headers: Record<string, string> | null
  error: string | null
  duration_ms: number
  next_attempt_at: Date | null
  url: string
}

async function attemptsOf (eventId: string): Promise<AttemptRow[]> {
  return [...await db.sql<AttemptRow[]>`
    select attempt_number, trigger, outcome, response_status, response_body, response_body_truncated, response_headers,
           error, duration_ms, next_attempt_at, url
      from delivery_attempts where event_id = ${eventId} order by started_at, attempt_number`]
}

describe('delivery with one running thread', () => {
  let thread: DeliveryThread
  const receivers: Receiver[] = []
  const receiver = async (h: Handler): Promise<Receiver> => { const r = await Receiver.start(h); receivers.push(r); return r }

  before(async () => { thread = await DeliveryThread.start(db, deliveryConfig(db, { ATTEMPT_BODY_EXCERPT_BYTES: '100' })) })
  after(async () => { await thread.stop() })
  afterEach(async () => {
    await rows.holdAll()
    for (const r of receivers.splice(0)) await r.close()
  })

  test('success: exact body, headers, a signature standardwebhooks verifies, and the attempt logged', async () => {
    const rx = await receiver(() => OK)
    const ep = await rows.orgWithEndpoint(rx.url('/hook?x=1'))
    const payloadText = '{"b":1,"a":[1,2,{"c":"é ✓"}],"n":null}'
    const id = await rows.event(ep.orgId, 'order.created', null, { payloadText })
    thread.wake()
    const d = await rows.waitDelivery(id, ep.id, 'delivered')
    const ev = await rows.waitEvent(id, 'delivered')
    assert.equal(rx.seen.length, 1)
    const s = rx.seen[0]!
    assert.equal(s.path, '/hook?x=1')
    assert.equal(s.body, `{"id":"${id}","type":"order.created","data":${payloadText},"timestamp":"${ev.created_at.toISOString()}"}`)
    assert.equal(s.headers['content-type'], 'application/json')
    assert.equal(s.headers['user-agent'], USER_AGENT)
    assert.equal(USER_AGENT, 'triggers-api/0.1.0')
    assert.equal(s.headers['x-event-id'], id)
    assert.equal(s.headers['x-event-type'], 'order.created')
    assert.equal(s.headers['x-delivery-attempt'], '1')
    assert.equal(s.headers['x-endpoint-id'], ep.id)
    assert.equal(s.headers['webhook-id'], id)
    const ts = Number(s.headers['webhook-timestamp'])
    assert.ok(Math.abs(ts - Date.now() / 1000) < 300)
    assert.match(String(s.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/)
    assert.deepEqual(verify(ep.secret, s), JSON.parse(s.body))
    assert.equal(d.attempts, 1)
    assert.equal(d.series_attempt, 1)
    assert.equal(d.response_status, 200)
    assert.equal(d.last_error, null)
    assert.equal(d.next_attempt_at, null)
    assert.equal(d.leased_until, null)
    assert.ok(d.delivered_at instanceof Date)
    assert.equal(ev.attempts, 1)
    assert.equal(ev.response_status, 200)
    const [a] = await attemptsOf(id)
    assert.ok(a !== undefined)
    assert.equal(a.attempt_number, 1)
    assert.equal(a.trigger, 'initial')
    assert.equal(a.outcome, 'success')
    assert.equal(a.response_status, 200)
    assert.equal(a.response_body, 'ok')
    assert.equal(a.response_body_truncated, false)
    assert.equal(a.response_headers?.['content-type'], 'text/plain')
    assert.equal(a.error, null)
    assert.equal(a.url, rx.url('/hook?x=1'))
    assert.ok(a.duration_ms >= 0)
  })

  test('500 twice, then success: attempts 1, 2, 3; the log names them initial, retry, retry', async () => {
    const rx = await receiver((_s, i) => i < 2 ? { status: 500, body: 'boom' } : OK)
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'retry.me', { k: 1 })
    thread.wake()
    const d = await rows.waitDelivery(id, ep.id, 'delivered')
    const ev = await rows.eventRow(id)
    assert.deepEqual(rx.seen.map(s => s.headers['x-delivery-attempt']), ['1', '2', '3'])
    for (const s of rx.seen) assert.deepEqual(verify(ep.secret, s), { id, type: 'retry.me', data: { k: 1 }, timestamp: ev.created_at.toISOString() })
    assert.equal(d.attempts, 3)
    assert.equal(d.last_error, null)
    const log = await attemptsOf(id)
    assert.deepEqual(log.map(a => [a.attempt_number, a.trigger, a.outcome, a.response_status]),
      [[1, 'initial', 'http_error', 500], [2, 'retry', 'http_error', 500], [3, 'retry', 'success', 200]])
    assert.ok(log[0]!.next_attempt_at !== null && log[2]!.next_attempt_at === null)
    assert.equal(log[0]!.response_body, 'boom')
  })

  test('always failing: dead_letter after 1 + 2 attempts; the excerpt stops at ATTEMPT_BODY_EXCERPT_BYTES', async () => {
    const rx = await receiver(() => ({ status: 503, body: 'x'.repeat(10_000) }))
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'never')
    thread.wake()
    const d = await rows.waitDelivery(id, ep.id, 'dead_letter')
    const ev = await rows.waitEvent(id, 'dead_letter')
    assert.equal(rx.seen.length, 3)
    assert.equal(d.attempts, 3)
    assert.equal(d.response_status, 503)
    assert.equal(d.next_attempt_at, null)
    assert.ok(d.last_error !== null && d.last_error.startsWith('HTTP 503: xxx'))
    assert.equal(ev.attempts, 3)
    for (const a of await attemptsOf(id)) {
      assert.equal(a.response_body, 'x'.repeat(100))
      assert.equal(a.response_body_truncated, true)
    }
  })

  test('410 Gone: that delivery dead-letters at once and the endpoint is disabled (gone)', async () => {
    const rx = await receiver(() => ({ status: 410 }))
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'gone')
    thread.wake()
    const d = await rows.waitDelivery(id, ep.id, 'dead_letter')
    assert.equal(rx.seen.length, 1)
    assert.equal(d.attempts, 1)
    assert.equal(d.response_status, 410)
    const [e] = await db.sql<{ status: string, disabled_reason: string, disabled_at: Date | null }[]>`
      select status, disabled_reason, disabled_at from endpoints where id = ${ep.id}`
    assert.deepEqual([e?.status, e?.disabled_reason, e?.disabled_at instanceof Date], ['disabled', 'gone', true])
  })

  test('3xx is not followed and counts as a failure', async () => {
    const target = await receiver(() => OK)
    const rx = await receiver(() => ({ status: 302, headers: { location: target.url() } }))
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'redirected')
    thread.wake()
    const d = await rows.waitDelivery(id, ep.id, 'dead_letter')
    assert.equal(rx.seen.length, 3)
    assert.equal(target.seen.length, 0)
    assert.equal(d.response_status, 302)
    const [a] = await attemptsOf(id)
    assert.equal(a?.response_headers?.location, target.url())
  })

  test('receiver slower than the timeout: each attempt ends as a timeout, without a response', async () => {
    const rx = await receiver(async (_s, _i, r) => {
      await Promise.race([r.closed, delay(5000, undefined, { ref: false })])
      return OK
    })
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'slow')
    thread.wake()
    const d = await rows.waitDelivery(id, ep.id, 'dead_letter', 20_000)
    assert.equal(rx.seen.length, 3)
    assert.equal(d.response_status, null)
    assert.match(d.last_error ?? '', /^timeout/)
    for (const a of await attemptsOf(id)) {
      assert.equal(a.outcome, 'timeout')
      assert.equal(a.response_body, null)
      assert.equal(a.response_status, null)
    }
  })

  test('429 with Retry-After: that delivery waits as told and the endpoint is throttled until then', async () => {
    const rx = await receiver((_s, i) => i === 0 ? { status: 429, headers: { 'retry-after': '2' } } : OK)
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'later')
    thread.wake()
    const failed = await rows.waitDelivery(id, ep.id, 'failed')
    const [e] = await db.sql<{ throttled_until: Date | null }[]>`select throttled_until from endpoints where id = ${ep.id}`
    const [a] = await attemptsOf(id)
    assert.ok(a !== undefined && a.next_attempt_at !== null && e?.throttled_until != null)
    // The retry is scheduled by Retry-After (2 s), not by the configured 50 ms delay.
    assert.ok(failed.next_attempt_at!.getTime() - failed.created_at.getTime() >= 1500, 'retry scheduled about 2 s later')
    assert.ok(e.throttled_until.getTime() >= failed.next_attempt_at!.getTime() - 1000)
    // A new event for the throttled endpoint waits too, without an attempt.
    const held = await rows.event(ep.orgId, 'held.by.throttle')
    thread.wake()
    const h = await waitFor(async () => {
      const r = await rows.delivery(held, ep.id)
      return r.next_attempt_at !== null && r.next_attempt_at.getTime() > Date.now() ? r : null
    }, 10_000, 'the new delivery to be deferred to throttled_until')
    assert.equal(h.attempts, 0)
    assert.equal(rx.seen.length, 1)
    await rows.waitDelivery(id, ep.id, 'delivered')
    await rows.waitDelivery(held, ep.id, 'delivered')
    assert.equal((await rows.delivery(held, ep.id)).attempts, 1)
  })

  test('fan-out: one delivery per matching endpoint, each signed with its own secret, same webhook-id', async () => {
    const rx = await receiver(() => OK)
    const org = await rows.org()
    const all = await rows.endpoint(org, rx.url('/all'))
    const orders = await rows.endpoint(org, rx.url('/orders'), { eventTypes: ['order.*', 'order.created'] })
    const exact = await rows.endpoint(org, rx.url('/exact'), { eventTypes: ['order.created'] })
    const other = await rows.endpoint(org, rx.url('/other'), { eventTypes: ['invoice.*', 'order'] })
    const id = await rows.event(org, 'order.created', { n: 1 })
    thread.wake()
    for (const ep of [all, orders, exact]) await rows.waitDelivery(id, ep.id, 'delivered')
    const ev = await rows.waitEvent(id, 'delivered')
    assert.equal(rx.seen.length, 3)
    const byPath = new Map(rx.seen.map(s => [s.path, s]))
    for (const [path, ep] of [['/all', all], ['/orders', orders], ['/exact', exact]] as const) {
      const s = byPath.get(path)!
      assert.equal(s.headers['webhook-id'], id)
      assert.equal(s.headers['x-endpoint-id'], ep.id)
      assert.deepEqual(verify(ep.secret, s), { id, type: 'order.created', data: { n: 1 }, timestamp: ev.created_at.toISOString() })
      assert.throws(() => verify(other.secret, s))
    }
    const [n] = await db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where event_id = ${id} and endpoint_id = ${other.id}`
    assert.equal(n?.n, 0, 'no delivery to the endpoint whose filter does not match')
  })

  test('event status follows its deliveries: failed while any is failed, delivered when all are', async () => {
    let fail = true
    const rx = await receiver(s => s.path === '/bad' && fail ? { status: 500 } : OK)
    const org = await rows.org()
    const good = await rows.endpoint(org, rx.url('/good'))
    const bad = await rows.endpoint(org, rx.url('/bad'))
    const id = await rows.event(org, 'mixed')
    thread.wake()
    await rows.waitDelivery(id, good.id, 'delivered')
    await rows.waitDelivery(id, bad.id, 'dead_letter')
    const dead = await rows.waitEvent(id, 'dead_letter')
    assert.equal(dead.response_status, 500, 'the summary is the most recently attempted delivery')
    fail = false
    assert.equal(await replayDeliveries(db.sql, { organizationId: org, status: 'dead_letter', since: null, until: null, endpointId: bad.id }), 1)
    thread.wake()
    await rows.waitDelivery(id, bad.id, 'delivered')
    await rows.waitEvent(id, 'delivered')
  })

  test('ack before delivery: cancelled deliveries are never attempted', async () => {
    const rx = await receiver(() => OK)
    const ep = await rows.orgWithEndpoint(rx.url())
    const acked = await rows.event(ep.orgId, 'acked', {}, { dueInMs: 60_000 })
    await db.sql`update events set status = 'delivered', acknowledged_at = now() where id = ${acked}`
    await db.sql`update deliveries set status = 'cancelled', next_attempt_at = null where event_id = ${acked}`
    const sentinel = await rows.event(ep.orgId, 'sentinel')
    thread.wake()
    await rows.waitDelivery(sentinel, ep.id, 'delivered')
    assert.deepEqual(rx.seen.map(s => s.headers['x-event-type']), ['sentinel'])
    const d = await rows.delivery(acked, ep.id)
    assert.equal(d.status, 'cancelled')
    assert.equal(d.attempts, 0)
  })

  test('an ack landing while an attempt is in flight wins over its result', async () => {
    let eventId = ''
    let orgId = ''
    const rx = await receiver(async (s) => {
      if (s.headers['x-event-id'] !== eventId) return OK
      // What POST /api/ack does, while the attempt waits for its answer.
      await ackEvent(db.sql, orgId, eventId)
      return { status: 500, body: 'failed after the ack' }
    })
    const ep = await rows.orgWithEndpoint(rx.url())
    orgId = ep.orgId
    eventId = await rows.event(ep.orgId, 'acked.in.flight')
    thread.wake()
    await waitFor(() => rx.forEvent(eventId).length === 1 && rx.inFlight === 0, 10_000, 'the in-flight attempt to finish')
    // The attempt's result is written with the batch that holds it: wait until it is logged.
    await waitFor(async () => (await attemptsOf(eventId)).length === 1, 10_000, 'the attempt to be logged')
    const d = await rows.delivery(eventId, ep.id)
    assert.equal(d.status, 'cancelled')
    assert.equal(d.next_attempt_at, null)
    const ev = await rows.eventRow(eventId)
    assert.equal(ev.status, 'delivered')
    assert.ok(ev.acknowledged_at instanceof Date)
    assert.equal(rx.forEvent(eventId).length, 1)
  })

  test('rotation: while the previous secret is valid both sign, and both verify', async () => {
    const rx = await receiver(() => OK)
    const previous = newSigningSecret()
    const ep = await rows.orgWithEndpoint(rx.url(), { previousSecret: { secret: previous, expiresInMs: 24 * 3600_000 } })
    const id = await rows.event(ep.orgId, 'rotated', { r: true })
    thread.wake()
    await rows.waitDelivery(id, ep.id, 'delivered')
    const s = rx.seen[0]!
    assert.equal(String(s.headers['webhook-signature']).split(' ').length, 2)
    assert.deepEqual(verify(ep.secret, s), JSON.parse(s.body))
    assert.deepEqual(verify(previous, s), JSON.parse(s.body))

    const expired = newSigningSecret()
    const ep2 = await rows.orgWithEndpoint(rx.url(), { previousSecret: { secret: expired, expiresInMs: -1000 } })
    const id2 = await rows.event(ep2.orgId, 'rotated.expired')
    thread.wake()
    await rows.waitDelivery(id2, ep2.id, 'delivered')
    const s2 = rx.forEvent(id2)[0]!
    assert.equal(String(s2.headers['webhook-signature']).split(' ').length, 1)
    assert.doesNotThrow(() => verify(ep2.secret, s2))
    assert.throws(() => verify(expired, s2))
  })

  test('paused: deliveries are held without attempts; back to active they are delivered', async () => {
    const rx = await receiver(() => OK)
    const ep = await rows.orgWithEndpoint(rx.url(), { status: 'paused' })
    const id = await rows.event(ep.orgId, 'held')
    const before = await rows.delivery(id, ep.id)
    assert.equal(before.next_attempt_at, null, 'a paused endpoint gets its deliveries held at ingest')
    // A delivery that was due when the endpoint was paused: a claim holds it.
    await db.sql`update deliveries set next_attempt_at = now() where event_id = ${id}`
    thread.wake()
    await waitFor(async () => (await rows.delivery(id, ep.id)).next_attempt_at === null, 10_000, 'the claim to hold it')
    assert.equal((await rows.delivery(id, ep.id)).attempts, 0)
    await updateEndpoint(db.sql, ep.orgId, ep.id, { status: 'active' })
    thread.wake()
    const d = await rows.waitDelivery(id, ep.id, 'delivered')
    assert.equal(d.attempts, 1)
    assert.equal(rx.seen.length, 1)
  })

  test('redeliver starts a fresh series and attempts keep counting; replay re-schedules dead letters', async () => {
    const rx = await receiver((s) => s.headers['x-event-type'] === 'dead' && rx.forEvent(String(s.headers['x-event-id'])).length <= 3 ? { status: 500 } : OK)
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'again')
    thread.wake()
    await rows.waitDelivery(id, ep.id, 'delivered')
    assert.equal(await redeliverEvent(db.sql, ep.orgId, id, null), 'ok')
    thread.wake()
    const d = await waitFor(async () => {
      const r = await rows.delivery(id, ep.id)
      return r.status === 'delivered' && r.attempts === 2 ? r : null
    }, 10_000, 'redelivery')
    assert.equal(d.series_attempt, 1)
    assert.equal(d.trigger, 'redeliver')
    assert.deepEqual(rx.forEvent(id).map(s => s.headers['x-delivery-attempt']), ['1', '2'])
    assert.deepEqual((await attemptsOf(id)).map(a => a.trigger), ['initial', 'redeliver'])

    const other = await rows.org()
    assert.equal(await redeliverEvent(db.sql, other, id, null), 'not_found')
    assert.equal(await redeliverEvent(db.sql, ep.orgId, uuidv7(), null), 'not_found')
    const lonely = await rows.event(other, 'x')
    assert.equal(await redeliverEvent(db.sql, other, lonely, null), 'no_webhook')
    assert.equal(await redeliverEvent(db.sql, ep.orgId, id, uuidv7()), 'endpoint_not_found')

    const dead = await rows.event(ep.orgId, 'dead')
    thread.wake()
    await rows.waitDelivery(dead, ep.id, 'dead_letter')
    const q = { organizationId: ep.orgId, status: 'dead_letter' as const, until: null, endpointId: null }
    assert.equal(await replayDeliveries(db.sql, { ...q, since: new Date(Date.now() + 60_000) }), 0)
    assert.equal(await replayDeliveries(db.sql, { ...q, status: 'failed', since: null }), 0)
    assert.equal(await replayDeliveries(db.sql, { ...q, since: new Date(Date.now() - 60_000) }), 1)
    thread.wake()
    const replayed = await rows.waitDelivery(dead, ep.id, 'delivered')
    assert.equal(replayed.attempts, 4)
    assert.deepEqual(rx.forEvent(dead).map(s => s.headers['x-delivery-attempt']), ['1', '2', '3', '4'])
    assert.equal((await attemptsOf(dead)).at(-1)?.trigger, 'replay')
  })
})

describe('delivery with dedicated threads', () => {
  const receivers: Receiver[] = []
  const threads: DeliveryThread[] = []
  const receiver = async (h: Handler): Promise<Receiver> => { const r = await Receiver.start(h); receivers.push(r); return r }
  const start = async (env: Record<string, string> = {}): Promise<DeliveryThread> => {
    const t = await DeliveryThread.start(db, deliveryConfig(db, env))
    threads.push(t)
    return t
  }
  afterEach(async () => {
    for (const t of threads.splice(0)) await t.stop()
    await rows.holdAll()
    for (const r of receivers.splice(0)) await r.close()
  })

  test("one endpoint's hanging receiver does not delay another's deliveries", async () => {
    const hanging = await receiver(async (_s, _i, r) => { await r.closed; return OK })
    const fast = await receiver(() => OK)
    const a = await rows.orgWithEndpoint(hanging.url(), { maxConcurrency: 2 })
    const b = await rows.orgWithEndpoint(fast.url())
    // A's backlog is due first, so a naive oldest-first claim would hand it every slot.
    await rows.events(Array.from({ length: 40 }, () => a.orgId), 'a', {}, { dueInMs: -5000 })
    const bEvents = await rows.events(Array.from({ length: 8 }, () => b.orgId), 'b', {}, { dueInMs: -1000 })
    await start({ DELIVERY_CONCURRENCY: '4', DELIVERY_TIMEOUT_MS: '30000' })
    for (const id of bEvents) await rows.waitDelivery(id, b.id, 'delivered')
    // Every B event was delivered while A's two attempts still hang (its timeout is 30 s).
    assert.equal(fast.seen.length, 8)
    assert.equal(hanging.inFlight, 2)
    assert.ok(hanging.maxInFlight <= 2, `A had ${hanging.maxInFlight} attempts in flight (max_concurrency 2)`)
    const [counts] = await db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where endpoint_id = ${a.id} and attempts > 0`
    assert.equal(counts?.n, 2, "only A's two leased deliveries were attempted; the rest of its backlog was left due")
  })

  test('endpoints sharing one origin each get their own max_concurrency (no per-origin cap)', async () => {
    const inFlight = new Map<string, number>()
    const maxPer = new Map<string, number>()
    let release: () => void = () => {}
    const gate = new Promise<void>(resolve => { release = resolve })
    const rx = await receiver(async (s) => {
      const ep = String(s.headers['x-endpoint-id'])
      inFlight.set(ep, (inFlight.get(ep) ?? 0) + 1)
      maxPer.set(ep, Math.max(maxPer.get(ep) ?? 0, inFlight.get(ep)!))
      await gate
      inFlight.set(ep, inFlight.get(ep)! - 1)
      return OK
    })
    const eps = []
    for (let i = 0; i < 8; i++) eps.push(await rows.orgWithEndpoint(rx.url(`/hooks/${i}`), { maxConcurrency: 3 }))
    for (const ep of eps) await rows.events(Array.from({ length: 6 }, () => ep.orgId), 'shared')
    await start({ DELIVERY_CONCURRENCY: '64', DELIVERY_TIMEOUT_MS: '30000' })
    // 8 endpoints × 3 = 24 attempts at once at one origin, each endpoint at its own limit of 3.
    await waitFor(() => rx.inFlight === 24, 10_000, '24 attempts in flight at the shared origin')
    await delay(100) // nothing more may start while they are held: give a wrong scheduler the chance to
    assert.equal(rx.inFlight, 24)
    for (const ep of eps) assert.equal(maxPer.get(ep.id), 3)
    release()
    await waitFor(() => rx.seen.length === 48, 10_000, 'all 48 deliveries')
    for (const ep of eps) assert.equal(maxPer.get(ep.id), 3)
  })

  test('max_concurrency holds across two delivery threads (as on two nodes)', async () => {
    const rx = await receiver(async () => { await delay(20); return OK })
    const ep = await rows.orgWithEndpoint(rx.url(), { maxConcurrency: 3 })
    const ids = await rows.events(Array.from({ length: 60 }, () => ep.orgId), 'two.threads')
    await start({ DELIVERY_CONCURRENCY: '16' })
    await start({ DELIVERY_CONCURRENCY: '16' })
    for (const id of ids) await rows.waitDelivery(id, ep.id, 'delivered', 20_000)
    assert.equal(rx.seen.length, 60, 'each delivered once')
    assert.ok(rx.maxInFlight <= 3, `${rx.maxInFlight} attempts in flight at once (max_concurrency 3, two threads)`)
  })

  test('rate limit across two threads: starts follow the token bucket, waiting is not an attempt', async () => {
    const rx = await receiver(() => OK)
    const limit = 4
    const ep = await rows.orgWithEndpoint(rx.url(), { rateLimit: { limit, periodSeconds: 1 } })
    const ids = await rows.events(Array.from({ length: 16 }, () => ep.orgId), 'limited')
    await start()
    await start()
    for (const id of ids) await rows.waitDelivery(id, ep.id, 'delivered', 20_000)
    assert.equal(rx.seen.length, 16)
    // A burst of at most `limit`, then evenly: no window of one period holds more than 2 × limit starts,
    // and the first `limit` + k starts cannot come before k intervals have passed. Start times are the
    // sender's (the attempt log), not the arrivals at this busy test process.
    const at = (await db.sql<{ t: number }[]>`
      select (extract(epoch from started_at) * 1000)::float8 as t from delivery_attempts where endpoint_id = ${ep.id}`).map(r => r.t).sort((x, y) => x - y)
    for (let i = 0; i < at.length; i++) {
      const inWindow = at.filter(t => t >= at[i]! && t < at[i]! + 1000).length
      assert.ok(inWindow <= 2 * limit, `${inWindow} starts within one period from start ${i}`)
    }
    const spread = at[at.length - 1]! - at[0]!
    assert.ok(spread >= (16 - limit) * (1000 / limit) - 300, `16 starts at ${limit}/s took ${spread} ms (≥ ${(16 - limit) * 250} ms by the bucket)`)
    const [r] = await db.sql<{ max: number }[]>`select max(attempts)::int as max from deliveries where endpoint_id = ${ep.id}`
    assert.equal(r?.max, 1, 'every delivery took exactly one attempt: waiting for a token is not an attempt')
  })

  test('a failing endpoint: the breaker spaces attempts out, held deliveries keep their retries', async () => {
    const rx = await receiver(() => ({ status: 500, body: 'down' }))
    const ep = await rows.orgWithEndpoint(rx.url(), { maxConcurrency: 1 })
    await rows.events(Array.from({ length: 12 }, () => ep.orgId), 'breaking')
    await start({ DELIVERY_RETRY_DELAYS_MS: '50,50,50,50,50,50,50,50' })
    const open = await waitFor(async () => {
      const [e] = await db.sql<{ consecutive_failures: number, breaker_until: Date | null }[]>`
        select consecutive_failures, breaker_until from endpoints where id = ${ep.id}`
      return e !== undefined && e.consecutive_failures >= 5 && e.breaker_until !== null ? e : null
    }, 10_000, 'the breaker to open')
    const seenAtOpen = rx.seen.length
    assert.equal(seenAtOpen, open.consecutive_failures, 'one request per recorded failure')
    // While open, due deliveries are deferred to breaker_until without an attempt.
    await waitFor(async () => {
      const [r] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from deliveries where endpoint_id = ${ep.id} and status in ('pending', 'failed') and next_attempt_at <= now()`
      return r?.n === 0
    }, 10_000, 'the due backlog to be deferred')
    assert.equal(rx.seen.length, seenAtOpen, 'nothing was attempted while the breaker is open')
    const [sum] = await db.sql<{ attempts: number, dead: number }[]>`
      select sum(attempts)::int as attempts, count(*) filter (where status = 'dead_letter')::int as dead from deliveries where endpoint_id = ${ep.id}`
    assert.equal(sum?.attempts, seenAtOpen, 'attempts count requests only: deferrals are not attempts')
    assert.equal(sum?.dead, 0, 'no delivery lost its retries to the breaker')
  })

  test('a new thread performs the retries a stopped thread had scheduled', async () => {
    const rx = await receiver((_s, i) => i === 0 ? { status: 503, headers: { 'retry-after': '1' } } : OK)
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'survives.restart')
    const first = await start()
    await rows.waitDelivery(id, ep.id, 'failed')
    await first.stop()
    assert.equal(rx.seen.length, 1)
    await start()
    const d = await rows.waitDelivery(id, ep.id, 'delivered')
    assert.equal(d.attempts, 2)
    assert.deepEqual(rx.seen.map(s => s.headers['x-delivery-attempt']), ['1', '2'])
  })

  test('stop with an attempt in flight past the deadline: it is handed back and redelivered by the next thread', async () => {
    let hang = true
    const rx = await receiver(async (_s, _i, r) => {
      if (hang) await r.closed
      return OK
    })
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'interrupted')
    const first = await start({ DELIVERY_TIMEOUT_MS: '30000' })
    await waitFor(() => rx.inFlight === 1, 10_000, 'the attempt to be in flight')
    await first.stop(200)
    const released = await rows.delivery(id, ep.id)
    assert.equal(released.status, 'pending')
    assert.equal(released.attempts, 1, 'the interrupted attempt keeps its number')
    assert.equal(released.series_attempt, 0, 'the series position is given back')
    assert.equal(released.leased_until, null)
    assert.ok(released.next_attempt_at !== null, 'due again (not at lease expiry)')
    const [now] = await db.sql<{ due: boolean }[]>`select ${released.next_attempt_at}::timestamptz <= now() as due`
    assert.equal(now?.due, true)
    hang = false
    await start()
    const d = await rows.waitDelivery(id, ep.id, 'delivered')
    assert.equal(d.attempts, 2)
    assert.equal(d.series_attempt, 1)
    assert.deepEqual(rx.seen.map(s => s.headers['x-delivery-attempt']), ['1', '2'])
  })

  test('connect-time SSRF guard: private targets are refused before any connection (outcome blocked)', async () => {
    const rx = await receiver(() => OK)
    const byName = await rows.orgWithEndpoint(`http://localhost:${rx.port}/hook`)
    const byIp = await rows.orgWithEndpoint(rx.url())
    const e1 = await rows.event(byName.orgId, 'ssrf.name')
    const e2 = await rows.event(byIp.orgId, 'ssrf.ip')
    await start({ ALLOW_PRIVATE_WEBHOOKS: 'false' })
    for (const [id, ep] of [[e1, byName], [e2, byIp]] as const) {
      const d = await rows.waitDelivery(id, ep.id, 'dead_letter')
      assert.equal(d.attempts, 3)
      assert.equal(d.response_status, null)
      assert.match(d.last_error ?? '', /^refused: webhook host (resolves to|is) a non-public address/)
      for (const a of await attemptsOf(id)) {
        assert.equal(a.outcome, 'blocked')
        assert.equal(a.response_body, null)
      }
    }
    assert.equal(rx.seen.length, 0)
    assert.equal(rx.connections, 0)
  })

  test('ENDPOINT_DISABLE_ON_GONE=false: a 410 only dead-letters', async () => {
    const rx = await receiver(() => ({ status: 410 }))
    const ep = await rows.orgWithEndpoint(rx.url())
    const id = await rows.event(ep.orgId, 'gone.kept')
    await start({ ENDPOINT_DISABLE_ON_GONE: 'false' })
    await rows.waitDelivery(id, ep.id, 'dead_letter')
    const [e] = await db.sql<{ status: string }[]>`select status from endpoints where id = ${ep.id}`
    assert.equal(e?.status, 'active')
  })
})
