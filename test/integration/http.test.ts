/**
 * HTTP-level contract against the real service: 404 and 405 envelopes (with Allow), HEAD on every GET
 * route of the table, X-Request-ID, CORS, Content-Type on every response, the health endpoints, and
 * the rate-limit headers on authenticated responses.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import { startTestService, type ApiResponse, type TestService } from '../helpers/server.ts'
import { routes } from '../../src/http/app.ts'
import type { Services } from '../../src/http/services.ts'
import { freshBurst, freshRequest, untilFreshWindow } from '../helpers/fresh.ts'

const ISO_MS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

let s: TestService
before(async () => { s = await startTestService() })
after(async () => { await s.stop() })

/** Writes raw bytes on one connection and returns everything the server sends until it closes. */
function rawExchange (port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1', () => { c.write(request) })
    let buf = ''
    c.setEncoding('latin1')
    c.on('data', (d: string) => { buf += d })
    c.on('error', reject)
    c.on('close', () => { resolve(buf) })
  })
}

/**
 * One client connection, used request after request: `next` writes a request and resolves with the
 * head of the next response (status line and headers); `rest` is every byte received after the heads
 * taken so far. A HEAD answer that carried a body would show up at the start of `rest`.
 */
class SeqConn {
  readonly sock
  #buf = ''
  #waiter: (() => void) | null = null
  closed = false
  constructor (port: number) {
    this.sock = connect(port, '127.0.0.1')
    this.sock.setEncoding('latin1')
    this.sock.on('error', () => { /* `closed` reports the end */ })
    this.sock.on('data', (d: string) => { this.#buf += d; this.#waiter?.() })
    this.sock.on('close', () => { this.closed = true; this.#waiter?.() })
  }

  async #until (ok: () => boolean): Promise<void> {
    while (!ok()) {
      if (this.closed) throw new Error(`connection closed; received ${JSON.stringify(this.#buf.slice(0, 200))}`)
      await new Promise<void>(resolve => { this.#waiter = resolve })
      this.#waiter = null
    }
  }

  async next (request: string): Promise<{ status: number, head: string }> {
    this.sock.write(request)
    await this.#until(() => this.#buf.includes('\r\n\r\n'))
    const end = this.#buf.indexOf('\r\n\r\n')
    const head = this.#buf.slice(0, end)
    this.#buf = this.#buf.slice(end + 4)
    return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]), head }
  }

  /** Reads until the server closes and returns what came after the last head taken. */
  async rest (): Promise<string> {
    await this.#until(() => this.closed).catch(() => {})
    return this.#buf
  }
}

function headerOf (head: string, name: string): string | null {
  const m = new RegExp(`\r\n${name}: ([^\r]*)`, 'i').exec(head)
  return m?.[1] ?? null
}

function allowOf (r: ApiResponse): string[] {
  const allow = r.headers.get('allow')
  assert.ok(allow !== null, 'Allow header present')
  return allow.split(',').map(m => m.trim().toUpperCase()).filter(m => m !== '').sort()
}

function assertEnvelope (r: ApiResponse, status: number, code: string): void {
  assert.equal(r.status, status, r.text)
  assert.equal(r.headers.get('content-type'), 'application/json')
  assert.equal(r.json?.code, code, r.text)
  assert.equal(typeof r.json.error, 'string')
  assert.ok(r.json.error.length > 0)
}

describe('routing', () => {
  test('unknown route: 404 not_found envelope', async () => {
    const org = await s.createOrg('enterprise', 'Routing')
    for (const [method, path] of [['GET', '/'], ['GET', '/nope'], ['GET', '/api'], ['POST', '/api/unknown'], ['GET', '/api/keys/x/y'],
      ['GET', '/healthz'], ['DELETE', '/whatever'], ['POST', `/api/ack/${randomUUID()}/extra`]] as const) {
      const r = await s.api(method, path, { key: org.key })
      assertEnvelope(r, 404, 'not_found')
      assert.deepEqual(Object.keys(r.json).sort(), ['code', 'error'], `${method} ${path}`)
    }
  })

  test('known route, wrong method: 405 method_not_allowed with Allow', async () => {
    const org = await s.createOrg('enterprise', 'Methods')
    const cases: [string, string, string[]][] = [
      ['GET', '/api/events', ['OPTIONS', 'POST']],
      ['PUT', '/api/events', ['OPTIONS', 'POST']],
      ['DELETE', '/api/inbox', ['GET', 'HEAD', 'OPTIONS']],
      ['POST', '/api/inbox', ['GET', 'HEAD', 'OPTIONS']],
      ['PUT', '/api/keys', ['GET', 'HEAD', 'OPTIONS']],
      ['GET', '/api/keys/generate', ['OPTIONS', 'POST']],
      ['GET', '/api/keys/rotate', ['OPTIONS', 'POST']],
      ['GET', '/api/ack', ['OPTIONS', 'POST']],
      ['PATCH', `/api/ack/${randomUUID()}`, ['OPTIONS', 'POST']],
      ['DELETE', `/api/events/${randomUUID()}/redeliver`, ['OPTIONS', 'POST']],
      ['GET', '/api/webhook/config', ['OPTIONS', 'POST']],
      ['POST', '/health', ['GET', 'HEAD', 'OPTIONS']],
      ['DELETE', '/health/ready', ['GET', 'HEAD', 'OPTIONS']],
    ]
    for (const [method, path, allow] of cases) {
      const r = await s.api(method, path, { key: org.key })
      assertEnvelope(r, 405, 'method_not_allowed')
      assert.deepEqual(allowOf(r), allow, `${method} ${path}`)
      assert.ok(!allowOf(r).includes(method), 'Allow does not list the method refused')
    }
    // The refused request does nothing: no event was created.
    const [row] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from events where organization_id = ${org.id}`
    assert.equal(row?.n, 0)
  })
})

describe('HEAD', () => {
  test('every GET route in the table answers HEAD: the status and headers of GET, no body, the connection intact', async () => {
    const org = await s.createOrg('enterprise', 'Head')
    // The table itself, so routes added to it later are covered too (building it only wraps handlers).
    const table = routes({ config: s.config } as unknown as Services)
    const getPaths = table.filter(r => 'get' in r.methods && r.methods.get !== undefined).map(r => r.path)
    assert.ok(getPaths.length >= 7, `GET routes found: ${getPaths.join(' ')}`)
    for (const pattern of getPaths) {
      const path = pattern.replace(/:[a-z_]+/g, () => randomUUID())
      const get = await s.api('GET', path, { key: org.key })
      const c = new SeqConn(s.port)
      const head = await c.next(`HEAD ${path} HTTP/1.1\r\nHost: t\r\nX-API-Key: ${org.key}\r\n\r\n`)
      assert.equal(head.status, get.status, `HEAD ${pattern}: ${head.head}`)
      assert.equal(headerOf(head.head, 'content-type'), get.headers.get('content-type'), pattern)
      assert.ok(headerOf(head.head, 'x-request-id') !== null, pattern)
      // The next request on the same connection: its response must come right after the HEAD's head.
      const next = await c.next('GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
      assert.equal(next.status, 200, `the response after HEAD ${pattern} is intact: ${next.head}`)
      assert.equal(JSON.parse(await c.rest()).status, 'ok')
    }
  })

  test('HEAD on an unknown path or a POST-only route: the error status and headers, no body', async () => {
    for (const [path, status] of [['/nope', 404], ['/api/events', 405]] as const) {
      const c = new SeqConn(s.port)
      const head = await c.next(`HEAD ${path} HTTP/1.1\r\nHost: t\r\n\r\n`)
      assert.equal(head.status, status, head.head)
      assert.equal(headerOf(head.head, 'content-type'), 'application/json')
      const next = await c.next('GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
      assert.equal(next.status, 200, next.head)
      assert.equal(JSON.parse(await c.rest()).status, 'ok')
    }
  })
})

/** Splits raw bytes into complete Content-Length-framed responses; `rest` is what does not form one. */
function splitResponses (raw: string): { statuses: number[], rest: string } {
  const statuses: number[] = []
  let buf = raw
  for (;;) {
    const end = buf.indexOf('\r\n\r\n')
    if (end < 0) break
    const head = buf.slice(0, end)
    const len = Number(headerOf(head, 'content-length') ?? '0')
    if (buf.length < end + 4 + len) break
    statuses.push(Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]))
    buf = buf.slice(end + 4 + len)
  }
  return { statuses, rest: buf }
}

describe('pipelining (README, Decisions)', () => {
  test('requests answered without waiting are answered in order on one connection', async () => {
    const out = await rawExchange(s.port,
      'GET /health HTTP/1.1\r\nHost: t\r\n\r\n' +
      'GET /nope HTTP/1.1\r\nHost: t\r\n\r\n' +
      'PUT /api/events HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n' +
      'GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
    assert.deepEqual(splitResponses(out), { statuses: [200, 404, 405, 200], rest: '' })
  })

  test('a request pipelined behind one still in progress closes the connection: whole answers in order, then the close', async () => {
    const org = await s.createOrg('enterprise', 'Pipelining')
    // Warm the key on both threads, so the POST below goes asynchronous only for its database write.
    for (let i = 0; i < 6; i++) assert.equal((await s.api('GET', '/api/keys', { key: org.key })).status, 200)
    const event = JSON.stringify({ type: 'pipelined', payload: { n: 1 } })
    const post = `POST /api/events HTTP/1.1\r\nHost: t\r\nX-API-Key: ${org.key}\r\nContent-Type: application/json\r\nContent-Length: ${event.length}\r\n\r\n${event}`
    const expected = [201, 200, 404]
    for (const request of [
      post + 'GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n',
      'GET /health HTTP/1.1\r\nHost: t\r\n\r\n' + post + 'GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n',
    ]) {
      const out = await rawExchange(s.port, request)
      const got = splitResponses(out)
      // Whatever was answered is a run of complete responses in request order; nothing partial, nothing after.
      assert.equal(got.rest, '', JSON.stringify(out))
      const order = request.startsWith('POST') ? expected : [200, 201, 404]
      assert.deepEqual(got.statuses, order.slice(0, got.statuses.length), JSON.stringify(out))
    }
    // The unanswered POSTs were either stored or not, never twice; the service goes on serving.
    const [row] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from events where organization_id = ${org.id} and type = 'pipelined'`
    assert.ok((row?.n ?? -1) >= 0 && (row?.n ?? 3) <= 2)
    assert.equal((await s.api('GET', '/health')).status, 200)
  })
})

describe('X-Request-ID', () => {
  test('echoed when sent, on success and on errors', async () => {
    for (const [method, path] of [['GET', '/health'], ['GET', '/nope'], ['GET', '/api/events'], ['GET', '/api/keys']] as const) {
      const id = `req-${randomUUID()}`
      const r = await s.api(method, path, { headers: { 'x-request-id': id } })
      assert.equal(r.headers.get('x-request-id'), id, `${method} ${path}`)
    }
  })

  test('generated when absent, unique across requests and threads', async () => {
    const pooled = await Promise.all(Array.from({ length: 30 }, async () => await s.api('GET', '/health')))
    const fresh = await freshBurst(30, s.base, 'GET', '/nope')
    const idsSeen = [...pooled.map(r => r.headers.get('x-request-id')), ...fresh.map(r => r.headers['x-request-id'] ?? null)]
    for (const id of idsSeen) {
      assert.equal(typeof id, 'string')
      assert.ok(id !== null && id.length >= 8 && id.length <= 200, `a usable id: ${String(id)}`)
    }
    assert.equal(new Set(idsSeen).size, idsSeen.length, 'all distinct')
  })

  test('an unusable client id (control characters, too long) is replaced, not echoed', async () => {
    const long = 'a'.repeat(300)
    const r = await s.api('GET', '/health', { headers: { 'x-request-id': long } })
    const got = r.headers.get('x-request-id')
    assert.ok(got !== null && got !== long && got.length > 0 && got.length <= 200)
  })
})

describe('CORS', () => {
  test('Access-Control-Allow-Origin: * on success and error responses', async () => {
    const org = await s.createOrg('enterprise', 'Cors')
    const rs = [
      await s.api('GET', '/health'),
      await s.api('GET', '/api/keys', { key: org.key }),
      await s.api('GET', '/api/keys'),
      await s.api('GET', '/nope'),
      await s.api('GET', '/api/events'),
      await s.api('POST', '/api/events', { key: org.key, raw: '{', headers: { 'content-type': 'application/json' } }),
    ]
    for (const r of rs) assert.equal(r.headers.get('access-control-allow-origin'), '*', `${r.status} ${r.text}`)
  })

  test('preflight on /api/events: 204 with the allowed methods and headers', async () => {
    const r = await s.api('OPTIONS', '/api/events', {
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-api-key' },
    })
    assert.equal(r.status, 204)
    assert.equal(r.text, '')
    assert.equal(r.headers.get('content-length'), null, 'a 204 carries no Content-Length (RFC 9110 §8.6)')
    assert.equal(r.headers.get('access-control-allow-origin'), '*')
    const methods = (r.headers.get('access-control-allow-methods') ?? '').split(',').map(m => m.trim().toUpperCase())
    assert.ok(methods.includes('POST') && methods.includes('GET'), `methods: ${methods.join(',')}`)
    const headers = (r.headers.get('access-control-allow-headers') ?? '').split(',').map(h => h.trim().toLowerCase())
    for (const h of ['content-type', 'x-api-key', 'x-request-id']) assert.ok(headers.includes(h), `allows ${h}: ${headers.join(',')}`)
    assert.ok(r.headers.get('x-request-id'))
    // Preflight needs no key and is answered on other routes too.
    for (const path of ['/api/inbox', '/api/keys/generate', `/api/ack/${randomUUID()}`]) {
      const p = await s.api('OPTIONS', path)
      assert.equal(p.status, 204, path)
      assert.equal(p.headers.get('access-control-allow-origin'), '*')
    }
  })

  test('CORS_ORIGIN replaces the wildcard on responses and preflights', async t => {
    const scoped = await startTestService({ CORS_ORIGIN: 'https://app.example' })
    t.after(() => scoped.stop())
    const r = await scoped.api('GET', '/health')
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://app.example')
    const e = await scoped.api('GET', '/nope')
    assert.equal(e.headers.get('access-control-allow-origin'), 'https://app.example')
    const p = await scoped.api('OPTIONS', '/api/events', { headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } })
    assert.equal(p.status, 204)
    assert.equal(p.headers.get('access-control-allow-origin'), 'https://app.example')
  })

  test('browsers can read the rate-limit and request-id headers', async () => {
    const org = await s.createOrg('free', 'Expose')
    const r = await s.api('GET', '/api/keys', { key: org.key })
    const exposed = (r.headers.get('access-control-expose-headers') ?? '').split(',').map(h => h.trim().toLowerCase())
    for (const h of ['x-request-id', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'retry-after']) {
      assert.ok(exposed.includes(h), `exposes ${h}`)
    }
  })
})

describe('Content-Type', () => {
  test('application/json on every response, errors included', async () => {
    const org = await s.createOrg('enterprise', 'Types')
    const free = await s.createOrg('free', 'Types Free')
    const created = await s.api('POST', '/api/events', { key: org.key, body: { type: 't', payload: {} } })
    const rs: [string, ApiResponse][] = [
      ['201', created],
      ['200 keys', await s.api('GET', '/api/keys', { key: org.key })],
      ['200 inbox', await s.api('GET', '/api/inbox', { key: org.key })],
      ['200 health', await s.api('GET', '/health')],
      ['400 json', await s.api('POST', '/api/events', { key: org.key, raw: 'nope', headers: { 'content-type': 'application/json' } })],
      ['400 event', await s.api('POST', '/api/events', { key: org.key, body: { payload: {} } })],
      ['400 limit', await s.api('GET', '/api/inbox?limit=0', { key: org.key })],
      ['401', await s.api('GET', '/api/inbox')],
      ['404 route', await s.api('GET', '/nope')],
      ['404 event', await s.api('POST', `/api/ack/${randomUUID()}`, { key: org.key })],
      ['405', await s.api('DELETE', '/api/inbox', { key: org.key })],
      ['409', await (async () => {
        await s.api('POST', '/api/events', { key: org.key, body: { type: 't', payload: {}, dedup_id: 'ct' } })
        return await s.api('POST', '/api/events', { key: org.key, body: { type: 't', payload: {}, dedup_id: 'ct' } })
      })()],
      ['413 payload', await s.api('POST', '/api/events', { key: org.key, body: { type: 't', payload: { big: 'x'.repeat(300_000) } } })],
      ['422', await s.api('POST', '/api/keys/generate', { body: { organization_name: 'x', tier: 'gold' } })],
    ]
    // 429: exhaust the free organization's window (one window: wait if the minute is about to turn).
    await untilFreshWindow()
    let limited: ApiResponse | null = null
    for (let i = 0; i < 101 && limited === null; i++) {
      const r = await s.api('GET', '/api/keys', { key: free.key })
      if (r.status === 429) limited = r
    }
    assert.ok(limited !== null, 'the free tier was limited within 101 requests')
    rs.push(['429', limited])
    const statuses = rs.map(([, r]) => r.status)
    assert.deepEqual(statuses, [201, 200, 200, 200, 400, 400, 400, 401, 404, 404, 405, 409, 413, 422, 429])
    for (const [name, r] of rs) {
      assert.equal(r.headers.get('content-type'), 'application/json', name)
      assert.doesNotThrow(() => { JSON.parse(r.text) }, name)
    }
  })
})

describe('health', () => {
  test('/health and /health/live: {status: ok, timestamp}', async () => {
    for (const path of ['/health', '/health/live']) {
      const r = await s.api('GET', path)
      assert.equal(r.status, 200)
      assert.deepEqual(Object.keys(r.json).sort(), ['status', 'timestamp'])
      assert.equal(r.json.status, 'ok')
      assert.match(r.json.timestamp, ISO_MS_RE)
      assert.ok(Math.abs(Date.parse(r.json.timestamp) - Date.now()) < 10_000)
      assert.equal(r.headers.get('x-ratelimit-limit'), null, 'health is not rate-limited')
    }
  })

  test('/health/ready: ready, database connected', async () => {
    const r = await s.api('GET', '/health/ready')
    assert.equal(r.status, 200, r.text)
    assert.equal(r.json.status, 'ready')
    assert.equal(r.json.database, 'connected')
    assert.equal(r.headers.get('content-type'), 'application/json')
  })

  test('health answers without a key, whatever key is sent', async () => {
    const r = await s.api('GET', '/health', { key: 'garbage' })
    assert.equal(r.status, 200)
    const ready = await freshRequest(s.base, 'GET', '/health/ready', { key: 'zap_live_' + 'x'.repeat(55) })
    assert.equal(ready.status, 200)
  })
})

describe('rate-limit headers', () => {
  test('X-RateLimit-Limit/Remaining/Reset on authenticated responses; Remaining decreases', async () => {
    const org = await s.createOrg('pro', 'Headers')
    await untilFreshWindow()
    const rs: ApiResponse[] = []
    for (let i = 0; i < 4; i++) rs.push(await s.api('GET', '/api/keys', { key: org.key }))
    // Errors of an authenticated request carry them too.
    rs.push(await s.api('GET', '/api/inbox?limit=0', { key: org.key }))
    rs.push(await s.api('POST', `/api/ack/${randomUUID()}`, { key: org.key }))
    rs.push(await s.api('POST', '/api/events', { key: org.key, body: { type: 't', payload: {} } }))
    const nowS = Date.now() / 1000
    const remaining: number[] = []
    for (const r of rs) {
      assert.equal(r.headers.get('x-ratelimit-limit'), '1000', `${r.status} ${r.text}`)
      const rem = r.headers.get('x-ratelimit-remaining')
      const reset = r.headers.get('x-ratelimit-reset')
      assert.match(String(rem), /^\d+$/)
      assert.match(String(reset), /^\d+$/)
      remaining.push(Number(rem))
      const resetS = Number(reset)
      assert.ok(resetS > nowS && resetS <= nowS + 61, `reset ${resetS} is within the next minute (now ${nowS})`)
      assert.equal(resetS % 60, 0, 'the window ends on a clock minute')
    }
    assert.deepEqual(remaining, [999, 998, 997, 996, 995, 994, 993])
    assert.deepEqual(rs.map(r => r.status), [200, 200, 200, 200, 400, 404, 201])
  })

  test('public and unauthenticated responses carry no organization limit', async () => {
    const r = await s.api('GET', '/api/keys')
    assert.equal(r.status, 401)
    assert.equal(r.headers.get('x-ratelimit-limit'), null)
    const nf = await s.api('GET', '/nope')
    assert.equal(nf.headers.get('x-ratelimit-limit'), null)
  })
})
