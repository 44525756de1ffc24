/**
 * OpenTelemetry traces end to end (docs/tracing.md): the real service exports over OTLP/HTTP to a
 * collector on 127.0.0.1 that this file runs (the closest thing to production: each thread exports on
 * its own), and delivers to a real local receiver. Checked: ingest span → commit span → delivery
 * attempt span(s) in one trace, with the right parents; the webhook's traceparent belongs to that
 * trace and names the attempt span; an incoming traceparent is continued (and an unsampled one
 * propagated without recording); a batch request is one span; spans buffered at shutdown are
 * exported then. With tracing off: no traceparent on the webhook, and — seen by a module-resolution
 * probe in every thread of a service process — no OpenTelemetry package is ever imported.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { request } from 'undici'
import { startTestService, type TestService } from '../helpers/server.ts'
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.ts'
import { OK, Receiver, type Reply } from '../helpers/delivery.ts'
import { deferrer, spawnService } from '../helpers/child-service.ts'
import { freePort } from '../../src/lib/free-port.ts'

// ── a minimal OTLP/HTTP collector ──────────────────────────────────────────────────────────────

type AttrValue = string | number | boolean | null

interface ExportedSpan {
  readonly traceId: string
  readonly spanId: string
  /** '' for a root span */
  readonly parentSpanId: string
  readonly name: string
  /** OTLP SpanKind: 1 internal, 2 server, 3 client */
  readonly kind: number
  /** OTLP status code: 0 unset, 1 ok, 2 error */
  readonly status: number
  readonly attributes: Record<string, AttrValue>
  readonly resource: Record<string, AttrValue>
}

interface OtlpKeyValue { key: string, value: Record<string, unknown> }

function attrs (list: unknown): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {}
  if (!Array.isArray(list)) return out
  for (const kv of list as OtlpKeyValue[]) {
    const v = kv.value
    if ('stringValue' in v) out[kv.key] = String(v.stringValue)
    else if ('intValue' in v) out[kv.key] = Number(v.intValue)
    else if ('doubleValue' in v) out[kv.key] = Number(v.doubleValue)
    else if ('boolValue' in v) out[kv.key] = Boolean(v.boolValue)
    else out[kv.key] = null
  }
  return out
}

class Collector {
  readonly spans: ExportedSpan[] = []
  /** Every export request: its content type and raw body. */
  readonly requests: { contentType: string, body: Buffer }[] = []
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  port = 0

  private constructor () {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('error', () => {})
      req.on('end', () => {
        const body = Buffer.concat(chunks)
        const contentType = String(req.headers['content-type'] ?? '')
        this.requests.push({ contentType, body })
        if (contentType.startsWith('application/json')) this.#take(JSON.parse(body.toString('utf8')))
        res.writeHead(200, { 'content-type': contentType.startsWith('application/json') ? 'application/json' : 'application/x-protobuf' })
        res.end(contentType.startsWith('application/json') ? '{}' : '')
      })
    })
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => this.#sockets.delete(s))
    })
  }

  static async start (): Promise<Collector> {
    const c = new Collector()
    await new Promise<void>(resolve => c.#server.listen(0, '127.0.0.1', resolve))
    c.port = (c.#server.address() as AddressInfo).port
    return c
  }

  get url (): string { return `http://127.0.0.1:${this.port}/v1/traces` }

  #take (doc: { resourceSpans?: Array<{ resource?: { attributes?: unknown }, scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }> }): void {
    for (const rs of doc.resourceSpans ?? []) {
      const resource = attrs(rs.resource?.attributes)
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          const status = s.status as { code?: number } | undefined
          this.spans.push({
            traceId: String(s.traceId),
            spanId: String(s.spanId),
            parentSpanId: typeof s.parentSpanId === 'string' ? s.parentSpanId : '',
            name: String(s.name),
            kind: Number(s.kind),
            status: Number(status?.code ?? 0),
            attributes: attrs(s.attributes),
            resource,
          })
        }
      }
    }
  }

  async span (what: string, match: (s: ExportedSpan) => boolean): Promise<ExportedSpan> {
    return await waitFor(() => this.spans.find(match), 10_000, what)
  }

  async close (): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>(resolve => this.#server.close(() => resolve()))
  }
}

