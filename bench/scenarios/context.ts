/** What every scenario gets from the harness (bench/run.ts): the run's identity, durations, payloads, database. */
import type { BenchDatabase } from '../lib/database.ts'
import { Meter, type RunLoad, type Watched } from '../lib/meter.ts'

export interface Durations {
  readonly ingestS: number
  readonly ingestWarmS: number
  readonly latencyMs: number
  readonly latencyWarmMs: number
  readonly deliveryMs: number
  readonly deliveryWarmMs: number
  /** Scenario 3, cold: measured right after a fresh start. */
  readonly coldDeliveryMs: number
  /** Scenario 10: one step of the rising ingest rate. */
  readonly mixedStepMs: number
}

export interface Bench {
  readonly runId: string
  readonly D: Durations
  readonly payloads: readonly string[]
  readonly db: BenchDatabase
  /** autocannon worker threads (may change after --calibrate). */
  acWorkers: number
}

/** What a scenario runs against: a port, and the pid whose CPU and memory are read. */
export interface Target { readonly port: number, readonly pid: number }

/**
 * Starts a load meter over the given processes plus the bench itself (the load generators) and the
 * PostgreSQL processes serving the scratch database (backends, WAL writer, checkpointer, bgwriter).
 */
export async function meter (b: Bench, procs: Record<string, number>): Promise<Meter> {
  const watched: Watched = { ...procs, bench: process.pid, postgres: async () => await postgresPids(b.db) }
  return await Meter.start(watched)
}

async function postgresPids (db: BenchDatabase): Promise<number[]> {
  const rows = await db.sql<{ pid: number }[]>`
    select pid from pg_stat_activity
     where datname = current_database() or backend_type in ('walwriter', 'checkpointer', 'background writer')`
  return rows.map(r => r.pid)
}

/** Runs `fn` under a meter; returns its result and the run's load. */
export async function metered<T> (b: Bench, procs: Record<string, number>, fn: () => Promise<T>): Promise<{ value: T, load: RunLoad }> {
  const m = await meter(b, procs)
  const value = await fn()
  return { value, load: await m.stop() }
}
