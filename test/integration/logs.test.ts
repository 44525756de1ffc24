/**
 * Log hygiene of the real process (STYLE C12, docs/api.md "Authentication": nothing logs a key): the service runs as a
 * child at LOG_LEVEL=trace with delivery on, and a workflow makes it log as much as it can — key
 * generation and rotation, webhook configuration and secret rotation, 200 events carrying a marker in
 * their payload, refused keys, malformed bodies, a 500 from the database, and a webhook receiver that
 * fails once. Then, over everything the process wrote: every line is pino JSON, and no line holds an
 * API key (old or new), a signing secret (or its base64 part), the database password or the payload
 * marker; and accepted events are not logged one line each.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { randomBytes } from 'node:crypto'
import { Agent, fetch } from 'undici'
import { createTestDatabase, waitFor } from '../helpers/db.ts'
import { deferrer, jsonLines, spawnService } from '../helpers/child-service.ts'
import { freePort } from '../../src/lib/free-port.ts'

const EVENTS = 200

interface Res { status: number, json: Record<string, unknown> }

test('logs are JSON, never carry keys, secrets or payloads, and are not per event', { timeout: 120_000 }, async t => {
  const defer = deferrer(t)
  const db = await createTestDatabase()
  defer(() => db.drop())
  const marker = `PAYLOAD-MARKER-${randomBytes(8).toString('hex')}`
  // A role of its own with a distinctive password (works whether the server trusts 127.0.0.1 or, like
  // the embedded one, checks passwords): the password must never be logged.
  const dbPassword = `DBPASS-${randomBytes(8).toString('hex')}`
  const role = `logs_${randomBytes(4).toString('hex')}`
  await db.sql.unsafe(`create role ${role} login superuser password '${dbPassword}'`)
  defer(async () => { await db.sql.unsafe(`drop role if exists ${role}`) })
  const dbUrl = new URL(db.url)
  dbUrl.username = role
  dbUrl.password = dbPassword

  // The webhook receiver: the first delivery gets 500, every later one 200.
  let received = 0
  const receiver = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    req.on('end', () => {
      received++
      res.writeHead(received === 1 ? 500 : 200, { 'content-type': 'text/plain' })
      res.end(received === 1 ? 'receiver failed' : 'ok')
    })
  })
  await new Promise<void>(resolve => { receiver.listen(0, '127.0.0.1', resolve) })
  defer(() => new Promise<void>(resolve => { receiver.close(() => { resolve() }); receiver.closeAllConnections() }))
  const addr = receiver.address()
  assert.ok(addr !== null && typeof addr === 'object')
  const hookUrl = `http://127.0.0.1:${addr.port}/hook`

  const port = await freePort()
  const svc = await spawnService({
    DATABASE_URL: dbUrl.toString(),
    PORT: String(port),
    HOST: '127.0.0.1',
    METRICS_PORT: '0',
    THREADS: '2',
    DELIVERY_ENABLED: 'true',
    ALLOW_PRIVATE_WEBHOOKS: 'true',
    DELIVERY_RETRY_DELAYS_MS: '100,100,100',
    KEYGEN_RATE_LIMIT_PER_MINUTE: '1000',
    LOG_LEVEL: 'trace',
  }, { port })
  defer(() => svc.ensureStopped())

  const agent = new Agent({ connections: 16, keepAliveTimeout: 1000 })
  let agentClosed = false
  const closeAgent = async (): Promise<void> => { if (!agentClosed) { agentClosed = true; await agent.close() } }
  defer(closeAgent)
  const call = async (method: string, path: string, key: string | null, body?: unknown, raw?: string): Promise<Res> => {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (key !== null) headers['x-api-key'] = key
    const r = await fetch(svc.base + path, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)), dispatcher: agent })
    const text = await r.text()
    let json: Record<string, unknown> = {}
    try { json = JSON.parse(text) as Record<string, unknown> } catch { json = {} }
    return { status: r.status, json }
  }

  const gen = await call('POST', '/api/keys/generate', null, { organization_name: 'Logs Org', tier: 'enterprise' })
  assert.equal(gen.status, 201)
  const keyA = String(gen.json.api_key)
  const orgId = String(gen.json.organization_id)
  const cfg = await call('POST', '/api/webhook/config', keyA, { webhook_url: hookUrl })
  assert.equal(cfg.status, 200)
  const secret1 = String(cfg.json.signing_secret)
  assert.match(secret1, /^whsec_/)

  // 200 accepted events carrying the marker, sent 20 at a time.
  for (let i = 0; i < EVENTS; i += 20) {
    const batch = await Promise.all(Array.from({ length: 20 }, async (_, j) =>
      await call('POST', '/api/events', keyA, { type: 'logs.test', payload: { secret_note: marker, n: i + j }, dedup_id: `logs-${i + j}` })))
    for (const r of batch) assert.equal(r.status, 201)
  }
  // Refusals that carry the marker in what they send.
  assert.equal((await call('POST', '/api/events', keyA, { type: 'logs.test', payload: { m: marker }, dedup_id: 'logs-0' })).status, 409)
  assert.equal((await call('POST', '/api/events', keyA, { type: '', payload: { m: marker } })).status, 400)
  assert.equal((await call('POST', '/api/events', keyA, undefined, `{"type":"x","payload":{"m":"${marker}"`)).status, 400)
  assert.equal((await call('POST', '/api/events', keyA, { type: 'big', payload: { m: marker, pad: 'x'.repeat(270_000) } })).status, 413)
  // Invalid keys: unknown, a wrong secret for a real lookup part, and none.
  const forged = 'zap_live_' + randomBytes(48).toString('base64url').slice(0, 55)
  assert.equal((await call('GET', '/api/keys', forged)).status, 401)
  const wrongSecret = keyA.slice(0, 25) + randomBytes(48).toString('base64url').slice(0, 39) // same lookup part
  assert.equal((await call('GET', '/api/keys', wrongSecret)).status, 401)
  assert.equal((await call('GET', '/api/keys', null)).status, 401)

  // A 500: the database refuses one row (a constraint the application does not know about); the
  // error and its cause are logged at error level — the row (with its payload) must not be.
  await db.sql.unsafe(`alter table events add constraint logs_test_no_boom check (type <> 'boom')`)
  const boom = await call('POST', '/api/events', keyA, { type: 'boom', payload: { m: marker } })
  await db.sql.unsafe('alter table events drop constraint logs_test_no_boom')
  assert.equal(boom.status, 500)
  assert.equal(boom.json.code, 'internal_error')

  // Secret rotation and key rotation; the old key is refused, the new one works.
  const rot = await call('POST', '/api/webhook/secret/rotate', keyA)
  assert.equal(rot.status, 200)
  const secret2 = String(rot.json.signing_secret)
  const rotated = await call('POST', '/api/keys/rotate', keyA)
  assert.equal(rotated.status, 200)
  const keyB = String(rotated.json.api_key)
  assert.equal((await call('GET', '/api/keys', keyA)).status, 401)
  assert.equal((await call('GET', '/api/keys', keyB)).status, 200)
  assert.equal((await call('POST', '/api/events', keyB, { type: 'logs.after', payload: { m: marker } })).status, 201)

  // Every event is delivered (one of them after a failed attempt).
  await waitFor(async () => {
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from events where organization_id = ${orgId} and status = 'delivered'`
    return row?.n === EVENTS + 1
  }, 60_000, 'every event to be delivered')
  assert.ok(received >= EVENTS + 2, `the receiver saw ${received} deliveries (one failed)`)
  // Idle keep-alive connections would hold the listeners until uWS's idle timeout.
  await closeAgent()

  svc.child.kill('SIGTERM')
  const exit = await svc.exited
  assert.equal(exit.code, 0, svc.stderr().slice(0, 2000))

  const stdout = svc.stdout()
  const stderr = svc.stderr()
  assert.equal(stderr, '', 'nothing is written outside the JSON log')
  const lines = stdout.split('\n').filter(l => l !== '')
  const logs = jsonLines(stdout) // throws on any line that is not a JSON object
  assert.equal(logs.length, lines.length)
  for (const l of logs) {
    assert.equal(typeof l.level, 'number')
    assert.equal(typeof l.time, 'string')
    assert.equal(typeof l.msg, 'string', `every line has a message: ${JSON.stringify(l).slice(0, 300)}`)
  }

  const secrets: Array<[string, string]> = [
    ['the first API key', keyA],
    ['the rotated API key', keyB],
    ['the secret part of the first key', keyA.slice(25)],
    ['the secret part of the rotated key', keyB.slice(25)],
    ['the forged key', forged],
    ['the wrong-secret key', wrongSecret],
    ['the signing secret', secret1],
    ['the signing secret (base64 part)', secret1.slice('whsec_'.length)],
    ['the rotated signing secret', secret2],
    ['the rotated signing secret (base64 part)', secret2.slice('whsec_'.length)],
    ['the database password', dbPassword],
    ['the payload marker', marker],
  ]
  for (const [what, value] of secrets) {
    const hits = lines.filter(l => l.includes(value))
    assert.deepEqual(hits.map(h => h.slice(0, 4000)), [], `no log line contains ${what}`)
  }

  // The log is useful, though: it shows the failures that happened.
  const byMsg = (m: string): Array<Record<string, unknown>> => logs.filter(l => l.msg === m)
  const failedAttempt = byMsg('delivery attempt failed')
  assert.equal(failedAttempt.length, 1, 'the failed delivery attempt is logged once')
  assert.equal(failedAttempt[0]!.response_status, 500)
  const requestFailed = logs.filter(l => l.level === 50 && l.msg === 'request failed')
  assert.equal(requestFailed.length, 1, 'the 500 is logged at error level, once')
  assert.equal(requestFailed[0]!.code, 'internal_error')
  assert.ok(byMsg('starting').length === 1 && byMsg('stopped').length === 1)

  // Not one line per event: 201 events were accepted and delivered.
  const info = logs.filter(l => l.level === 30)
  const infoAboutEvents = info.filter(l => /event/i.test(JSON.stringify(l)))
  t.diagnostic(`log lines: ${logs.length} in all (trace), ${info.length} at info, ${infoAboutEvents.length} info lines mention events`)
  assert.ok(infoAboutEvents.length < 20, `info lines about events: ${infoAboutEvents.length}`)
  assert.ok(logs.length < EVENTS, `${logs.length} log lines at trace level for ${EVENTS + 1} events`)
})
