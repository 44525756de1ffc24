/**
 * The service on one node, as the primary thread runs it: database (external or embedded),
 * migrations, the Argon2 pool, THREADS listener threads on one port, the delivery thread, the key
 * rotation watch; and the ordered shutdown. `main.ts` adds the process concerns (signals, exit codes);
 * tests start the same thing in-process on port 0.
 *
 * Start-up order: database → migrate → Argon2 pool → first listener (learns the port when PORT=0) →
 * the other listeners on that port → delivery thread → rotation watch.
 * Shutdown order: listeners drain (stop accepting, answer, flush the writer) → delivery stops (in-flight
 * attempts finish or release their leases) → Argon2 pool → database client → embedded PostgreSQL.
 * The primary also runs the once-a-minute retention purge (maintenance/retention.ts).
 */
import type { Config } from './config/load.ts'
import type { Logger } from './log.ts'
import { createDb, type Sql } from './db/client.ts'
import { migrate } from './db/migrate.ts'
import { startEmbedded, type EmbeddedDb } from './db/embedded.ts'
import { Argon2Pool } from './auth/argon2-pool.ts'
import { allocateWindows } from './rate-limit/shared-window.ts'
import { Supervised, workerUrl } from './threads/spawn.ts'
import { parseDeliveryToPrimary, parseListenerToPrimary, type PrimaryToDelivery, type PrimaryToListener, type WorkerInit } from './threads/protocol.ts'
import { toWire } from './errors.ts'
import { RotationWatch } from './auth/rotation-watch.ts'
import { freePort } from './lib/free-port.ts'
import { allocateMetrics } from './metrics/layout.ts'
import type { SlotSource } from './metrics/registry.ts'
import { startMetricsServer } from './metrics/server.ts'
import { countDueDeliveries } from './db/queries/count-deliveries.ts'
import type { Server } from 'node:http'
import { RetentionJob } from './maintenance/retention.ts'

export interface RunningService {
  readonly port: number
  /** The /metrics port (0 when METRICS_PORT=0). */
  readonly metricsPort: number
  readonly databaseUrl: string
  readonly listeners: readonly Supervised[]
  readonly delivery: Supervised | null
  /** Graceful stop; resolves when everything is closed (or SHUTDOWN_TIMEOUT_MS passed). */
  stop (): Promise<void>
}

