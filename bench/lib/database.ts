/**
 * The benchmark's database: a fresh scratch database `bench_<timestamp>_<random>` on the server in
 * DATABASE_URL, or, when DATABASE_URL is unset, on an embedded PostgreSQL started under a temporary
 * directory. Migrated with the service's own migrations; dropped (and the embedded server stopped and
 * its directory removed) by close(), which the harness calls on success, failure and Ctrl-C alike.
 * Refuses to run when fsync or synchronous_commit is off: durability is not a tuning knob.
 */
import os from 'node:os'
import path from 'node:path'
import { mkdtemp, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { createDb, type Sql } from '../../src/db/client.ts'
import { migrate } from '../../src/db/migrate.ts'
import { startEmbedded, type EmbeddedDb } from '../../src/db/embedded.ts'
import { progress } from './progress.ts'

export interface BenchDatabase {
  /** URL of the scratch database (what the service and the baselines get as DATABASE_URL). */
  readonly url: string
  readonly name: string
  readonly embedded: boolean
  /** A small pool on the scratch database, for counting rows and reading settings. */
  readonly sql: Sql
  readonly serverVersion: string
  readonly settings: Record<string, string>
  close (): Promise<void>
}

function stamp (): string {
  const d = new Date()
  const p = (n: number): string => n.toString().padStart(2, '0')
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}_${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`
}

export async function openBenchDatabase (): Promise<BenchDatabase> {
  let embedded: EmbeddedDb | null = null
  let tmpDir: string | null = null
  let baseUrl = process.env.DATABASE_URL
  if (baseUrl === undefined || baseUrl === '') {
    tmpDir = await mkdtemp(path.join(os.tmpdir(), 'triggers-bench-pg-'))
    progress(`DATABASE_URL is unset: starting an embedded PostgreSQL under ${tmpDir}`)
    // The bench handles SIGINT/SIGTERM itself (stop the service, drop the database, then stop the
    // cluster): without this option the library would stop the cluster and exit at the first signal.
    embedded = await startEmbedded(tmpDir, () => {}, { callerHandlesSignals: true })
    baseUrl = embedded.url
  }
  const name = `bench_${stamp()}_${randomBytes(2).toString('hex')}`
  const admin = createDb({ url: baseUrl, max: 1, applicationName: 'bench-admin' })
  let sql: Sql | null = null
  let created = false
  let closed: Promise<void> | null = null
  const close = (): Promise<void> => {
    closed ??= (async () => {
      if (sql !== null) await sql.end({ timeout: 2 }).catch(() => {})
      if (created) {
        await admin.unsafe(`drop database if exists ${name} with (force)`).then(
          () => { progress(`dropped scratch database ${name}`) },
          (err: unknown) => { progress(`could not drop ${name}: ${String(err)}`) })
      }
      await admin.end({ timeout: 2 }).catch(() => {})
      if (embedded !== null) await embedded.stop().catch((err: unknown) => { progress(`embedded PostgreSQL stop: ${String(err)}`) })
      if (tmpDir !== null) await rm(tmpDir, { recursive: true, force: true }).catch(() => {})
    })()
    return closed
  }
  try {
    await admin.unsafe(`create database ${name}`)
    created = true
    const u = new URL(baseUrl)
    u.pathname = `/${name}`
    const url = u.href
    sql = createDb({ url, max: 2, applicationName: 'bench' })
    await migrate(sql)
    const [v] = await sql<{ version: string }[]>`select version()`
    const rows = await sql<{ name: string, setting: string, unit: string | null }[]>`
      select name, setting, unit from pg_settings
      where name in ('server_version', 'fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
                     'shared_buffers', 'max_connections', 'max_wal_size', 'commit_delay')
      order by name`
    const settings = Object.fromEntries(rows.map(r => [r.name, r.unit === null ? r.setting : `${r.setting} (${r.unit})`]))
    if (settings.fsync !== 'on' || settings.synchronous_commit !== 'on') {
      throw new Error(`fsync is ${settings.fsync ?? '?'} and synchronous_commit is ${settings.synchronous_commit ?? '?'}: ` +
        'the benchmark measures durable writes and needs both on')
    }
    progress(`scratch database ${name} migrated (${embedded === null ? 'DATABASE_URL' : 'embedded'}; ${settings.server_version ?? ''})`)
    return { url, name, embedded: embedded !== null, sql, serverVersion: v?.version ?? 'unknown', settings, close }
  } catch (err) {
    await close()
    throw err
  }
}
