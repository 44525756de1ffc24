/**
 * Micro-benchmark: what one stored event costs PostgreSQL, by statement and by index. Scenario 11
 * showed the service's batch ingest spending ~3 × the durable ceiling's PostgreSQL CPU per event
 * (bench/README.md, "Where the time goes"); this splits that figure. Each variant inserts BATCH events
 * per statement, one statement at a time on one connection, synchronous_commit on, and reports per
 * event: the backend's CPU (utime + stime of its process, read from /proc — so the server must run on
 * this machine), the WAL written (pg_current_wal_lsn before and after) and the wall time.
 *
 *   ceiling          the durable ceiling's statement: unnest into a one-table schema (uuid primary key)
 *   service          db/queries/insert-events.ts as the service runs it, every event with a dedup_id
 *                    (as in the bench's load), no endpoint
 *   service, no dedup_id   the same statement, events without dedup_id (no dedup_keys row)
 *   − inbox index    "service" with events_inbox_open dropped (attribution only: the inbox needs it)
 *   − brin indexes   "service" with the two BRIN indexes dropped (attribution only: retention uses them)
 *
 * Variants take turns in ROUNDS rounds; each round starts from a CHECKPOINT so full-page images hit
 * every variant alike. Self-contained: scratch database on DATABASE_URL's server (default
 * postgres://postgres@127.0.0.1:5432/postgres), migrated with the service's migrations, dropped at
 * the end. Prints a table and writes bench/micro/results/event-cost-<YYYY-MM-DD>.json.
 *
 *   node --import tsx bench/micro/event-cost.bench.ts
 */