export async function startService (config: Config, log: Logger): Promise<RunningService> {
  let embedded: EmbeddedDb | null = null
  let databaseUrl = config.databaseUrl
  if (databaseUrl === null) {
    log.info({ dataDir: config.dataDir }, 'DATABASE_URL is unset: starting the embedded PostgreSQL')
    // main.ts stops the service (and the embedded PostgreSQL, last) on SIGTERM/SIGINT.
    embedded = await startEmbedded(config.dataDir, msg => { log.debug({ component: 'embedded-postgres' }, msg.trim()) }, { callerHandlesSignals: true })
    databaseUrl = embedded.url
  }
  const sql: Sql = createDb({ url: databaseUrl, max: 2, applicationName: 'triggers-primary' })
  // Listener threads boot (≈100 ms of thread start and imports) while the migrations run; they accept
  // connections only once the schema is in place.
  const migrated: Promise<unknown> = migrate(sql).then(applied => {
    if (applied.length > 0) log.info({ applied }, 'migrations applied')
    return null
  }, (err: unknown) => err instanceof Error ? err : new Error(String(err)))
  let accepting = false

  const argon2 = new Argon2Pool(config.argon2Threads)
  const orgWindows = allocateWindows()
  const ipWindows = allocateWindows()
  const listeners: Supervised[] = []
  let delivery: Supervised | null = null
  // uWS sets SO_REUSEPORT only for an explicit port, so PORT=0 is turned into a concrete free port.
  let port = config.port === 0 ? await freePort(config.host === '0.0.0.0' ? '0.0.0.0' : config.host) : config.port
  const drained = new Set<Supervised>()
  // Rotation handshake: ack number → the requesting listener, its request id, and acks still missing.
  const evictions = new Map<number, { from: Supervised, id: number, waiting: Set<Supervised> }>()
  let ackSeq = 0

  const settleEviction = (ack: number): void => {
    const e = evictions.get(ack)
    if (e === undefined || e.waiting.size > 0) return
    evictions.delete(ack)
    e.from.post({ v: 1, type: 'evicted', id: e.id } satisfies PrimaryToListener)
  }
  // A replaced listener starts with an empty cache: it no longer owes any acknowledgement.
  const onListenerRestart = (w: Supervised): void => {
    for (const [ack, e] of evictions) { e.waiting.delete(w); settleEviction(ack) }
  }
  const broadcast = (m: PrimaryToListener): void => { for (const l of listeners) l.post(m) }
  const wakeDelivery = (): void => { delivery?.post({ v: 1, type: 'wake' } satisfies PrimaryToDelivery) }
  const onListening = new Map<Supervised, (p: number) => void>()

  const onListenerMessage = (w: Supervised, raw: unknown): void => {
    const m = parseListenerToPrimary(raw)
    if (m === null) { log.warn({ thread: w.name }, 'unknown message from listener'); return }
    switch (m.type) {
      case 'listening':
        onListening.get(w)?.(m.port)
        onListening.delete(w)
        break
      case 'argon2': {
        const p = m.op === 'hash' ? argon2.hash(m.input) : argon2.verify(m.input, m.hash)
        p.then(value => { w.post({ v: 1, type: 'argon2-result', id: m.id, ok: true, value } satisfies PrimaryToListener) },
          (err: unknown) => {
            log.error({ err }, 'argon2 task failed')
            w.post({ v: 1, type: 'argon2-result', id: m.id, ok: false, error: toWire(err) } satisfies PrimaryToListener)
          })
        break
      }
      case 'evict': {
        // Rotation handshake: every listener (the requester included) evicts and acknowledges; the
        // requester hears 'evicted' only when all have, and only then answers the rotate request.
        const ack = ++ackSeq
        evictions.set(ack, { from: w, id: m.id, waiting: new Set(listeners) })
        broadcast({ v: 1, type: 'evict', organizationId: m.organizationId, ack })
        break
      }
      case 'evict-ack': {
        const e = evictions.get(m.ack)
        if (e !== undefined) { e.waiting.delete(w); settleEviction(m.ack) }
        break
      }
      case 'committed':
        wakeDelivery()
        break
      case 'drained':
        drained.add(w)
        break
      case 'retiring':
        log.error({ thread: w.name }, 'listener failed and is retiring; starting a replacement')
        w.replace()
        break
    }
  }

  // One metrics buffer per thread slot, reused by a replacement thread so counters keep counting.
  const metricSources: SlotSource[] = []
  const metricsFor = (thread: string): SharedArrayBuffer => {
    const sab = allocateMetrics()
    metricSources.push({ thread, slots: new Float64Array(sab) })
    return sab
  }
  const init = (threadIndex: number, metrics: SharedArrayBuffer) => (): WorkerInit => ({
    config, databaseUrl, threadIndex, port, orgWindows, ipWindows,
    // With /metrics off, threads get no buffer and count nothing (NoopMetrics).
    metrics: config.metricsPort === 0 ? null : metrics,
    // A replacement thread (after start-up) listens at once.
    listenNow: accepting,
  })

  /** Resolves with the listener's port once it listens; rejects if it could not or exited first. */
  const listened = (s: Supervised, i: number): Promise<number> => {
    const listening = new Promise<number>(resolve => { onListening.set(s, resolve) })
    const exited = s.exited().then(code => { throw new Error(`listener ${i} exited with code ${code} before listening`) })
    return Promise.race([listening, exited]).then(got => {
      if (got < 0) throw new Error(`listener ${i} could not listen on ${config.host}:${port}`)
      return got
    })
  }

  try {
    const waits: Promise<number>[] = []
    for (let i = 0; i < config.threads; i++) {
      const s = new Supervised({ name: `http-${i}`, file: workerUrl('http/thread'), init: init(i, metricsFor(`http-${i}`)), log, onMessage: onListenerMessage, onRestart: onListenerRestart, youngGenerationMb: config.threadYoungGenerationMb })
      listeners.push(s)
      waits.push(listened(s, i))
      // Observed below through Promise.all; this handler only keeps an early failure from being unhandled.
      waits[i]!.then(undefined, () => {})
    }
    const failed = await migrated
    if (failed !== null) throw failed
    accepting = true
    for (const l of listeners) l.post({ v: 1, type: 'listen' } satisfies PrimaryToListener)
    await Promise.all(waits)
  } catch (err) {
    for (const l of listeners) l.stopping = true
    for (const l of listeners) { l.post({ v: 1, type: 'drain' } satisfies PrimaryToListener); await l.stop(config.shutdownTimeoutMs, false) }
    await argon2.close()
    await sql.end({ timeout: 1 })
    await embedded?.stop()
    throw err
  }

  if (config.deliveryEnabled) {
    delivery = new Supervised({
      name: 'delivery',
      file: workerUrl('delivery/thread'),
      init: init(0, metricsFor('delivery')),
      log,
      youngGenerationMb: config.threadYoungGenerationMb,
      onMessage: (w, raw) => {
        const m = parseDeliveryToPrimary(raw)
        if (m === null) log.warn({ thread: w.name }, 'unknown message from delivery')
      },
    })
  }

  const rotation = new RotationWatch(sql, log, organizationId => {
    broadcast({ v: 1, type: 'evict', organizationId, ack: 0 })
  })
  rotation.start()
  const retention = new RetentionJob(sql, log, config.retentionDays)
  retention.start()

  let metricsServer: Server | null = null
  let metricsPort = 0
  if (config.metricsPort !== 0) {
    // prom-client loads here, after the listeners accept (≈20 ms off the cold start).
    const { buildRegistry } = await import('./metrics/registry.ts')
    const registry = buildRegistry({
      sources: () => metricSources,
      argon2Queue: () => argon2.queueSize,
      dueDeliveries: async () => { try { return await countDueDeliveries(sql) } catch { return null } },
    })
    metricsServer = await startMetricsServer(registry, config.host, config.metricsPort, log)
    const addr = metricsServer.address()
    metricsPort = typeof addr === 'object' && addr !== null ? addr.port : config.metricsPort
  }
  log.info({ port, threads: config.threads, delivery: config.deliveryEnabled, embedded: embedded !== null }, 'listening')

  let stopping: Promise<void> | null = null
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const deadline = Date.now() + config.shutdownTimeoutMs
      const left = (): number => Math.max(0, deadline - Date.now())
      rotation.stop()
      metricsServer?.close()
      await retention.stop()
      for (const l of listeners) { l.stopping = true; l.post({ v: 1, type: 'drain' } satisfies PrimaryToListener) }
      const exited = await Promise.all(listeners.map(async l => await l.stop(left(), false)))
      if (exited.includes(false)) log.error('listeners did not finish draining within SHUTDOWN_TIMEOUT_MS')
      if (delivery !== null) {
        delivery.stopping = true
        delivery.post({ v: 1, type: 'stop', deadlineMs: Math.max(0, left() - 500) } satisfies PrimaryToDelivery)
        await delivery.stop(left(), true)
      }
      await argon2.close()
      await sql.end({ timeout: 5 })
      await embedded?.stop()
      log.info({ drained: drained.size }, 'stopped')
    })()
    return stopping
  }

  return { port, metricsPort, databaseUrl, listeners, delivery, stop }
}
