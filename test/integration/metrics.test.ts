/**
 * GET /metrics against the real service: two listener threads and the delivery thread, each counting
 * into its own shared-memory slots, summed by the primary at scrape time (STYLE C12).
 *
 * Why this proves the sum spans threads: a listener thread only ever counts the requests it answered
 * itself, in its own buffer. The requests here go over one fresh TCP connection each, and with
 * SO_REUSEPORT the kernel spreads new connections over both listener sockets. Every generated
 * X-Request-ID starts with its thread's prefix, so the test first checks that at least two threads
 * answered some of the N requests; a total of exactly N on /metrics is then only possible if the
 * primary added both threads' counters (either thread alone holds fewer than N).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startTestService, type TestService } from '../helpers/server.ts'
import { freshRequest, threadOf } from '../helpers/fresh.ts'
import { waitFor } from '../helpers/db.ts'
import { freePort } from '../../src/lib/free-port.ts'

interface Sample { readonly name: string, readonly labels: Record<string, string>, readonly value: number }

/** Parses the Prometheus text exposition format (samples only; comments are skipped). */
function parseProm (text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line)
    assert.ok(m !== null, `a well-formed sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

function find (samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
}

/** The value of exactly one series. */
function one (samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = find(samples, name, labels)
  assert.equal(found.length, 1, `exactly one series ${name}${JSON.stringify(labels)}, got ${found.length}`)
  return found[0]!.value
}

async function scrape (port: number, path = '/metrics'): Promise<{ status: number, type: string, text: string }> {
  const r = await request(`http://127.0.0.1:${port}${path}`, { reset: true })
  const text = await r.body.text()
  return { status: r.statusCode, type: String(r.headers['content-type']), text }
}

/** Runs `fn(i)` for i in [0, n) with at most `width` running at once. */
async function pool (n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++)
  }))
}

