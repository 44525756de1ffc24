/**
 * Applies the numbered, forward-only migrations in sql/ (STYLE C11). Safe when several nodes start at
 * once: a session advisory lock serializes runners, and each migration records its row first inside its
 * own transaction, so a racing runner that somehow got past the lock fails on the primary key
 * (SQLSTATE 23505) instead of applying the file twice. Runs on the primary thread (or the CLI).
 */
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { projectPath } from '../lib/project-root.ts'
import type { Sql } from './client.ts'
import { isUniqueViolation } from './errors.ts'
import { applyMigration, appliedMigrations, lockMigrations } from './queries/apply-migrations.ts'

const MIGRATIONS_DIR = projectPath('sql')
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
    await lockMigrations(tx, LOCK_KEY)
    const done = await appliedMigrations(tx)
    for (const m of migrations) {
      if (done.has(m.version)) continue
      const text = await readFile(m.file, 'utf8')
      try {
        await applyMigration(tx, m.version, m.name, text)
      } catch (err) {
        if (isUniqueViolation(err)) continue
        throw err
      }
      applied.push(m.version)
    }
  })
  return applied
}
