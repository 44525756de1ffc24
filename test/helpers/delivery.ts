/**
 * Delivery test kit: a real delivery Worker (src/delivery/thread.ts) on a test database, real node:http
 * receivers on 127.0.0.1, and rows made with SQL (organizations, endpoints, events with their
 * deliveries) so delivery tests do not depend on the ingest path. Every wait is on a condition.
 */
import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Worker } from 'node:worker_threads'
import { Webhook } from 'standardwebhooks'
import { loadConfig, type Config } from '../../src/config/load.ts'
import { newSigningSecret } from '../../src/webhooks/signing.ts'
import { uuidv7 } from '../../src/lib/uuid.ts'
import { parseDeliveryToPrimary, type WorkerInit } from '../../src/threads/protocol.ts'
import { waitFor, type TestDatabase } from './db.ts'

// ── config and the delivery thread ─────────────────────────────────────────────────────────────

export function deliveryConfig (db: TestDatabase, env: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: db.url,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error', // e.g. TEST_LOG_LEVEL=debug to see the thread's log
    ALLOW_PRIVATE_WEBHOOKS: 'true',
    DELIVERY_RETRY_DELAYS_MS: '50,100',
    DELIVERY_TIMEOUT_MS: '600',
    DELIVERY_CONCURRENCY: '32',
    DELIVERY_PER_ENDPOINT_CONCURRENCY: '4',
    ...env,
  })
}

// Node 20 does not apply `--import tsx` to a Worker's entry module, so the worker boots from a tiny
// script that registers tsx and then imports the real entry (production runs the compiled .js).
const THREAD_URL = new URL('../../src/delivery/thread.ts', import.meta.url).href
const WORKER_BOOT = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})` +
  `.then(m => { m.register(); return import(${JSON.stringify(THREAD_URL)}) })`

export class DeliveryThread {
  readonly worker: Worker
  readonly #exited: Promise<number>
  #stopped = false

  private constructor (worker: Worker) {
    this.worker = worker
    this.#exited = new Promise(resolve => worker.once('exit', resolve))
  }

  static async start (db: TestDatabase, config: Config): Promise<DeliveryThread> {
    const init: WorkerInit = { config, databaseUrl: db.url, threadIndex: 0, port: 0, orgWindows: null, ipWindows: null, metrics: null, listenNow: true }
    const t = new DeliveryThread(new Worker(WORKER_BOOT, { eval: true, workerData: init }))
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: unknown): void => {
        if (parseDeliveryToPrimary(m)?.type === 'ready') { cleanup(); resolve() }
      }
      const onError = (err: Error): void => { cleanup(); reject(err) }
      const onExit = (code: number): void => { cleanup(); reject(new Error(`delivery thread exited with ${code} before ready`)) }
      const cleanup = (): void => {
        t.worker.off('message', onMessage)
        t.worker.off('error', onError)
        t.worker.off('exit', onExit)
      }
      t.worker.on('message', onMessage)
      t.worker.once('error', onError)
      t.worker.once('exit', onExit)
    })
    return t
  }

  wake (): void { this.worker.postMessage({ v: 1, type: 'wake' }) }

  /** Sends 'stop', waits for 'stopped' and for the thread to exit by itself. */
  async stop (deadlineMs = 5000): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    const stopped = new Promise<void>(resolve => {
      const onMessage = (m: unknown): void => {
        if (parseDeliveryToPrimary(m)?.type === 'stopped') { this.worker.off('message', onMessage); resolve() }
      }
      this.worker.on('message', onMessage)
    })
    this.worker.postMessage({ v: 1, type: 'stop', deadlineMs })
    const limit = new Promise<'timeout'>(resolve => { setTimeout(resolve, deadlineMs + 10_000, 'timeout').unref() })
    const r = await Promise.race([stopped.then(() => this.#exited), limit])
    if (r === 'timeout') {
      await this.worker.terminate()
      throw new Error('delivery thread did not stop and exit in time')
    }
    assert.equal(r, 0, 'delivery thread exit code')
  }
}

// ── receivers ──────────────────────────────────────────────────────────────────────────────────

export interface Seen { readonly path: string, readonly headers: IncomingHttpHeaders, readonly body: string, readonly at: number }
export interface Reply { status: number, headers?: Record<string, string>, body?: string }
export type Handler = (seen: Seen, index: number, rx: Receiver) => Reply | Promise<Reply>

export const OK: Reply = { status: 200, body: 'ok' }

export class Receiver {
  readonly seen: Seen[] = []
  connections = 0
  inFlight = 0
  maxInFlight = 0
  readonly closed: Promise<void>
  #close!: () => void
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  port = 0

  private constructor (handler: Handler) {
    this.closed = new Promise(resolve => { this.#close = resolve })
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('error', () => {})
      req.on('end', () => {
        const seen: Seen = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() }
        const index = this.seen.length
        this.seen.push(seen)
        this.inFlight++
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
        Promise.resolve(handler(seen, index, this)).then(reply => {
          this.inFlight--
          if (res.destroyed) return
          res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers })
          res.end(reply.body ?? '')
        }, (err: unknown) => {
          this.inFlight--
          res.destroy(err instanceof Error ? err : new Error(String(err)))
        })
      })
    })
    this.#server.on('connection', (s: Socket) => {
      this.connections++
      this.#sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => this.#sockets.delete(s))
    })
  }

  static async start (handler: Handler): Promise<Receiver> {
    const rx = new Receiver(handler)
    await new Promise<void>(resolve => rx.#server.listen(0, '127.0.0.1', resolve))
    const addr = rx.#server.address()
    assert.ok(addr !== null && typeof addr === 'object')
    rx.port = (addr satisfies AddressInfo).port
    return rx
  }

  url (path = '/hook'): string { return `http://127.0.0.1:${this.port}${path}` }

  forEvent (id: string): Seen[] { return this.seen.filter(s => s.headers['x-event-id'] === id) }

  async close (): Promise<void> {
    this.#close()
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>(resolve => this.#server.close(() => resolve()))
  }
}

