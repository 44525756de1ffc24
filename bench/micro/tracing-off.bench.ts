/**
 * What tracing costs when it is off — and on — on the two paths it touches (docs/tracing.md):
 *
 *   A. ingest, per event: the JavaScript of one POST /api/events from the request snapshot to the
 *      serialized 201 — the real Ctx, ingest route, writer (flush, batch arrays, the insertEvents call)
 *      and ingest hooks, with the uWS response and the SQL client replaced by stubs (no I/O: only our
 *      code is timed). Batches of 64 events.
 *   B. webhook attempt, per attempt: deliveryBody and requestHeaders (signature included) as
 *      Dispatcher.attempt calls them, then its tracing step (with a tracer: the attempt span started,
 *      its traceparent pushed, ended); `before` is the same without that step.
 *   C. (--db) the ingest statement in PostgreSQL, batches of 1 and 64: before / off / on.
 *
 * Variants: `before` is the code before tracing existed (--before=DIR, a copy of that tree: see
 * bench/micro/README.md), `off` today's code with tracing off (NOOP_TRACER, the default), `on` (--on)
 * today's code with every span recorded and exported over OTLP/HTTP to a local sink that answers 200.
 * `on` runs in a process of its own: a thread sees one tracer for its life, and letting the same
 * functions meet both tracers would slow `off` with call sites that production never has. The
 * variants of a process take turns in rounds; the median round is reported.
 *
 * Run: node --import tsx bench/micro/tracing-off.bench.ts [--before=DIR] [--db]   (before vs off)
 *      node --import tsx bench/micro/tracing-off.bench.ts --on [--db]             (on)
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const { values: flags } = parseArgs({ options: { before: { type: 'string' }, db: { type: 'boolean', default: false }, on: { type: 'boolean', default: false } } })
const NOW = pathToFileURL(path.resolve(import.meta.dirname, '../..')).href
const BEFORE = flags.before === undefined ? null : pathToFileURL(path.resolve(flags.before)).href
const ROUNDS = 15
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

// ── the "on" side: an OTLP/HTTP sink and the real OpenTelemetry tracer ──────────────────────────

const sink = createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200); res.end() }) })
await new Promise<void>(resolve => sink.listen(0, '127.0.0.1', resolve))
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces`

const { loadConfig } = await import(`${NOW}/src/config/load.ts`)
const { createLogger } = await import(`${NOW}/src/log.ts`)
const tracing = await import(`${NOW}/src/tracing/tracer.ts`)
const { createTracer } = await import(`${NOW}/src/tracing/otel.ts`)
const onConfig = loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: sinkUrl, OTEL_TRACES_SAMPLER: 'always_on' })
const OTEL = flags.on ? await createTracer(onConfig.traces, 'bench', createLogger('warn', 'bench')) : tracing.NOOP_TRACER

// ── A. the ingest path ─────────────────────────────────────────────────────────────────────────

const BODY = '{"type":"order.created","payload":{"order_id":42,"items":[{"sku":"A-1","qty":2}],"note":"bench"}}'
const ORG = '01939d0f-0000-7000-8000-000000000001'
const BATCH = 64

/** The SQL client's stand-in: every tagged query resolves at once, the insert with all its events stored. */
class StubQuery {
  readonly values: unknown[]
  constructor (values: unknown[]) { this.values = values }
  then (resolve: (rows: unknown) => void): void {
    const arrays: unknown[][] = []
    const walk = (vs: unknown[]): void => { for (const v of vs) { if (v instanceof StubQuery) walk(v.values); else if (Array.isArray(v)) arrays.push(v) } }
    walk(this.values)
    const ids = (arrays[1] ?? []) as string[] // organization ids come first, then event ids (either statement text)
    resolve(ids.map(id => ({ id, due: false })))
  }
}
const stubSql = (_strings: TemplateStringsArray, ...values: unknown[]): StubQuery => new StubQuery(values)

const fakeRes = {
  onAborted () {}, cork (f: () => void) { f() }, writeStatus () { return fakeRes }, writeHeader () { return fakeRes },
  end () { return fakeRes }, endWithoutBody () { return fakeRes },
}
const fakeReq = {
  getMethod: () => 'post', getUrl: () => '/api/events', getQuery: () => '', getParameter: () => '',
  getHeader: (n: string) => n === 'content-length' ? String(BODY.length) : '',
}

type Run = (events: number) => Promise<number>

