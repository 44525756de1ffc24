/**
 * Applies the numbered, forward-only migrations in sql/ (STYLE C11). Safe when several nodes start at
 * once: a session advisory lock serializes runners, and each migration records its row first inside its
 * own transaction, so a racing runner that somehow got past the lock fails on the primary key
 * (SQLSTATE 23505) instead of applying the file twice. Runs on the primary thread (or the CLI).
 */
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import type { Sql } from './client.ts'
import { isUniqueViolation } from './errors.ts'

const MIGRATIONS_DIR = fileURLToPath(new URL('../../sql/', import.meta.url))
// Any constant works; it only has to be the same on every node ('trig' in ASCII).
const LOCK_KEY = 0x74726967

export interface Migration { readonly version: number, readonly name: string, readonly file: string }

export async function listMigrations (dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter(f => /^\d{4}_[\w-]+\.sql$/.test(f)).sort()
  return files.map(f => ({ version: Number(f.slice(0, 4)), name: f.slice(5, -4), file: path.join(dir, f) }))
}

/** Applies every migration not yet recorded; returns the versions it applied. */
export async function migrate (sql: Sql, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await listMigrations(dir)
  const applied: number[] = []
  await sql.begin(async tx => {
    // Transaction-scoped lock: released on commit, so it cannot leak from a pooled connection.
    await tx`select pg_advisory_xact_lock(${LOCK_KEY})`
    await tx`create table if not exists schema_migrations (
      version integer primary key, name text not null, applied_at timestamptz not null default now())`
    const done = new Set((await tx<{ version: number }[]>`select version from schema_migrations`).map(r => r.version))
    for (const m of migrations) {
      if (done.has(m.version)) continue
      const text = await readFile(m.file, 'utf8')
      try {
        await tx.savepoint(async sp => {
          await sp`insert into schema_migrations (version, name) values (${m.version}, ${m.name})`
          await sp.unsafe(text)
        })
      } catch (err) {
        if (isUniqueViolation(err)) continue
        throw err
      }
      applied.push(m.version)
    }
  })
  return applied
}
