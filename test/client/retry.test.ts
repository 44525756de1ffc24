/**
 * The client's retry rule, error mapping and request building, against a local node:http server that
 * answers what each case needs — a 503 from a database outage, a reset connection, a stalled
 * answer, a proxy's HTML page — which the real service cannot be made to produce on demand.
 * (test/client/live.test.ts runs every method, and a real 429, against the service itself.)
 * Waits are Retry-After: 0 or a 1 ms backoff; nothing asserts elapsed time.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import {
  TriggersApiError, TriggersClient, TriggersConnectionError, TriggersHttpError, isApiError, parseRetryAfter, safeToRepeat,
  type RetryInfo,
} from '../../clients/typescript/src/index.ts'

interface Seen { method: string, url: string, headers: IncomingHttpHeaders, body: string }
type Answer = (res: ServerResponse, seen: Seen) => void

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => res => {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': 'req-1', ...headers })
  res.end(JSON.stringify(body))
}
const unavailable = json(503, { error: 'Service temporarily unavailable', code: 'unavailable' }, { 'retry-after': '0' })
const limited = json(429, { error: 'Rate limit exceeded', code: 'rate_limit_exceeded', limit: 100, window: '1 minute', retry_after: 0 }, { 'retry-after': '0' })
const created = json(201, { id: 'e1', type: 't', dedup_id: null, status: 'pending', created_at: '2026-01-01T00:00:00.000Z' })
const health = json(200, { status: 'ok', timestamp: '2026-01-01T00:00:00.000Z' })
const reset: Answer = res => { res.socket?.destroy() }
const stall: Answer = () => {}

/** A server that answers the n-th request with answers[n] (the last one repeats). */
class Stub {
  readonly seen: Seen[] = []
  answers: Answer[] = []
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  port = 0

