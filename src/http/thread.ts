/**
 * Listener thread entry (one per THREADS, all on one port via SO_REUSEPORT). Builds this thread's
 * services — database client, key cache and authenticator, shared-memory limiter, micro-batching
 * writer — then the uWS app, listens, and reports the port. Talks to the primary for Argon2 work, key
 * evictions and delivery wake-ups. On `drain`: stop accepting, answer what was received, flush the
 * writer, give unspent rate-limit tokens back, report `drained`, close the database client, export the
 * last spans (tracing on) and exit. The thread's tracer is chosen first, once (src/tracing/start.ts).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { configFromWorkerData } from '../config/load.ts'
import { parsePrimaryToListener, parseWorkerInit, type ListenerToPrimary } from '../threads/protocol.ts'
import { createLogger } from '../log.ts'
import { createDb } from '../db/client.ts'
import { coarseClock } from '../lib/coarse-clock.ts'
import { Argon2Client } from '../auth/argon2-client.ts'
import { KeyCache } from '../auth/key-cache.ts'
import { Authenticator } from '../auth/authenticator.ts'
import { Limiter } from '../rate-limit/limiter.ts'
import { databaseLeases } from '../rate-limit/lease-store.ts'
import { Writer } from '../ingest/writer.ts'
import { uws, type ListenSocket, type TemplatedApp } from './uws.ts'
import { buildApp } from './app.ts'
import { configureReply, setServerErrorHook } from './reply.ts'
import { ingestHooks, type WriterOwner } from './routes/events.ts'
import { inflight, type Ctx } from './context.ts'
import type { Services } from './services.ts'
import { notifyDeliveries } from '../db/queries/schedule-deliveries.ts'
import { ThreadMetrics } from '../metrics/counters.ts'
import { startTracing } from '../tracing/start.ts'
import { installTracer } from '../tracing/tracer.ts'

if (parentPort === null) throw new Error('http/thread.ts must run as a worker thread')
const port = parentPort
const init = parseWorkerInit(workerData)
const config = configFromWorkerData(init.config)
if (init.orgWindows === null || init.ipWindows === null) throw new Error('listener needs the shared rate-limit tables')

const log = createLogger(config.logLevel, `http-${init.threadIndex}`)
// Before anything serves: request snapshots and routes read it (messages from the primary wait queued).
const tracer = await startTracing(config, `http-${init.threadIndex}`, log)
installTracer(tracer)
coarseClock.start()
const metrics = ThreadMetrics.forThread(init.metrics)
const stopSampling = metrics.startRuntimeSampling()
configureReply(config.corsOrigin, metrics)
setServerErrorHook((ctx, err) => {
  log.error({ err, cause: err.cause, requestId: ctx.requestId, method: ctx.method, url: ctx.url, code: err.code }, 'request failed')
})

const post = (m: ListenerToPrimary): void => { port.postMessage(m) }
const sql = createDb({ url: init.databaseUrl, max: config.dbPoolSize, applicationName: `triggers-http-${init.threadIndex}` })
// One connection opens while the primary applies the migrations, so the first request does not wait for it.
sql`select 1`.then(undefined, () => {})
const argon2 = new Argon2Client(port)
const cache = new KeyCache(config.authCacheMax, config.authCacheTtlMs)
const auth = new Authenticator(sql, argon2, cache, metrics)
const limiter = new Limiter(init.orgWindows, init.ipWindows, databaseLeases(sql), err => { log.warn({ err }, 'rate-limit refill failed') })

let lastBatchLog = 0
// Other nodes' delivery threads hear about new due events by NOTIFY, at most every 100 ms per thread:
// NOTIFY serializes committing transactions, so it is kept off the per-batch path (this node's own
// delivery thread is woken by message at once).
let lastNotify = 0
function notifyOtherNodes (): void {
  const now = coarseClock.now()
  if (now - lastNotify < 100) return
  lastNotify = now
  notifyDeliveries(sql).then(undefined, (err: unknown) => { log.warn({ err }, 'delivery NOTIFY failed; other nodes will poll') })
}
const writer = new Writer<WriterOwner>(sql, {
  maxBatch: config.writerMaxBatch,
  maxQueue: config.writerMaxQueue,
  // Keep one connection for reads (auth lookups, inbox) when the pool allows it.
  maxInFlight: Math.max(1, Math.min(config.writerMaxInFlight, config.dbPoolSize - 1)),
  dedupWindowSeconds: config.dedupWindowSeconds,
  traced: tracer.on,
}, ingestHooks(metrics, (count, anyDue) => {
  if (anyDue) { post({ v: 1, type: 'committed', count }); notifyOtherNodes() }
}, (size, ms) => {
  metrics.batch(size, ms / 1000)
  metrics.writerQueue(writer.outstanding)
  // One debug line per batch at most every second (STYLE C12: never one per event).
  const now = coarseClock.now()
  if (now - lastBatchLog > 1000) { lastBatchLog = now; log.debug({ size, ms }, 'batch committed') }
}))

const evictWaiters = new Map<number, () => void>()
let evictSeq = 0

const services: Services = {
  config,
  sql,
  auth,
  argon2,
  limiter,
  writer,
  log,
  evictEverywhere (organizationId) {
    const id = ++evictSeq
    return new Promise(resolve => {
      evictWaiters.set(id, resolve)
      post({ v: 1, type: 'evict', id, organizationId })
    })
  },
  wakeDelivery () { post({ v: 1, type: 'committed', count: 1 }) },
}

let listenSocket: ListenSocket | null = null
let draining: Promise<void> | null = null

/**
 * A keep-alive client that got its previous response just before the drain began has its next request
 * already on the way; the drain keeps answering (with Connection: close) until no request has arrived
 * for this long, so such requests get a real answer instead of a closed connection.
 */