/** The ingest path of the tree at `root`; `traced` builds the writer for tracing (today's code only). */
async function ingestPath (root: string, traced: boolean): Promise<Run> {
  const { Ctx } = await import(`${root}/src/http/context.ts`)
  const { ingest, ingestHooks } = await import(`${root}/src/http/routes/events.ts`)
  const { Writer } = await import(`${root}/src/ingest/writer.ts`)
  const { configureReply } = await import(`${root}/src/http/reply.ts`)
  const { NoopMetrics } = await import(`${root}/src/metrics/counters.ts`)
  const { AuthEntry } = await import(`${root}/src/auth/key-cache.ts`)
  const { parseJsonText } = await import(`${root}/src/http/json.ts`)
  const { routeIndex } = await import(`${root}/src/metrics/layout.ts`)
  const metrics = new NoopMetrics(null)
  configureReply('*', metrics)
  const writer = new Writer(stubSql, { maxBatch: 512, maxQueue: 1_000_000, maxInFlight: 2, dedupWindowSeconds: 86400, traced },
    ingestHooks(metrics, () => {}, () => {}))
  const services = { writer }
  const auth = new AuthEntry(ORG, 1, 'enterprise', 1_000_000)
  const route = routeIndex('events_create')
  return async (events: number): Promise<number> => {
    const t0 = process.hrtime.bigint()
    for (let done = 0; done < events; done += BATCH) {
      for (let i = 0; i < BATCH; i++) {
        const ctx = new Ctx(fakeRes, fakeReq, false, route)
        ctx.auth = auth
        ctx.bodyText = BODY
        ingest(ctx, services, parseJsonText(BODY))
      }
      await writer.idle()
    }
    return Number(process.hrtime.bigint() - t0) / events
  }
}

// ── B. the attempt headers ─────────────────────────────────────────────────────────────────────

const { ClaimedDelivery } = await import(`${NOW}/src/db/queries/claim-deliveries.ts`)
const { deliveryBody, requestHeaders } = await import(`${NOW}/src/delivery/dispatch.ts`)
const { AttemptResult } = await import(`${NOW}/src/delivery/retry-policy.ts`)
const secret = 'whsec_' + randomBytes(32).toString('base64')
const delivery = new ClaimedDelivery({
  organization_id: ORG, event_id: '01939d0f-0000-7000-8000-000000000002', endpoint_id: '01939d0f-0000-7000-8000-000000000003',
  type: 'order.created', payload: '{"order_id":42,"items":[{"sku":"A-1","qty":2}],"note":"bench"}', created_at: new Date(),
  attempts: 1, series_attempt: 1, trigger: 'initial', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
}, {
  organization_id: ORG, id: '01939d0f-0000-7000-8000-000000000003', url: 'https://hooks.example.com/in', status: 'active', is_default: false,
  signing_secret: secret, previous_secret: null, rate_limit: null, rate_period_seconds: null, max_concurrency: null, rate_tat: null,
  throttled_until: null, breaker_until: null, consecutive_failures: 0, leased: 0,
})
const OK_RESULT = new AttemptResult('success', 200, null, null, Date.now(), 1)
/** What Dispatcher.attempt does to build a request (src/delivery/dispatch.ts), with its tracing step when `tracer` is given. */
function attemptHeaders (d: typeof delivery, tracer: { on: boolean, attempt: (d: typeof delivery, at: number) => { traceparent: string, end: (...a: unknown[]) => void } | null } | null): number {
  const startedAt = Date.now()
  const body = deliveryBody(d)
  const headers = requestHeaders(d, Math.floor(startedAt / 1000), body)
  if (tracer !== null) {
    const span = tracer.on ? tracer.attempt(d, startedAt) : null
    if (span !== null) { headers.push('traceparent', span.traceparent); span.end(OK_RESULT, 'success', 'delivered') }
  }
  return headers.length + body.length
}

function attemptRun (tracer: Parameters<typeof attemptHeaders>[1]): Run {
  return async (n: number): Promise<number> => {
    let sink = 0
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) sink += attemptHeaders(delivery, tracer)
    const ns = Number(process.hrtime.bigint() - t0) / n
    if (sink === -1) console.log(sink)
    return await Promise.resolve(ns)
  }
}

// ── measuring ──────────────────────────────────────────────────────────────────────────────────

interface Variant { readonly name: string, readonly run: Run, readonly tracer: unknown }

async function compare (title: string, variants: Variant[], n: number, unit = 'ns'): Promise<Record<string, number>> {
  const rounds = new Map<string, number[]>(variants.map(v => [v.name, []]))
  for (let r = -1; r < ROUNDS; r++) { // round -1 warms every variant up
    for (const v of variants) {
      tracing.installTracer(v.tracer)
      const ns = await v.run(n)
      if (r >= 0) rounds.get(v.name)!.push(ns)
    }
  }
  tracing.installTracer(tracing.NOOP_TRACER)
  const out: Record<string, number> = {}
  for (const v of variants) out[v.name] = med(rounds.get(v.name)!)
  console.log(`${title}: ` + variants.map(v => `${v.name} ${out[v.name]!.toFixed(0)} ${unit}`).join(', '))
  return out
}

