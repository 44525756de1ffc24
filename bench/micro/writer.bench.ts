/**
 * Micro-benchmark: how the ingest writer should insert a batch of events. It compares, for batch
 * sizes 1, 16, 64, 256 and 512, with one transaction per batch and synchronous_commit left on:
 *   (a)  unnest: one prepared multi-row INSERT ... SELECT FROM unnest($1::uuid[], ...),
 *   (b)  copy:   COPY events (...) FROM STDIN through postgres.js's writable, text-format (TSV) rows,
 *   (b') the same COPY on a socket with TCP_NODELAY: postgres.js writes CopyData and CopyDone as two
 *        socket writes and leaves Nagle on, so a stock connection waits out delayed ACKs on every COPY,
 *   (c)  cte:    the unnest insert behind a CTE that first claims dedup_keys rows (ON CONFLICT DO
 *        UPDATE ... WHERE expired) and then inserts only the events that got their key or have none.
 * (a), (b) and (c) use the service's own client (createDb); (b') a copy of its options plus a socket
 * with TCP_NODELAY. It reports rows/s and ms per batch (p50/p95/mean) for each method, one connection
 * per client, with the methods interleaved in rotating rounds so table growth and checkpoints hit
 * them evenly.
 *
 * Self-contained: creates a scratch database on the server at DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres), migrates it, runs, prints a table, writes
 * bench/micro/results/writer-<YYYY-MM-DD>.json and drops the scratch database (also on failure).
 *
 *   node --import tsx bench/micro/writer.bench.ts
 *
 * BENCH_MEASURE_MS overrides the measured time per batch size (default 12000 ms; ~70 s in all).
 */
import os from 'node:os'
import net from 'node:net'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { randomBytes, randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import postgres from 'postgres'
import { createDb, type Sql } from '../../src/db/client.ts'
import { migrate } from '../../src/db/migrate.ts'
import { uuidv7 } from '../../src/lib/uuid.ts'

// ---------------------------------------------------------------------------------------------
// Configuration

const BATCH_SIZES = [1, 16, 64, 256, 512] as const
const METHODS = ['unnest', 'copy', 'copyNoDelay', 'cte'] as const
type Method = typeof METHODS[number]
const METHOD_LABEL: Record<Method, string> = {
  unnest: '(a) unnest',
  copy: '(b) copy',
  copyNoDelay: "(b') copy, TCP_NODELAY",
  cte: '(c) cte+dedup',
}

const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? 12_000) // measured time per batch size, all methods
const ROUNDS = 6 // rounds per batch size; each round runs every method for MEASURE_MS / (ROUNDS * 4)
const WARMUP_MS = 300 // per method and batch size, not measured
const ORG_COUNT = 8
const DEDUP_SHARE = 0.5 // rows that carry a dedup_id
const SCHEDULED_SHARE = 0.5 // rows whose next_attempt_at is "now" (the rest: null, no webhook)
const STALL_MS = 15_000 // watchdog: a batch that takes this long means something hangs (see COPY notes)

const ADMIN_URL = (() => {
  const u = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres')
  u.pathname = '/postgres'
  return u
})()
const SCRATCH_DB = `bench_writer_${randomBytes(4).toString('hex')}`
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url))

// ---------------------------------------------------------------------------------------------
// Rows

interface Row {
  readonly org: string
  readonly id: string
  readonly type: string
  readonly payload: string // compact JSON text, stored as-is in a json column
  readonly dedupId: string | null
  readonly nextAttemptAt: string | null // ISO timestamp or null
  readonly createdAt: string // ISO timestamp, also used for updated_at
}

const ORGS = Array.from({ length: ORG_COUNT }, () => randomUUID())
const TYPES = ['order.created', 'order.paid', 'invoice.finalized', 'customer.updated']

function pick<T> (xs: readonly T[]): T {
  return xs[Math.floor(Math.random() * xs.length)]!
}

function hex (n: number): string {
  let s = ''
  while (s.length < n) s += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0')
  return s.slice(0, n)
}