  constructor () {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('error', () => {})
      req.on('end', () => {
        const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
        this.seen.push(seen)
        const answer = this.answers[Math.min(this.seen.length - 1, this.answers.length - 1)]!
        answer(res, seen)
      })
    })
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => this.#sockets.delete(s))
    })
  }

  async start (): Promise<void> {
    await new Promise<void>(resolve => this.#server.listen(0, '127.0.0.1', resolve))
    this.port = (this.#server.address() as AddressInfo).port
  }

  /** Sets the answers and forgets what was seen. */
  plan (...answers: Answer[]): void {
    this.answers = answers
    this.seen.length = 0
  }

  async close (): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>(resolve => this.#server.close(() => resolve()))
  }
}

describe('client retries and errors', () => {
  const stub = new Stub()
  let retries: RetryInfo[] = []
  let client: TriggersClient

  before(async () => {
    await stub.start()
    client = new TriggersClient({
      baseUrl: `http://127.0.0.1:${stub.port}/`,
      apiKey: 'zap_live_test',
      retry: { maxRetries: 3, initialDelayMs: 1, maxDelayMs: 1 },
      onRetry: info => retries.push(info),
      headers: { 'user-agent': 'client-test' },
    })
  })
  after(async () => { await stub.close() })

  const reset0 = (): void => { retries = [] }

  test('a GET is retried on 503 with its Retry-After, then answers', async () => {
    reset0()
    stub.plan(unavailable, unavailable, health)
    assert.deepEqual(await client.health(), { status: 'ok', timestamp: '2026-01-01T00:00:00.000Z' })
    assert.equal(stub.seen.length, 3)
    assert.deepEqual(retries.map(r => [r.retry, r.delayMs, r.status, r.operation]), [[1, 0, 503, 'GET /health'], [2, 0, 503, 'GET /health']])
  })

  test('an event without dedup_id is not repeated on 503; the error carries status, code, request id, Retry-After', async () => {
    reset0()
    stub.plan(unavailable, created)
    const err = await client.sendEvent({ type: 't', payload: {} }).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof TriggersApiError)
    assert.ok(isApiError(err, 'unavailable'))
    assert.equal(err.status, 503)
    assert.equal(err.requestId, 'req-1')
    assert.equal(err.retryAfter, 0)
    assert.equal(err.operation, 'POST /api/events')
    assert.equal(stub.seen.length, 1)
    assert.deepEqual(retries, [])
  })

  test('an event with dedup_id, or with retry: true, is repeated on 503', async () => {
    reset0()
    stub.plan(unavailable, created)
    await client.sendEvent({ type: 't', payload: {}, dedup_id: 'd1' })
    assert.equal(stub.seen.length, 2)
    assert.equal(stub.seen[0]!.body, stub.seen[1]!.body)
    stub.plan(unavailable, created)
    await client.sendEvent({ type: 't', payload: {} }, { retry: true })
    assert.equal(stub.seen.length, 2)
  })

  test('any request is repeated on 429 (refused before anything was done); retry: false turns it off', async () => {
    reset0()
    stub.plan(limited, created)
    await client.sendEvent({ type: 't', payload: {} })
    assert.equal(stub.seen.length, 2)
    assert.equal(retries[0]!.status, 429)
    stub.plan(limited, health)
    const err = await client.health({ retry: false }).then(() => null, (e: unknown) => e)
    assert.ok(isApiError(err, 'rate_limit_exceeded'))
    assert.equal(err.context.retry_after, 0)
    assert.equal(err.context.window, '1 minute')
    assert.equal(stub.seen.length, 1)
  })

  test('a batch is repeated on 503 only when every item carries a dedup_id', async () => {
    const answer = json(200, { created: 1, duplicates: 0, invalid: 0, results: [] })
    stub.plan(unavailable, answer)
    await client.sendBatch([{ type: 't', payload: {}, dedup_id: 'a' }, { type: 't', payload: {}, dedup_id: 'b' }])
    assert.equal(stub.seen.length, 2)
    stub.plan(unavailable, answer)
    await assert.rejects(client.sendBatch([{ type: 't', payload: {}, dedup_id: 'a' }, { type: 't', payload: {} }]), TriggersApiError)
    assert.equal(stub.seen.length, 1)
    assert.equal(safeToRepeat('postApiAck', { event_ids: [] }), true)
    assert.equal(safeToRepeat('postApiKeysRotate', undefined), false)
    assert.equal(safeToRepeat('deleteApiEndpointsEndpointId', undefined), false)
  })

  test('retries are bounded: maxRetries, then the last error', async () => {
    reset0()
    stub.plan(unavailable)
    await assert.rejects(client.getKey(), (e: unknown) => isApiError(e, 'unavailable'))
    assert.equal(stub.seen.length, 4)
    assert.equal(retries.length, 3)
  })

  test('a Retry-After longer than maxRetryAfterMs is not waited for', async () => {
    const patient = new TriggersClient({ baseUrl: `http://127.0.0.1:${stub.port}`, apiKey: 'k', retry: { maxRetryAfterMs: 1000 } })
    stub.plan(json(429, { error: 'Rate limit exceeded', code: 'rate_limit_exceeded', limit: 100, window: '1 minute', retry_after: 45 }, { 'retry-after': '45' }), health)
    const err = await patient.getKey().then(() => null, (e: unknown) => e)
    assert.ok(isApiError(err, 'rate_limit_exceeded'))
    assert.equal(err.retryAfter, 45)
    assert.equal(stub.seen.length, 1)
  })

  test('a wait between attempts ends when the caller aborts', async () => {
    stub.plan(json(503, { error: 'x', code: 'unavailable' }, { 'retry-after': '30' }), health)
    const ctl = new AbortController()
    const slow = new TriggersClient({ baseUrl: `http://127.0.0.1:${stub.port}`, onRetry: () => ctl.abort(new Error('caller gave up')) })
    await assert.rejects(slow.health({ signal: ctl.signal }), /caller gave up/)
    assert.equal(stub.seen.length, 1)
  })

  test('a reset connection and a timeout are TriggersConnectionError, retried for a GET', async () => {
    reset0()
    stub.plan(reset, health)
    await client.live()
    assert.equal(stub.seen.length, 2)
    assert.equal(retries[0]!.status, null)
    assert.ok(retries[0]!.error instanceof TriggersConnectionError)
    stub.plan(stall)
    const err = await client.getKey({ timeoutMs: 50, retry: false }).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof TriggersConnectionError)
    assert.equal(err.timedOut, true)
    stub.plan(reset)
    const lost = await client.rotateKey().then(() => null, (e: unknown) => e)
    assert.ok(lost instanceof TriggersConnectionError, 'a POST that lost its answer is not repeated')
    assert.equal(stub.seen.length, 1)
  })

  test('a failed answer that is not an envelope is a TriggersHttpError', async () => {
    stub.plan(res => { res.writeHead(502, { 'content-type': 'text/html' }); res.end('<html>bad gateway</html>') })
    const err = await client.getKey({ retry: false }).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof TriggersHttpError)
    assert.equal(err.status, 502)
    assert.match(err.body, /bad gateway/)
  })

  test('requests: path parameters encoded, query without empty values, key, JSON body, headers', async () => {
    stub.plan(json(200, { attempts: [], limit: 5, next_cursor: null, has_more: false }))
    await client.listEndpointAttempts('a/b c', { outcome: 'success', limit: 5, event_type: undefined }, { headers: { 'x-request-id': 'mine' } })
    const seen = stub.seen[0]!
    assert.equal(seen.method, 'GET')
    assert.equal(seen.url, '/api/endpoints/a%2Fb%20c/attempts?outcome=success&limit=5')
    assert.equal(seen.headers['x-api-key'], 'zap_live_test')
    assert.equal(seen.headers['x-request-id'], 'mine')
    assert.equal(seen.headers['user-agent'], 'client-test')
    stub.plan(json(202, { event_id: 'e', status: 'pending' }))
    await client.redeliver('e')
    assert.equal(stub.seen[0]!.body, '')
    assert.equal(stub.seen[0]!.headers['content-type'], undefined)
    stub.plan(json(200, { acknowledged: 1000, not_found: ['x'] }), json(200, { acknowledged: 500, not_found: ['y'] }))
    const ids = Array.from({ length: 1500 }, (_, i) => `id-${i}`)
    assert.deepEqual(await client.ackMany(ids), { acknowledged: 1500, not_found: ['x', 'y'] })
    assert.deepEqual(stub.seen.map(s => JSON.parse(s.body).event_ids.length), [1000, 500])
    const keyless = new TriggersClient({ baseUrl: `http://127.0.0.1:${stub.port}` })
    await assert.rejects(keyless.getKey(), /needs an API key/)
  })

  test('ready() returns the 503 not_ready answer instead of throwing', async () => {
    stub.plan(json(503, { status: 'not_ready', database: 'disconnected', error: 'timeout' }), json(200, { status: 'ready', database: 'connected' }))
    assert.deepEqual(await client.ready(), { status: 'not_ready', database: 'disconnected', error: 'timeout' })
    assert.equal(stub.seen.length, 1)
  })

  test('Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00.000Z')
    assert.equal(parseRetryAfter('17', now), 17_000)
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000)
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0)
    assert.equal(parseRetryAfter('soon', now), null)
    assert.equal(parseRetryAfter(null, now), null)
  })
})
