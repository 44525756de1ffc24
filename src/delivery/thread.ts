/**
 * Delivery thread entry (one per node that has DELIVERY_ENABLED). Started by the primary as a Worker on
 * this file with workerData = WorkerInit.
 *
 * Handshake:
 *   1. parse workerData (parseWorkerInit + configFromWorkerData), make this thread's database client.
 *      The primary starts delivery threads only once the migrations are applied (and a replacement
 *      whenever one dies), so the thread starts at once: open the pool's connections (so the first
 *      claims do not pay for connecting), start the scheduler (LISTEN triggers_events, first claim),
 *      post {v:1, type:'ready'}.
 *   2. {v:1, type:'wake'} claims at once (the primary forwards listeners' 'committed' messages).
 *   3. {v:1, type:'stop', deadlineMs}: stop claiming; in-flight attempts may finish until the deadline;
 *      the rest are aborted and handed back due now (attempts keep the interrupted attempt's number,
 *      the retry series position is given back); claimed-but-unstarted ones are handed back as if never
 *      claimed; results are written; connections and the database client are closed; the last spans
 *      are exported (tracing on, within the deadline); post {v:1, type:'stopped'}; the thread then
 *      exits (nothing keeps it alive).
 *
 * `deadlineMs` is read as an absolute time in ms since the epoch when it is ≥ 1e12 (any date after
 * 2001), otherwise as a duration from receipt, so either convention of the primary is honoured.
 * If anything fails during start-up the error is thrown: the Worker's 'error' event tells the primary.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { configFromWorkerData } from '../config/load.ts'
import { createDb } from '../db/client.ts'
import { createLogger } from '../log.ts'
import { ThreadMetrics } from '../metrics/counters.ts'
import { parsePrimaryToDelivery, parseWorkerInit, type DeliveryToPrimary } from '../threads/protocol.ts'
import { Scheduler } from './scheduler.ts'
import { startTracing } from '../tracing/start.ts'

const port = parentPort
if (port === null) throw new Error('src/delivery/thread.ts must run as a worker thread')

const init = parseWorkerInit(workerData)
const config = configFromWorkerData(init.config)
const log = createLogger(config.logLevel, 'delivery').child({ component: 'delivery', thread_index: init.threadIndex })
const poolSize = Math.max(2, Math.min(config.dbPoolSize, 8))
const sql = createDb({ url: init.databaseUrl, max: poolSize, applicationName: 'triggers-delivery' })
const metrics = ThreadMetrics.forThread(init.metrics)
const stopSampling = metrics.startRuntimeSampling()
// Chosen once, before the scheduler is built (messages from the primary wait queued meanwhile).
const tracer = await startTracing(config, init.threadIndex === 0 ? 'delivery' : `delivery-${init.threadIndex}`, log)
const scheduler = new Scheduler({ sql, config, log, metrics, tracer })
let stopping = false
/** Exporting the last spans may use what is left of the stop deadline, and at least this long. */
const TRACES_FLUSH_MIN_MS = 200

function post (m: DeliveryToPrimary): void {
  port!.postMessage(m)
}

async function shutdown (deadlineMs: number): Promise<void> {
  const deadlineAt = deadlineMs >= 1e12 ? deadlineMs : Date.now() + deadlineMs
  try {
    await scheduler.stop(deadlineAt)
  } finally {
    stopSampling()
    await sql.end({ timeout: 5 })
    await tracer.shutdown(Math.max(TRACES_FLUSH_MIN_MS, deadlineAt - Date.now()))
  }
}

function onStopped (): void {
  log.info('delivery thread stopped')
  post({ v: 1, type: 'stopped' })
  port!.close()
}

function onStopFailed (err: unknown): void {
  log.error({ err }, 'delivery thread stop failed')
  post({ v: 1, type: 'stopped' })
  port!.close()
}

async function start (): Promise<void> {
  // Warm the pool: every connection opened (and its session set up) before the first event is due.
  await Promise.all(Array.from({ length: poolSize }, async () => await sql`select 1`))
  await scheduler.start()
  // A stop that arrived during start-up is already being handled: 'stopped' follows, 'ready' would mislead.
  if (!stopping) {
    log.info({ concurrency: config.deliveryConcurrency, per_endpoint: config.deliveryPerEndpoint, timeout_ms: config.deliveryTimeoutMs }, 'delivery thread ready')
    post({ v: 1, type: 'ready' })
  }
}

function onStartFailed (err: unknown): void {
  // The thread's 'error' event tells the primary, which replaces it.
  process.nextTick(() => { throw err })
}

port.on('message', (raw: unknown) => {
  const m = parsePrimaryToDelivery(raw)
  if (m === null) { log.warn('ignored an unknown message'); return }
  if (m.type === 'wake') { scheduler.wake(); return }
  if (stopping) return
  stopping = true
  shutdown(m.deadlineMs).then(onStopped, onStopFailed)
})

start().then(undefined, onStartFailed)
