/**
 * Closed-loop ingest runs (scenario 1 single events, 11 batches of 100, and their use in 7, 9 and 13):
 * a warm-up, the measured autocannon run with the load meter, then the rows stored under the run's
 * dedup_id prefix are counted. Fewer rows than events in 2xx answers is DATA LOSS.
 */
import { runIngest, type IngestResult } from '../load/ingest.ts'
import type { RunLoad } from '../lib/meter.ts'
import { describeLoad } from '../lib/meter.ts'
import { fmt, progress, sleep } from '../lib/progress.ts'
import type { Org } from '../lib/api.ts'
import { meter, type Bench, type Target } from './context.ts'

export const CONNECTIONS = 64
export const BATCH_EVENTS = 100

export interface IngestScenario {
  readonly run: IngestResult
  /** Rows stored under the run's prefix (null: no database behind the server). */
  readonly stored: number | null
  readonly dataLoss: boolean
  /** Cores the server process used during the measured run (all threads). */
  readonly serverCpu: number | null
  readonly load: RunLoad
}

export interface IngestOptions {
  /** Scenario number for progress lines and the dedup_id prefix. */
  readonly tag: string
  /** 0: single events; N: batches of N. */
  readonly batch: number
  /** Where the server stores events (null: nowhere). */
  readonly table: 'events' | 'ceiling_events' | null
  /** Other processes to meter besides the server. */
  readonly procs?: Record<string, number>
  /** Called just before and just after the measured run (e.g. to read the receiver's count). */
  readonly before?: () => Promise<void>
  readonly after?: () => Promise<void>
}

export async function countStored (b: Bench, table: 'events' | 'ceiling_events', prefix: string): Promise<number> {
  const [r] = await b.db.sql<{ n: string }[]>`select count(*)::text as n from ${b.db.sql(table)} where starts_with(dedup_id, ${prefix})`
  return Number(r?.n ?? 0)
}

export async function ingest (b: Bench, label: string, server: Target, orgs: readonly Org[], o: IngestOptions): Promise<IngestScenario> {
  const keys = orgs.map(x => x.key)
  const what = o.batch > 0 ? `batches of ${o.batch}` : 'single events'
  progress(`scenario ${o.tag} · ${label}: warm-up ${b.D.ingestWarmS} s (${what})`)
  await runIngest({ label: `${label} warm-up`, port: server.port, connections: CONNECTIONS, durationS: b.D.ingestWarmS, workers: b.acWorkers, keys, payloads: b.payloads, prefix: `${b.runId}-w${o.tag}-${label}-`, batch: o.batch, quiet: true })
  progress(`scenario ${o.tag} · ${label}: measuring ${b.D.ingestS} s, ${CONNECTIONS} connections, ${what}, autocannon workers ${b.acWorkers}`)
  const prefix = `${b.runId}-s${o.tag}-${label}-`
  await o.before?.()
  const m = await meter(b, { server: server.pid, ...o.procs })
  const run = await runIngest({ label, port: server.port, connections: CONNECTIONS, durationS: b.D.ingestS, workers: b.acWorkers, keys, payloads: b.payloads, prefix, batch: o.batch })
  const load = await m.stop()
  await o.after?.()
  let stored: number | null = null
  if (o.table !== null) {
    await sleep(500) // the last batches in flight when autocannon stopped
    stored = await countStored(b, o.table, prefix)
  }
  const dataLoss = stored !== null && stored < run.events
  const unit = o.batch > 0 ? `events/s (${fmt(run.reqPerSec)} batches/s)` : '201/s'
  progress(`scenario ${o.tag} · ${label}: ${fmt(run.eventsPerSec)} ${unit}; ${fmt(run.events)} events in 2xx, ${fmt(run.non2xx)} non-2xx, ${run.errors} errors` +
    `${stored === null ? '' : `; ${fmt(stored)} rows stored`}${dataLoss ? ' — DATA LOSS' : ''}`)
  progress(`  ${describeLoad(load)}`)
  return { run, stored, dataLoss, serverCpu: load.cpuCores.server ?? null, load }
}

/** --calibrate: autocannon with 0, 1 and 2 worker threads against a no-database server; the best count. */
export async function calibrate (b: Bench, port: number, orgs: readonly Org[]): Promise<{ workers: number, reqPerSec: number }[]> {
  const out: { workers: number, reqPerSec: number }[] = []
  for (const w of [0, 1, 2]) {
    const r = await runIngest({ label: `calibrate workers=${w}`, port, connections: CONNECTIONS, durationS: 6, workers: w, keys: orgs.map(o => o.key), payloads: b.payloads, prefix: `${b.runId}-cal${w}-` })
    out.push({ workers: w, reqPerSec: r.reqPerSec })
    progress(`calibration: autocannon workers=${w}: ${fmt(r.reqPerSec)} req/s against bare uWS`)
  }
  return out
}
