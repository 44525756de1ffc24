/**
 * `npm run bench`: the load benchmark of the Triggers API (see bench/README.md).
 *
 * Builds dist/ if stale, makes a scratch database (on DATABASE_URL's server, else an embedded
 * PostgreSQL in a temporary directory), starts the compiled service as a child process
 * (`node dist/cli.js serve`), creates enterprise organizations (and endpoints on a local receiver
 * process) through the API, and runs:
 *   1  single-event ingest: autocannon, 64 connections, durable 201s; stored rows must cover the 201s
 *   2  latency at 2,000 req/s, open loop (bench/load/open-loop.ts): p50/p99/max
 *   3  delivery end to end at 1,000 events/s: warm (from a drained state) and the first 3 s after a start
 *   4  resident memory of the service process (all threads) during scenario 2
 *   5  cold start: spawn → first 201 of POST /api/events, median of 5, migrated database
 *   6  auth-miss storm: 200 req/s forged keys on top of scenario 2: p99 of the valid traffic
 *   7  side by side: scenarios 1 and 2 against the durable ceiling (bench/baseline/durable-uws.ts) and
 *      scenario 1 against Fastify + pg (bench/baseline/fastify-pg.ts)
 *   8  drain: 20,000 queued events to 8 endpoints, on 8 origins and on one origin, against the
 *      delivery ceiling (a bare undici client, no database)
 *   9  fan-out: single-event ingest with 5 endpoints per event: 201/s and deliveries/s
 *  10  mixed: the highest ingest rate the node still delivers in full (stepped open-loop rate)
 *  11  batch ingest, 100 events a request, against the durable ceiling's batch route
 *  12  attempt log: steady delivery CPU and the one-origin drain with ATTEMPT_LOG on and off
 *  13  (on request, with --ab-env) single and batch ingest with extra service variables vs without
 * Order: 5; then on one service: 3 cold (right after a fresh start), 2, 7 latency, 6, 3 warm, 8, 12
 * (a second service with ATTEMPT_LOG=false in between), 10, 1, 11, 13, 9; then with the service
 * stopped, the durable ceiling (7, 11) and Fastify + pg (7): the saturating runs last. Then it prints
 * the targets table and the other tables, and writes bench/results/<date>.json, <date>-latency.svg and
 * latest.md (and the results section of bench/README.md after a full default run).
 *
 *   npm run bench [-- --long] [-- --only=1,2] [-- --out=DIR] [-- --calibrate] [-- --ac-workers=N]
 *   npm run bench -- --only=13 --ab-env=OTEL_TRACES_EXPORTER=otlp,OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
 *   npm run profile [-- --profiler=cpu-prof] [-- --only=8|11]   scenario 1 (or 8, or 11) with the service under a profiler
 *
 * Exit status: 0 when the run completed (MISS rows included), 1 on DATA LOSS or an error, 130 on Ctrl-C.
 */
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { mkdir, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { ENV } from '../src/config/env.ts'
import { freePort } from '../src/lib/free-port.ts'
import { openBenchDatabase, type BenchDatabase } from './lib/database.ts'
import { Child, REPO_ROOT, startChild, stopAllChildren } from './lib/child.ts'
import { progress, elapsedS } from './lib/progress.ts'
import { describeMachine, machineInfo } from './lib/machine.ts'
import { createOrgs, warmKeys, type Org } from './lib/api.ts'
import { eventBody, makePayloads, meanBytes } from './load/payload.ts'
import { ReceiverProcess } from './load/receiver-handle.ts'
import { CeilingClient } from './load/ceiling-handle.ts'
import { estimateCost, readFlyVm } from './cost.ts'
import { profileService, type ProfileMode } from './profile.ts'
import type { Bench, Durations, Target } from './scenarios/context.ts'
import { BATCH_EVENTS, CONNECTIONS, calibrate, ingest, type IngestScenario } from './scenarios/ingest.ts'
import { authMissStorm, fixedRate, LATENCY_RATE, OPEN_LOOP_CONNECTIONS, STORM_RATE } from './scenarios/latency.ts'
import { coldStart } from './scenarios/cold-start.ts'
import { makeFleet, type Fleet } from './scenarios/fleet.ts'
import { DELIVERY_RATE, steady } from './scenarios/steady.ts'
import { ceiling, drain, DRAIN_EVENTS } from './scenarios/drain.ts'
import { mixed, MIXED_RATES } from './scenarios/mixed.ts'
import { FAN_ORGS, FAN_OUT, fanOut } from './scenarios/fan-out.ts'
import { buildTable, chart, markdown, updateReadme, type IngestPair, type Results } from './report.ts'

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
    // Scenario 13: extra service variables (e.g. OTEL_*) for an A/B of ingest throughput.
    'ab-env': { type: 'string' },
    'ab-label': { type: 'string', default: 'traces' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: false,
})