export function verify (secret: string, s: Seen): unknown {
  return new Webhook(secret).verify(s.body, {
    'webhook-id': String(s.headers['webhook-id']),
    'webhook-timestamp': String(s.headers['webhook-timestamp']),
    'webhook-signature': String(s.headers['webhook-signature']),
  })
}

// ── rows ───────────────────────────────────────────────────────────────────────────────────────

export interface Endpoint { readonly orgId: string, readonly id: string, readonly secret: string }

export interface EndpointOpts {
  eventTypes?: string[]
  status?: 'active' | 'paused' | 'disabled'
  rateLimit?: { limit: number, periodSeconds: number }
  maxConcurrency?: number
  previousSecret?: { secret: string, expiresInMs: number }
  isDefault?: boolean
}

export class Rows {
  readonly db: TestDatabase
  readonly orgs: string[] = []

  constructor (db: TestDatabase) { this.db = db }

  async org (): Promise<string> {
    const id = uuidv7()
    await this.db.sql`
      insert into organizations (id, name, tier, key_lookup, key_hash)
      values (${id}, ${'org ' + id}, 'free', ${'lookup_' + id}, 'not-a-hash')`
    this.orgs.push(id)
    return id
  }

  async endpoint (orgId: string, url: string, o: EndpointOpts = {}): Promise<Endpoint> {
    const id = uuidv7()
    const secret = newSigningSecret()
    const prevExpires = o.previousSecret === undefined ? null : new Date(Date.now() + o.previousSecret.expiresInMs)
    await this.db.sql`
      insert into endpoints (organization_id, id, url, event_types, status, rate_limit, rate_period_seconds, max_concurrency,
                             is_default, signing_secret, previous_signing_secret, previous_secret_expires_at, created_at, updated_at)
      values (${orgId}, ${id}, ${url}, ${this.db.sql.array(o.eventTypes ?? ['*'])}::text[], ${o.status ?? 'active'},
              ${o.rateLimit?.limit ?? null}, ${o.rateLimit?.periodSeconds ?? null}, ${o.maxConcurrency ?? null},
              ${o.isDefault ?? false}, ${secret}, ${o.previousSecret?.secret ?? null}, ${prevExpires}, now(), now())`
    return { orgId, id, secret }
  }