/** ~150 bytes of compact JSON; one in eight carries string escapes (\" and \\) to exercise escaping. */
function makePayload (): string {
  const note = Math.random() < 0.125 ? 'gift \\"wrap\\" C:\\\\tmp' : 'at the door'
  return `{"order_id":"ord_${hex(10)}","customer":{"id":"cus_${hex(8)}","email":"u${hex(6)}@ex.com"},` +
    `"amount":${Math.floor(Math.random() * 100_000)},"currency":"EUR","items":${1 + Math.floor(Math.random() * 9)},"note":"${note}"}`
}

function makeBatch (n: number): Row[] {
  const now = new Date().toISOString()
  const rows: Row[] = []
  for (let i = 0; i < n; i++) {
    rows.push({
      org: pick(ORGS),
      id: uuidv7(),
      type: pick(TYPES),
      payload: makePayload(),
      dedupId: Math.random() < DEDUP_SHARE ? `dk_${hex(20)}` : null,
      nextAttemptAt: Math.random() < SCHEDULED_SHARE ? now : null,
      createdAt: now,
    })
  }
  return rows
}

// ---------------------------------------------------------------------------------------------
// The three ways to write a batch

interface Columns {
  orgs: string[]
  ids: string[]
  types: string[]
  payloads: string[]
  dedupIds: (string | null)[]
  nextAttemptAts: (string | null)[]
  createdAts: string[]
}

function toColumns (rows: readonly Row[]): Columns {
  const c: Columns = { orgs: [], ids: [], types: [], payloads: [], dedupIds: [], nextAttemptAts: [], createdAts: [] }
  for (const r of rows) {
    c.orgs.push(r.org)
    c.ids.push(r.id)
    c.types.push(r.type)
    c.payloads.push(r.payload)
    c.dedupIds.push(r.dedupId)
    c.nextAttemptAts.push(r.nextAttemptAt)
    c.createdAts.push(r.createdAt)
  }
  return c
}

// Plain JS arrays of strings: postgres.js sends them with parameter type 0 (unspecified), the server
// takes the type from the cast, and postgres.js then serializes with that array type's serializer.
// Payloads go as text[] and are cast per element: `${payloads}::json[]` would make the parameter
// json[] and postgres.js would JSON.stringify every element, storing JSON *strings* (see probe below).
// Timestamps go as ISO strings: an array of Date objects is declared with the element OID (1184), not
// the array OID, and the cast to timestamptz[] then fails.

/** (a) One prepared INSERT ... SELECT FROM unnest(arrays). */
async function insertUnnest (sql: Sql, rows: readonly Row[]): Promise<void> {
  const c = toColumns(rows)
  await sql.begin(async tx => {
    const r = await tx`
      insert into events (organization_id, id, type, payload, dedup_id, status, next_attempt_at, created_at, updated_at)
      select o, i, t, p::json, d, 'pending', n, c, c
      from unnest(${c.orgs}::uuid[], ${c.ids}::uuid[], ${c.types}::text[], ${c.payloads}::text[],
                  ${c.dedupIds}::text[], ${c.nextAttemptAts}::timestamptz[], ${c.createdAts}::timestamptz[])
        as u(o, i, t, p, d, n, c)`
    if (r.count !== rows.length) throw new Error(`unnest inserted ${r.count} of ${rows.length} rows`)
  })
}

const COPY_ESCAPE_RE = /[\\\t\n\r]/
const COPY_ESCAPE_G = /[\\\t\n\r]/g
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' }

/** A value for COPY's text format: backslash, tab, newline and carriage return escaped. */
function copyText (s: string): string {
  return COPY_ESCAPE_RE.test(s) ? s.replace(COPY_ESCAPE_G, ch => COPY_ESCAPES[ch]!) : s
}

