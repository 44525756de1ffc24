/**
 * Every method of the TypeScript client against the real service (test/helpers/server.ts) with its
 * delivery thread on, and a node:http receiver on 127.0.0.1 (ALLOW_PRIVATE_WEBHOOKS): keys, the
 * default webhook and endpoints, a real delivery verified with verifyWebhook (and refused when
 * tampered with or under another secret), the attempt routes, redelivery after a secret rotation
 * (both secrets verify), replays, batches split and gathered, the inbox walked by its cursor
 * iterator and acknowledged, typed errors, key rotation — and a free-tier organization sending
 * more than its minute allows: the batch helper shrinks to the tier's batch size, meets a real 429
 * and retries after its Retry-After (up to a minute of waiting, which runs beside the other tests).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestService, type TestService } from '../helpers/server.ts'
import { waitFor } from '../helpers/db.ts'
import { OK, Receiver, type Seen } from '../helpers/delivery.ts'
import {
  OPERATIONS, TriggersApiError, TriggersClient, WebhookVerificationError, isApiError, verifyWebhook,
  type EndpointCreated, type CreateEventResponse, type RetryInfo, type SendEventsResult, type WebhookConfigResponse,
} from '../../clients/typescript/src/index.ts'

async function collect<T> (it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

async function rejection (p: Promise<unknown>): Promise<unknown> {
  return await p.then(() => { throw new Error('expected a rejection') }, (e: unknown) => e)
}

interface FreeTierRun { retries: RetryInfo[], rounds: SendEventsResult[] }

/**
 * A free-tier organization (100 requests a minute) sends 150 events with sendEvents: 150 is over its
 * batch size (422 batch_too_large, max_events 100, nothing stored), so the helper sends 100, then 50
 * — which meets the spent minute's 429 and is retried after Retry-After. Should a new minute begin
 * between the two batches (no 429), it sends another round.
 */
async function freeTierRun (base: string, key: string): Promise<FreeTierRun> {
  const retries: RetryInfo[] = []
  const free = new TriggersClient({ baseUrl: base, apiKey: key, onRetry: info => retries.push(info) })
  const rounds: SendEventsResult[] = []
  for (let round = 0; retries.length === 0 && round < 3; round++) {
    rounds.push(await free.sendEvents(Array.from({ length: 150 }, (_, i) => ({ type: 'tick', payload: { round, i } }))))
  }
  return { retries, rounds }
}

