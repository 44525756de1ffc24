/**
 * `npm run bench`: the load benchmark of the Triggers API (see bench/README.md).
 *
 * Builds dist/ if stale, makes a scratch database (on DATABASE_URL's server, else an embedded
 * PostgreSQL in a temporary directory), starts the compiled service as a child process
 * (`node dist/cli.js serve`), creates 32 enterprise organizations through the API, and runs:
 *   1  ingest throughput: autocannon, 64 connections, durable 201s; stored rows must equal the 201s
 *   2  latency at 2,000 req/s, open loop (bench/load/open-loop.ts): p50/p99/max
 *   3  delivery end to end at 1,000 events/s to a local receiver: p50/p99, all delivered
 *   4  resident memory of the service process (all threads) during scenario 2
 *   5  cold start: process spawn → first 200 from /health, median of 5, migrated database
 *   6  auth-miss storm: 200 req/s forged keys on top of scenario 2: p99 of the valid traffic
 *   7  side by side: scenarios 1 and 2 against a bare uWS server (the ceiling) and scenario 1 against
 *      Fastify + pg (bench/baseline/)
 * (run in the order 5, 2, 4, 7 at 2,000 req/s, 6, 3, 1, 7 ingest: the saturating ingest runs last), then
 * prints the targets table, the side-by-side table and the cost per million events, and writes
 * bench/results/<date>.json, <date>-latency.svg and latest.md (and the results section of
 * bench/README.md after a full run).
 *
 *   npm run bench [-- --long] [-- --only=1,2] [-- --out=DIR] [-- --calibrate] [-- --ac-workers=N]
 *   npm run profile [-- --profiler=cpu-prof]    scenario 1 only, the service under 0x (or --cpu-prof)
 *
 * Exit status: 0 when the run completed (MISS rows included), 1 on DATA LOSS or an error, 130 on Ctrl-C.
 */
import os from 'node:os'
import path from 'node:path'
import http from 'node:http'
import { parseArgs } from 'node:util'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { ENV } from '../src/config/env.ts'
import { freePort } from '../src/lib/free-port.ts'
import { openBenchDatabase, type BenchDatabase } from './lib/database.ts'
import { Child, REPO_ROOT, readCpuSeconds, readHwm, readRss, startChild, stopAllChildren, waitHealthy } from './lib/child.ts'
import { progress, sleep, fmt, elapsedS } from './lib/progress.ts'
import { median, percentileCurve, quantile, roundSummary, sortedSamples, summarize, type LatencySummary } from './lib/stats.ts'
import { latencyChart } from './lib/svg.ts'
import { describeMachine, machineInfo, type Machine } from './lib/machine.ts'
import { eventBody, forgedKey, makePayloads, meanBytes } from './load/payload.ts'
import { runIngest, type IngestResult } from './load/ingest.ts'
import { OpenLoop, type OpenLoopResult } from './load/open-loop.ts'
import { Receiver } from './load/receiver.ts'
import { estimateCost, readFlyVm, type CostEstimate } from './cost.ts'
import { profileService, type ProfileMode } from './profile.ts'

// ---------------------------------------------------------------------------------------------
// Settings

const { values: flags } = parseArgs({
  options: {
    long: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
    calibrate: { type: 'boolean', default: false },
    'ac-workers': { type: 'string' },
    profile: { type: 'boolean', default: false },
    profiler: { type: 'string', default: '0x' },
    'no-readme': { type: 'boolean', default: false },
    // The service runs as deployed: /metrics on (its counters cost is measured by comparing with off).
    metrics: { type: 'string', default: 'on' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: false,
})

const LONG = flags.long === true
// A fixed port for the service's /metrics while the bench runs (services are started one at a time).
const METRICS_PORT = flags.metrics === 'off' ? '0' : String(await freePort())
const D = LONG
  ? { ingestS: 60, ingestWarmS: 5, latencyMs: 60_000, latencyWarmMs: 5_000, deliveryMs: 60_000, deliveryWarmMs: 3_000 }
  : { ingestS: 15, ingestWarmS: 3, latencyMs: 20_000, latencyWarmMs: 2_000, deliveryMs: 15_000, deliveryWarmMs: 2_000 }

const CONNECTIONS = 64 // scenario 1 and 7 (autocannon)
const ORGS = 32 // enterprise organizations the load is spread over
const LATENCY_RATE = 2_000 // scenario 2, req/s
const STORM_RATE = 200 // scenario 6, forged-key req/s
const DELIVERY_RATE = 1_000 // scenario 3, events/s
const DELIVERY_ORGS = 8 // scenario 3 has its own organizations, each with the receiver as webhook
const DELIVERY_WAIT_MS = 30_000 // scenario 3: longest wait for the last delivery
const OPEN_LOOP_CONNECTIONS = 64
const COLD_STARTS = 5
const RSS_EVERY_MS = 200
/**
 * autocannon worker threads. Measured with --calibrate on the 2-core bench machine (bench/README.md):
 * autocannon's single thread saturates before bare uWS does, and 2 workers (32 connections each)
 * gave the highest bare-uWS number (~34k/s against ~17-21k/s with 0 and ~22-30k/s with 1).
 */
const AC_WORKERS_DEFAULT = 2
const WATCHDOG_S = LONG ? 30 * 60 : 12 * 60

if (flags.help) {
  process.stdout.write(`usage: npm run bench -- [--long] [--only=1,2,...] [--out=DIR] [--calibrate] [--ac-workers=N] [--no-readme]
       npm run profile -- [--profiler=0x|cpu-prof] [--long]
  --long          longer runs (60 s per throughput and latency run) instead of the ~3-minute default
  --only=LIST     scenarios to run (1 ingest, 2 latency, 3 delivery, 4 memory, 5 cold start, 6 auth-miss
                  storm, 7 baselines); 4 and 6 imply 2, 7 implies 1 and 2
  --out=DIR       where results go (default bench/results; bench/README.md is then left alone)
  --calibrate     first measure autocannon with 0, 1 and 2 worker threads against bare uWS; use the best
  --ac-workers=N  autocannon worker threads (default ${AC_WORKERS_DEFAULT})
  --no-readme     do not update the results section of bench/README.md
  --metrics=off   run the service with METRICS_PORT=0 (no counting at all), to measure what metrics cost
DATABASE_URL: a server where the role may CREATE DATABASE (a scratch database is made and dropped);
unset: an embedded PostgreSQL in a temporary directory.
`)
  process.exit(0)
}

const ALL = [1, 2, 3, 4, 5, 6, 7]
const only = flags.only === undefined ? ALL : flags.only.split(',').map(s => Number(s.trim())).filter(n => ALL.includes(n))
const selected = new Set(only)
if (selected.has(4) || selected.has(6)) selected.add(2)
if (selected.has(7)) { selected.add(1); selected.add(2) }
const PROFILE: ProfileMode | null = flags.profile !== true ? null : (flags.profiler === 'cpu-prof' ? 'cpu-prof' : '0x')
if (PROFILE !== null) { selected.clear(); selected.add(1) }
const FULL_RUN = ALL.every(n => selected.has(n)) && PROFILE === null

const acWorkersFlag = flags['ac-workers'] === undefined ? null : Number(flags['ac-workers'])
let acWorkers = acWorkersFlag !== null && Number.isInteger(acWorkersFlag) && acWorkersFlag >= 0 ? acWorkersFlag : AC_WORKERS_DEFAULT

const RESULTS_DIR = flags.out !== undefined ? path.resolve(flags.out) : fileURLToPath(new URL('./results/', import.meta.url))
const BENCH_README = new URL('./README.md', import.meta.url)
const FLY_TOML = new URL('../fly.toml', import.meta.url)
const CORES = os.availableParallelism()
const RUN_ID = `b${Date.now().toString(36)}${randomBytes(2).toString('hex')}`
const DATE = new Date().toISOString().slice(0, 10)

// ---------------------------------------------------------------------------------------------
// Small HTTP helper for set-up calls (no keep-alive: an idle connection would hold up the service's drain)

interface HttpAnswer { status: number, body: unknown }

function call (port: number, method: string, urlPath: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const data = body === undefined ? '' : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, method, path: urlPath, agent: false, timeout: 15_000,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), connection: 'close', ...headers },
    }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => { chunks.push(c) })
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`${method} ${urlPath} timed out`)) })
    req.on('error', reject)
    req.end(data)
  })
}