const results: Record<string, Record<string, number>> = {}
const ingestVariants: Variant[] = []
if (flags.on) {
  ingestVariants.push({ name: 'on', run: await ingestPath(NOW, true), tracer: OTEL })
} else {
  if (BEFORE !== null) ingestVariants.push({ name: 'before', run: await ingestPath(BEFORE, false), tracer: tracing.NOOP_TRACER })
  ingestVariants.push({ name: 'off', run: await ingestPath(NOW, false), tracer: tracing.NOOP_TRACER })
}
results.ingest = await compare('A. ingest, per event', ingestVariants, 64 * 400)

const attemptVariants: Variant[] = flags.on
  ? [{ name: 'on', run: attemptRun(OTEL), tracer: OTEL }]
  : [{ name: 'before', run: attemptRun(null), tracer: tracing.NOOP_TRACER }, { name: 'off', run: attemptRun(tracing.NOOP_TRACER), tracer: tracing.NOOP_TRACER }]
results.attempt = await compare('B. webhook attempt headers, per attempt', attemptVariants, 20_000)

// ── C. the statement in PostgreSQL ─────────────────────────────────────────────────────────────

if (flags.db) {
  const { createDb } = await import(`${NOW}/src/db/client.ts`)
  const { migrate } = await import(`${NOW}/src/db/migrate.ts`)
  const { insertEvents } = await import(`${NOW}/src/db/queries/insert-events.ts`)
  const insertBefore = BEFORE === null ? null : (await import(`${BEFORE}/src/db/queries/insert-events.ts`)).insertEvents
  const admin = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres')
  admin.pathname = '/postgres'
  const scratch = `bench_tracing_${randomBytes(4).toString('hex')}`
  const adminSql = createDb({ url: admin.toString(), max: 1, applicationName: 'bench' })
  await adminSql.unsafe(`create database "${scratch}"`)
  const dbUrl = new URL(admin.toString())
  dbUrl.pathname = '/' + scratch
  const sql = createDb({ url: dbUrl.toString(), max: 1, applicationName: 'bench' })
  try {
    await migrate(sql)
    const { uuidv7 } = await import(`${NOW}/src/lib/uuid.ts`)
    const batchOf = (n: number, traced: boolean): unknown => {
      const b = { organizationIds: [] as string[], ids: [] as string[], types: [] as string[], payloads: [] as string[], dedupIds: [] as (string | null)[], traceparents: traced ? [] as string[] : null }
      for (let i = 0; i < n; i++) {
        b.organizationIds.push(ORG); b.ids.push(uuidv7()); b.types.push('order.created'); b.payloads.push(delivery.payload)
        b.dedupIds.push(i % 2 === 0 ? null : randomBytes(8).toString('hex'))
        if (b.traceparents !== null) b.traceparents.push('00-' + randomBytes(16).toString('hex') + '-' + randomBytes(8).toString('hex') + '-01')
      }
      return b
    }
    for (const size of [1, 64]) {
      const statements = 1200
      const variant = (name: string, fn: (b: unknown) => Promise<unknown>, traced: boolean): Variant => ({
        name,
        tracer: tracing.NOOP_TRACER,
        run: async (n: number) => {
          const t0 = process.hrtime.bigint()
          for (let i = 0; i < n; i++) await fn(batchOf(size, traced))
          return Number(process.hrtime.bigint() - t0) / n / 1000
        },
      })
      const vs: Variant[] = []
      if (insertBefore !== null) vs.push(variant('before', async b => await insertBefore(sql, b, new Date(), 86400), false))
      vs.push(variant('off', async b => await insertEvents(sql, b, new Date(), 86400), false))
      // The statement is plain SQL: its traced text can share a process with the others.
      vs.push(variant('on', async b => await insertEvents(sql, b, new Date(), 86400), true))
      const r = await compare(`C. ingest statement, ${size} event(s), per statement`, vs, Math.ceil(statements / ROUNDS), 'µs')
      results[`statement_${size}`] = r
    }
  } finally {
    await sql.end()
    await adminSql.unsafe(`drop database if exists "${scratch}" with (force)`)
    await adminSql.end()
  }
}

await OTEL.shutdown(2000)
sink.close()
console.log(JSON.stringify({ node: process.version, results }))