/** (b) COPY events FROM STDIN, all rows in one CopyData message. status takes its default. */
async function insertCopy (sql: Sql, rows: readonly Row[]): Promise<void> {
  let data = ''
  for (const r of rows) {
    // uuids and ISO timestamps never need escaping.
    data += r.org + '\t' + r.id + '\t' + copyText(r.type) + '\t' + copyText(r.payload) + '\t' +
      (r.dedupId === null ? '\\N' : copyText(r.dedupId)) + '\t' + (r.nextAttemptAt ?? '\\N') + '\t' +
      r.createdAt + '\t' + r.createdAt + '\n'
  }
  await sql.begin(async tx => {
    const w = await tx`
      copy events (organization_id, id, type, payload, dedup_id, next_attempt_at, created_at, updated_at) from stdin`.writable()
    // 'finish' fires when postgres.js sees CommandComplete. postgres.js 3.4.9 never settles it when the
    // server rejects the data (porsager/postgres#1173), hence the watchdog.
    await new Promise<void>((resolve, reject) => {
      w.once('error', reject)
      w.once('finish', resolve)
      w.end(data)
    })
  })
}

/** (c) The writer's likely shape: claim dedup keys, then insert the events that own theirs or have none. */
async function insertCte (sql: Sql, rows: readonly Row[]): Promise<void> {
  const c = toColumns(rows)
  await sql.begin(async tx => {
    const r = await tx`
      with input as (
        select * from unnest(${c.orgs}::uuid[], ${c.ids}::uuid[], ${c.types}::text[], ${c.payloads}::text[],
                             ${c.dedupIds}::text[], ${c.nextAttemptAts}::timestamptz[], ${c.createdAts}::timestamptz[])
          as u(organization_id, id, type, payload, dedup_id, next_attempt_at, created_at)
      ), taken as (
        insert into dedup_keys (organization_id, dedup_id, event_id, expires_at)
        select organization_id, dedup_id, id, now() + interval '24 hours' from input where dedup_id is not null
        on conflict (organization_id, dedup_id) do update
          set event_id = excluded.event_id, expires_at = excluded.expires_at
          where dedup_keys.expires_at <= now()
        returning event_id
      )
      insert into events (organization_id, id, type, payload, dedup_id, status, next_attempt_at, created_at, updated_at)
      select i.organization_id, i.id, i.type, i.payload::json, i.dedup_id, 'pending', i.next_attempt_at, i.created_at, i.created_at
      from input i
      where i.dedup_id is null or i.id in (select event_id from taken)
      returning id`
    // Every dedup_id here is fresh, so every row must be inserted.
    if (r.length !== rows.length) throw new Error(`cte inserted ${r.length} of ${rows.length} rows`)
  })
}

const INSERT: Record<Method, (sql: Sql, rows: readonly Row[]) => Promise<void>> = {
  unnest: insertUnnest,
  copy: insertCopy,
  copyNoDelay: insertCopy,
  cte: insertCte,
}

/**
 * The client for (b'): createDb's options plus a socket with TCP_NODELAY. postgres.js supports a
 * `socket` factory (a connected socket, or a promise of one) but its typings do not declare it.
 * Only a benchmark calls postgres() outside src/db/client.ts, and only to show what that would change.
 */
function createNoDelayDb (url: URL, applicationName: string): Sql {
  const options: postgres.Options<Record<string, never>> & { socket: () => Promise<net.Socket> } = {
    max: 1,
    prepare: true,
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    connect_timeout: 3,
    onnotice: () => {},
    connection: { application_name: applicationName },
    types: {},
    socket: () => new Promise((resolve, reject) => {
      const s = net.connect({ host: url.hostname, port: Number(url.port || 5432), noDelay: true })
      s.once('connect', () => { s.off('error', reject); resolve(s) })
      s.once('error', reject)
    }),
  }
  return postgres(url.href, options) as unknown as Sql
}

// ---------------------------------------------------------------------------------------------
// Correctness check and probes (not timed)