const DRAIN_QUIET_MS = 100
/** At most this long exporting the last spans once drained (the collector may be down). */
const TRACES_FLUSH_MS = 5000

function busy (): boolean {
  return inflight.count > 0 || writer.outstanding > 0 || performance.now() - inflight.lastStart < DRAIN_QUIET_MS
}

/**
 * Stop accepting, answer every request already read and every request arriving on an open connection
 * until a quiet moment (each answered with Connection: close), commit what the writer holds, then
 * release everything this thread holds. A request arriving on an idle keep-alive connection after that
 * is refused by closing its connection (no response bytes: the client may safely retry elsewhere),
 * never answered from a released database. Last, the app is closed: the v20.30 binary has an
 * `App.close()` (missing from its typings) that closes every remaining socket, idle keep-alive
 * connections included, so the thread's loop empties and it ends by itself at once. It never calls
 * process.exit: uWS aborts the whole process if a worker's loop closes with sockets open.
 */
function drain (nodeStops = false): Promise<void> {
  draining ??= (async () => {
    inflight.draining = true
    if (listenSocket !== null) { uws.us_listen_socket_close(listenSocket); listenSocket = null }
    while (busy()) {
      await writer.idle()
      if (busy()) await new Promise(resolve => setTimeout(resolve, 5))
    }
    inflight.closed = true
    // A stopping node hands its unspent rate-limit tokens to the other nodes; a listener being replaced
    // does not (its node keeps spending them).
    if (nodeStops) await limiter.giveBack().then(tokens => { log.debug({ tokens }, 'rate-limit tokens given back') }, (err: unknown) => { log.warn({ err }, 'giving rate-limit tokens back failed') })
    log.info('drained: answered every request received; later requests on open connections are refused')
    post({ v: 1, type: 'drained' })
    await sql.end({ timeout: 5 })
    await tracer.shutdown(TRACES_FLUSH_MS)
    coarseClock.stop()
    stopSampling()
    closeApp(app)
    port.close()
  })()
  return draining
}

/** `App.close()` exists on the native app of uWS v20.30 but not in its typings. */
function closeApp (a: TemplatedApp): void {
  const close: unknown = Reflect.get(a, 'close')
  if (typeof close === 'function') Reflect.apply(close, a, [])
}

function retire (err: unknown): void {
  log.fatal({ err }, 'uncaught error: this listener retires and is replaced')
  if (draining === null) post({ v: 1, type: 'retiring' })
  drain().then(undefined, (e: unknown) => { log.fatal({ err: e }, 'drain after failure failed') })
}
// STYLE C5 says crash; here a crash would take the whole process down with it (see drain), so the
// thread retires instead: it stops accepting at once and the primary starts a replacement.
process.on('uncaughtException', retire)
process.on('unhandledRejection', retire)

port.on('message', (raw: unknown) => {
  const m = parsePrimaryToListener(raw)
  if (m === null) { log.warn('unknown message from primary'); return }
  switch (m.type) {
    case 'argon2-result':
      if (m.ok) argon2.settle(m.id, true, m.value, null)
      else argon2.settle(m.id, false, null, m.error)
      break
    case 'evict':
      cache.evictOrganization(m.organizationId)
      if (m.ack !== 0) post({ v: 1, type: 'evict-ack', ack: m.ack })
      break
    case 'drop-caches':
      cache.dropAll(m.hold)
      break
    case 'evicted': {
      const w = evictWaiters.get(m.id)
      evictWaiters.delete(m.id)
      w?.()
      break
    }
    case 'drain':
      drain(true).then(undefined, retire)
      break
    case 'listen':
      listen()
      break
  }
})

const app = buildApp(services)
function listen (): void {
  if (listenSocket !== null || draining !== null) return
  app.listen(config.host, init.port, onListen)
}
if (init.listenNow) listen()

function onListen (socket: ListenSocket | false): void {
  if (socket === false) {
    // Report and release everything; the thread then ends by itself (never process.exit, see drain).
    log.fatal({ host: config.host, port: init.port }, 'could not listen')
    post({ v: 1, type: 'listening', port: -1 })
    draining = Promise.resolve()
    sql.end({ timeout: 1 }).then(() => { coarseClock.stop(); stopSampling(); closeApp(app); port.close() }, retire)
    return
  }
  listenSocket = socket
  post({ v: 1, type: 'listening', port: uws.us_socket_local_port(socket) })
}
