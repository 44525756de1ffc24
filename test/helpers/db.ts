/**
 * One database per test file (STYLE C14), cloned from a migrated template. The template's name carries
 * a hash of sql/, so a changed migration makes a new template instead of reusing a stale one; creation
 * is serialized with an advisory lock so parallel test files do not race. DATABASE_URL must point at a
 * server where we may create databases (`npm test` starts an embedded one when it is unset).
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createDb, type Sql } from '../../src/db/client.ts'
import { listMigrations, migrate } from '../../src/db/migrate.ts'

export function baseUrl (): string {
  const url = process.env.DATABASE_URL
  if (url === undefined || url === '') throw new Error('DATABASE_URL is not set: run the tests with `npm test`, which provides one')
  return url
}

function withDatabase (url: string, name: string): string {
  const u = new URL(url)
  u.pathname = '/' + name
  return u.toString()
}

async function templateName (): Promise<string> {
  const h = createHash('sha256')
  for (const m of await listMigrations()) h.update(await readFile(m.file))
  return 'triggers_tpl_' + h.digest('hex').slice(0, 12)
}

async function ensureTemplate (admin: Sql, name: string): Promise<void> {
  await admin`select pg_advisory_lock(7465737)`
  try {
    const [row] = await admin`select 1 from pg_database where datname = ${name}`
    if (row !== undefined) return
    await admin.unsafe(`create database "${name}_building"`).catch(() => undefined)
    await admin.unsafe(`drop database if exists "${name}_building"`)
    await admin.unsafe(`create database "${name}_building"`)
    const tpl = createDb({ url: withDatabase(baseUrl(), `${name}_building`), max: 1, applicationName: 'test-template' })
    try { await migrate(tpl) } finally { await tpl.end() }
    await admin.unsafe(`alter database "${name}_building" rename to "${name}"`)
  } finally {
    await admin`select pg_advisory_unlock(7465737)`
  }
}

export interface TestDatabase {
  readonly url: string
  readonly name: string
  readonly sql: Sql
  drop (): Promise<void>
}

/** Creates a fresh migrated database for one test file (`migrated` false: an empty one); call `drop` in `after`. */
export async function createTestDatabase (migrated = true): Promise<TestDatabase> {
  const admin = createDb({ url: baseUrl(), max: 1, applicationName: 'test-admin' })
  try {
    const tpl = migrated ? await templateName() : 'template0'
    if (migrated) await ensureTemplate(admin, tpl)
    const name = 'triggers_t_' + randomBytes(6).toString('hex')
    await admin.unsafe(`create database "${name}" template "${tpl}"`)
    const url = withDatabase(baseUrl(), name)
    const sql = createDb({ url, max: 4, applicationName: 'test' })
    return {
      url,
      name,
      sql,
      async drop () {
        await sql.end({ timeout: 5 })
        const a = createDb({ url: baseUrl(), max: 1, applicationName: 'test-admin' })
        try { await a.unsafe(`drop database if exists "${name}" with (force)`) } finally { await a.end() }
      },
    }
  } finally {
    await admin.end()
  }
}

/** Polls `check` until it returns a truthy value (no fixed sleeps); fails after `timeoutMs`. */
export async function waitFor<T> (check: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== null && v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}