const hex = (bytes: number): string => randomBytes(bytes).toString('hex')

function parseTp (header: string | string[] | undefined): { traceId: string, spanId: string, flags: string } {
  assert.equal(typeof header, 'string', 'the webhook request carries one traceparent')
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(header as string)
  assert.ok(m !== null, `a version-00 traceparent, got ${String(header)}`)
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]! }
}

// ── tracing on ───────────────────────────────────────────────────────────────────────────────

describe('traces on: OTLP/HTTP (JSON) to a local collector', () => {
  let collector: Collector
  let rx: Receiver
  let svc: TestService
  let key: string
  let endpointId: string

  before(async () => {
    collector = await Collector.start()
    // Events of type order.retried fail their first attempt.
    rx = await Receiver.start((seen): Reply => {
      if (seen.headers['x-event-type'] === 'order.retried' && seen.headers['x-delivery-attempt'] === '1') return { status: 503, body: 'busy' }
      return OK
    })
    svc = await startTestService({
      THREADS: '1',
      DELIVERY_ENABLED: 'true',
      DELIVERY_RETRY_DELAYS_MS: '50',
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '20',
      OTEL_SERVICE_NAME: 'triggers-test',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test',
    })
    key = (await svc.createOrg()).key
    const ep = await svc.api('POST', '/api/endpoints', { key, body: { url: rx.url() } })
    assert.equal(ep.status, 201, ep.text)
    endpointId = ep.json.id
  })
  after(async () => {
    await svc?.stop()
    await rx?.close()
    await collector?.close()
  })

  test('an event: ingest span, its commit and the delivery attempt are one trace; the webhook continues it', async () => {
    const r = await svc.api('POST', '/api/events', { key, body: { type: 'order.created', payload: { n: 1 } } })
    assert.equal(r.status, 201, r.text)
    const id: string = r.json.id
    const seen = await waitFor(() => rx.forEvent(id)[0], 10_000, 'the webhook')
    const tp = parseTp(seen.headers.traceparent)

    const ingest = await collector.span('the ingest span', s => s.name === 'POST /api/events' && s.attributes['triggers.event.id'] === id)
    assert.equal(ingest.parentSpanId, '', 'no incoming traceparent: a new trace')
    assert.equal(ingest.kind, 2)
    assert.equal(ingest.attributes['http.request.method'], 'POST')
    assert.equal(ingest.attributes['http.route'], '/api/events')
    assert.equal(ingest.attributes['http.response.status_code'], 201)
    assert.equal(ingest.resource['service.name'], 'triggers-test')
    assert.equal(ingest.resource['deployment.environment.name'], 'test')
    assert.equal(ingest.resource['thread.name'], 'http-0')

    const commit = await collector.span('the commit span', s => s.name === 'commit' && s.parentSpanId === ingest.spanId)
    assert.equal(commit.traceId, ingest.traceId)
    assert.equal(commit.attributes['db.system.name'], 'postgresql')
    assert.equal(commit.attributes['triggers.request.events'], 1)
    assert.ok(Number(commit.attributes['triggers.commit.events']) >= 1)

    const attempt = await collector.span('the attempt span', s => s.name === 'delivery attempt' && s.attributes['triggers.event.id'] === id)
    assert.equal(attempt.traceId, ingest.traceId)
    assert.equal(attempt.parentSpanId, ingest.spanId, 'the attempt is a child of the ingest span')
    assert.equal(attempt.kind, 3)
    assert.equal(attempt.resource['thread.name'], 'delivery')
    assert.equal(attempt.attributes['http.request.method'], 'POST')
    assert.equal(attempt.attributes['url.full'], rx.url())
    assert.equal(attempt.attributes['http.response.status_code'], 200)
    assert.equal(attempt.attributes['http.request.resend_count'], 0)
    assert.equal(attempt.attributes['triggers.delivery.attempt'], 1)
    assert.equal(attempt.attributes['triggers.delivery.outcome'], 'success')
    assert.equal(attempt.attributes['triggers.delivery.next'], 'delivered')
    assert.equal(attempt.attributes['triggers.endpoint.id'], endpointId)
    assert.notEqual(attempt.status, 2)

    // The receiver continues the trace: same trace id, the attempt span as its parent, sampled.
    assert.deepEqual(tp, { traceId: ingest.traceId, spanId: attempt.spanId, flags: '01' })
    // The trace context went through the database with the event.
    const [row] = await svc.db.sql<{ traceparent: string | null }[]>`select traceparent from events where id = ${id}`
    assert.equal(row?.traceparent, `00-${ingest.traceId}-${ingest.spanId}-01`)
  })

  test('an incoming traceparent is continued, and every retry is a child of the same ingest span', async () => {
    const clientTrace = hex(16)
    const clientSpan = hex(8)
    const r = await svc.api('POST', '/api/events', {
      key, body: { type: 'order.retried', payload: {} }, headers: { traceparent: `00-${clientTrace}-${clientSpan}-01` },
    })
    assert.equal(r.status, 201, r.text)
    const id: string = r.json.id
    const seen = await waitFor(() => { const s = rx.forEvent(id); return s.length >= 2 ? s : null }, 10_000, 'a failed attempt and its retry')
    const ingest = await collector.span('the ingest span', s => s.name === 'POST /api/events' && s.attributes['triggers.event.id'] === id)
    assert.equal(ingest.traceId, clientTrace)
    assert.equal(ingest.parentSpanId, clientSpan, 'the client span is the parent of the ingest span')
    const attempts = await waitFor(() => {
      const a = collector.spans.filter(s => s.name === 'delivery attempt' && s.attributes['triggers.event.id'] === id)
      return a.length >= 2 ? a.sort((x, y) => Number(x.attributes['triggers.delivery.attempt']) - Number(y.attributes['triggers.delivery.attempt'])) : null
    }, 10_000, 'both attempt spans')
    for (const a of attempts) {
      assert.equal(a.traceId, clientTrace)
      assert.equal(a.parentSpanId, ingest.spanId)
    }
    const [first, second] = attempts as [ExportedSpan, ExportedSpan]
    assert.equal(first.attributes['http.response.status_code'], 503)
    assert.equal(first.attributes['triggers.delivery.outcome'], 'http_error')
    assert.equal(first.attributes['triggers.delivery.next'], 'failed')
    assert.equal(first.attributes['error.type'], '503')
    assert.equal(first.status, 2)
    assert.equal(second.attributes['http.request.resend_count'], 1)
    assert.equal(second.attributes['triggers.delivery.next'], 'delivered')
    const tps = seen.slice(0, 2).map(s => parseTp(s.headers.traceparent))
    assert.deepEqual(tps.map(t => t.traceId), [clientTrace, clientTrace])
    assert.deepEqual(tps.map(t => t.spanId), [first.spanId, second.spanId], 'each request names its own attempt span')
  })

  test('a batch request is one span with one commit; each of its events is delivered under it', async () => {
    const r = await svc.api('POST', '/api/events/batch', { key, body: { events: [{ type: 'b.one', payload: {} }, { type: 'b.two', payload: {} }] } })
    assert.equal(r.status, 200, r.text)
    const ids: string[] = r.json.results.map((x: { id: string }) => x.id)
    assert.equal(ids.length, 2)
    const seen = await waitFor(() => { const s = ids.map(id => rx.forEvent(id)[0]); return s.every(x => x !== undefined) ? s : null }, 10_000, 'both webhooks')
    const attempts = await Promise.all(ids.map(async id => await collector.span(`the attempt of ${id}`, s => s.name === 'delivery attempt' && s.attributes['triggers.event.id'] === id)))
    const parent = attempts[0]!.parentSpanId
    assert.equal(attempts[1]!.parentSpanId, parent, 'both attempts share their parent')
    const batch = await collector.span('the batch span', s => s.spanId === parent)
    assert.equal(batch.name, 'POST /api/events/batch')
    assert.equal(batch.attributes['http.response.status_code'], 200)
    const commits = await waitFor(() => { const c = collector.spans.filter(s => s.name === 'commit' && s.parentSpanId === batch.spanId); return c.length > 0 ? c : null }, 10_000, 'the commit span')
    assert.equal(commits.length, 1, 'one commit span per request')
    assert.equal(commits[0]!.attributes['triggers.request.events'], 2)
    for (const s of seen) assert.equal(parseTp(s!.headers.traceparent).traceId, batch.traceId)
  })

  test('an unsampled incoming traceparent is propagated without recording; an invalid one starts a new trace', async () => {
    const unsampled = hex(16)
    const r = await svc.api('POST', '/api/events', { key, body: { type: 'quiet', payload: {} }, headers: { traceparent: `00-${unsampled}-${hex(8)}-00` } })
    assert.equal(r.status, 201, r.text)
    const seen = await waitFor(() => rx.forEvent(r.json.id)[0], 10_000, 'the webhook')
    const tp = parseTp(seen.headers.traceparent)
    assert.equal(tp.traceId, unsampled)
    assert.equal(tp.flags, '00')

    // Later spans of the same listener and delivery threads arrive: everything before them has been exported.
    const bad = await svc.api('POST', '/api/events', { key, body: { type: 'loud', payload: {} }, headers: { traceparent: `00-${'0'.repeat(32)}-${hex(8)}-01` } })
    assert.equal(bad.status, 201, bad.text)
    const ingest = await collector.span('the ingest span of the later event', s => s.name === 'POST /api/events' && s.attributes['triggers.event.id'] === bad.json.id)
    assert.equal(ingest.parentSpanId, '', 'an all-zero trace id is invalid: a new trace')
    await collector.span('the attempt span of the later event', s => s.name === 'delivery attempt' && s.attributes['triggers.event.id'] === bad.json.id)
    assert.deepEqual(collector.spans.filter(s => s.traceId === unsampled), [], 'nothing of the unsampled trace was exported')
  })
})

