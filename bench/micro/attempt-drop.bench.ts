/**
 * What dropping an attempt-log partition costs the delivery threads' writes (db/queries/attempt-partitions.ts).
 *
 * DROP TABLE of a partition takes an ACCESS EXCLUSIVE lock on delivery_attempts itself. Writers keep
 * inserting result batches (4 loops, 100 rows per transaction, into today's partition) while:
 *   A  nothing else happens (baseline);
 *   B  ten expired partitions (20,000 rows each) are dropped one after the other, lock_timeout 100 ms;
 *   C  a reader holds the log for 1 s (an open transaction that read it) and a drop waits for its lock:
 *      C1 with lock_timeout 100 ms (what retention does), C2 without (what it must not do).
 * Printed: per phase, the insert-batch latency p50 / p99 / max, and each drop's time.
 *
 * Self-contained: makes a scratch database on the server at DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres), migrates it, runs (~15 s), drops it.
 *   node --import tsx bench/micro/attempt-drop.bench.ts
 */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { createDb, type Sql } from '../../src/db/client.ts'
import { migrate } from '../../src/db/migrate.ts'
import { uuidv7 } from '../../src/lib/uuid.ts'
import { dropAttemptPartition, isLockTimeout } from '../../src/db/queries/attempt-partitions.ts'

const BASE = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const DAY = 86_400_000
const WRITERS = 4
const BATCH = 100

function dbUrl (name: string): string {
  const u = new URL(BASE)
  u.pathname = '/' + name
  return u.toString()
}

function pct (xs: number[], p: number): number {
  const v = [...xs].sort((a, b) => a - b)
  return v[Math.min(v.length - 1, Math.floor(p * v.length))] ?? 0
}

const fmt = (ms: number): string => ms.toFixed(1).padStart(7)

async function partition (sql: Sql, daysAgo: number): Promise<string> {
  const d = new Date(Math.floor(Date.now() / DAY) * DAY - daysAgo * DAY)
  const name = 'delivery_attempts_p' + d.toISOString().slice(0, 10).replaceAll('-', '')
  await sql.unsafe(`create table if not exists ${name} partition of delivery_attempts for values from ('${d.toISOString()}') to ('${new Date(d.getTime() + DAY).toISOString()}')`)
  return name
}

async function fill (sql: Sql, daysAgo: number, rows: number): Promise<void> {
  await sql`
    insert into delivery_attempts (organization_id, id, event_id, endpoint_id, attempt_number, trigger, url, event_type,
                                   started_at, duration_ms, outcome, response_status, response_headers, response_body)
    select gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 1, 'initial', 'https://example.com/hook', 'bench',
           now() - make_interval(days => ${daysAgo}) + g * interval '1 ms', 80, 'success', 200, '{"content-type":"text/plain"}', repeat('x', 200)
      from generate_series(1, ${rows}) g`
}

/** Writer loops: one transaction of BATCH rows at a time, as a delivery thread's result flush. */
function startWriters (sql: Sql, latencies: { now: number[] }): { stop: () => Promise<void> } {
  let running = true
  const org = uuidv7()
  const loops = Array.from({ length: WRITERS }, async () => {
    while (running) {
      const ids = Array.from({ length: BATCH }, () => uuidv7())
      const t = performance.now()
      await sql.begin(tx => [tx`
        insert into delivery_attempts (organization_id, id, event_id, endpoint_id, attempt_number, trigger, url, event_type,
                                       started_at, duration_ms, outcome)
        select ${org}::uuid, x, x, x, 1, 'initial', 'https://example.com/hook', 'bench', now(), 50, 'success'
          from unnest(${tx.array(ids)}::uuid[]) as x`])
      latencies.now.push(performance.now() - t)
    }
  })
  return { stop: async () => { running = false; await Promise.all(loops) } }
}

async function main (): Promise<void> {
  const name = 'bench_attempt_drop_' + randomBytes(4).toString('hex')
  const admin = createDb({ url: BASE, max: 1, applicationName: 'bench-admin' })
  await admin.unsafe(`create database ${name}`)
  const sql = createDb({ url: dbUrl(name), max: WRITERS + 3, applicationName: 'bench' })
  try {
    await migrate(sql)
    await sql`select 1`
    const old: string[] = []
    for (let d = 45; d > 35; d--) { old.push(await partition(sql, d)); await fill(sql, d, 20_000) }
    await sql`analyze delivery_attempts`
    const lat = { now: [] as number[] }
    const w = startWriters(sql, lat)
    const phase = async (label: string, run: () => Promise<string>): Promise<void> => {
      lat.now = []
      const note = await run()
      const xs = lat.now
      process.stdout.write(`${label.padEnd(44)} batches ${String(xs.length).padStart(5)}  p50 ${fmt(pct(xs, 0.5))}  p99 ${fmt(pct(xs, 0.99))}  max ${fmt(Math.max(...xs))} ms  ${note}\n`)
    }
    await phase('A  writers only (3 s)', async () => { await new Promise(resolve => setTimeout(resolve, 3000)); return '' })
    await phase('B  10 drops, lock_timeout 100 ms', async () => {
      const times: number[] = []
      for (const p of old) {
        const t = performance.now()
        if (!await dropAttemptPartition(sql, p, 100)) throw new Error(`drop of ${p} timed out`)
        times.push(performance.now() - t)
        await new Promise(resolve => setTimeout(resolve, 200))
      }
      return `drops: p50 ${pct(times, 0.5).toFixed(1)} max ${Math.max(...times).toFixed(1)} ms`
    })
    const heldDrop = async (lockTimeoutMs: number | null): Promise<string> => {
      const victim = await partition(sql, 50)
      const reader = await sql.reserve()
      await reader`begin`
      await reader`select count(*) from delivery_attempts where started_at > now() - interval '1 minute'`
      const release = new Promise<void>(resolve => setTimeout(resolve, 1000)).then(async () => { await reader`commit`; reader.release() })
      const t = performance.now()
      let outcome: string
      if (lockTimeoutMs === null) {
        await sql.unsafe(`drop table ${victim}`)
        outcome = 'dropped after the reader'
      } else {
        try {
          outcome = await dropAttemptPartition(sql, victim, lockTimeoutMs) ? 'dropped' : 'gave up (lock timeout)'
        } catch (err) { outcome = isLockTimeout(err) ? 'gave up' : String(err) }
      }
      const waited = performance.now() - t
      await release
      await sql.unsafe(`drop table if exists ${victim}`)
      return `drop ${outcome} after ${waited.toFixed(0)} ms`
    }
    await phase('C1 reader holds 1 s, lock_timeout 100 ms', async () => await heldDrop(100))
    await phase('C2 reader holds 1 s, no lock_timeout', async () => await heldDrop(null))
    await w.stop()
    const [v] = await sql<{ v: string }[]>`select current_setting('server_version') as v`
    process.stdout.write(`PostgreSQL ${v?.v}, ${WRITERS} writers x ${BATCH} rows per transaction, ${new Date().toISOString().slice(0, 10)}\n`)
  } finally {
    await sql.end()
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end()
  }
}

await main()