const LONG = flags.long === true
// A fixed port for the service's /metrics while the bench runs (services are started one at a time).
const METRICS_PORT = flags.metrics === 'off' ? '0' : String(await freePort())
const D: Durations = LONG
  ? { ingestS: 60, ingestWarmS: 5, latencyMs: 60_000, latencyWarmMs: 5_000, deliveryMs: 60_000, deliveryWarmMs: 3_000, coldDeliveryMs: 3_000, mixedStepMs: 30_000 }
  : { ingestS: 15, ingestWarmS: 3, latencyMs: 20_000, latencyWarmMs: 2_000, deliveryMs: 15_000, deliveryWarmMs: 2_000, coldDeliveryMs: 3_000, mixedStepMs: 10_000 }

const ORGS = 32 // enterprise organizations the ingest load is spread over
const FLEET_ORGS = 8 // scenarios 3, 8, 10, 12: one endpoint each
/**
 * autocannon worker threads. Measured with --calibrate on the 2-core bench machine (bench/README.md):
 * autocannon's single thread saturates before bare uWS does, and 2 workers (32 connections each)
 * gave the highest bare-uWS number (~34k/s against ~17-21k/s with 0 and ~22-30k/s with 1).
 */
const AC_WORKERS_DEFAULT = 2
const WATCHDOG_S = LONG ? 60 * 60 : 25 * 60

if (flags.help) {
  process.stdout.write(`usage: npm run bench -- [--long] [--only=1,2,...] [--out=DIR] [--calibrate] [--ac-workers=N] [--no-readme]
       npm run profile -- [--profiler=0x|cpu-prof] [--only=1|8] [--long]
  --long          longer runs (60 s per throughput and latency run, 30 s mixed steps) instead of the ~8-minute default
  --only=LIST     scenarios to run: 1 ingest, 2 latency, 3 delivery (warm and cold), 4 memory, 5 cold start,
                  6 auth-miss storm, 7 baselines, 8 drain and delivery ceiling, 9 fan-out, 10 mixed,
                  11 batch ingest, 12 attempt log on/off, 13 ingest with --ab-env vs without (never by default);
                  4 and 6 imply 2, 7 implies 1 and 2
  --out=DIR       where results go (default bench/results; bench/README.md is then left alone)
  --calibrate     first measure autocannon with 0, 1 and 2 worker threads against bare uWS; use the best
  --ac-workers=N  autocannon worker threads (default ${AC_WORKERS_DEFAULT})
  --no-readme     do not update the results section of bench/README.md
  --metrics=off   run the service with METRICS_PORT=0 (no counting at all), to measure what metrics cost
  --ab-env=K=V,…  scenario 13: service variables for the B side (e.g. OTEL_* to turn traces on)
  --ab-label=NAME scenario 13: what the B side is called in the report (default "traces")
DATABASE_URL: a server where the role may CREATE DATABASE (a scratch database is made and dropped);
unset: an embedded PostgreSQL in a temporary directory.
`)
  process.exit(0)
}