/** Rows with awkward values; every method must store them exactly. */
function trickyRows (): Row[] {
  const now = new Date().toISOString()
  const payloads = [
    '{"s":"quote \\" backslash \\\\ tab \\t newline \\n","u":"\\u00e9 é 😀","n":null}',
    '{"a":[1,2,{"b":"}{,\\""}],"empty":""}',
    '[]',
    '"just a string"',
  ]
  return payloads.map((payload, i) => ({
    org: ORGS[0]!,
    id: uuidv7(),
    type: i === 1 ? 'type with\ttab and "quote"' : 'order.created',
    payload,
    dedupId: i % 2 === 0 ? `dk with \\ backslash, comma {brace} "quote" ${hex(8)}` : null,
    nextAttemptAt: i < 2 ? now : null,
    createdAt: now,
  }))
}

async function checkRoundTrip (sql: Sql): Promise<void> {
  for (const m of METHODS) {
    const rows = trickyRows()
    await INSERT[m](clientFor(m), rows)
    const back = await sql<{ id: string, type: string, payload: string, dedup_id: string | null, scheduled: boolean, status: string }[]>`
      select id::text, type, payload::text as payload, dedup_id, next_attempt_at is not null as scheduled, status
      from events where id = any(${rows.map(r => r.id)}::uuid[])`
    if (back.length !== rows.length) throw new Error(`${m}: read back ${back.length} of ${rows.length} rows`)
    for (const r of rows) {
      const b = back.find(x => x.id === r.id)
      if (b === undefined || b.type !== r.type || b.payload !== r.payload || b.dedup_id !== r.dedupId ||
          b.scheduled !== (r.nextAttemptAt !== null) || b.status !== 'pending') {
        throw new Error(`${m}: row ${r.id} did not round-trip: ${JSON.stringify({ sent: r, got: b })}`)
      }
    }
  }
}

/** Documents how postgres.js serializes a string array bound to a json[] cast. */
async function probeJsonArray (sql: Sql): Promise<Record<string, string>> {
  const p = ['{"a":1}']
  const [direct] = await sql<{ t: string }[]>`select json_typeof(x) as t from unnest(${p}::json[]) x`
  const [viaText] = await sql<{ t: string }[]>`select json_typeof(x) as t from unnest(${p}::text[]::json[]) x`
  return {
    'unnest(${strings}::json[])': `json_typeof = ${direct?.t ?? '?'}`,
    'unnest(${strings}::text[]::json[])': `json_typeof = ${viaText?.t ?? '?'}`,
  }
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface Cell {
  batchSize: number
  method: Method
  batches: number
  rows: number
  totalMs: number
  latencies: number[]
  roundRates: number[]
}

interface CellResult {
  batchSize: number
  method: Method
  batches: number
  rows: number
  rowsPerSec: number
  msPerBatch: { p50: number, p95: number, mean: number }
  roundRowsPerSec: { min: number, median: number, max: number }
  relativeToUnnest: number // rows/s of this method divided by rows/s of (a) at the same batch size
}

let lastProgress = performance.now()
let checkpointSkipped: string | null = null

function quantile (sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo)
}

/** Runs `method` for about `ms`, batch after batch; returns rows written and time spent. */
async function runSlice (method: Method, batchSize: number, ms: number, cell: Cell | null): Promise<void> {
  const fn = INSERT[method]
  const sql = clientFor(method)
  const end = performance.now() + ms
  let rows = 0
  let spent = 0
  while (performance.now() < end) {
    const batch = makeBatch(batchSize) // generation is common to all methods: not timed
    const t0 = performance.now()
    await fn(sql, batch)
    const dt = performance.now() - t0
    lastProgress = performance.now()
    spent += dt
    rows += batchSize
    if (cell !== null) cell.latencies.push(dt)
  }
  if (cell !== null) {
    cell.batches += rows / batchSize
    cell.rows += rows
    cell.totalMs += spent
    cell.roundRates.push(rows / (spent / 1000))
  }
}