  /** An organization with one endpoint (`*`) at `url`. */
  async orgWithEndpoint (url: string, o: EndpointOpts = {}): Promise<Endpoint> {
    return await this.endpoint(await this.org(), url, o)
  }

  /**
   * An event fanned out as ingest does it (every matching active or paused endpoint of its
   * organization gets a delivery), due `dueInMs` from now. Returns the event id.
   */
  async event (orgId: string, type: string, payload: unknown = {}, o: { payloadText?: string, dueInMs?: number } = {}): Promise<string> {
    return (await this.events([orgId], type, payload, o))[0]!
  }

  /** One event per entry of `orgIds`, in one statement, fanned out; returns their ids in order. */
  async events (orgIds: readonly string[], type: string, payload: unknown = {}, o: { payloadText?: string, dueInMs?: number } = {}): Promise<string[]> {
    const ids = orgIds.map(() => uuidv7())
    const due = new Date(Date.now() + (o.dueInMs ?? 0))
    await this.db.sql`
      with stored as (
        insert into events (organization_id, id, type, payload, status, created_at, updated_at)
        select t.org, t.id, ${type}, (${o.payloadText ?? JSON.stringify(payload)}::text)::json, 'pending', now(), now()
          from unnest(${this.db.sql.array([...orgIds])}::uuid[], ${this.db.sql.array(ids)}::uuid[]) as t(org, id)
        returning organization_id, id, type, created_at
      )
      insert into deliveries (organization_id, event_id, endpoint_id, next_attempt_at, created_at, updated_at)
      select s.organization_id, s.id, ep.id, case when ep.status = 'active' then ${due}::timestamptz end, s.created_at, now()
        from stored s join endpoints ep on ep.organization_id = s.organization_id
       where ep.status in ('active', 'paused') and triggers_type_matches(ep.event_types, s.type)`
    return ids
  }

  async delivery (eventId: string, endpointId: string): Promise<DeliveryRow> {
    const [row] = await this.db.sql<DeliveryRow[]>`
      select d.status, d.attempts, d.series_attempt, d.trigger, d.response_status, d.last_error, d.next_attempt_at,
             d.leased_until, d.delivered_at, d.created_at
        from deliveries d where d.event_id = ${eventId} and d.endpoint_id = ${endpointId}`
    assert.ok(row !== undefined, `delivery of ${eventId} to ${endpointId} exists`)
    return row
  }

  async eventRow (eventId: string): Promise<EventRow> {
    const [row] = await this.db.sql<EventRow[]>`
      select status, attempts, response_status, last_error, delivered_at, acknowledged_at, created_at from events where id = ${eventId}`
    assert.ok(row !== undefined, `event ${eventId} exists`)
    return row
  }

  async waitDelivery (eventId: string, endpointId: string, status: string, timeoutMs = 10_000): Promise<DeliveryRow> {
    return await waitFor(async () => {
      const r = await this.delivery(eventId, endpointId)
      return r.status === status ? r : null
    }, timeoutMs, `delivery of ${eventId} to ${endpointId} to be ${status}`)
  }

  async waitEvent (eventId: string, status: string, timeoutMs = 10_000): Promise<EventRow> {
    return await waitFor(async () => {
      const r = await this.eventRow(eventId)
      return r.status === status ? r : null
    }, timeoutMs, `event ${eventId} to be ${status}`)
  }

  /** Holds every delivery made so far, so no later test's thread picks up a previous test's leftovers. */
  async holdAll (): Promise<void> {
    if (this.orgs.length === 0) return
    await this.db.sql`update endpoints set status = 'disabled' where organization_id = any(${this.db.sql.array(this.orgs)}::uuid[])`
    await this.db.sql`update deliveries set next_attempt_at = null where organization_id = any(${this.db.sql.array(this.orgs)}::uuid[])`
  }
}

export interface DeliveryRow {
  status: string
  attempts: number
  series_attempt: number
  trigger: string
  response_status: number | null
  last_error: string | null
  next_attempt_at: Date | null
  leased_until: Date | null
  delivered_at: Date | null
  created_at: Date
}

export interface EventRow {
  status: string
  attempts: number
  response_status: number | null
  last_error: string | null
  delivered_at: Date | null
  acknowledged_at: Date | null
  created_at: Date
}
