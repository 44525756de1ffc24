/**
 * The `triggers-api` command as an operator runs it: real child processes (`node --import tsx
 * src/cli.ts ...`) against a brand-new empty database created for this file. `migrate` applies the
 * sql/ files once and is a no-op the second time; `keygen` prints a key that then authenticates
 * against a service started on the same database; usage and configuration errors exit 2 with one
 * line naming the problem.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { fetch } from 'undici'
import { baseUrl } from '../helpers/db.ts'
import { createDb, type Sql } from '../../src/db/client.ts'
import { listMigrations } from '../../src/db/migrate.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/log.ts'
import { startService } from '../../src/service.ts'
import { freePort } from '../../src/lib/free-port.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

interface Run { readonly code: number | null, readonly signal: NodeJS.Signals | null, readonly stdout: string, readonly stderr: string }

/** Runs the CLI to completion with exactly `env` (plus PATH/HOME); fails the test after `timeoutMs`. */
function cli (args: readonly string[], env: Record<string, string>, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`triggers-api ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    child.once('error', err => { clearTimeout(timer); reject(err) })
    child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }) })
  })
}

function dbUrl (name: string): string {
  const u = new URL(baseUrl())
  u.pathname = '/' + name
  return u.toString()
}

function lines (s: string): string[] {
  return s.split('\n').filter(l => l !== '')
}

describe('triggers-api CLI', () => {
  const name = 'triggers_cli_' + randomBytes(6).toString('hex')
  let url: string
  let sql: Sql

  before(async () => {
    const admin = createDb({ url: baseUrl(), max: 1, applicationName: 'test-admin' })
    try { await admin.unsafe(`create database "${name}"`) } finally { await admin.end() }
    url = dbUrl(name)
    sql = createDb({ url, max: 1, applicationName: 'test' })
  })
  after(async () => {
    await sql?.end({ timeout: 5 })
    const admin = createDb({ url: baseUrl(), max: 1, applicationName: 'test-admin' })
    try { await admin.unsafe(`drop database if exists "${name}" with (force)`) } finally { await admin.end() }
  })

  test('migrate applies every migration to an empty database, then reports it up to date', async () => {
    const before = await sql<{ n: number }[]>`select count(*)::int as n from information_schema.tables where table_schema = 'public'`
    assert.equal(before[0]?.n, 0, 'the database starts empty')

    const versions = (await listMigrations()).map(m => m.version)
    assert.ok(versions.length >= 2)
    const first = await cli(['migrate'], { DATABASE_URL: url })
    assert.equal(first.code, 0, first.stderr)
    assert.deepEqual(lines(first.stdout), [`applied migrations ${versions.join(', ')}`])
    assert.equal(first.stderr, '')

    // The service's tables, without the attempt log's daily partitions (made a week ahead).
    const tables = await sql<{ table_name: string }[]>`
      select table_name from information_schema.tables
       where table_schema = 'public' and table_name !~ '^delivery_attempts_p[0-9]{8}$' order by table_name`
    assert.deepEqual(tables.map(t => t.table_name), ['attempt_partitions_cleared', 'dedup_keys', 'deliveries', 'delivery_attempts',
      'endpoints', 'events', 'ip_rate_windows', 'org_rate_windows', 'organizations', 'schema_migrations'])
    const partitions = await sql`select 1 from information_schema.tables where table_schema = 'public' and table_name ~ '^delivery_attempts_p[0-9]{8}$'`
    assert.ok(partitions.length >= 8, 'the attempt log has its partitions from yesterday to a week ahead')
    const recorded = await sql<{ version: number }[]>`select version from schema_migrations order by version`
    assert.deepEqual(recorded.map(r => r.version), versions)
    const brin = await sql`select 1 from pg_indexes where indexname = 'events_created_at_brin'`
    assert.equal(brin.length, 1, 'the early migrations ran')
    const traceparent = await sql`select 1 from information_schema.columns where table_name = 'events' and column_name = 'traceparent'`
    assert.equal(traceparent.length, 1, 'the last migration ran too')

    const again = await cli(['migrate'], { DATABASE_URL: url })
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(lines(again.stdout), ['schema is up to date'])
    const still = await sql<{ n: number }[]>`select count(*)::int as n from schema_migrations`
    assert.equal(still[0]?.n, versions.length)
  })

  test('keygen prints a key once, stores only its hash, and the key authenticates against a service', async t => {
    const r = await cli(['keygen', '--org', 'CLI Org', '--tier', 'pro'], { DATABASE_URL: url })
    assert.equal(r.code, 0, r.stderr)
    const out: unknown = JSON.parse(r.stdout)
    assert.ok(typeof out === 'object' && out !== null)
    const o = out as Record<string, unknown>
    assert.match(String(o.api_key), /^zap_live_[A-Za-z0-9_-]{55}$/)
    assert.match(String(o.organization_id), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    assert.equal(o.organization_name, 'CLI Org')
    assert.equal(o.tier, 'pro')
    assert.equal(o.rate_limit_per_minute, 1000)
    assert.match(String(o.created_at), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    const key = String(o.api_key)

    const [row] = await sql<{ key_hash: string, key_lookup: string }[]>`
      select key_hash, key_lookup from organizations where id = ${String(o.organization_id)}`
    assert.ok(row !== undefined)
    assert.match(row.key_hash, /^\$argon2id\$/)
    assert.equal(row.key_hash.includes(key.slice(9)), false, 'the stored hash is not the key')
    assert.ok(key.includes(row.key_lookup), 'the lookup part is part of the key')

    const port = await freePort()
    const config = loadConfig({ DATABASE_URL: url, PORT: String(port), HOST: '127.0.0.1', THREADS: '1', METRICS_PORT: '0', DELIVERY_ENABLED: 'false', LOG_LEVEL: 'silent' })
    const svc = await startService(config, createLogger(config.logLevel, 'primary'))
    t.after(() => svc.stop())
    const info = await fetch(`http://127.0.0.1:${svc.port}/api/keys`, { headers: { 'x-api-key': key, connection: 'close' } })
    assert.equal(info.status, 200)
    const body = await info.json() as Record<string, unknown>
    assert.equal(body.organization_id, o.organization_id)
    assert.equal(body.organization_name, 'CLI Org')
    assert.equal(body.tier, 'pro')
    assert.equal(info.headers.get('x-ratelimit-limit'), '1000')
    const ev = await fetch(`http://127.0.0.1:${svc.port}/api/events`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ type: 'cli.check', payload: {} }),
    })
    assert.equal(ev.status, 201)
    await ev.body?.cancel()
    const wrong = await fetch(`http://127.0.0.1:${svc.port}/api/keys`, { headers: { 'x-api-key': key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A'), connection: 'close' } })
    assert.equal(wrong.status, 401)
    await wrong.body?.cancel()
  })

  test('keygen refuses a bad tier or name with exit 1 and one line', async () => {
    const r = await cli(['keygen', '--org', 'X', '--tier', 'platinum'], { DATABASE_URL: url })
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '')
    assert.deepEqual(lines(r.stderr), ['triggers-api: --tier must be one of free, pro, business, enterprise'])
    const blank = await cli(['keygen', '--org', '   '], { DATABASE_URL: url })
    assert.equal(blank.code, 1)
    assert.deepEqual(lines(blank.stderr), ['triggers-api: --org must be 1-255 characters'])
    const count = await sql<{ n: number }[]>`select count(*)::int as n from organizations`
    assert.equal(count[0]?.n, 1, 'only the CLI Org of the previous test exists')
  })

  test('keygen without --org and an unknown command exit 2 with the usage line', async () => {
    const r = await cli(['keygen'], { DATABASE_URL: url })
    assert.equal(r.code, 2)
    assert.equal(r.stdout, '')
    assert.equal(lines(r.stderr).length, 1)
    assert.match(r.stderr, /^usage: triggers-api \[serve \| migrate \| keygen --org NAME/)
    const u = await cli(['frobnicate'], { DATABASE_URL: url })
    assert.equal(u.code, 2)
    assert.match(u.stderr, /^usage: triggers-api /)
  })

  test('serve with a bad configuration exits 2 with one line naming the variable, before listening', async () => {
    const port = await freePort()
    const r = await cli(['serve'], { DATABASE_URL: url, PORT: 'abc', METRICS_PORT: '0' })
    assert.equal(r.code, 2)
    assert.equal(r.stdout, '', 'nothing was logged: the service never started')
    const errs = lines(r.stderr)
    assert.equal(errs.length, 1, r.stderr)
    assert.match(errs[0]!, /PORT/)
    assert.match(errs[0]!, /abc/)
    // Every problem is reported at once, one line each.
    const two = await cli(['serve'], { DATABASE_URL: url, PORT: String(port), THREADS: '0', LOG_LEVEL: 'loud' })
    assert.equal(two.code, 2)
    const twoLines = lines(two.stderr)
    assert.equal(twoLines.length, 2, two.stderr)
    assert.ok(twoLines.some(l => l.includes('THREADS')))
    assert.ok(twoLines.some(l => l.includes('LOG_LEVEL')))
    // migrate reads the same configuration.
    const m = await cli(['migrate'], { DATABASE_URL: 'mysql://nope' })
    assert.equal(m.code, 2)
    assert.match(m.stderr, /DATABASE_URL/)
  })

  test('migrate against an unreachable database exits 1 with one line', async () => {
    const dead = await freePort()
    const r = await cli(['migrate'], { DATABASE_URL: `postgres://postgres@127.0.0.1:${dead}/postgres` })
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '')
    assert.equal(lines(r.stderr).length, 1, r.stderr)
    assert.match(r.stderr, /^triggers-api: /)
  })
})