async function runBatchSize (sql: Sql, batchSize: number): Promise<Cell[]> {
  // Same starting point for every batch size: empty tables, nothing dirty in shared buffers.
  await sql`truncate events, dedup_keys`
  // CHECKPOINT needs superuser or pg_checkpoint; without it the run is only a little noisier.
  await sql`checkpoint`.catch((err: unknown) => { checkpointSkipped = String(err) })
  for (const m of METHODS) await runSlice(m, batchSize, WARMUP_MS, null)

  const cells = new Map<Method, Cell>(METHODS.map(m =>
    [m, { batchSize, method: m, batches: 0, rows: 0, totalMs: 0, latencies: [], roundRates: [] }]))
  const sliceMs = MEASURE_MS / (ROUNDS * METHODS.length)
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < METHODS.length; k++) {
      const m = METHODS[(round + k) % METHODS.length]!
      await runSlice(m, batchSize, sliceMs, cells.get(m)!)
    }
  }

  // Everything measured (plus warm-up) must actually be in the table.
  const measured = [...cells.values()].reduce((acc, c) => acc + c.rows, 0)
  const [{ n } = { n: '0' }] = await sql<{ n: string }[]>`select count(*)::text as n from events`
  const expectedMin = measured + METHODS.length * batchSize // at least one warm-up batch per method
  if (Number(n) < expectedMin) throw new Error(`batch ${batchSize}: ${n} rows in events, expected at least ${expectedMin}`)
  return [...cells.values()]
}

function summarize (cells: readonly Cell[]): CellResult[] {
  const rate = (c: Cell): number => c.rows / (c.totalMs / 1000)
  return cells.map(c => {
    const sorted = [...c.latencies].sort((a, b) => a - b)
    const rounds = [...c.roundRates].sort((a, b) => a - b)
    const base = cells.find(x => x.batchSize === c.batchSize && x.method === 'unnest')!
    return {
      batchSize: c.batchSize,
      method: c.method,
      batches: c.batches,
      rows: c.rows,
      rowsPerSec: rate(c),
      msPerBatch: { p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), mean: c.totalMs / c.batches },
      roundRowsPerSec: { min: rounds[0]!, median: quantile(rounds, 0.5), max: rounds[rounds.length - 1]! },
      relativeToUnnest: rate(c) / rate(base),
    }
  })
}

function fmt (x: number, digits = 0): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function table (results: readonly CellResult[]): string {
  const head = ['batch', 'method', 'batches', 'rows/s', 'ms/batch p50', 'p95', 'mean', 'rows/s per round (min–max)', 'vs (a)']
  const body = results.map(r => [
    String(r.batchSize), METHOD_LABEL[r.method], fmt(r.batches), fmt(r.rowsPerSec),
    fmt(r.msPerBatch.p50, 3), fmt(r.msPerBatch.p95, 3), fmt(r.msPerBatch.mean, 3),
    `${fmt(r.roundRowsPerSec.min)}–${fmt(r.roundRowsPerSec.max)}`, `${fmt(r.relativeToUnnest, 2)}×`,
  ])
  const lines = [head, head.map(() => '---'), ...body]
  return lines.map(cols => `| ${cols.join(' | ')} |`).join('\n')
}

// ---------------------------------------------------------------------------------------------
// Main: scratch database lifecycle

const admin = createDb({ url: ADMIN_URL.href, max: 1, applicationName: 'bench-writer-admin' })
let bench: Sql | null = null
let benchNoDelay: Sql | null = null
let created = false

function clientFor (method: Method): Sql {
  const sql = method === 'copyNoDelay' ? benchNoDelay : bench
  if (sql === null) throw new Error('database clients not created')
  return sql
}
let cleaned: Promise<void> | null = null

