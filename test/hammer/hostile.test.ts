/**
 * Hostile HTTP against a live service (real listener threads, real PostgreSQL, 127.0.0.1 only): random
 * bodies, invalid UTF-8, JSON nested 100,000 levels, oversized headers, thousands of query parameters,
 * hundreds of uploads that declare a large body and disconnect, slow clients trickling bytes while
 * normal traffic flows, and connections whose first bytes are not HTTP/1.1. After each, /health and a
 * normal ingest answer; at the end the process's resident memory (the service's threads included) is
 * back near its level after a warm-up round of the same abuse. Bounded in count; no timing asserts.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { startTestService, type TestService } from '../helpers/server.ts'
import { waitFor } from '../helpers/db.ts'
import { blast, RawConn } from '../helpers/raw-conn.ts'
import { resident } from '../faults/helpers/memory.ts'

const MiB = 1024 * 1024

let s: TestService
let key = ''
let orgId = ''
/** Connections opened with bytes that are not HTTP/1.1, checked at the end (the server must close them). */
const malformed: { name: string, conn: RawConn, openedAt: number, closedAt: number }[] = []

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

before(async () => {
  s = await startTestService()
  const org = await s.createOrg('enterprise', 'Hammer')
  key = org.key
  orgId = org.id
  await serving()
})
after(async () => {
  for (const m of malformed) m.conn.destroy()
  await s.stop()
})

/** /health answers and a normal event is stored: the service is unharmed. */
async function serving (): Promise<void> {
  const h = await s.api('GET', '/health')
  assert.equal(h.status, 200, h.text)
  const r = await s.api('POST', '/api/events', { key, body: { type: 'hammer.ok', payload: { at: Date.now() } } })
  assert.equal(r.status, 201, r.text)
}