const ALL = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
const KNOWN = [...ALL, 13]
const only = flags.only === undefined ? ALL : flags.only.split(',').map(s => Number(s.trim())).filter(n => KNOWN.includes(n))
const selected = new Set(only)
if (selected.has(4) || selected.has(6)) selected.add(2)
if (selected.has(7)) { selected.add(1); selected.add(2) }
const PROFILE: ProfileMode | null = flags.profile !== true ? null : (flags.profiler === 'cpu-prof' ? 'cpu-prof' : '0x')
// The profiled scenario: 8 or 11 when --only names it, else 1 (without --only `selected` holds them all).
const PROFILED = PROFILE === null ? null : flags.only === undefined ? 1 : selected.has(8) ? 8 : selected.has(11) ? 11 : 1
const PROFILE_DRAIN = PROFILED === 8
const PROFILE_BATCH = PROFILED === 11
if (PROFILED !== null) { selected.clear(); selected.add(PROFILED) }
const has = (n: number): boolean => selected.has(n)
const FULL_RUN = ALL.every(has) && PROFILE === null

function parseEnvList (s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const part of (s ?? '').split(',').map(x => x.trim()).filter(x => x !== '')) {
    const eq = part.indexOf('=')
    if (eq <= 0) throw new Error(`--ab-env: "${part}" is not NAME=VALUE`)
    out[part.slice(0, eq)] = part.slice(eq + 1)
  }
  return out
}
const AB_ENV = parseEnvList(flags['ab-env'])
if (has(13) && Object.keys(AB_ENV).length === 0) {
  process.stderr.write('scenario 13 needs --ab-env=NAME=VALUE[,NAME=VALUE…] (the service variables of the B side, e.g. OTEL_* to turn traces on)\n')
  process.exit(2)
}

const acWorkersFlag = flags['ac-workers'] === undefined ? null : Number(flags['ac-workers'])
const acWorkers = acWorkersFlag !== null && Number.isInteger(acWorkersFlag) && acWorkersFlag >= 0 ? acWorkersFlag : AC_WORKERS_DEFAULT

const RESULTS_DIR = flags.out !== undefined ? path.resolve(flags.out) : fileURLToPath(new URL('./results/', import.meta.url))
const BENCH_README = new URL('./README.md', import.meta.url)
const FLY_TOML = new URL('../fly.toml', import.meta.url)
const CORES = os.availableParallelism()
const RUN_ID = `b${Date.now().toString(36)}${randomBytes(2).toString('hex')}`
const DATE = new Date().toISOString().slice(0, 10)

// ---------------------------------------------------------------------------------------------
// The service and the baselines

/**
 * Service variables the user may set for a bench run (e.g. WRITER_MAX_BATCH, DELIVERY_THREADS) and
 * OTEL_* variables are passed through; the rest are the bench's.
 */
const BENCH_OWNED = new Set(['DATABASE_URL', 'DATA_DIR', 'PORT', 'HOST', 'METRICS_PORT', 'DELIVERY_ENABLED', 'ALLOW_PRIVATE_WEBHOOKS', 'KEYGEN_RATE_LIMIT_PER_MINUTE'])
const SERVICE_NAMES = new Set<string>(Object.values(ENV).map(v => v.name))
const passedThrough: Record<string, string> = {}
for (const [name, value] of Object.entries(process.env)) {
  if (value !== undefined && !BENCH_OWNED.has(name) && (SERVICE_NAMES.has(name) || name.startsWith('OTEL_'))) passedThrough[name] = value
}