function cleanup (): Promise<void> {
  cleaned ??= (async () => {
    if (bench !== null) await bench.end({ timeout: 1 }).catch(() => {})
    if (benchNoDelay !== null) await benchNoDelay.end({ timeout: 1 }).catch(() => {})
    if (created) await admin.unsafe(`drop database if exists ${SCRATCH_DB} with (force)`)
    await admin.end({ timeout: 1 })
  })()
  return cleaned
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: dropping ${SCRATCH_DB}`)
    void cleanup().finally(() => process.exit(130))
  })
}

const watchdog = setInterval(() => {
  if (performance.now() - lastProgress < STALL_MS) return
  console.error(`no batch finished for ${STALL_MS} ms: aborting and dropping ${SCRATCH_DB}`)
  void cleanup().finally(() => process.exit(1))
}, 1000)
watchdog.unref()

const started = performance.now()
try {
  await admin.unsafe(`create database ${SCRATCH_DB}`)
  created = true
  const url = new URL(ADMIN_URL.href)
  url.pathname = `/${SCRATCH_DB}`
  bench = createDb({ url: url.href, max: 1, applicationName: 'bench-writer' })
  benchNoDelay = createNoDelayDb(url, 'bench-writer-nodelay')
  await migrate(bench)

  const [server] = await bench<{ version: string }[]>`select version()`
  const settings = await bench<{ name: string, setting: string, unit: string | null }[]>`
    select name, setting, unit from pg_settings
    where name in ('server_version', 'synchronous_commit', 'fsync', 'wal_sync_method', 'shared_buffers',
                   'max_wal_size', 'wal_buffers', 'commit_delay', 'full_page_writes', 'wal_compression')
    order by name`
  const syncCommit = settings.find(s => s.name === 'synchronous_commit')?.setting
  if (syncCommit !== 'on') throw new Error(`synchronous_commit is ${syncCommit ?? '?'}; this benchmark needs it on`)

  await checkRoundTrip(bench)
  const probes = await probeJsonArray(bench)
  const pgjsVersion = (JSON.parse(await readFile(new URL('../../node_modules/postgres/package.json', import.meta.url), 'utf8')) as { version: string }).version
  const samplePayloadBytes = Array.from({ length: 1000 }, () => Buffer.byteLength(makePayload())).reduce((a, b) => a + b, 0) / 1000

  console.log(`scratch database ${SCRATCH_DB}; ${MEASURE_MS} ms measured per batch size, ${ROUNDS} rounds, ` +
    `payload ~${fmt(samplePayloadBytes)} bytes, postgres.js ${pgjsVersion}`)
  const cells: Cell[] = []
  for (const size of BATCH_SIZES) {
    lastProgress = performance.now()
    const t0 = performance.now()
    cells.push(...await runBatchSize(bench, size))
    console.log(`  batch ${size}: done in ${fmt((performance.now() - t0) / 1000, 1)} s`)
  }
  const results = summarize(cells)
  const totalS = (performance.now() - started) / 1000

  console.log()
  console.log(table(results))
  console.log(`\ntotal ${fmt(totalS, 1)} s`)

  const cpus = os.cpus()
  const date = new Date().toISOString().slice(0, 10)
  const out = {
    benchmark: 'writer: batch insert of events (unnest vs COPY vs unnest+dedup CTE)',
    date: new Date().toISOString(),
    machine: {
      cpu: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      totalMemoryBytes: os.totalmem(),
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
      postgres: server?.version ?? 'unknown',
      postgresSettings: Object.fromEntries(settings.map(s => [s.name, s.unit === null ? s.setting : `${s.setting} (${s.unit})`])),
      postgresJs: pgjsVersion,
    },
    config: {
      batchSizes: BATCH_SIZES,
      measureMsPerBatchSize: MEASURE_MS,
      rounds: ROUNDS,
      warmupMsPerMethod: WARMUP_MS,
      organizations: ORG_COUNT,
      dedupShare: DEDUP_SHARE,
      scheduledShare: SCHEDULED_SHARE,
      meanPayloadBytes: samplePayloadBytes,
      connection: 'one connection per client (createDb; a TCP_NODELAY copy of it for b\'), used one at a time; ' +
        'one transaction (sql.begin) per batch; synchronous_commit on',
    },
    probes,
    checkpointSkipped,
    totalSeconds: totalS,
    results,
  }
  await mkdir(RESULTS_DIR, { recursive: true })
  const file = `${RESULTS_DIR}writer-${date}.json`
  await writeFile(file, JSON.stringify(out, null, 2) + '\n')
  console.log(`results: ${file}`)
} catch (err) {
  process.exitCode = 1
  if (cleaned === null) console.error(err) // else a signal or the watchdog ended the clients under us
} finally {
  await cleanup()
}