interface Org { readonly key: string, readonly id: string }

async function createOrgs (port: number, count: number, namePrefix: string): Promise<Org[]> {
  const orgs: Org[] = new Array<Org>(count)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++
      const r = await call(port, 'POST', '/api/keys/generate', { organization_name: `${namePrefix}-${i}`, tier: 'enterprise' })
      const b = r.body as { api_key?: string, organization_id?: string }
      if (r.status !== 201 || typeof b.api_key !== 'string' || typeof b.organization_id !== 'string') {
        throw new Error(`POST /api/keys/generate answered ${r.status}: ${JSON.stringify(r.body)}`)
      }
      orgs[i] = { key: b.api_key, id: b.organization_id }
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()])
  return orgs
}

/**
 * Warms every key's entry in the listener threads' key caches (the first use of a key on a thread is
 * an Argon2 verification): 8 requests per key, each on a fresh connection, so SO_REUSEPORT spreads them
 * over the threads (with 2 threads, both see the key with probability 1 - 2/2^8).
 */
async function warmKeys (port: number, orgs: readonly Org[], payload: string): Promise<void> {
  const jobs: (() => Promise<void>)[] = []
  for (const [k, o] of orgs.entries()) {
    for (let j = 0; j < 8; j++) {
      jobs.push(async () => {
        const r = await call(port, 'POST', '/api/events', JSON.parse(eventBody(`${RUN_ID}-warm-${k}-${j}`, payload)), { 'x-api-key': o.key })
        if (r.status !== 201) throw new Error(`warming key ${k}: POST /api/events answered ${r.status}: ${JSON.stringify(r.body)}`)
      })
    }
  }
  let next = 0
  const worker = async (): Promise<void> => { while (next < jobs.length) await jobs[next++]!() }
  await Promise.all(Array.from({ length: 16 }, worker))
}

// ---------------------------------------------------------------------------------------------
// The service and the baselines

/** Service variables the user may set for a bench run (e.g. WRITER_MAX_BATCH); the rest are the bench's. */
const BENCH_OWNED = new Set(['DATABASE_URL', 'DATA_DIR', 'PORT', 'HOST', 'METRICS_PORT', 'DELIVERY_ENABLED', 'ALLOW_PRIVATE_WEBHOOKS', 'KEYGEN_RATE_LIMIT_PER_MINUTE'])
const passedThrough: Record<string, string> = {}
for (const v of Object.values(ENV)) {
  const value = process.env[v.name]
  if (!BENCH_OWNED.has(v.name) && value !== undefined) passedThrough[v.name] = value
}

function serviceEnv (db: BenchDatabase, port: number): Record<string, string> {
  return {
    LOG_LEVEL: 'warn',
    ...passedThrough,
    DATABASE_URL: db.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    METRICS_PORT,
    DELIVERY_ENABLED: 'true',
    ALLOW_PRIVATE_WEBHOOKS: 'true',
    KEYGEN_RATE_LIMIT_PER_MINUTE: '100000',
  }
}

function ensureBuild (): void {
  const script = "import('./scripts/ensure-build.js').then(m => m.ensureBuild())"
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: 'inherit' })
  if (r.status !== 0) throw new Error('building dist/ failed (see above); the bench runs the compiled service')
}

async function startBareUws (): Promise<Child> {
  const port = await freePort()
  return await startChild({ name: 'bare-uws', args: ['--import', 'tsx', 'bench/baseline/bare-uws.ts'], env: { PORT: String(port), THREADS: String(CORES) }, port })
}

