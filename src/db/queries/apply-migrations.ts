/**
 * The statements of the migration runner (db/migrate.ts), all inside its one transaction: the
 * transaction-scoped advisory lock that serializes runners on several nodes, the schema_migrations
 * table, the versions already applied, and one migration applied under a savepoint with its row
 * recorded first (a racing runner then fails on the primary key, SQLSTATE 23505, instead of applying
 * the file twice). The migration files themselves are plain SQL run as they are.
 */
import type { TransactionSql } from '../client.ts'

/** Released on commit, so it cannot leak from a pooled connection. */
export async function lockMigrations (tx: TransactionSql, key: number): Promise<void> {
  await tx`select pg_advisory_xact_lock(${key})`
}

export async function appliedMigrations (tx: TransactionSql): Promise<Set<number>> {
  await tx`create table if not exists schema_migrations (
    version integer primary key, name text not null, applied_at timestamptz not null default now())`
  return new Set((await tx<{ version: number }[]>`select version from schema_migrations`).map(r => r.version))
}

export async function applyMigration (tx: TransactionSql, version: number, name: string, text: string): Promise<void> {
  await tx.savepoint(async sp => {
    await sp`insert into schema_migrations (version, name) values (${version}, ${name})`
    await sp.unsafe(text)
  })
}