function post (path: string, body: Buffer | string, extra = ''): string {
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: ${key}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n`
}

/** Sends one raw request and returns its response, or null when the server closed without one. */
async function rawRequest (request: string | Buffer, body: Buffer | string = ''): Promise<{ status: number, json: any } | null> {
  const c = new RawConn(s)
  await c.write(request, false)
  if (body.length > 0) await c.write(body)
  try {
    const r = await c.response
    return { status: r.status, json: r.json }
  } catch {
    return null
  } finally {
    c.destroy()
    await c.closed
  }
}

test('connections that open with bytes that are not HTTP/1.1 (checked at the end: the server closes them)', async () => {
  const openings: [string, string | Buffer][] = [
    ['garbage line', 'GARBAGE\r\n\r\n'],
    ['no line end', 'hello there'],
    ['binary', randomBytes(64)],
    ['TLS hello', Buffer.from('16030100a5010000a10303', 'hex')],
    ['HTTP/0.9', 'GET /health\r\n\r\n'],
    ['HTTP/1.0', 'GET /health HTTP/1.0\r\n\r\n'],
    ['HTTP/9.9', 'GET /health HTTP/9.9\r\nHost: x\r\n\r\n'],
    ['header without colon', 'GET /health HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n'],
    ['bare LF', 'GET /health HTTP/1.1\nHost: x\n\n'],
    ['control byte in header', 'GET /health HTTP/1.1\r\nHost: x\x01y\r\n\r\n'],
    ['200 headers', 'GET /health HTTP/1.1\r\n' + Array.from({ length: 200 }, (_, i) => `X-H${i}: v`).join('\r\n') + '\r\n\r\n'],
  ]
  for (let round = 0; round < 4; round++) {
    for (const [name, bytes] of openings) {
      const conn = new RawConn(s)
      const m = { name, conn, openedAt: performance.now(), closedAt: 0 }
      conn.closed.then(() => { m.closedAt = performance.now() }, () => {})
      await conn.write(bytes, false)
      malformed.push(m)
    }
  }
  // While they are held, the service answers everyone else.
  await serving()
})

test('random bodies: every one is answered with an error envelope (or stored, if it happens to be an event)', async () => {
  const statuses = new Map<number, number>()
  for (let i = 0; i < 300; i++) {
    const len = i % 10 === 0 ? 0 : 1 + Math.floor(Math.random() * 4096)
    let body = randomBytes(len)
    // Some start like JSON so they get further into the parser.
    if (i % 3 === 0) body = Buffer.concat([Buffer.from('{"type":"x","payload":'), body])
    const r = await s.api('POST', '/api/events', { key, raw: body, headers: { 'content-type': 'application/json' } })
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
    assert.ok([201, 400, 413].includes(r.status), `status ${r.status}: ${r.text}`)
    if (r.status !== 201) assert.equal(typeof r.json?.code, 'string', r.text)
  }
  await serving()
})

test('invalid UTF-8 anywhere in the body is 400 invalid_json', async () => {
  const bad = [
    Buffer.from([0xc0, 0xaf]), // overlong "/"
    Buffer.from([0x80]), // lone continuation byte
    Buffer.from([0xed, 0xa0, 0x80]), // encoded surrogate
    Buffer.from([0xf4, 0x90, 0x80, 0x80]), // beyond U+10FFFF
    Buffer.from([0xe2, 0x82]), // truncated sequence
    Buffer.from([0xff, 0xfe]),
  ]
  for (const b of bad) {
    for (const body of [
      Buffer.concat([Buffer.from('{"type":"t","payload":{"s":"'), b, Buffer.from('"}}')]),
      Buffer.concat([Buffer.from('{"type":"'), b, Buffer.from('","payload":{}}')]),
      Buffer.concat([Buffer.from('{"type":"t","payload":{"'), b, Buffer.from('":1}}')]),
    ]) {
      const r = await s.api('POST', '/api/events', { key, raw: body, headers: { 'content-type': 'application/json' } })
      assert.equal(r.status, 400, r.text)
      assert.equal(r.json.code, 'invalid_json', r.text)
    }
  }
  await serving()
})

test('JSON nested 100,000 levels (arrays, objects, in the payload and as the type) is 400 invalid_event', async () => {
  const n = 100_000
  const bodies = [
    `{"type":"deep","payload":{"a":${'['.repeat(n)}${']'.repeat(n)}}}`,
    `{"type":"deep","payload":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`,
    `{"type":${'['.repeat(n)}${']'.repeat(n)},"payload":{}}`,
  ]
  for (const body of bodies) {
    const r = await s.api('POST', '/api/events', { key, raw: body, headers: { 'content-type': 'application/json' } })
    assert.equal(r.status, 400, r.text.slice(0, 300))
    assert.equal(r.json.code, 'invalid_event')
  }
  // Unbalanced: never valid JSON.
  const open = await s.api('POST', '/api/events', { key, raw: '['.repeat(n), headers: { 'content-type': 'application/json' } })
  assert.equal(open.status, 400)
  assert.equal(open.json.code, 'invalid_json')
  await serving()
})

test('oversized headers and thousands of query parameters: answered or closed, never a crash', async () => {
  const results: (number | null)[] = []
  for (const size of [8 * 1024, 64 * 1024, 512 * 1024]) {
    results.push((await rawRequest(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(size)}\r\nConnection: close\r\n\r\n`))?.status ?? null)
    results.push((await rawRequest(post('/api/events', '{"type":"t","payload":{}}', `X-Big: ${'b'.repeat(size)}\r\n`), '{"type":"t","payload":{}}'))?.status ?? null)
  }
  // A long header block in many small writes (the parser keeps what it has not parsed yet).
  const trickled = new RawConn(s)
  await trickled.write('GET /health HTTP/1.1\r\nHost: x\r\n', false)
  for (let i = 0; i < 64 && !trickled.isClosed; i++) await trickled.write(`X-Part-${i}: ${'c'.repeat(1000)}\r\n`, false)
  await trickled.write('Connection: close\r\n\r\n', false)
  results.push(await trickled.response.then(r => r.status, () => null))
  trickled.destroy()

  for (const count of [2_000, 10_000]) {
    const many = Array.from({ length: count }, (_, i) => `p${i}=${i}`).join('&')
    const r1 = await s.api('GET', `/api/inbox?limit=5&${many}`, { key }).catch(() => null)
    results.push(r1?.status ?? null)
    const repeated = Array.from({ length: count }, () => 'limit=5').join('&')
    const r2 = await s.api('GET', `/api/inbox?${repeated}`, { key }).catch(() => null)
    results.push(r2?.status ?? null)
    for (const r of [r1, r2]) if (r !== null) assert.ok([200, 400, 414, 431].includes(r.status), `${r.status} ${r.text.slice(0, 200)}`)
  }
  for (const st of results) assert.ok(st === null || (st >= 200 && st < 500), `status ${String(st)}`)
  await serving()
})