describe('traces on: spans still buffered at shutdown are exported (OTLP/HTTP protobuf)', () => {
  test('a ten-minute export delay: nothing before stop, everything after', async (t) => {
    const defer = deferrer(t)
    const collector = await Collector.start()
    defer(async () => { await collector.close() })
    const rx = await Receiver.start(() => OK)
    defer(async () => { await rx.close() })
    const svc = await startTestService({
      THREADS: '1',
      DELIVERY_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}`, // OTEL_TRACES_EXPORTER unset: an endpoint turns traces on
      OTEL_BSP_SCHEDULE_DELAY: '600000',
    })
    defer(async () => { await svc.stop() })
    const { key } = await svc.createOrg()
    assert.equal((await svc.api('POST', '/api/endpoints', { key, body: { url: rx.url() } })).status, 201)
    const r = await svc.api('POST', '/api/events', { key, body: { type: 'late', payload: {} } })
    assert.equal(r.status, 201, r.text)
    const seen = await waitFor(() => rx.forEvent(r.json.id)[0], 10_000, 'the webhook')
    const tp = parseTp(seen.headers.traceparent)
    // Delivered, and its result written: the attempt span has ended.
    await waitFor(async () => (await svc.db.sql`select 1 from deliveries where event_id = ${r.json.id} and status = 'delivered'`).length === 1, 10_000, 'the delivery row')
    assert.equal(collector.requests.length, 0, 'nothing exported while the batch delay runs')
    await svc.stop()
    assert.ok(collector.requests.length >= 2, 'the listener and the delivery thread each exported at stop')
    const traceBytes = Buffer.from(tp.traceId, 'hex')
    for (const req of collector.requests) {
      assert.equal(req.contentType, 'application/x-protobuf')
      assert.ok(req.body.includes(traceBytes), 'each export carries spans of the event\'s trace')
    }
  })
})

// ── tracing off ──────────────────────────────────────────────────────────────────────────────

/**
 * A module-resolution probe for a service process: preloaded with --require, so it runs in the main
 * thread and in every worker thread (Node 20 workers inherit --require, not --import), it registers a
 * resolve hook that appends a line for each `postgres` (a control: every thread imports it) and each
 * `@opentelemetry/*` specifier resolved by ESM, naming the thread that asked.
 */
const PROBE_HOOK = `
import { appendFileSync } from 'node:fs'
let file = ''
let thread = -1
export function initialize (data) { file = data.file; thread = data.thread }
export async function resolve (specifier, context, next) {
  if (specifier === 'postgres' || specifier.startsWith('@opentelemetry/')) {
    appendFileSync(file, JSON.stringify({ thread, specifier, parent: context.parentURL ?? null }) + '\\n')
  }
  return next(specifier, context)
}
`
const PROBE_PRELOAD = `
const { register } = require('node:module')
const { threadId } = require('node:worker_threads')
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(PROBE_HOOK)}), { data: { file: process.env.PROBE_FILE, thread: threadId } })
`

interface Resolved { thread: number, specifier: string, parent: string | null }

describe('traces off', () => {
  let db: TestDatabase
  let dir: string
  before(async () => {
    db = await createTestDatabase()
    dir = await mkdtemp(path.join(tmpdir(), 'triggers-probe-'))
    await writeFile(path.join(dir, 'probe.cjs'), PROBE_PRELOAD)
  })
  after(async () => {
    await db?.drop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  /** Runs the service process with the probe, sends one event with a traceparent, returns what was resolved and received. */
  async function run (t: { after: (fn: () => unknown) => void }, name: string, env: Record<string, string>): Promise<{ resolved: Resolved[], traceparent: unknown }> {
    const defer = deferrer(t)
    const probeFile = path.join(dir, name + '.jsonl')
    const rx = await Receiver.start(() => OK)
    defer(async () => { await rx.close() })
    const port = await freePort()
    const child = await spawnService({
      DATABASE_URL: db.url, PORT: String(port), HOST: '127.0.0.1', METRICS_PORT: '0', THREADS: '1',
      ALLOW_PRIVATE_WEBHOOKS: 'true', LOG_LEVEL: 'info', PROBE_FILE: probeFile, ...env,
    }, { port, args: ['--require', path.join(dir, 'probe.cjs'), '--import', 'tsx', 'src/cli.ts', 'serve'] })
    defer(async () => { await child.ensureStopped() })
    const call = async (method: string, p: string, body: unknown, headers: Record<string, string> = {}): Promise<any> => {
      const res = await request(child.base + p, { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), reset: true })
      const text = await res.body.text()
      assert.ok(res.statusCode < 300, `${method} ${p}: ${res.statusCode} ${text}`)
      return JSON.parse(text)
    }
    const org = await call('POST', '/api/keys/generate', { organization_name: 'probe ' + name })
    await call('POST', '/api/endpoints', { url: rx.url() }, { 'x-api-key': org.api_key })
    const ev = await call('POST', '/api/events', { type: 'probe', payload: {} }, { 'x-api-key': org.api_key, traceparent: `00-${hex(16)}-${hex(8)}-01` })
    const seen = await waitFor(() => rx.forEvent(ev.id)[0], 15_000, 'the webhook')
    const exit = await child.ensureStopped()
    assert.equal(exit.code, 0, child.stderr())
    const text = existsSync(probeFile) ? await readFile(probeFile, 'utf8') : ''
    const resolved = text.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Resolved)
    return { resolved, traceparent: seen.headers.traceparent }
  }

  const ours = (r: Resolved): boolean => r.specifier.startsWith('@opentelemetry/') && !(r.parent ?? '').includes('/node_modules/')

  test('no traceparent on the webhook, and no OpenTelemetry module imported by any thread', async (t) => {
    const { resolved, traceparent } = await run(t, 'off', {})
    assert.equal(traceparent, undefined)
    // The probe ran in the primary, the listener and the delivery thread (each imports postgres).
    const threads = new Set(resolved.filter(r => r.specifier === 'postgres').map(r => r.thread))
    assert.ok(threads.size >= 3, `the probe saw ${threads.size} threads`)
    assert.deepEqual(resolved.filter(r => r.specifier.startsWith('@opentelemetry/')), [], 'OpenTelemetry is never imported')
  })

  test('the probe sees the imports when tracing is on (the control)', async (t) => {
    const collector = await Collector.start()
    t.after(async () => { await collector.close() })
    const { resolved, traceparent } = await run(t, 'on', { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector.url })
    assert.equal(typeof traceparent, 'string')
    const importers = new Set(resolved.filter(ours).map(r => r.thread))
    assert.ok(importers.size >= 2, 'the listener and the delivery thread import OpenTelemetry')
    assert.ok(resolved.filter(ours).every(r => (r.parent ?? '').endsWith('/src/tracing/otel.ts')), 'only src/tracing/otel.ts imports it')
  })
})