describe('GET /metrics', () => {
  const N = 80
  let s: TestService
  let metricsPort: number
  let orgId: string
  let samples: Sample[]
  let text: string
  let contentType: string
  const threadsSeen = new Map<string, number>()

  before(async () => {
    metricsPort = await freePort()
    s = await startTestService({ THREADS: '2', METRICS_PORT: String(metricsPort), DELIVERY_ENABLED: 'true' })
    // The delivery thread starts after the service object is returned; it is up once it holds its
    // database connection (its LISTEN). Its heap gauge is written at thread start.
    await waitFor(async () => {
      const [row] = await s.db.sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
         where datname = current_database() and application_name = 'triggers-delivery'`
      return (row?.n ?? 0) > 0
    }, 15_000, 'the delivery thread to connect')
    const org = await s.createOrg('enterprise', 'Metrics Org')
    orgId = org.id
    // N events, one TCP connection each (Connection: close), 20 connections open at a time.
    await pool(N, 20, async i => {
      const r = await freshRequest(s.base, 'POST', '/api/events', { key: org.key, body: { type: 'metrics.test', payload: { i } } })
      assert.equal(r.status, 201, r.text)
      const thread = threadOf(r.headers)
      threadsSeen.set(thread, (threadsSeen.get(thread) ?? 0) + 1)
    })
    // One refused request on the same route: no key.
    const denied = await freshRequest(s.base, 'POST', '/api/events', { body: { type: 'metrics.test', payload: {} } })
    assert.equal(denied.status, 401)
    const m = await scrape(metricsPort)
    assert.equal(m.status, 200, m.text)
    text = m.text
    contentType = m.type
    samples = parseProm(text)
  })
  after(async () => { await s?.stop() })

  test('the service reports the metrics port it listens on', () => {
    assert.equal(s.svc.metricsPort, metricsPort)
  })

  test('is Prometheus text', () => {
    assert.match(contentType, /^text\/plain; version=0\.0\.4/)
    assert.match(text, /^# HELP triggers_events_accepted_total /m)
    assert.match(text, /^# TYPE triggers_events_accepted_total counter$/m)
    assert.match(text, /^# TYPE triggers_http_request_duration_seconds histogram$/m)
  })

  test('both listener threads answered some of the requests', t => {
    t.diagnostic(`requests per listener thread: ${JSON.stringify(Object.fromEntries(threadsSeen))}`)
    const counts = [...threadsSeen.values()]
    assert.equal(counts.reduce((a, b) => a + b, 0), N)
    assert.ok(threadsSeen.size >= 2, `requests spread over listener threads: ${JSON.stringify(Object.fromEntries(threadsSeen))}`)
    assert.ok(counts.every(c => c < N), 'no single thread answered every request')
  })

  test('counters equal the requests made, summed over the threads', () => {
    assert.equal(one(samples, 'triggers_events_accepted_total'), N)
    assert.equal(one(samples, 'triggers_http_requests_total', { route: 'events_create', status_class: '2xx' }), N)
    assert.equal(one(samples, 'triggers_http_requests_total', { route: 'events_create', status_class: '4xx' }), 1)
    assert.equal(one(samples, 'triggers_http_requests_total', { route: 'events_create', status_class: '5xx' }), 0)
    assert.equal(one(samples, 'triggers_http_requests_total', { route: 'keys_generate', status_class: '2xx' }), 1)
    assert.equal(one(samples, 'triggers_events_rejected_total', { reason: 'unauthorized' }), 1)
    assert.equal(one(samples, 'triggers_events_rejected_total', { reason: 'invalid_event' }), 0)
    assert.equal(one(samples, 'triggers_events_duplicate_total'), 0)
  })

  test('the latency histogram counts every request of the route, with cumulative buckets', () => {
    const count = one(samples, 'triggers_http_request_duration_seconds_count', { route: 'events_create' })
    assert.equal(count, N + 1)
    assert.equal(one(samples, 'triggers_http_request_duration_seconds_bucket', { route: 'events_create', le: '+Inf' }), N + 1)
    const sum = one(samples, 'triggers_http_request_duration_seconds_sum', { route: 'events_create' })
    assert.ok(sum > 0 && sum < (N + 1) * 10, `plausible latency sum: ${sum}`)
    const buckets = find(samples, 'triggers_http_request_duration_seconds_bucket', { route: 'events_create' })
    assert.ok(buckets.length > 2)
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'buckets are cumulative')
  })

  test('the writer batches are counted (one per committed transaction)', () => {
    const batches = one(samples, 'triggers_writer_batch_size_count')
    const events = one(samples, 'triggers_writer_batch_size_sum')
    assert.equal(events, N)
    assert.ok(batches >= 1 && batches <= N, `batches: ${batches}`)
  })

  test('per-thread gauges have one series per thread, each > 0', () => {
    const heap = find(samples, 'triggers_thread_heap_used_bytes')
    const threads = heap.map(h => h.labels.thread).sort()
    assert.deepEqual(threads, ['delivery', 'http-0', 'http-1'])
    for (const h of heap) assert.ok(h.value > 0, `heap of ${h.labels.thread ?? '?'} is ${h.value}`)
    assert.equal(find(samples, 'triggers_thread_event_loop_lag_seconds').length, 3)
  })

  test('process metrics are exported', () => {
    assert.ok(one(samples, 'triggers_process_resident_memory_bytes') > 0)
    assert.ok(one(samples, 'triggers_process_cpu_user_seconds_total') > 0)
    assert.ok(one(samples, 'triggers_nodejs_heap_size_used_bytes') > 0)
    assert.equal(find(samples, 'triggers_process_process_resident_memory_bytes').length, 0, 'no doubled prefix')
  })

  test('no label carries a tenant id or a URL', () => {
    assert.equal(text.includes(orgId), false, 'the organization id never appears')
    for (const sm of samples) {
      // The top-endpoint backlog gauges carry an endpoint id on purpose (docs/api.md: top endpoints only).
      if (sm.name.startsWith('triggers_endpoint_backlog_')) continue
      for (const [k, v] of Object.entries(sm.labels)) {
        assert.doesNotMatch(v, /[0-9a-f]{8}-[0-9a-f]{4}-/, `${sm.name} label ${k} looks like an id`)
        assert.doesNotMatch(v, /:\/\/|^\//, `${sm.name} label ${k} looks like a URL or a path`)
      }
    }
    const routes = new Set(find(samples, 'triggers_http_requests_total').map(x => x.labels.route))
    assert.ok(routes.size <= 40, `a small fixed label set: ${routes.size} routes`)
    for (const name of ['triggers_endpoint_backlog_deliveries', 'triggers_endpoint_backlog_oldest_seconds']) {
      assert.ok(find(samples, name).length <= 10, `${name}: at most 10 series`)
    }
  })

  test('a later scrape sees later requests (counters are read at scrape time)', async () => {
    const r = await freshRequest(s.base, 'GET', '/health')
    assert.equal(r.status, 200)
    const before = one(samples, 'triggers_http_requests_total', { route: 'health', status_class: '2xx' })
    const again = parseProm((await scrape(metricsPort)).text)
    assert.equal(one(again, 'triggers_http_requests_total', { route: 'health', status_class: '2xx' }), before + 1)
    assert.equal(one(again, 'triggers_events_accepted_total'), N)
  })

  test('any other path is a 404 JSON envelope; another method on /metrics is 405', async () => {
    const other = await scrape(metricsPort, '/metrics/other')
    assert.equal(other.status, 404)
    assert.match(other.type, /^application\/json/)
    assert.deepEqual(JSON.parse(other.text), { error: 'Not found', code: 'not_found' })
    const post = await request(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST', reset: true })
    assert.equal(post.statusCode, 405)
    assert.equal((await post.body.json() as { code: string }).code, 'method_not_allowed')
  })
})
