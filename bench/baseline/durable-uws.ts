/**
 * The durable ceiling (scenarios 1, 2, 11 and 7): what ingest can reach on this machine when every
 * event is written durably and nothing else is done. A bare uWS server (the native binary the service
 * loads, through src/http/uws.ts), THREADS listener threads on one port (SO_REUSEPORT) like the
 * service, each with a postgres.js pool and a group-commit writer: accepted events queue; a flush
 * writes everything queued (up to 512 events, never splitting one request's events) in ONE
 * `insert … select … from unnest(…)` statement into a one-table schema, at most 2 statements in flight
 * per thread (the service's WRITER_MAX_BATCH, WRITER_MAX_IN_FLIGHT and DB_POOL_SIZE defaults), and each
 * request is answered only after its statement committed. fsync and synchronous_commit stay on (the
 * bench refuses to run otherwise). No authentication, rate limiting, deduplication or validation
 * beyond what building the row needs; ids are UUIDv7 like the service's (src/lib/uuid.ts).
 *
 *   POST /api/events         {"type","payload","dedup_id"?}          → 201 {"id","type","dedup_id","status","created_at"}
 *   POST /api/events/batch   {"events":[{type, payload|data, dedup_id?}, …]} → 200 {"created","duplicates","invalid","results":[…]}
 *   GET /health              → 200
 *
 *   DATABASE_URL=postgres://… PORT=8083 THREADS=2 node --import tsx bench/baseline/durable-uws.ts
 *
 * The table, `ceiling_events (id uuid primary key, type text, payload json, dedup_id text,
 * created_at timestamptz)`, is created if missing. SIGTERM/SIGINT: each thread closes its listen
 * socket, waits for its writes, closes its pool; the process exits when the last connection closed.
 */
import os from 'node:os'
import { createDb, type Sql } from '../../src/db/client.ts'
import { isMainThread, workerData } from 'node:worker_threads'
import { serveThread, startListenerThreads } from './listener-threads.ts'
import { uws, type HttpResponse } from '../../src/http/uws.ts'
import { uuidv7 } from '../../src/lib/uuid.ts'

const port = Number(process.env.PORT ?? 8083)
const threads = Number(process.env.THREADS ?? os.availableParallelism())
const databaseUrl = process.env.DATABASE_URL
if (databaseUrl === undefined) throw new Error('DATABASE_URL is required')

const MAX_BATCH = 512
const MAX_IN_FLIGHT = 2
const POOL = 4
const TABLE = `create table if not exists ceiling_events (
  id uuid primary key, type text not null, payload json not null, dedup_id text, created_at timestamptz not null)`

interface Item { readonly id: string, readonly type: string, readonly payload: string, readonly dedupId: string | null }

/** One request's events: written in one statement, answered when it commits. */
interface Group {
  readonly items: Item[]
  readonly settle: (createdAt: string | null) => void
}

class GroupWriter {
  readonly #sql: Sql
  #queue: Group[] = []
  #inFlight = 0
  #scheduled = false
  #idle: (() => void) | null = null