import os from 'node:os'
import { mkdir, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { randomBytes, randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { createDb, type Sql } from '../../src/db/client.ts'
import { migrate } from '../../src/db/migrate.ts'
import { insertEvents } from '../../src/db/queries/insert-events.ts'
import { uuidv7 } from '../../src/lib/uuid.ts'
import { makePayloads } from '../load/payload.ts'
import { readCpuSeconds } from '../lib/child.ts'

const BATCH = 500
const STATEMENTS = Number(process.env.BENCH_STATEMENTS ?? 40) // per variant and round
const ROUNDS = 3
const ORGS = Array.from({ length: 8 }, () => randomUUID())
const ADMIN_URL = (() => {
  const u = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres')
  u.pathname = '/postgres'
  return u
})()
const SCRATCH = `bench_event_cost_${randomBytes(4).toString('hex')}`
const PAYLOADS = makePayloads()

interface Variant { readonly name: string, readonly schema: string, readonly dedup: boolean, readonly ceiling: boolean, readonly drop: string[] }
// `drop`: LIKE patterns on pg_indexes.indexdef of the variant's copies of events and dedup_keys.
const VARIANTS: Variant[] = [
  { name: 'ceiling', schema: 'public', dedup: true, ceiling: true, drop: [] },
  { name: 'service', schema: 'public', dedup: true, ceiling: false, drop: [] },
  { name: 'service, no dedup_id', schema: 'public', dedup: false, ceiling: false, drop: [] },
  { name: '− inbox index', schema: 'no_inbox', dedup: true, ceiling: false, drop: ['%WHERE (status <> %'] },
  { name: '− brin indexes', schema: 'no_brin', dedup: true, ceiling: false, drop: ['%USING brin%'] },
]

let seq = 0
function batch (dedup: boolean): { orgs: string[], ids: string[], types: string[], payloads: string[], dedups: (string | null)[] } {
  const b = { orgs: [] as string[], ids: [] as string[], types: [] as string[], payloads: [] as string[], dedups: [] as (string | null)[] }
  for (let i = 0; i < BATCH; i++) {
    seq++
    b.orgs.push(ORGS[seq % ORGS.length]!)
    b.ids.push(uuidv7())
    b.types.push('order.created')
    b.payloads.push(PAYLOADS[seq % PAYLOADS.length]!)
    b.dedups.push(dedup ? `ec-${seq}` : null)
  }
  return b
}

async function cpuSeconds (pid: number): Promise<number> {
  const s = await readCpuSeconds(pid)
  if (s === null) throw new Error(`cannot read /proc/${pid}/stat: the server must run on this machine`)
  return s
}

async function lsn (sql: Sql): Promise<bigint> {
  const [r] = await sql<{ b: string }[]>`select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint::text as b`
  return BigInt(r!.b)
}

async function main (): Promise<void> {
  const admin = createDb({ url: ADMIN_URL.href, max: 1, applicationName: 'bench-event-cost' })
  await admin.unsafe(`create database ${SCRATCH}`)
  const u = new URL(ADMIN_URL.href)
  u.pathname = `/${SCRATCH}`
  const sql = createDb({ url: u.href, max: 1, applicationName: 'bench-event-cost' })
  try {
    await migrate(sql)
    await sql`create table ceiling_events (id uuid primary key, type text not null, payload json not null, dedup_id text, created_at timestamptz not null)`
    // Attribution schemas: copies of the two tables (indexes included) minus the named indexes, found
    // first on search_path so the service's own statement writes into them.
    for (const v of VARIANTS.filter(v => v.schema !== 'public')) {
      await sql.unsafe(`create schema ${v.schema}`)
      for (const t of ['events', 'dedup_keys']) await sql.unsafe(`create table ${v.schema}.${t} (like public.${t} including all)`)
      for (const pattern of v.drop) {
        const found = await sql<{ n: string }[]>`select indexname as n from pg_indexes where schemaname = ${v.schema} and indexdef like ${pattern}`
        if (found.length === 0) throw new Error(`${v.name}: no index matches ${pattern}`)
        for (const r of found) await sql.unsafe(`drop index ${v.schema}.${r.n}`)
      }
    }
    const [pidRow] = await sql<{ pid: number, version: string }[]>`select pg_backend_pid() as pid, current_setting('server_version') as version`
    const pid = pidRow!.pid
    const totals = new Map(VARIANTS.map(v => [v.name, { cpuSeconds: 0, walBytes: 0n, ms: 0, events: 0 }]))
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of VARIANTS) {
        await sql.unsafe(`set search_path = ${v.schema === 'public' ? 'public' : `${v.schema}, public`}`)
        await sql`checkpoint`.catch(() => {})
        const t = totals.get(v.name)!
        const c0 = await cpuSeconds(pid)
        const w0 = await lsn(sql)
        const s0 = performance.now()
        for (let i = 0; i < STATEMENTS; i++) {
          const b = batch(v.dedup)
          const now = new Date()
          if (v.ceiling) {
            await sql`insert into ceiling_events (id, type, payload, dedup_id, created_at)
                      select id, type, payload::json, dedup_id, ${now}::timestamptz
                        from unnest(${b.ids}::uuid[], ${b.types}::text[], ${b.payloads}::text[], ${b.dedups}::text[]) as t(id, type, payload, dedup_id)`
          } else {
            const r = await insertEvents(sql, { organizationIds: b.orgs, ids: b.ids, types: b.types, payloads: b.payloads, dedupIds: b.dedups, traceparents: null }, now, 86_400)
            if (r.inserted.size !== BATCH) throw new Error(`${v.name}: ${r.inserted.size} of ${BATCH} stored`)
          }
        }
        t.ms += performance.now() - s0
        t.walBytes += (await lsn(sql)) - w0
        t.cpuSeconds += (await cpuSeconds(pid)) - c0
        t.events += STATEMENTS * BATCH
      }
    }
    const rows = VARIANTS.map(v => {
      const t = totals.get(v.name)!
      return {
        variant: v.name,
        backendCpuUsPerEvent: Math.round(t.cpuSeconds * 1e6 / t.events * 10) / 10,
        walBytesPerEvent: Math.round(Number(t.walBytes) / t.events),
        wallUsPerEvent: Math.round(t.ms * 1000 / t.events * 10) / 10,
      }
    })
    console.log(`PostgreSQL ${pidRow!.version}, ${BATCH} events a statement, ${STATEMENTS} statements × ${ROUNDS} rounds per variant\n`)
    console.log('| variant | backend CPU µs/event | WAL bytes/event | wall µs/event |\n| --- | --- | --- | --- |')
    for (const r of rows) console.log(`| ${r.variant} | ${r.backendCpuUsPerEvent} | ${r.walBytesPerEvent} | ${r.wallUsPerEvent} |`)
    const dir = fileURLToPath(new URL('./results/', import.meta.url))
    await mkdir(dir, { recursive: true })
    const file = `${dir}event-cost-${new Date().toISOString().slice(0, 10)}.json`
    await writeFile(file, JSON.stringify({
      date: new Date().toISOString(), machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, load: os.loadavg() },
      postgres: pidRow!.version, batch: BATCH, statements: STATEMENTS, rounds: ROUNDS, results: rows,
    }, null, 2) + '\n')
    console.log(`\nwritten ${file}`)
  } finally {
    await sql.end({ timeout: 2 })
    await admin.unsafe(`drop database if exists ${SCRATCH} with (force)`).catch(() => {})
    await admin.end({ timeout: 2 })
  }
}

await main()