function serviceEnv (db: BenchDatabase, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    LOG_LEVEL: 'warn',
    ...passedThrough,
    ...extra,
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

let serviceWarnings = 0

async function startService (db: BenchDatabase, extra: Record<string, string> = {}): Promise<Child> {
  const port = await freePort()
  const shown = Object.entries(extra).map(([k, v]) => `${k}=${v}`).join(' ')
  progress(`starting the service: ${shown === '' ? '' : `${shown} `}node dist/cli.js serve on 127.0.0.1:${port}`)
  return await startChild({ name: 'service', args: ['dist/cli.js', 'serve'], env: serviceEnv(db, port, extra), port })
}

async function stopService (service: Child): Promise<void> {
  serviceWarnings += service.warnings
  if (service.warnings > 0) progress(`the service logged ${service.warnings} warning/error lines; the last ones:\n${service.output(3000)}`)
  progress('stopping the service')
  const code = await service.stop(20_000)
  if (code !== 0) progress(`the service exited with ${String(code)}`)
}

async function startBaseline (name: 'bare-uws' | 'durable-uws' | 'fastify-pg', db: BenchDatabase): Promise<Child> {
  const port = await freePort()
  progress(`starting the baseline ${name} on 127.0.0.1:${port}`)
  return await startChild({ name, args: ['--import', 'tsx', `bench/baseline/${name}.ts`], env: { PORT: String(port), THREADS: String(CORES), DATABASE_URL: db.url }, port })
}

// ---------------------------------------------------------------------------------------------
// Main: lifecycle, cleanup on every path

let db: BenchDatabase | null = null
let receiver: ReceiverProcess | null = null
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

interface Fleets { steady?: Fleet, drainMany?: Fleet, drainOne?: Fleet, fan?: Fleet }

async function makeFleets (port: number, r: ReceiverProcess): Promise<Fleets> {
  const f: Fleets = {}
  if (has(3) || has(10) || has(12)) f.steady = await makeFleet(port, r, RUN_ID, { name: 'steady', orgs: FLEET_ORGS, perOrg: 1, origins: 'many', status: 'active' })
  if (has(8)) f.drainMany = await makeFleet(port, r, RUN_ID, { name: 'drain8', orgs: FLEET_ORGS, perOrg: 1, origins: 'many', status: 'paused' })
  if (has(8) || has(12)) f.drainOne = await makeFleet(port, r, RUN_ID, { name: 'drain1', orgs: FLEET_ORGS, perOrg: 1, origins: 'one', status: 'paused' })
  if (has(9)) f.fan = await makeFleet(port, r, RUN_ID, { name: 'fan', orgs: FAN_ORGS, perOrg: FAN_OUT, origins: 'many', status: 'active' })
  return f
}

function fleetOrgs (f: Fleets): Org[] {
  return [f.steady, f.drainMany, f.drainOne, f.fan].flatMap(x => x?.orgs ?? [])
}

async function main (): Promise<number> {
  const loadAtStart = os.loadavg()
  progress(`bench ${RUN_ID}: scenarios ${[...selected].sort((a, b) => a - b).join(',')}${LONG ? ' (long)' : ''}${PROFILE === null ? '' : `, profiling with ${PROFILE}`}`)
  ensureBuild()
  db = await openBenchDatabase()
  const machine = machineInfo(db.serverVersion, db.settings, db.embedded, loadAtStart)
  progress(`machine: ${describeMachine(machine)}`)
  if (loadAtStart[0]! > CORES * 0.5) progress(`note: load average ${loadAtStart[0]!.toFixed(2)} on ${CORES} cores before starting: other work is running, numbers will be noisy`)
  const payloads = makePayloads()
  const b: Bench = { runId: RUN_ID, D, payloads, db, acWorkers }
  const results: Results = {
    benchmark: 'Triggers API load benchmark (bench/run.ts)',
    date: new Date().toISOString(),
    runId: RUN_ID,
    options: {
      long: LONG,
      scenarios: [...selected].sort((x, y) => x - y),
      connections: CONNECTIONS,
      organizations: ORGS,
      autocannonWorkers: acWorkers,
      batchEvents: BATCH_EVENTS,
      latencyRate: LATENCY_RATE,
      stormRate: STORM_RATE,
      deliveryRate: DELIVERY_RATE,
      drainEvents: DRAIN_EVENTS,
      fanOut: { organizations: FAN_ORGS, endpointsPerEvent: FAN_OUT },
      mixedRates: MIXED_RATES,
      openLoopConnections: OPEN_LOOP_CONNECTIONS,
      durations: D,
      meanPayloadBytes: Math.round(meanBytes(payloads)),
      meanBodyBytes: Math.round(meanBytes(payloads.map(p => eventBody(`${RUN_ID}-s1-ours-1-123456`, p)))),
      serviceEnv: { ...serviceEnv(db, 0), DATABASE_URL: '(scratch database)', PORT: '(free port)' },
      abEnv: has(13) ? { label: flags['ab-label'], env: AB_ENV } : undefined,
      threads: passedThrough.THREADS ?? `${CORES} (default: cores)`,
    },
    machine,
    durationsS: 0,
    scenarios: {},
    cost: { single: null, batch: null },
    table: [],
    serviceWarnings: 0,
    loadAverageAtEnd: [],
  }
  const s = results.scenarios
  let dataLoss = false
  const lossCheck = (x: IngestScenario): IngestScenario => { dataLoss ||= x.dataLoss; return x }

  if (has(5)) {
    progress('scenario 5: cold start, 5 spawns against the migrated scratch database, timed to the first 201')
    s.coldStart = await coldStart(b, port => serviceEnv(db!, port))
  }

  if (PROFILE !== null) {
    const dir = fileURLToPath(new URL(`./profiles/${DATE}/`, import.meta.url))
    if (PROFILE_DRAIN) receiver = await ReceiverProcess.start()
    const { files } = await profileService(PROFILE, dir, serviceEnv(db, await freePort()), async (server) => {
      if (PROFILE_DRAIN) {
        const many = await makeFleet(server.port, receiver!, RUN_ID, { name: 'drain8', orgs: FLEET_ORGS, perOrg: 1, origins: 'many', status: 'paused' })
        const one = await makeFleet(server.port, receiver!, RUN_ID, { name: 'drain1', orgs: FLEET_ORGS, perOrg: 1, origins: 'one', status: 'paused' })
        s.drain = { manyOrigins: await drain(b, server, receiver!, many, '8-origins'), oneOrigin: await drain(b, server, receiver!, one, 'one-origin') }
        return
      }
      const orgs = await createOrgs(server.port, ORGS, `${RUN_ID}-org`)
      await warmKeys(server.port, orgs)
      if (PROFILE_BATCH) s.batch = { ours: lossCheck(await ingest(b, 'ours-batch', server, orgs, { tag: '11', batch: BATCH_EVENTS, table: 'events' })) }
      else s.ingest = { ours: lossCheck(await ingest(b, 'ours', server, orgs, { tag: '1', batch: 0, table: 'events' })) }
    })
    progress(`profiles written to ${dir}:\n  ${files.join('\n  ')}`)
  } else if ([1, 2, 3, 4, 6, 8, 9, 10, 11, 12, 13].some(has)) {
    if ([3, 8, 9, 10, 12].some(has)) receiver = await ReceiverProcess.start()
    let service = await startService(db)
    const target = (): Target => ({ port: service.port, pid: service.pid })
    const restart = async (extra: Record<string, string> = {}): Promise<void> => {
      await stopService(service)
      service = await startService(db!, extra)
    }
    let orgs: Org[] = []
    try {
      progress(`creating ${ORGS} enterprise organizations${receiver === null ? '' : ' and the delivery scenarios\' organizations and endpoints'}`)
      orgs = await createOrgs(service.port, ORGS, `${RUN_ID}-org`)
      const fleets = receiver === null ? {} : await makeFleets(service.port, receiver)
      const allOrgs = [...orgs, ...fleetOrgs(fleets)]
      if (has(3)) {
        // Cold: a fresh service, measured from its first /health 200 (keys not cached, pools empty).
        await restart()
        s.delivery = { cold: await steady(b, target(), receiver!, fleets.steady!, 'cold', true) }
      }
      progress(`warming ${allOrgs.length} keys on every listener thread`)
      await warmKeys(service.port, allOrgs)
      // Order: the fixed-rate scenarios first, the saturating ingest runs last, so the checkpoint and
      // autovacuum work that hundreds of thousands of fresh rows cause cannot land in the latency runs.
      if (has(2)) {
        const ours = await fixedRate(b, 'ours', target(), orgs, has(4))
        s.latency = { ours: ours.run }
        if (ours.memory !== null) s.memory = ours.memory
        if (has(7)) {
          const durable = await startBaseline('durable-uws', db)
          try {
            s.latency.durable = (await fixedRate(b, 'durable-ceiling', { port: durable.port, pid: durable.pid }, orgs, false)).run
          } finally { await durable.stop() }
        }
      }
      if (has(6)) s.authMissStorm = await authMissStorm(b, target(), orgs)
      if (has(3)) s.delivery = { ...s.delivery, steady: await steady(b, target(), receiver!, fleets.steady!, 'warm', false) }
      if (has(8)) {
        const client = await CeilingClient.start()
        try {
          s.drain = {}
          s.drain.manyOrigins = await drain(b, target(), receiver!, fleets.drainMany!, '8-origins')
          s.drain.ceilingManyOrigins = await ceiling(b, client, receiver!, fleets.drainMany!, '8 origins')
          s.drain.oneOrigin = await drain(b, target(), receiver!, fleets.drainOne!, 'one-origin')
          s.drain.ceilingOneOrigin = await ceiling(b, client, receiver!, fleets.drainOne!, 'one origin')
        } finally { await client.stop() }
      }
      if (has(12)) {
        const on = {
          steady: s.delivery?.steady ?? await steady(b, target(), receiver!, fleets.steady!, 'log-on', false),
          drain: s.drain?.oneOrigin ?? await drain(b, target(), receiver!, fleets.drainOne!, 'one-origin-log-on', '12'),
        }
        progress('scenario 12: the same with ATTEMPT_LOG=false')
        await restart({ ATTEMPT_LOG: 'false' })
        await warmKeys(service.port, [...fleets.steady!.orgs, ...fleets.drainOne!.orgs])
        const off = {
          steady: await steady(b, target(), receiver!, fleets.steady!, 'log-off', false),
          drain: await drain(b, target(), receiver!, fleets.drainOne!, 'one-origin-log-off', '12'),
        }
        s.attemptLog = { on, off }
        if ([10, 1, 11, 13, 9].some(has)) {
          await restart()
          await warmKeys(service.port, allOrgs)
        }
      }
      if (has(10)) s.mixed = await mixed(b, target(), receiver!, fleets.steady!)
      if (has(1)) {
        if (flags.calibrate === true) {
          const bare = await startBaseline('bare-uws', db)
          try {
            const calibration = await calibrate(b, bare.port, orgs)
            b.acWorkers = calibration.reduce((x, y) => (y.reqPerSec > x.reqPerSec ? y : x)).workers
            progress(`calibration: using autocannon workers=${b.acWorkers}`)
            results.options.autocannonWorkers = b.acWorkers
            results.options.calibration = calibration
          } finally { await bare.stop() }
        }
        s.ingest = { ours: lossCheck(await ingest(b, 'ours', target(), orgs, { tag: '1', batch: 0, table: 'events' })) }
      }
      if (has(11)) s.batch = { ours: lossCheck(await ingest(b, 'ours-batch', target(), orgs, { tag: '11', batch: BATCH_EVENTS, table: 'events' })) }
      if (has(13)) {
        const label = flags['ab-label'] ?? 'traces'
        const plain: IngestPair = {
          single: s.ingest?.ours ?? lossCheck(await ingest(b, 'plain', target(), orgs, { tag: '13', batch: 0, table: 'events' })),
          batch: s.batch?.ours ?? lossCheck(await ingest(b, 'plain-batch', target(), orgs, { tag: '13', batch: BATCH_EVENTS, table: 'events' })),
        }
        progress(`scenario 13: the same with ${Object.entries(AB_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}`)
        await restart(AB_ENV)
        await warmKeys(service.port, orgs)
        const variant: IngestPair = {
          single: lossCheck(await ingest(b, label, target(), orgs, { tag: '13', batch: 0, table: 'events' })),
          batch: lossCheck(await ingest(b, `${label}-batch`, target(), orgs, { tag: '13', batch: BATCH_EVENTS, table: 'events' })),
        }
        s.ab = { label, env: AB_ENV, plain, variant }
        if (has(9)) {
          await restart()
          await warmKeys(service.port, allOrgs)
        }
      }
      if (has(9)) {
        const base = s.ingest?.ours ?? lossCheck(await ingest(b, 'no-endpoints', target(), orgs, { tag: '9', batch: 0, table: 'events' }))
        const f = await fanOut(b, target(), receiver!, fleets.fan!)
        lossCheck(f.ingest)
        s.fanOut = { ...f, withoutEndpoints: { eventsPerSec: base.run.eventsPerSec, from: s.ingest === undefined ? 'scenario 9' : 'scenario 1' } }
      }
    } finally {
      await stopService(service)
      if (receiver !== null) { await receiver.stop(); receiver = null }
    }

    // The baselines' saturating runs, with the service stopped (it may still have a fan-out backlog).
    if ((has(7) && s.ingest !== undefined) || (has(11) && s.batch !== undefined)) {
      const durable = await startBaseline('durable-uws', db)
      const t = { port: durable.port, pid: durable.pid }
      try {
        if (has(7) && s.ingest !== undefined) s.ingest.durable = await ingest(b, 'durable-ceiling', t, orgs, { tag: '7', batch: 0, table: 'ceiling_events' })
        if (has(11) && s.batch !== undefined) s.batch.durable = await ingest(b, 'durable-ceiling-batch', t, orgs, { tag: '11', batch: BATCH_EVENTS, table: 'ceiling_events' })
      } finally { await durable.stop() }
    }
    if (has(7) && s.ingest !== undefined) {
      const fastify = await startBaseline('fastify-pg', db)
      try {
        s.ingest.fastifyPg = await ingest(b, 'fastify-pg', { port: fastify.port, pid: fastify.pid }, orgs, { tag: '7', batch: 0, table: 'events' })
      } finally { await fastify.stop() }
    }
  }

  const vm = await readFlyVm(FLY_TOML)
  if (s.ingest !== undefined) results.cost.single = estimateCost(vm, s.ingest.ours.run.eventsPerSec, CORES)
  if (s.batch !== undefined) results.cost.batch = estimateCost(vm, s.batch.ours.run.eventsPerSec, CORES)
  results.serviceWarnings = serviceWarnings
  results.durationsS = Math.round(elapsedS())
  results.loadAverageAtEnd = os.loadavg()
  results.table = buildTable(results)
  if (dataLoss) {
    results.table.unshift({ metric: 'DATA LOSS', measured: 'stored rows < events answered 2xx', target: 'none', verdict: 'FAIL' })
  }

  const md = markdown(results, LONG)
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
      await updateReadme(BENCH_README, md + (svg === null ? '' : `\n![latency percentiles](results/${DATE}-latency.svg)\n`))
    }
    progress(`wrote ${jsonFile}${svg === null ? '' : `, ${DATE}-latency.svg`} and latest.md`)
  }
  if (dataLoss) {
    process.stderr.write('DATA LOSS: fewer rows stored than events answered 2xx\n')
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