  constructor (sql: Sql) { this.#sql = sql }

  submit (g: Group): void {
    this.#queue.push(g)
    this.#schedule()
  }

  #schedule (): void {
    if (this.#scheduled || this.#inFlight >= MAX_IN_FLIGHT || this.#queue.length === 0) return
    this.#scheduled = true
    setImmediate(() => { this.#scheduled = false; this.#flush() })
  }

  #flush (): void {
    if (this.#inFlight >= MAX_IN_FLIGHT || this.#queue.length === 0) return
    const groups: Group[] = []
    const ids: string[] = []
    const types: string[] = []
    const payloads: string[] = []
    const dedups: (string | null)[] = []
    while (this.#queue.length > 0 && ids.length < MAX_BATCH) {
      const g = this.#queue.shift()!
      groups.push(g)
      for (const it of g.items) { ids.push(it.id); types.push(it.type); payloads.push(it.payload); dedups.push(it.dedupId) }
    }
    const createdAt = new Date()
    this.#inFlight++
    this.#sql`
      insert into ceiling_events (id, type, payload, dedup_id, created_at)
      select id, type, payload::json, dedup_id, ${createdAt}::timestamptz
        from unnest(${ids}::uuid[], ${types}::text[], ${payloads}::text[], ${dedups}::text[]) as t(id, type, payload, dedup_id)`
      .then(() => { const at = createdAt.toISOString(); for (const g of groups) g.settle(at) },
        () => { for (const g of groups) g.settle(null) })
      .finally(() => {
        this.#inFlight--
        if (this.#inFlight === 0 && this.#queue.length === 0) this.#idle?.()
        this.#schedule()
      })
    this.#schedule()
  }

  idle (): Promise<void> {
    if (this.#inFlight === 0 && this.#queue.length === 0) return Promise.resolve()
    return new Promise(resolve => { this.#idle = resolve })
  }
}

function item (x: unknown): Item | null {
  if (typeof x !== 'object' || x === null) return null
  const o = x as { type?: unknown, payload?: unknown, data?: unknown, dedup_id?: unknown }
  const payload = o.payload ?? o.data
  if (typeof o.type !== 'string' || typeof payload !== 'object' || payload === null) return null
  return { id: uuidv7(), type: o.type, payload: JSON.stringify(payload), dedupId: typeof o.dedup_id === 'string' ? o.dedup_id : null }
}

/** Reads the whole body, then calls `handle` with it; `handle` answers through `reply`. */
function withBody (res: HttpResponse, handle: (body: Buffer, reply: (status: string, out: string) => void) => void): void {
  let aborted = false
  let chunks: Buffer[] = []
  res.onAborted(() => { aborted = true })
  const reply = (status: string, out: string): void => {
    if (aborted) return
    res.cork(() => { res.writeStatus(status).writeHeader('Content-Type', 'application/json').end(out) })
  }
  res.onData((ab, isLast) => {
    chunks.push(Buffer.from(new Uint8Array(ab)))
    if (!isLast) return
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
    chunks = []
    handle(body, reply)
  })
}

const BAD = '{"error":"Invalid event","code":"invalid_event"}'
const UNAVAILABLE = '{"error":"Write failed","code":"unavailable"}'

function listen (index: number): void {
  // The service's own client setup (src/db/client.ts): the same transport — a Unix socket when the URL
  // names one, else TCP with TCP_NODELAY — so the two are compared on the same footing.
  const sql = createDb({ url: databaseUrl!, max: POOL, applicationName: 'durable-uws' })
  const writer = new GroupWriter(sql)
  const app = uws.App()
  app.post('/api/events', (res) => {
    withBody(res, (body, reply) => {
      let it: Item | null = null
      try { it = item(JSON.parse(body.toString('utf8'))) } catch { /* reply below */ }
      if (it === null) { reply('400 Bad Request', BAD); return }
      const ev = it
      writer.submit({
        items: [ev],
        settle: at => {
          if (at === null) { reply('503 Service Unavailable', UNAVAILABLE); return }
          reply('201 Created', JSON.stringify({ id: ev.id, type: ev.type, dedup_id: ev.dedupId, status: 'pending', created_at: at }))
        },
      })
    })
  })
  app.post('/api/events/batch', (res) => {
    withBody(res, (body, reply) => {
      let items: Item[] | null = null
      try {
        const events = (JSON.parse(body.toString('utf8')) as { events?: unknown }).events
        if (Array.isArray(events) && events.length > 0) {
          const parsed = events.map(item)
          if (parsed.every(x => x !== null)) items = parsed as Item[]
        }
      } catch { /* reply below */ }
      if (items === null) { reply('400 Bad Request', BAD); return }
      const all = items
      writer.submit({
        items: all,
        settle: at => {
          if (at === null) { reply('503 Service Unavailable', UNAVAILABLE); return }
          const results = all.map((e, i) => ({ index: i, status: 'created', id: e.id, type: e.type, dedup_id: e.dedupId, created_at: at }))
          reply('200 OK', JSON.stringify({ created: all.length, duplicates: 0, invalid: 0, results }))
        },
      })
    })
  })
  serveThread(app, port, index, async () => { await writer.idle(); await sql.end({ timeout: 2 }) })
}

if (isMainThread) {
  const admin = createDb({ url: databaseUrl, max: 1, applicationName: 'durable-uws-setup' })
  await admin.unsafe(TABLE)
  await admin.end()
  startListenerThreads(new URL(import.meta.url), threads, 'durable-uws', port)
} else {
  listen((workerData as { index: number }).index)
}