describe('TypeScript client against the live service', () => {
  let s: TestService
  let rx: Receiver
  let anon: TriggersClient
  let client: TriggersClient
  let freeRun: Promise<FreeTierRun>
  let cfg: WebhookConfigResponse
  let orders: EndpointCreated
  let ev: CreateEventResponse

  before(async () => {
    s = await startTestService({ DELIVERY_ENABLED: 'true', ALLOW_PRIVATE_WEBHOOKS: 'true', DELIVERY_TIMEOUT_MS: '5000' })
    rx = await Receiver.start(() => OK)
    anon = new TriggersClient({ baseUrl: s.base })
    const freeKey = (await anon.generateKey({ organization_name: 'Free Org' })).api_key
    freeRun = freeTierRun(s.base, freeKey)
    freeRun.catch(() => {}) // awaited by its own test below
  })

  after(async () => {
    await freeRun?.catch(() => {})
    await rx?.close()
    await s?.stop()
  })

  test('health, readiness and the document the types were generated from', async () => {
    assert.equal((await anon.health()).status, 'ok')
    assert.equal((await anon.live()).status, 'ok')
    assert.deepEqual({ ...(await anon.ready()), timestamp: undefined }, { status: 'ready', database: 'connected', timestamp: undefined })
    const doc = await anon.openApi() as { paths: Record<string, Record<string, { operationId: string }>> }
    const ids = Object.values(doc.paths).flatMap(m => Object.values(m).map(op => op.operationId)).sort()
    assert.deepEqual(ids, Object.keys(OPERATIONS).sort(), 'the served document has the generated operations')
  })

  test('keys: generate an organization, describe it', async () => {
    const org = await anon.generateKey({ organization_name: 'Client Org', tier: 'enterprise' })
    assert.equal(org.tier, 'enterprise')
    client = anon.withApiKey(org.api_key)
    const info = await client.getKey()
    assert.equal(info.organization_id, org.organization_id)
    assert.equal(info.webhook_url, null)
  })

  test('a delivery to the default webhook and to an endpoint, verified with verifyWebhook', async () => {
    cfg = await client.configureWebhook(rx.url('/default'))
    assert.match(cfg.signing_secret, /^whsec_/)
    orders = await client.createEndpoint({ url: rx.url('/orders'), event_types: ['order.*'], description: 'orders' })
    assert.equal(orders.status, 'active')
    ev = await client.sendEvent({ type: 'order.created', payload: { order_id: 42 }, dedup_id: 'order-42' })
    assert.equal(ev.status, 'pending')

    const dup = await rejection(client.sendEvent({ type: 'order.created', payload: { order_id: 42 }, dedup_id: 'order-42' }))
    assert.ok(isApiError(dup, 'duplicate_event'))
    assert.equal(dup.status, 409)
    assert.equal(dup.context.event_id, ev.id)
    assert.equal(dup.context.dedup_id, 'order-42')

    const seen = await waitFor(() => {
      const got = rx.forEvent(ev.id)
      return got.length >= 2 ? got : null
    }, 30_000, 'the event at both endpoints')
    const secretOf = (x: Seen): string => x.path === '/default' ? cfg.signing_secret : orders.signing_secret
    for (const delivery of seen) {
      const event = verifyWebhook<{ order_id: number }>(secretOf(delivery), delivery.body, delivery.headers)
      assert.deepEqual({ id: event.id, type: event.type, order: event.data.order_id }, { id: ev.id, type: 'order.created', order: 42 })
      assert.equal(event.timestamp, ev.created_at)
    }
    const one = seen[0]!
    const other = one.path === '/default' ? orders.signing_secret : cfg.signing_secret
    assert.throws(() => verifyWebhook(other, one.body, one.headers), WebhookVerificationError)
    assert.throws(() => verifyWebhook(secretOf(one), one.body.replace('42', '43'), one.headers), WebhookVerificationError)
    assert.throws(() => verifyWebhook(secretOf(one), one.body, { ...one.headers, 'webhook-signature': undefined }), WebhookVerificationError)
    assert.equal(verifyWebhook([other, secretOf(one)], Buffer.from(one.body), one.headers).id, ev.id, 'any of several secrets')

    const deliveries = await waitFor(async () => {
      const d = await client.getEventDeliveries(ev.id)
      return d.deliveries.length === 2 && d.deliveries.every(x => x.status === 'delivered') ? d : null
    }, 30_000, 'both deliveries recorded as delivered')
    assert.deepEqual(deliveries.deliveries.map(d => d.endpoint_id).sort(), [cfg.endpoint_id, orders.id].sort())
  })

  test('attempts: by event (iterator and pages), by id, by endpoint with filters, stats', async () => {
    const page = await waitFor(async () => {
      const p = await client.listEventAttempts(ev.id)
      return p.attempts.length === 2 ? p : null
    }, 30_000, 'two attempts logged')
    const walked = await collect(client.eventAttempts(ev.id, { limit: 1 }))
    assert.deepEqual(walked.map(a => a.id), page.attempts.map(a => a.id))
    assert.ok(walked.every(a => a.outcome === 'success' && a.trigger === 'initial' && a.response_status === 200))
    assert.deepEqual(await client.getAttempt(walked[0]!.id), walked[0])
    const only = await client.listEventAttempts(ev.id, { endpoint_id: orders.id })
    assert.deepEqual(only.attempts.map(a => a.endpoint_id), [orders.id])

    const byEndpoint = await collect(client.endpointAttempts(orders.id, { outcome: 'success', status_class: '2xx', event_type: 'order.created', limit: 1 }))
    assert.equal(byEndpoint.length, 1)
    assert.equal(byEndpoint[0]!.event_id, ev.id)
    assert.equal((await client.listEndpointAttempts(orders.id, { status_class: '5xx' })).attempts.length, 0)
    const stats = await client.getEndpointStats(orders.id)
    assert.equal(stats.success, 1)
    assert.equal(stats.http_error, 0)
    assert.equal(typeof stats.p50_ms, 'number')

    const bad = await rejection(client.listEndpointAttempts(orders.id, { outcome: 'nope' as 'success' }))
    assert.ok(isApiError(bad, 'invalid_filter'))
    assert.ok('outcome' in (bad.context.details ?? {}))
  })

  test('redelivery after a secret rotation verifies with both secrets; replays', async () => {
    const rotated = await client.rotateWebhookSecret()
    assert.notEqual(rotated.signing_secret, cfg.signing_secret)
    assert.ok(rotated.previous_secret_expires_at !== null)
    const before = rx.forEvent(ev.id).filter(x => x.path === '/default').length
    assert.deepEqual(await client.redeliver(ev.id, { endpoint_id: cfg.endpoint_id }), { event_id: ev.id, status: 'pending' })
    const again = await waitFor(() => rx.forEvent(ev.id).filter(x => x.path === '/default')[before], 30_000, 'the redelivery')
    assert.equal(again.headers['x-delivery-attempt'], '2')
    assert.equal(verifyWebhook(rotated.signing_secret, again.body, again.headers).id, ev.id)
    assert.equal(verifyWebhook(cfg.signing_secret, again.body, again.headers).id, ev.id)
    // The next redelivery waits for this one's result to be written: the two racing each other can
    // deadlock in PostgreSQL, and the request that loses is answered 500 (a service issue, not the client's).
    await waitFor(async () => (await client.getEventDeliveries(ev.id)).deliveries.some(d => d.endpoint_id === cfg.endpoint_id && d.attempts === 2 && d.status === 'delivered'),
      30_000, 'the redelivery recorded')
    assert.equal((await client.redeliver(ev.id)).status, 'pending')

    assert.equal((await client.replayWebhook({ status: 'dead_letter' })).scheduled, 0)
    assert.equal((await client.replayWebhook({ status: 'failed', endpoint_id: orders.id, since: '2020-01-01T00:00:00Z' })).scheduled, 0)
    const missed = await client.replayEndpoint(orders.id, { status: 'missed', since: '2020-01-01T00:00:00Z' })
    assert.equal(missed.scheduled, 0, 'the one order event already has its delivery')
    const disabled = await client.createEndpoint({ url: rx.url('/off'), event_types: ['none.*'] })
    await client.updateEndpoint(disabled.id, { status: 'disabled' })
    const refused = await rejection(client.replayEndpoint(disabled.id, { status: 'failed' }))
    assert.ok(isApiError(refused, 'endpoint_disabled'))
    await client.deleteEndpoint(disabled.id)
  })

  test('endpoints: pages and iterator, read, change, secrets, delete', async () => {
    const made: EndpointCreated[] = []
    for (const n of [1, 2, 3]) made.push(await client.createEndpoint({ url: rx.url(`/e${n}`), event_types: ['never.*'], metadata: { n: String(n) } }))
    const first = await client.listEndpoints({ limit: 2 })
    assert.equal(first.endpoints.length, 2)
    assert.equal(first.has_more, true)
    const all = await collect(client.endpoints({ limit: 2 }))
    assert.deepEqual(all.map(e => e.id), [cfg.endpoint_id, orders.id, ...made.map(e => e.id)])
    assert.equal(all[0]!.is_default, true)

    const e1 = made[0]!
    const detail = await client.getEndpoint(e1.id)
    assert.equal(detail.stats.pending, 0)
    assert.deepEqual(detail.metadata, { n: '1' })
    const paused = await client.updateEndpoint(e1.id, { status: 'paused', description: 'held', rate_limit: { limit: 5, period_seconds: 1 } })
    assert.equal(paused.status, 'paused')
    assert.deepEqual(paused.rate_limit, { limit: 5, period_seconds: 1 })
    assert.deepEqual((await collect(client.endpoints({ status: 'paused' }))).map(e => e.id), [e1.id])

    assert.equal((await client.getEndpointSecret(e1.id)).signing_secret, e1.signing_secret)
    const rotated = await client.rotateEndpointSecret(e1.id)
    assert.notEqual(rotated.signing_secret, e1.signing_secret)
    assert.ok(rotated.previous_secret_expires_at !== null)

    assert.equal(await client.deleteEndpoint(e1.id), undefined)
    const gone = await rejection(client.getEndpoint(e1.id))
    assert.ok(isApiError(gone, 'not_found'))
    assert.equal(gone.status, 404)
    const badId = await rejection(client.getEndpoint('not-a-uuid'))
    assert.ok(isApiError(badId, 'invalid_id'))
  })

  test('batches: a long array split in batches of 500 and gathered; per-item results; atomic', async () => {
    const pull = anon.withApiKey((await anon.generateKey({ organization_name: 'Pull Org', tier: 'enterprise' })).api_key)
    const events = Array.from({ length: 1100 }, (_, i) => ({ type: i % 2 === 0 ? 'order.created' : 'invoice.paid', payload: { i }, dedup_id: `b-${i}` }))
    const sent = await pull.sendEvents(events)
    assert.deepEqual({ created: sent.created, duplicates: sent.duplicates, invalid: sent.invalid, batches: sent.batches }, { created: 1100, duplicates: 0, invalid: 0, batches: 3 })
    assert.deepEqual(sent.results.map(r => r.index), events.map((_, i) => i))
    const ids = sent.results.map(r => { assert.equal(r.status, 'created'); return r.id })

    const mixed = await pull.sendBatch([
      { type: 'order.created', payload: { again: true }, dedup_id: 'b-0' },
      { type: 'order.updated', payload: { n: 1 } },
      { type: '', payload: {} },
    ])
    assert.deepEqual([mixed.created, mixed.duplicates, mixed.invalid], [1, 1, 1])
    const [dup, made, bad] = mixed.results
    assert.ok(dup?.status === 'duplicate' && dup.event_id === ids[0])
    assert.ok(made?.status === 'created')
    assert.ok(bad?.status === 'invalid' && bad.code === 'invalid_event')
    ids.push(made.id)

    const rejected = await rejection(pull.sendBatch([{ type: 'a', payload: {} }, { type: '', payload: {} }], { atomic: true }))
    assert.ok(isApiError(rejected, 'batch_rejected'))
    assert.equal(rejected.context.results.length, 2)

    // The inbox of this organization (no webhook: everything stays pending), walked newest first.
    const page = await pull.listInbox({ limit: 10 })
    assert.equal(page.events.length, 10)
    assert.equal(page.has_more, true)
    const walked = await collect(pull.inbox({ limit: 250 }))
    assert.equal(walked.length, ids.length)
    assert.deepEqual(new Set(walked.map(e => e.id)), new Set(ids))
    assert.deepEqual(walked.map(e => e.id), [...ids].sort().reverse(), 'newest first (ids are UUIDv7)')
    let taken = 0
    for await (const _ of pull.inbox({ limit: 2 })) if (++taken === 3) break
    assert.equal(taken, 3)

    const acked = await pull.ackMany(ids)
    assert.deepEqual(acked, { acknowledged: ids.length, not_found: [] })
    assert.equal((await collect(pull.inbox())).length, 0)
    const once = await pull.ack(ids[0]!)
    assert.equal(once.status, 'delivered')
    assert.deepEqual(await pull.ack(ids[0]!), once, 'idempotent')
    const delivered = await pull.listInbox({ status: 'delivered', limit: 1, include: 'deliveries' })
    assert.deepEqual(delivered.events[0]!.deliveries, [])
  })

  test('errors carry code, status and context', async () => {
    const invalid = await rejection(client.sendEvent({ type: '', payload: {} }))
    assert.ok(invalid instanceof TriggersApiError)
    assert.ok(isApiError(invalid, 'invalid_event'))
    assert.equal(invalid.status, 400)
    assert.ok('type' in invalid.context.details)
    assert.match(invalid.requestId ?? '', /.+/)

    const big = await rejection(client.sendEvent({ type: 'big', payload: { blob: 'x'.repeat(300_000) } }))
    assert.ok(isApiError(big, 'payload_too_large'))
    assert.equal(big.context.limit, 262144)
    assert.ok(big.context.size > 262144)

    const missing = await rejection(anon.generateKey({}))
    assert.ok(isApiError(missing, 'missing_field'))
    assert.equal(missing.context.field, 'organization_name')
  })

  test('rotateKey: the client sends the new key; the old one is refused', async () => {
    const old = client.apiKey!
    const rotated = await client.rotateKey()
    assert.equal(client.apiKey, rotated.api_key)
    assert.equal((await client.getKey()).webhook_url, rx.url('/default'))
    const refused = await rejection(client.withApiKey(old).getKey())
    assert.ok(isApiError(refused, 'unauthorized'))
    assert.equal(refused.status, 401)
  })

  test('a free tier: batches shrink to its maximum, a real 429 is retried after its Retry-After', async () => {
    const { retries, rounds } = await freeRun
    for (const r of rounds) assert.deepEqual([r.created, r.batches, r.results.length], [150, 2, 150])
    assert.ok(retries.length >= 1, 'a 429 was met')
    const first = retries[0]!
    assert.equal(first.status, 429)
    assert.equal(first.operation, 'POST /api/events/batch')
    assert.ok(isApiError(first.error, 'rate_limit_exceeded'))
    assert.equal(first.error.context.limit, 100)
    assert.equal(first.delayMs, first.error.retryAfter! * 1000, 'waited what Retry-After said')
    assert.equal(first.error.context.retry_after, first.error.retryAfter)
    assert.ok(first.delayMs >= 1000 && first.delayMs <= 60_000)
  })
})
