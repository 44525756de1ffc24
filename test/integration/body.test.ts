/**
 * Request bodies at the socket level (node:net, no HTTP client in the way): the 1 MiB cap decided from
 * Content-Length and while a chunked body streams in — without the client having to send the rest —
 * the connection closed after the 413; a client still uploading past the cap reads the 413 (the
 * connection lingers, reading and discarding, instead of resetting), within bounded bytes and time;
 * the cap as a parameter of the body reader (a route with its own cap on a real uWS app); aborted
 * uploads that leave nothing behind (no event, no leaked request, the service still answers and still
 * shuts down promptly); and a slow client that is served.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Agent, fetch } from 'undici'
import { startTestService } from '../helpers/server.ts'
import { blast, RawConn, type RawResponse } from '../helpers/raw-conn.ts'
import { uws } from '../../src/http/uws.ts'
import { Ctx } from '../../src/http/context.ts'
import { LINGER_MAX_BYTES, readBody } from '../../src/http/body.ts'
import { send, sendError } from '../../src/http/reply.ts'
import { ApiError } from '../../src/errors.ts'

const MiB = 1024 * 1024

const s = await startTestService()
after(() => s.stop())
const org = await s.createOrg('enterprise', 'Body Org')
// Warm the key on both listener threads so requests reach the body step synchronously.
for (let i = 0; i < 8; i++) {
  const r = await s.api('POST', '/api/events', { key: org.key, body: { type: 'warm', payload: {} } })
  assert.equal(r.status, 201)
}

function head (opts: { key?: string, length?: number, chunked?: boolean, path?: string }): string {
  let h = `POST ${opts.path ?? '/api/events'} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n`
  if (opts.key !== undefined) h += `X-API-Key: ${opts.key}\r\n`
  if (opts.length !== undefined) h += `Content-Length: ${opts.length}\r\n`
  if (opts.chunked === true) h += 'Transfer-Encoding: chunked\r\n'
  return h + '\r\n'
}

function chunk (data: Buffer | string): Buffer {
  const b = Buffer.from(data)
  return Buffer.concat([Buffer.from(b.length.toString(16) + '\r\n'), b, Buffer.from('\r\n')])
}

async function countEvents (type: string): Promise<number> {
  const [row] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from events where organization_id = ${org.id} and type = ${type}`
  return row?.n ?? -1
}

function assertBodyTooLarge (r: RawResponse): void {
  assert.equal(r.status, 413, r.body)
  assert.equal(r.json?.code, 'body_too_large', r.body)
  assert.equal(typeof r.json.error, 'string')
  assert.equal(r.headers.get('content-type'), 'application/json')
  assert.ok((r.headers.get('x-request-id') ?? '') !== '')
}

test('Content-Length over 1 MiB: 413 body_too_large at once, connection closed, the rest never sent', async () => {
  const c = new RawConn(s)
  await c.write(head({ key: org.key, length: 5 * MiB }), false)
  await c.write(Buffer.alloc(4096, 0x20))
  const r = await c.response
  assertBodyTooLarge(r)
  assert.equal(r.json.limit, MiB)
  assert.equal(r.headers.get('connection'), 'close')
  await c.closed
  // "At once": answered from the header, before the client sent the body.
  assert.ok(c.sent < 5 * MiB, 'the client sent the whole body')
  // The connection is gone, and the service still serves new ones.
  const ok = await s.api('POST', '/api/events', { key: org.key, body: { type: 'after-413', payload: {} } })
  assert.equal(ok.status, 201)
})

test('the cap is exactly 1 MiB (Content-Length): 1 MiB is read and parsed, 1 MiB + 1 is 413 at once', async () => {
  const event = JSON.stringify({ type: 'exactly-1mib', payload: { a: 1 } })
  const padded = event + ' '.repeat(MiB - event.length)
  assert.equal(Buffer.byteLength(padded), MiB)
  const ok = new RawConn(s)
  await ok.write(head({ key: org.key, length: MiB }), false)
  await ok.write(padded)
  const r = await ok.response
  assert.equal(r.status, 201, r.body)
  ok.destroy()
  await ok.closed

  // Only a few bytes follow the headers: the 413 is decided from Content-Length alone.
  const over = new RawConn(s)
  await over.write(head({ key: org.key, length: MiB + 1 }), false)
  await over.write(padded.slice(0, 2048))
  const r2 = await over.response
  assertBodyTooLarge(r2)
  assert.equal(r2.headers.get('connection'), 'close')
  await over.closed
  assert.equal(await countEvents('exactly-1mib'), 1)
})

test('chunked body: 201 up to exactly 1 MiB; one byte more is 413 while the body is still streaming', async () => {
  const small = new RawConn(s)
  await small.write(head({ key: org.key, chunked: true }), false)
  const body = JSON.stringify({ type: 'chunked-ok', payload: { a: 'x'.repeat(1000) } })
  await small.write(chunk(body.slice(0, 100)))
  await small.write(chunk(body.slice(100)))
  await small.write('0\r\n\r\n')
  const ok = await small.response
  assert.equal(ok.status, 201, ok.body)
  small.destroy()
  await small.closed

  const event = JSON.stringify({ type: 'chunked-1mib', payload: { a: 1 } })
  const padded = Buffer.from(event + ' '.repeat(MiB - event.length))
  const sendPadded = async (c: RawConn): Promise<void> => {
    await c.write(head({ key: org.key, chunked: true }), false)
    for (let i = 0; i < padded.length; i += 64 * 1024) await c.write(chunk(padded.subarray(i, i + 64 * 1024)))
  }
  const exact = new RawConn(s)
  await sendPadded(exact)
  await exact.write('0\r\n\r\n')
  const r1 = await exact.response
  assert.equal(r1.status, 201, r1.body)
  exact.destroy()
  await exact.closed

  // One byte past the cap and then nothing more — no final chunk: a server that waited for the end
  // of the body would never answer.
  const c = new RawConn(s)
  await sendPadded(c)
  await c.write(chunk(' '))
  const r = await c.response
  assertBodyTooLarge(r)
  assert.equal(r.headers.get('connection'), 'close')
  await c.closed
  assert.equal(await countEvents('chunked-1mib'), 1)
})

test('a client still uploading past the cap reads the 413: undici fetch, streamed (chunked) and with Content-Length', async () => {
  const size = 8 * MiB
  const filler = Buffer.alloc(size, 0x20)
  const agent = new Agent({ connections: 4 })
  try {
    for (const mode of ['stream', 'length'] as const) {
      for (let i = 0; i < 8; i++) {
        let off = 0
        const body = mode === 'length'
          ? filler
          : new ReadableStream<Uint8Array>({
            pull (c) {
              if (off >= size) { c.close(); return }
              c.enqueue(filler.subarray(off, off + 64 * 1024))
              off += 64 * 1024
            },
          })
        const r = await fetch(s.base + '/api/events', {
          method: 'POST', headers: { 'x-api-key': org.key, 'content-type': 'application/json' }, body, duplex: 'half', dispatcher: agent,
        })
        const text = await r.text()
        assert.equal(r.status, 413, `${mode} #${i}: ${text}`)
        assert.equal(JSON.parse(text).code, 'body_too_large')
        assert.equal(r.headers.get('connection'), 'close')
        assert.ok((r.headers.get('x-request-id') ?? '') !== '')
      }
    }
  } finally {
    await agent.close()
  }
})

test('raw: a client that sends its whole oversized body reads the 413, then the server closes cleanly (FIN, no reset)', async () => {
  for (const chunked of [false, true]) {
    const c = new RawConn(s)
    await c.write(head({ key: org.key, ...(chunked ? { chunked: true } : { length: 3 * MiB }) }), false)
    if (chunked) {
      const piece = Buffer.alloc(64 * 1024, 0x20)
      for (let i = 0; i < 48; i++) await c.write(chunk(piece))
      await c.write('0\r\n\r\n')
    } else {
      await blast(c, 3 * MiB)
    }
    const r = await c.response
    assertBodyTooLarge(r)
    assert.equal(r.headers.get('connection'), 'close')
    assert.equal(r.json.limit, MiB)
    await c.closed
    assert.equal(c.error, null, `chunked=${chunked}: the connection was reset`)
    assert.ok(c.ended, `chunked=${chunked}: the server ended the connection with FIN`)
    assert.equal(c.sent, chunked ? 48 * chunk(Buffer.alloc(64 * 1024)).length + 5 : 3 * MiB, 'every byte was accepted')
  }
})

test('lingering is bounded: a client uploading far past the cap, or trickling, is cut off', async () => {
  // Declares 256 MiB and keeps writing: the server reads at most LINGER_MAX_BYTES past the cap (plus
  // what the kernel buffers on the way), then closes.
  const big = new RawConn(s)
  await big.write(head({ key: org.key, length: 256 * MiB }), false)
  await blast(big, 256 * MiB)
  await big.closed
  assert.ok(big.sent < MiB + LINGER_MAX_BYTES + 32 * MiB, `the client sent ${big.sent} bytes before the close`)

  // Declares 5 MiB and trickles 2 KiB at a time: the connection is closed after a bounded time, long
  // before the body could end.
  const slow = new RawConn(s)
  await slow.write(head({ key: org.key, length: 5 * MiB }), false)
  const r = await slow.response
  assertBodyTooLarge(r)
  while (!slow.isClosed) {
    await slow.write(Buffer.alloc(2048, 0x20))
    await delay(100)
  }
  assert.ok(slow.sent < 5 * MiB)
  const ok = await s.api('POST', '/api/events', { key: org.key, body: { type: 'after-linger', payload: {} } })
  assert.equal(ok.status, 201)
})

test('the cap is a parameter of the body reader: a route with a 4 MiB cap on a real uWS app', async t => {
  const cap = 4 * MiB
  const app = uws.App()
  app.post('/capped', (res, req) => {
    const ctx = new Ctx(res, req, false, 0)
    readBody(ctx, cap).then(b => {
      if (b === null) return
      if (b instanceof ApiError) sendError(ctx, b, true)
      else send(ctx, 201, JSON.stringify({ bytes: b.length }))
    }, () => {})
  })
  const port = await new Promise<number>((resolve, reject) => {
    app.listen('127.0.0.1', 0, ls => { if (ls === false) reject(new Error('listen failed')); else resolve(uws.us_socket_local_port(ls)) })
  })
  t.after(() => { Reflect.apply(Reflect.get(app, 'close') as () => void, app, []) })
  const headFor = (length: number): string => `POST /capped HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${length}\r\n\r\n`

  const exact = new RawConn({ port })
  await exact.write(headFor(cap), false)
  await blast(exact, cap)
  const r1 = await exact.response
  assert.equal(r1.status, 201, r1.body)
  assert.equal(r1.json.bytes, cap)
  exact.destroy()
  await exact.closed

  // One byte over, sent in full: the 413 names the route's cap, and the connection closes cleanly.
  const over = new RawConn({ port })
  await over.write(headFor(cap + 1), false)
  await blast(over, cap + 1)
  const r2 = await over.response
  assertBodyTooLarge(r2)
  assert.equal(r2.json.limit, cap)
  assert.match(r2.json.error, /4 MiB/)
  await over.closed
  assert.equal(over.error, null)

  // Chunked, over the cap while streaming, and the client goes on to 8 MiB: it still reads the 413.
  const streamed = new RawConn({ port })
  await streamed.write('POST /capped HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n', false)
  const piece = Buffer.alloc(64 * 1024, 0x20)
  for (let i = 0; i < 128; i++) await streamed.write(chunk(piece))
  await streamed.write('0\r\n\r\n')
  const r3 = await streamed.response
  assertBodyTooLarge(r3)
  assert.equal(r3.json.limit, cap)
  await streamed.closed
  assert.equal(streamed.error, null)
})

test('aborted uploads leave nothing behind: no event, the service answers, and it still stops promptly', async t => {
  // A drain limit far beyond the test's own timeout: a request leaked by an abort would hold stop()
  // until the test fails by timing out, so stop() resolving at all shows none was leaked.
  const svc = await startTestService({ SHUTDOWN_TIMEOUT_MS: '600000' })
  t.after(() => svc.stop())
  const o = await svc.createOrg('enterprise', 'Abort Org')
  for (let i = 0; i < 8; i++) assert.equal((await svc.api('POST', '/api/events', { key: o.key, body: { type: 'warm', payload: {} } })).status, 201)
  // A complete event followed by missing bytes: a server that acted before the body ended would store it.
  const event = JSON.stringify({ type: 'aborted', payload: { a: 1 } })
  const conns: RawConn[] = []
  for (let i = 0; i < 60; i++) {
    const c = new RawConn(svc)
    conns.push(c)
    await c.connected()
    switch (i % 5) {
      case 0: // half the declared body
        await c.write(head({ key: o.key, length: event.length * 2 }), false)
        await c.write(event)
        break
      case 1: // chunked, no final chunk
        await c.write(head({ key: o.key, chunked: true }), false)
        await c.write(chunk(event))
        break
      case 2: // headers only
        await c.write(head({ key: o.key, length: 100 }), false)
        break
      case 3: // cut inside the headers
        await c.write(head({ key: o.key, length: 100 }).slice(0, 40), false)
        break
      case 4: // a key that is not cached anywhere: aborted while it is being verified
        await c.write(head({ key: 'zap_live_' + 'Q'.repeat(55), length: event.length * 2 }), false)
        await c.write(event)
        break
    }
  }
  // Let some of the requests be parsed before they are cut, and cut the rest mid-flight.
  await Promise.all(conns.slice(0, 30).map(async c => { c.destroy(); await c.closed }))
  await svc.api('GET', '/health')
  await Promise.all(conns.slice(30).map(async c => { c.destroy(); await c.closed }))
  for (const c of conns) assert.ok(c.isClosed)

  for (let i = 0; i < 10; i++) {
    const r = await svc.api('POST', '/api/events', { key: o.key, body: { type: 'after-aborts', payload: { i } } })
    assert.equal(r.status, 201, r.text)
  }
  assert.equal((await svc.api('GET', '/health/ready')).status, 200)
  const [row] = await svc.db.sql<{ aborted: number, after: number }[]>`
    select count(*) filter (where type = 'aborted')::int as aborted, count(*) filter (where type = 'after-aborts')::int as after
      from events where organization_id = ${o.id}`
  assert.equal(row?.aborted, 0)
  assert.equal(row?.after, 10)
  // Graceful stop waits for every request a thread counts as in flight (see SHUTDOWN_TIMEOUT_MS above).
  await svc.stop()
})

test('a slow client sending its body in small pieces over about a second gets 201', async () => {
  const body = Buffer.from(JSON.stringify({ type: 'slow', payload: { text: 'ünïcödé '.repeat(40) } }))
  const c = new RawConn(s)
  await c.write(head({ key: org.key, length: body.length }), false)
  const pieces = 20
  const size = Math.ceil(body.length / pieces)
  const t0 = Date.now()
  // Piece boundaries fall inside multi-byte characters too.
  for (let i = 0; i < body.length; i += size) {
    await c.write(body.subarray(i, i + size))
    if (i + size < body.length) await delay(50)
  }
  const r = await c.response
  assert.ok(Date.now() - t0 >= 900, 'the body was not sent slowly')
  assert.equal(r.status, 201, r.body)
  const [row] = await s.db.sql<{ payload: unknown }[]>`select payload from events where id = ${r.json.id}`
  assert.deepEqual(row?.payload, { text: 'ünïcödé '.repeat(40) })
  c.destroy()
  await c.closed
})