async function startFastify (db: BenchDatabase): Promise<Child> {
  const port = await freePort()
  return await startChild({ name: 'fastify-pg', args: ['--import', 'tsx', 'bench/baseline/fastify-pg.ts'], env: { PORT: String(port), DATABASE_URL: db.url }, port })
}

async function countStored (db: BenchDatabase, prefix: string): Promise<number> {
  const [r] = await db.sql<{ n: string }[]>`select count(*)::text as n from events where starts_with(dedup_id, ${prefix})`
  return Number(r?.n ?? 0)
}

class RssSampler {
  readonly samples: number[] = []
  #timer: NodeJS.Timeout | null = null
  constructor (readonly pid: number) {}
  start (): void {
    this.#timer = setInterval(() => {
      void readRss(this.pid).then(b => { if (b !== null) this.samples.push(b) })
    }, RSS_EVERY_MS)
  }

  stop (): { maxMb: number, meanMb: number, samples: number } {
    if (this.#timer !== null) clearInterval(this.#timer)
    const mb = this.samples.map(b => b / 2 ** 20)
    return {
      maxMb: Math.round(Math.max(...mb) * 10) / 10,
      meanMb: Math.round((mb.reduce((a, b) => a + b, 0) / Math.max(1, mb.length)) * 10) / 10,
      samples: mb.length,
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** What a scenario runs against: a port, and the pid whose CPU and memory are read. */
interface Target { readonly port: number, readonly pid: number }

interface IngestScenario {
  readonly run: IngestResult
  readonly stored: number | null
  readonly dataLoss: boolean
  /** CPU seconds per wall second the server process used during the measured run (all threads). */
  readonly serverCpu: number | null
}

async function ingest (label: string, server: Target, orgs: readonly Org[], payloads: readonly string[], db: BenchDatabase | null): Promise<IngestScenario> {
  const keys = orgs.map(o => o.key)
  progress(`scenario 1 · ${label}: warm-up ${D.ingestWarmS} s`)
  await runIngest({ label: `${label} warm-up`, port: server.port, connections: CONNECTIONS, durationS: D.ingestWarmS, workers: acWorkers, keys, payloads, prefix: `${RUN_ID}-w1-${label}-`, quiet: true })
  progress(`scenario 1 · ${label}: measuring ${D.ingestS} s, ${CONNECTIONS} connections, autocannon workers ${acWorkers}`)
  const prefix = `${RUN_ID}-s1-${label}-`
  const cpu0 = await readCpuSeconds(server.pid)
  const t0 = performance.now()
  const run = await runIngest({ label, port: server.port, connections: CONNECTIONS, durationS: D.ingestS, workers: acWorkers, keys, payloads, prefix })
  const cpu1 = await readCpuSeconds(server.pid)
  const serverCpu = cpu0 !== null && cpu1 !== null ? Math.round(((cpu1 - cpu0) / ((performance.now() - t0) / 1000)) * 100) / 100 : null
  let stored: number | null = null
  if (db !== null) {
    await sleep(500) // the last batches in flight when autocannon stopped
    stored = await countStored(db, prefix)
  }
  const dataLoss = stored !== null && stored < run.created
  progress(`scenario 1 · ${label}: ${fmt(run.reqPerSec)} 201/s (${fmt(run.created)} created, ${fmt(run.non2xx)} non-2xx, ${run.errors} errors` +
    `${stored === null ? '' : `; ${fmt(stored)} rows stored`})${dataLoss ? ' — DATA LOSS' : ''}`)
  return { run, stored, dataLoss, serverCpu }
}

/** An open-loop run as reported: its counts, with the raw latency arrays replaced by summaries. */
interface LatencyRun extends Omit<OpenLoopResult, 'latencies' | 'latencies2xx' | 'byIndex'> {
  readonly latencyMs: LatencySummary
  readonly curve: { p: number, ms: number }[]
  /** p99 (ms) of the requests scheduled in each second of the run: when the slow ones happened. */
  readonly p99BySecond: number[]
}

/** p99 of the values in each consecutive group of `perGroup` (NaN entries skipped). */
function p99ByGroup (byIndex: ArrayLike<number>, perGroup: number): number[] {
  const out: number[] = []
  for (let a = 0; a < byIndex.length; a += perGroup) {
    const xs: number[] = []
    for (let i = a; i < Math.min(byIndex.length, a + perGroup); i++) if (!Number.isNaN(byIndex[i]!)) xs.push(byIndex[i]!)
    out.push(Math.round(quantile(sortedSamples(xs), 0.99) * 10) / 10)
  }
  return out
}

function latencyRun (r: OpenLoopResult): LatencyRun {
  const sorted = sortedSamples(r.latencies)
  return {
    rate: r.rate,
    durationMs: r.durationMs,
    scheduled: r.scheduled,
    sent: r.sent,
    answered: r.answered,
    ok2xx: r.ok2xx,
    non2xx: r.non2xx,
    errors: r.errors,
    dropped: r.dropped,
    status: r.status,
    maxSendLagMs: Math.round(r.maxSendLagMs * 1000) / 1000,
    firstError: r.firstError,
    latencyMs: roundSummary(summarize(sorted)),
    curve: percentileCurve(sorted),
    p99BySecond: p99ByGroup(r.byIndex, r.rate),
  }
}

function validRequests (orgs: readonly Org[], payloads: readonly string[], prefix: string): (i: number) => { headers: Record<string, string>, body: string } {
  return i => ({
    headers: { 'content-type': 'application/json', 'x-api-key': orgs[i % orgs.length]!.key },
    body: eventBody(`${prefix}${i}`, payloads[i % payloads.length]!),
  })
}

async function fixedRate (label: string, server: Target, orgs: readonly Org[], payloads: readonly string[], rss: boolean):
Promise<{ run: LatencyRun, memory: { maxMb: number, meanMb: number, samples: number, hwmMb: number | null } | null }> {
  const loop = new OpenLoop(server.port, OPEN_LOOP_CONNECTIONS)
  try {
    progress(`scenario 2 · ${label}: warm-up ${D.latencyWarmMs / 1000} s at ${LATENCY_RATE} req/s`)
    await loop.run({ port: server.port, path: '/api/events', rate: LATENCY_RATE, durationMs: D.latencyWarmMs, make: validRequests(orgs, payloads, `${RUN_ID}-w2-${label}-`) })
    progress(`scenario 2 · ${label}: measuring ${D.latencyMs / 1000} s at ${LATENCY_RATE} req/s (open loop)${rss ? ', sampling RSS' : ''}`)
    const sampler = rss ? new RssSampler(server.pid) : null
    sampler?.start()
    const r = await loop.run({ port: server.port, path: '/api/events', rate: LATENCY_RATE, durationMs: D.latencyMs, make: validRequests(orgs, payloads, `${RUN_ID}-s2-${label}-`) })
    const mem = sampler?.stop() ?? null
    const hwm = rss ? await readHwm(server.pid) : null
    const run = latencyRun(r)
    progress(`scenario 2 · ${label}: p50 ${run.latencyMs.p50} ms, p99 ${run.latencyMs.p99} ms, max ${run.latencyMs.max} ms; ` +
      `${fmt(run.ok2xx)} 2xx, ${run.non2xx} non-2xx, ${run.errors} errors${mem === null ? '' : `; RSS max ${mem.maxMb} MB`}`)
    progress(`  p99 by second (ms): ${run.p99BySecond.join(' ')}`)
    return { run, memory: mem === null ? null : { ...mem, hwmMb: hwm === null ? null : Math.round(hwm / 2 ** 20 * 10) / 10 } }
  } finally {
    await loop.close()
  }
}

interface StormScenario { readonly valid: LatencyRun, readonly storm: LatencyRun }

async function authMissStorm (server: Child, orgs: readonly Org[], payloads: readonly string[]): Promise<StormScenario> {
  const valid = new OpenLoop(server.port, OPEN_LOOP_CONNECTIONS)
  const storm = new OpenLoop(server.port, 16)
  try {
    progress(`scenario 6: warm-up ${D.latencyWarmMs / 1000} s`)
    await valid.run({ port: server.port, path: '/api/events', rate: LATENCY_RATE, durationMs: D.latencyWarmMs, make: validRequests(orgs, payloads, `${RUN_ID}-w6-`) })
    progress(`scenario 6: measuring ${D.latencyMs / 1000} s: ${LATENCY_RATE} req/s valid + ${STORM_RATE} req/s forged keys`)
    const forged = (): { headers: Record<string, string>, body: string } => ({
      headers: { 'content-type': 'application/json', 'x-api-key': forgedKey() },
      body: eventBody(`${RUN_ID}-forged`, payloads[0]!),
    })
    const [v, s] = await Promise.all([
      valid.run({ port: server.port, path: '/api/events', rate: LATENCY_RATE, durationMs: D.latencyMs, make: validRequests(orgs, payloads, `${RUN_ID}-s6-`) }),
      storm.run({ port: server.port, path: '/api/events', rate: STORM_RATE, durationMs: D.latencyMs, make: forged }),
    ])
    const out = { valid: latencyRun(v), storm: latencyRun(s) }
    progress(`scenario 6: valid p99 ${out.valid.latencyMs.p99} ms (${out.valid.non2xx} non-2xx); forged: ${JSON.stringify(out.storm.status)}, p99 ${out.storm.latencyMs.p99} ms`)
    return out
  } finally {
    await Promise.all([valid.close(), storm.close()])
  }
}

interface DeliveryScenario {
  readonly rate: number
  readonly durationMs: number
  readonly accepted: number
  readonly delivered: number
  readonly missing: number
  readonly duplicates: number
  readonly badSignatures: number
  readonly arrivedBefore201: number
  readonly waitedMs: number
  readonly send: LatencyRun
  readonly latencyMs: LatencySummary
  readonly curve: { p: number, ms: number }[]
  /** Delivery p99 (ms) of the events sent in each second of the run. */
  readonly p99BySecond: number[]
}

async function delivery (server: Child, payloads: readonly string[]): Promise<DeliveryScenario> {
  const receiver = new Receiver()
  const rport = await receiver.listen()
  const loop = new OpenLoop(server.port, OPEN_LOOP_CONNECTIONS)
  try {
    const orgs = await createOrgs(server.port, DELIVERY_ORGS, `${RUN_ID}-delivery`)
    for (const [i, o] of orgs.entries()) {
      const r = await call(server.port, 'POST', '/api/webhook/config', { webhook_url: `http://127.0.0.1:${rport}/hooks/${i}` }, { 'x-api-key': o.key })
      const b = r.body as { signing_secret?: string }
      if (r.status !== 200 || typeof b.signing_secret !== 'string') throw new Error(`POST /api/webhook/config answered ${r.status}: ${JSON.stringify(r.body)}`)
      receiver.addSecret(b.signing_secret)
    }
    await warmKeys(server.port, orgs, payloads[0]!)
    progress(`scenario 3: receiver on 127.0.0.1:${rport}; warm-up ${D.deliveryWarmMs / 1000} s at ${DELIVERY_RATE} events/s`)
    const warmIds = new Map<string, number>()
    await loop.run({
      port: server.port, path: '/api/events', rate: DELIVERY_RATE, durationMs: D.deliveryWarmMs, readBody: true,
      make: validRequests(orgs, payloads, `${RUN_ID}-w3-`),
      onAnswer: (_i, status, body, endedAt) => { if (status === 201) warmIds.set((JSON.parse(body) as { id: string }).id, endedAt) },
    })
    // Measure from a drained state: the warm-up's deliveries first (bounded).
    const w0 = performance.now()
    const warmDone = (): boolean => { for (const id of warmIds.keys()) if (!receiver.arrivals.has(id)) return false; return true }
    while (!warmDone() && performance.now() - w0 < DELIVERY_WAIT_MS) await sleep(50)
    const warmLat = sortedSamples([...warmIds].map(([id, at]) => (receiver.arrivals.get(id) ?? NaN) - at).filter(x => !Number.isNaN(x)))
    progress(`scenario 3: warm-up: ${fmt(warmLat.length)}/${fmt(warmIds.size)} delivered, p50 ${quantile(warmLat, 0.5).toFixed(1)} ms, ` +
      `p99 ${quantile(warmLat, 0.99).toFixed(1)} ms, max ${quantile(warmLat, 1).toFixed(1)} ms; drained after ${Math.round(performance.now() - w0)} ms`)
    await sleep(500)
    progress(`scenario 3: measuring ${D.deliveryMs / 1000} s at ${DELIVERY_RATE} events/s`)
    const acceptedAt = new Map<string, { at: number, i: number }>()
    const r = await loop.run({
      port: server.port,
      path: '/api/events',
      rate: DELIVERY_RATE,
      durationMs: D.deliveryMs,
      readBody: true,
      make: validRequests(orgs, payloads, `${RUN_ID}-s3-`),
      onAnswer: (i, status, body, endedAt) => {
        if (status !== 201) return
        const id = (JSON.parse(body) as { id: string }).id
        acceptedAt.set(id, { at: endedAt, i })
      },
    })
    const t0 = performance.now()
    const allArrived = (): boolean => { for (const id of acceptedAt.keys()) if (!receiver.arrivals.has(id)) return false; return true }
    while (!allArrived() && performance.now() - t0 < DELIVERY_WAIT_MS) await sleep(100)
    const waitedMs = Math.round(performance.now() - t0)
    const lat: number[] = []
    const byIndex = new Float64Array(r.scheduled).fill(NaN)
    let early = 0
    for (const [id, { at, i }] of acceptedAt) {
      const arrived = receiver.arrivals.get(id)
      if (arrived === undefined) continue
      const ms = arrived - at
      if (ms < 0) early++
      lat.push(Math.max(0, ms))
      byIndex[i] = Math.max(0, ms)
    }
    const sorted = sortedSamples(lat)
    const out: DeliveryScenario = {
      rate: DELIVERY_RATE,
      durationMs: D.deliveryMs,
      accepted: acceptedAt.size,
      delivered: lat.length,
      missing: acceptedAt.size - lat.length,
      duplicates: receiver.duplicates,
      badSignatures: receiver.badSignatures,
      arrivedBefore201: early,
      waitedMs,
      send: latencyRun(r),
      latencyMs: roundSummary(summarize(sorted)),
      curve: percentileCurve(sorted),
      p99BySecond: p99ByGroup(byIndex, DELIVERY_RATE),
    }
    progress(`scenario 3: ${fmt(out.delivered)}/${fmt(out.accepted)} delivered, p50 ${out.latencyMs.p50} ms, p99 ${out.latencyMs.p99} ms, ` +
      `max ${out.latencyMs.max} ms; ${out.duplicates} duplicates, ${out.badSignatures} bad signatures`)
    progress(`  delivery p99 by second sent (ms): ${out.p99BySecond.join(' ')}`)
    return out
  } finally {
    await loop.close()
    await receiver.close()
  }
}

interface ColdStartScenario { readonly runsMs: number[], readonly medianMs: number, readonly stopMs: number[] }

async function coldStart (db: BenchDatabase): Promise<ColdStartScenario> {
  const runsMs: number[] = []
  const stopMs: number[] = []
  for (let k = 0; k < COLD_STARTS; k++) {
    const port = await freePort()
    const child = new Child({ name: `cold-start-${k + 1}`, args: ['dist/cli.js', 'serve'], env: serviceEnv(db, port), port })
    try {
      const healthyAt = await waitHealthy(child, '/health', 30_000, 5)
      runsMs.push(Math.round((healthyAt - child.spawnedAt) * 10) / 10)
    } finally {
      const t = performance.now()
      const code = await child.stop(20_000)
      stopMs.push(Math.round(performance.now() - t))
      if (code !== 0) progress(`scenario 5: run ${k + 1} exited with ${String(code)}:\n${child.output(2000)}`)
    }
    progress(`scenario 5: start ${k + 1}/${COLD_STARTS}: ${runsMs[runsMs.length - 1] ?? 'n/a'} ms to the first 200 (SIGTERM to exit: ${stopMs[stopMs.length - 1]} ms)`)
  }
  return { runsMs, medianMs: median(runsMs), stopMs }
}

// ---------------------------------------------------------------------------------------------
// Report

type Verdict = 'PASS' | 'MISS' | 'FAIL' | 'n/a'
interface Row { readonly metric: string, readonly measured: string, readonly target: string, readonly verdict: Verdict }

interface Results {
  benchmark: string
  date: string
  runId: string
  options: Record<string, unknown>
  machine: Machine | null
  durationsS: number
  scenarios: {
    ingest?: { ours: IngestScenario, bareUws?: IngestScenario, fastifyPg?: IngestScenario, calibration?: { workers: number, reqPerSec: number }[] }
    latency?: { ours: LatencyRun, bareUws?: LatencyRun }
    memory?: { maxMb: number, meanMb: number, samples: number, hwmMb: number | null }
    delivery?: DeliveryScenario
    coldStart?: ColdStartScenario
    authMissStorm?: StormScenario
  }
  cost: CostEstimate | null
  table: Row[]
  serviceWarnings: number
  loadAverageAtEnd: number[]
}

const verdict = (ok: boolean | null): Verdict => ok === null ? 'n/a' : ok ? 'PASS' : 'MISS'
const x2 = (n: number): string => `${n.toFixed(2)}×`

function buildTable (r: Results): Row[] {
  const rows: Row[] = []
  const s = r.scenarios
  if (s.ingest !== undefined) {
    const ours = s.ingest.ours.run.reqPerSec
    const bare = s.ingest.bareUws?.run.reqPerSec
    const fast = s.ingest.fastifyPg?.run.reqPerSec
    rows.push({
      metric: '1 ingest throughput vs bare uWS',
      measured: bare === undefined ? `${fmt(ours)} 201/s` : `${fmt(ours)} 201/s = ${x2(ours / bare)} of ${fmt(bare)}`,
      target: '≥ 0.40 × bare uWS',
      verdict: verdict(bare === undefined ? null : ours / bare >= 0.4),
    })
    rows.push({
      metric: '1 ingest throughput vs Fastify+pg',
      measured: fast === undefined ? `${fmt(ours)} 201/s` : `${x2(ours / fast)} of ${fmt(fast)}`,
      target: '≥ 8 × Fastify+pg',
      verdict: verdict(fast === undefined ? null : ours / fast >= 8),
    })
    const st = s.ingest.ours.stored
    rows.push({
      metric: '1 stored rows vs 201s received',
      measured: st === null ? 'n/a' : `${fmt(st)} rows / ${fmt(s.ingest.ours.run.created)} 201s`,
      target: 'rows ≥ 201s (no data loss)',
      verdict: st === null ? 'n/a' : s.ingest.ours.dataLoss ? 'FAIL' : 'PASS',
    })
  }
  if (s.latency !== undefined) {
    const ours = s.latency.ours.latencyMs
    const bare = s.latency.bareUws?.latencyMs
    rows.push({
      metric: `2 p99 at ${fmt(LATENCY_RATE)} req/s (open loop)`,
      measured: `p50 ${ours.p50} / p99 ${ours.p99} / max ${ours.max} ms` + (bare === undefined ? '' : `; p99 ${x2(ours.p99 / bare.p99)} of bare uWS ${bare.p99} ms`),
      target: '≤ 3 × bare uWS p99',
      verdict: bare === undefined ? 'n/a' : verdict(ours.p99 <= 3 * bare.p99 && s.latency.ours.non2xx + s.latency.ours.errors === 0),
    })
  }
  if (s.delivery !== undefined) {
    const d = s.delivery
    rows.push({
      metric: `3 delivery p99 at ${fmt(DELIVERY_RATE)} ev/s`,
      measured: `p50 ${d.latencyMs.p50} / p99 ${d.latencyMs.p99} ms; ${fmt(d.delivered)}/${fmt(d.accepted)} delivered`,
      target: '≤ 50 ms, all delivered',
      verdict: verdict(d.latencyMs.p99 <= 50 && d.missing === 0 && d.accepted > 0),
    })
  }
  if (s.memory !== undefined) {
    rows.push({
      metric: `4 resident memory at ${fmt(LATENCY_RATE)} req/s`,
      measured: `max ${s.memory.maxMb} MB, mean ${s.memory.meanMb} MB`,
      target: '≤ 150 MB',
      verdict: verdict(s.memory.maxMb <= 150),
    })
  }
  if (s.coldStart !== undefined) {
    rows.push({
      metric: '5 cold start (median of 5)',
      measured: `${s.coldStart.medianMs} ms (${s.coldStart.runsMs.join(', ')})`,
      target: '≤ 200 ms',
      verdict: verdict(s.coldStart.runsMs.length === COLD_STARTS && s.coldStart.medianMs <= 200),
    })
  }
  if (s.authMissStorm !== undefined && s.latency !== undefined) {
    const v = s.authMissStorm.valid.latencyMs.p99
    const base = s.latency.ours.latencyMs.p99
    rows.push({
      metric: `6 valid p99 during auth-miss storm`,
      measured: `${v} ms = ${x2(v / base)} of ${base} ms`,
      target: '≤ 2 × p99 without storm',
      verdict: verdict(v <= 2 * base && s.authMissStorm.valid.non2xx + s.authMissStorm.valid.errors === 0),
    })
  }
  return rows
}

function mdTable (head: string[], body: string[][]): string {
  return [head, head.map(() => '---'), ...body].map(cols => `| ${cols.join(' | ')} |`).join('\n')
}

function sideBySide (r: Results): string | null {
  const i = r.scenarios.ingest
  const l = r.scenarios.latency
  if (i?.bareUws === undefined && l?.bareUws === undefined) return null
  const rows: string[][] = []
  if (i !== undefined) {
    const ours = i.ours.run.reqPerSec
    const bare = i.bareUws?.run.reqPerSec
    const fast = i.fastifyPg?.run.reqPerSec
    rows.push([`ingest, ${CONNECTIONS} connections (201/s)`, fmt(ours), bare === undefined ? '—' : fmt(bare), fast === undefined ? '—' : fmt(fast),
      bare === undefined ? '—' : x2(ours / bare), fast === undefined ? '—' : x2(ours / fast)])
    rows.push(['ingest p99 under full load (ms, closed loop)', String(i.ours.run.latencyMs.p99), String(i.bareUws?.run.latencyMs.p99 ?? '—'),
      String(i.fastifyPg?.run.latencyMs.p99 ?? '—'), '', ''])
    rows.push(['server CPU during ingest (cores)', String(i.ours.serverCpu ?? '—'), String(i.bareUws?.serverCpu ?? '—'), String(i.fastifyPg?.serverCpu ?? '—'), '', ''])
  }
  if (l !== undefined) {
    const o = l.ours.latencyMs
    const b = l.bareUws?.latencyMs
    rows.push([`p50 / p99 / max at ${fmt(LATENCY_RATE)} req/s (ms)`, `${o.p50} / ${o.p99} / ${o.max}`, b === undefined ? '—' : `${b.p50} / ${b.p99} / ${b.max}`, '—',
      b === undefined ? '—' : `p99 ${x2(o.p99 / b.p99)}`, ''])
  }
  return mdTable(['', 'ours', 'bare uWS', 'Fastify+pg', 'ours / bare', 'ours / Fastify'], rows)
}

function costLine (c: CostEstimate | null): string {
  if (c === null) return 'Cost: n/a (needs scenario 1)'
  const price = c.vm.hourlyUsd === null ? 'price unknown (add it to FLY_MONTHLY_USD in bench/cost.ts)' : `$${c.vm.hourlyUsd.toFixed(5)}/h`
  return `Cost: ${fmt(c.throughputPerSec)} durable events/s on ${c.benchCores} cores = ${fmt(c.perVcpuPerSec)} per vCPU → ` +
    `${c.vm.size} (${c.vm.memoryMb} MB, ${c.vm.vcpus} vCPU, ${price}, prices read ${c.pricesReadOn}; from ${c.vm.source}) ` +
    `≈ ${fmt(c.eventsPerHourOnVm / 1e6, 1)} M events/h → ` +
    (c.usdPerMillion === null ? 'n/a' : `$${c.usdPerMillion.toFixed(5)} per million durable events`) + ' (VM only, at full load)'
}

function markdown (r: Results): string {
  const parts: string[] = []
  parts.push(`Run ${r.date.slice(0, 16).replace('T', ' ')} UTC, ${LONG ? 'long' : 'default'} durations, ${fmt(r.durationsS)} s in all` +
    `${r.machine === null ? '' : `, on ${describeMachine(r.machine)}`}; load average at end ${r.loadAverageAtEnd.map(x => x.toFixed(2)).join(' ')}.`)
  parts.push(mdTable(['metric', 'measured', 'target', 'result'], r.table.map(row => [row.metric, row.measured, row.target, row.verdict])))
  const sbs = sideBySide(r)
  if (sbs !== null) parts.push(sbs)
  parts.push(costLine(r.cost))
  return parts.join('\n\n') + '\n'
}

function chart (r: Results): string | null {
  const series = []
  const tail = (l: LatencySummary): string => ` (p99 ${l.p99.toFixed(1)}, max ${l.max.toFixed(0)} ms)`
  const l = r.scenarios.latency
  if (l !== undefined) series.push({ label: `2 ours, ${fmt(LATENCY_RATE)}/s${tail(l.ours.latencyMs)}`, color: '#1f77b4', curve: l.ours.curve })
  if (l?.bareUws !== undefined) series.push({ label: `2 bare uWS, ${fmt(LATENCY_RATE)}/s${tail(l.bareUws.latencyMs)}`, color: '#7f7f7f', dashed: true, curve: l.bareUws.curve })
  const s = r.scenarios.authMissStorm
  if (s !== undefined) series.push({ label: `6 ours + ${STORM_RATE}/s forged${tail(s.valid.latencyMs)}`, color: '#d62728', curve: s.valid.curve })
  const d = r.scenarios.delivery
  if (d !== undefined) series.push({ label: `3 delivery, ${fmt(DELIVERY_RATE)}/s${tail(d.latencyMs)}`, color: '#2ca02c', curve: d.curve })
  if (series.length === 0) return null
  const m = r.machine
  return latencyChart('Triggers API latency distributions (open loop)',
    `${r.date.slice(0, 10)} · ${m === null ? '' : `${m.cpu}, ${m.cores} cores, Node ${m.node}`} · from the scheduled send time (3: from the 201 to the webhook's arrival)`, series)
}

async function updateReadme (md: string): Promise<void> {
  let text: string
  try { text = await readFile(BENCH_README, 'utf8') } catch { return }
  const start = '<!-- bench:results:start -->'
  const end = '<!-- bench:results:end -->'
  const a = text.indexOf(start)
  const b = text.indexOf(end)
  if (a < 0 || b < a) return
  await writeFile(BENCH_README, text.slice(0, a + start.length) + '\n' + md + text.slice(b))
}

// ---------------------------------------------------------------------------------------------
// Main: lifecycle, cleanup on every path

let db: BenchDatabase | null = null
let cleaning: Promise<void> | null = null
function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    await stopAllChildren(15_000)
    if (db !== null) await db.close()
  })()
  return cleaning
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping the processes this bench started and dropping the scratch database`)
    void cleanup().finally(() => process.exit(130))
  })
}
const watchdog = setTimeout(() => {
  progress(`watchdog: the bench ran longer than ${WATCHDOG_S} s; aborting`)
  void cleanup().finally(() => process.exit(1))
}, WATCHDOG_S * 1000)
watchdog.unref()

async function main (): Promise<number> {
  const loadAtStart = os.loadavg()
  progress(`bench ${RUN_ID}: scenarios ${[...selected].sort().join(',')}${LONG ? ' (long)' : ''}${PROFILE === null ? '' : `, profiling with ${PROFILE}`}`)
  ensureBuild()
  db = await openBenchDatabase()
  const machine = machineInfo(db.serverVersion, db.settings, db.embedded, loadAtStart)
  progress(`machine: ${describeMachine(machine)}`)
  if (loadAtStart[0]! > CORES * 0.5) progress(`note: load average ${loadAtStart[0]!.toFixed(2)} on ${CORES} cores before starting: other work is running, numbers will be noisy`)
  const payloads = makePayloads()
  const results: Results = {
    benchmark: 'Triggers API load benchmark (bench/run.ts)',
    date: new Date().toISOString(),
    runId: RUN_ID,
    options: {
      long: LONG,
      scenarios: [...selected].sort(),
      connections: CONNECTIONS,
      organizations: ORGS,
      autocannonWorkers: acWorkers,
      latencyRate: LATENCY_RATE,
      stormRate: STORM_RATE,
      deliveryRate: DELIVERY_RATE,
      openLoopConnections: OPEN_LOOP_CONNECTIONS,
      durations: D,
      meanPayloadBytes: Math.round(meanBytes(payloads)),
      meanBodyBytes: Math.round(meanBytes(payloads.map(p => eventBody(`${RUN_ID}-s1-ours-1-123456`, p)))),
      serviceEnv: { ...serviceEnv(db, 0), DATABASE_URL: '(scratch database)', PORT: '(free port)' },
      threads: passedThrough.THREADS ?? `${CORES} (default: cores)`,
    },
    machine,
    durationsS: 0,
    scenarios: {},
    cost: null,
    table: [],
    serviceWarnings: 0,
    loadAverageAtEnd: [],
  }

  if (selected.has(5)) {
    progress(`scenario 5: cold start, ${COLD_STARTS} spawns against the migrated scratch database`)
    results.scenarios.coldStart = await coldStart(db)
  }

  let dataLoss = false
  const needService = [1, 2, 3, 4, 6].some(n => selected.has(n))
  if (needService) {
    if (PROFILE !== null) {
      const dir = fileURLToPath(new URL(`./profiles/${DATE}/`, import.meta.url))
      const { ingest: ing, files } = await profileService(PROFILE, dir, serviceEnv(db, await freePort()), async (server) => {
        const orgs = await createOrgs(server.port, ORGS, `${RUN_ID}-org`)
        await warmKeys(server.port, orgs, payloads[0]!)
        return await ingest('ours', server, orgs, payloads, db)
      })
      results.scenarios.ingest = { ours: ing }
      dataLoss = ing.dataLoss
      progress(`profiles written to ${dir}:\n  ${files.join('\n  ')}`)
    } else {
      const port = await freePort()
      progress(`starting the service: node dist/cli.js serve on 127.0.0.1:${port}`)
      const service = await startChild({ name: 'service', args: ['dist/cli.js', 'serve'], env: serviceEnv(db, port), port })
      try {
        progress(`creating ${ORGS} enterprise organizations and warming their keys on every listener thread`)
        const orgs = await createOrgs(port, ORGS, `${RUN_ID}-org`)
        await warmKeys(port, orgs, payloads[0]!)
        // Order: the fixed-rate scenarios first, the saturating ingest runs last, so the checkpoint and
        // autovacuum work that hundreds of thousands of fresh rows cause cannot land in the latency runs.
        let bare: Child | null = null
        try {
          if (selected.has(2)) {
            const ours = await fixedRate('ours', service, orgs, payloads, selected.has(4))
            results.scenarios.latency = { ours: ours.run }
            if (ours.memory !== null) results.scenarios.memory = ours.memory
            if (selected.has(7)) {
              bare = await startBareUws()
              results.scenarios.latency.bareUws = (await fixedRate('bare-uws', bare, orgs, payloads, false)).run
            }
          }
          if (selected.has(6)) results.scenarios.authMissStorm = await authMissStorm(service, orgs, payloads)
          if (selected.has(3)) results.scenarios.delivery = await delivery(service, payloads)
          if (selected.has(1)) {
            if (flags.calibrate === true) {
              bare ??= await startBareUws()
              const calibration: { workers: number, reqPerSec: number }[] = []
              for (const w of [0, 1, 2]) {
                const r = await runIngest({ label: `calibrate workers=${w}`, port: bare.port, connections: CONNECTIONS, durationS: 6, workers: w, keys: orgs.map(o => o.key), payloads, prefix: `${RUN_ID}-cal${w}-` })
                calibration.push({ workers: w, reqPerSec: r.reqPerSec })
                progress(`calibration: autocannon workers=${w}: ${fmt(r.reqPerSec)} req/s against bare uWS`)
              }
              acWorkers = calibration.reduce((a, b) => (b.reqPerSec > a.reqPerSec ? b : a)).workers
              progress(`calibration: using autocannon workers=${acWorkers}`)
              results.options.autocannonWorkers = acWorkers
              results.options.calibration = calibration
            }
            const ours = await ingest('ours', service, orgs, payloads, db)
            dataLoss ||= ours.dataLoss
            results.scenarios.ingest = { ours }
            if (selected.has(7)) {
              bare ??= await startBareUws()
              results.scenarios.ingest.bareUws = await ingest('bare-uws', bare, orgs, payloads, null)
              await bare.stop()
              bare = null
              const fastify = await startFastify(db)
              try {
                results.scenarios.ingest.fastifyPg = await ingest('fastify-pg', fastify, orgs, payloads, db)
              } finally { await fastify.stop() }
            }
          }
        } finally {
          if (bare !== null) await bare.stop()
        }
      } finally {
        results.serviceWarnings = service.warnings
        if (service.warnings > 0) progress(`the service logged ${service.warnings} warning/error lines; the last ones:\n${service.output(3000)}`)
        progress('stopping the service')
        const code = await service.stop(20_000)
        if (code !== 0) progress(`the service exited with ${String(code)}`)
      }
    }
  }

  if (results.scenarios.ingest !== undefined) {
    const vm = await readFlyVm(FLY_TOML)
    results.cost = estimateCost(vm, results.scenarios.ingest.ours.run.reqPerSec, CORES)
  }
  results.durationsS = Math.round(elapsedS())
  results.loadAverageAtEnd = os.loadavg()
  results.table = buildTable(results)
  if (dataLoss) {
    results.table.unshift({ metric: 'DATA LOSS', measured: 'stored rows < 201s received', target: 'none', verdict: 'FAIL' })
  }

  const md = markdown(results)
  process.stdout.write('\n' + md + '\n')
  if (PROFILE === null) {
    await mkdir(RESULTS_DIR, { recursive: true })
    const jsonFile = path.join(RESULTS_DIR, `${DATE}.json`)
    await writeFile(jsonFile, JSON.stringify(results, null, 2) + '\n')
    const svg = chart(results)
    if (svg !== null) await writeFile(path.join(RESULTS_DIR, `${DATE}-latency.svg`), svg)
    const svgRef = svg === null ? '' : `\n![latency percentiles](${DATE}-latency.svg)\n`
    await writeFile(path.join(RESULTS_DIR, 'latest.md'), md + svgRef)
    if (FULL_RUN && flags.out === undefined && flags['no-readme'] !== true) {
      await updateReadme(md + (svg === null ? '' : `\n![latency percentiles](results/${DATE}-latency.svg)\n`))
    }
    progress(`wrote ${jsonFile}${svg === null ? '' : `, ${DATE}-latency.svg`} and latest.md`)
  }
  if (dataLoss) {
    process.stderr.write('DATA LOSS: fewer rows stored than 201s received\n')
    return 1
  }
  return 0
}

let code = 1
try {
  code = await main()
} catch (err) {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  code = 1
} finally {
  await cleanup()
  clearTimeout(watchdog)
}
process.exit(code)