/** One round of abuse whose leaks would be large: aborted uploads, oversized uploads, deep JSON. */
async function abuseRound (): Promise<void> {
  const conns: RawConn[] = []
  // 200 uploads within the cap, half sent, then cut: each is buffered up to the cut (100 MiB a round).
  for (let i = 0; i < 200; i++) {
    const c = new RawConn(s)
    conns.push(c)
    await c.write(post('/api/events', 'x'.repeat(MiB)), false)
  }
  await Promise.all(conns.map(async c => { await blast(c, 512 * 1024) }))
  // 100 that declare far more than the cap and cut while the service lingers on them.
  const big: RawConn[] = []
  for (let i = 0; i < 100; i++) {
    const c = new RawConn(s)
    big.push(c)
    await c.write(post('/api/events', 'x').replace('Content-Length: 1', `Content-Length: ${64 * MiB}`), false)
  }
  await Promise.all(big.map(async c => { await blast(c, 2 * MiB) }))
  for (const c of [...conns, ...big]) c.destroy()
  await Promise.all([...conns, ...big].map(async c => { await c.closed }))
  const deep = `{"type":"deep","payload":${'['.repeat(50_000)}${']'.repeat(50_000)}}`
  for (let i = 0; i < 20; i++) {
    const r = await s.api('POST', '/api/events', { key, raw: deep, headers: { 'content-type': 'application/json' } })
    assert.equal(r.status, 400)
  }
}

/** Normal traffic on every thread, so each runs its garbage collector, then the main thread's. */
async function settle (): Promise<number> {
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; i < 40; i++) {
      const r = await s.api('POST', '/api/events', { key, body: { type: 'hammer.settle', payload: { w, i, pad: 'p'.repeat(2000) } } })
      assert.equal(r.status, 201)
    }
  }))
  gc()
  return process.memoryUsage().rss
}

test('hundreds of uploads that declare a large body and disconnect: nothing stored, nothing kept, the service serves', { timeout: 300_000 }, async () => {
  const count = async (): Promise<number> => {
    const [row] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from events where organization_id = ${orgId}`
    return row?.n ?? -1
  }
  const before = await count()
  await abuseRound()
  assert.equal(await count(), before, 'no abusive request stored an event')
  await serving()
})

test('slow clients trickling bytes while normal traffic flows: both are served', async () => {
  const slow = Array.from({ length: 20 }, (_, i) => ({ conn: new RawConn(s), body: Buffer.from(JSON.stringify({ type: 'hammer.slow', payload: { i, text: 'ü'.repeat(60) } })) }))
  for (const x of slow) await x.conn.write(post('/api/events', x.body), false)
  // Every slow client sends a few bytes at a time (cutting multi-byte characters) while 400 normal
  // requests go through on other connections.
  const trickle = Promise.all(slow.map(async x => {
    for (let off = 0; off < x.body.length; off += 16) {
      await x.conn.write(x.body.subarray(off, off + 16))
      await delay(20)
    }
  }))
  const normal = Promise.all(Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; i < 50; i++) {
      const r = await s.api('POST', '/api/events', { key, body: { type: 'hammer.normal', payload: { w, i } } })
      assert.equal(r.status, 201, r.text)
    }
  }))
  await Promise.all([trickle, normal])
  for (const x of slow) {
    const r = await x.conn.response
    assert.equal(r.status, 201, r.body)
    x.conn.destroy()
  }
  await serving()
})

// Five rounds of abuse on a machine shared with other work: more than the runner's default 120 s.
test('resident memory returns near its level after a warm-up round of the same abuse', { timeout: 600_000 }, async t => {
  // Two rounds bring allocators and caches to their working size; later rounds must not add to it.
  await abuseRound()
  await abuseRound()
  const baseline = await settle()
  for (let round = 0; round < 3; round++) await abuseRound()
  const bound = 96 * MiB
  // A leak of what the uploads of these rounds buffer (300 MiB) cannot hide under the bound; garbage
  // not yet collected in the listener threads can, so this waits for it to go while normal traffic runs.
  let last = 0
  await waitFor(async () => {
    last = await settle()
    return last - baseline < bound
  }, 30_000, 'resident memory to settle').catch(() => {
    assert.fail(`resident memory grew by ${((last - baseline) / MiB).toFixed(1)} MiB over ${(baseline / MiB).toFixed(0)} MiB after three abuse rounds`)
  })
  // The process's high-water mark (the service runs in it): the peak of the whole hammer suite so far.
  t.diagnostic(`resident memory ${(baseline / MiB).toFixed(0)} MiB after the warm-up round, ${((last - baseline) / MiB).toFixed(1)} MiB more after three further rounds; peak ${resident(process.pid).peakMb.toFixed(0)} MiB`)
  await serving()
})

test('the connections that opened with bytes that are not HTTP/1.1 were all closed by the server', async t => {
  await waitFor(() => malformed.every(m => m.closedAt > 0), 30_000, 'every malformed connection to be closed')
  // uWS v20.30 answers none of these and drops them on its idle timeout (docs/operating.md, HTTP
  // hygiene); the seconds are reported, not asserted.
  const secs = malformed.map(m => (m.closedAt - m.openedAt) / 1000)
  t.diagnostic(`${malformed.length} malformed openings closed after ${Math.min(...secs).toFixed(1)}-${Math.max(...secs).toFixed(1)} s`)
  await serving()
})
