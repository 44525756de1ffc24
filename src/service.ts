/**
 * The service on one node, as the primary thread runs it: database (external or embedded),
 * migrations, the Argon2 pool, THREADS listener threads on one port, the delivery thread, the key
 * rotation watch, the scheduled jobs; and the ordered shutdown. `main.ts` adds the process concerns
 * (signals, exit codes); tests start the same thing in-process on port 0. The parts live in
 * `primary/`: listener supervision and the rotation handshake (listeners.ts, eviction-handshake.ts),
 * the delivery thread (delivery-thread.ts), other nodes' organization changes (org-change-watch.ts,
 * LISTEN/NOTIFY, with rotation-watch.ts polling as a fallback), and retention and /metrics
 * (scheduled-jobs.ts).
 *
 * Start-up order: database → migrate (while the first listener and the Argon2 thread boot and the
 * change watch LISTENs) → the first listener accepts (it learns the port when PORT=0) → the other
 * listeners and the delivery threads boot (delivery claims as soon as it is up) → all listeners accept
 * → rotation poll → scheduled jobs (the /metrics registry a little later, scheduled-jobs.ts). Nothing
 * the first requests do not need competes with the first listener's boot for the CPU: on 2 cores,
 * delivery threads booting alongside it (and prom-client loading) made the first 201 ~20 % later
 * (scripts/measure-cold-start.ts, README "Performance"); waiting for every listener instead left the
 * first events waiting for deliveries a listener's boot longer.
 * Shutdown order: listeners drain (stop accepting, answer, flush the writer) → delivery stops (in-flight
 * attempts finish or release their leases) → Argon2 pool → database client → embedded PostgreSQL.
 */
import type { Config } from './config/load.ts'
import type { Logger } from './log.ts'
import { createDb, type Sql } from './db/client.ts'
import { migrate } from './db/migrate.ts'
import { startEmbedded, type EmbeddedDb } from './db/embedded.ts'
import { Argon2Pool } from './auth/argon2-pool.ts'
import type { Supervised } from './threads/spawn.ts'
import { freePort } from './lib/free-port.ts'
import { ThreadInit } from './primary/thread-init.ts'
import { ListenerGroup } from './primary/listeners.ts'
import { startDeliveryThreads, stopDeliveryThread, wakeDelivery } from './primary/delivery-thread.ts'
import { RotationWatch } from './primary/rotation-watch.ts'
import { OrgChangeWatch } from './primary/org-change-watch.ts'
import { notifyOrganizationChanged } from './db/queries/notify-organization-changes.ts'
import { startScheduledJobs } from './primary/scheduled-jobs.ts'

export interface RunningService {
  readonly port: number
  /** The /metrics port (0 when METRICS_PORT=0). */
  readonly metricsPort: number
  readonly databaseUrl: string
  readonly listeners: readonly Supervised[]
  /** The first delivery thread (null on an API-only node); all of them in `deliveries`. */
  readonly delivery: Supervised | null
  readonly deliveries: readonly Supervised[]
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
  const migrated: Promise<Error | null> = migrate(sql).then(applied => {
    if (applied.length > 0) log.info({ applied }, 'migrations applied')
    return null
  }, (err: unknown) => err instanceof Error ? err : new Error(String(err)))

  const argon2 = new Argon2Pool(config.argon2Threads)
  // The hashing thread boots with the others, so the node's first key verification does not wait for it.
  argon2.warm()
  // uWS sets SO_REUSEPORT only for an explicit port, so PORT=0 is turned into a concrete free port.
  const port = config.port === 0 ? await freePort(config.host === '0.0.0.0' ? '0.0.0.0' : config.host) : config.port
  const init = new ThreadInit(config, databaseUrl, port)
  let deliveries: Supervised[] = []
  const listeners = new ListenerGroup({
    config, log, init, port, argon2,
    wakeDelivery: () => { wakeDelivery(deliveries) },
    // Delivery threads boot once the first listener accepts, alongside the other listeners: the first
    // 201 does not wait for them, and the first events do not wait for every listener's boot.
    onFirstListening: () => { if (config.deliveryEnabled) deliveries = startDeliveryThreads(config, log, init) },
    announce: async organizationId => { await notifyOrganizationChanged(sql, organizationId) },
  })
  // Listening for other nodes' changes starts before any key can be cached.
  const handshake = listeners.handshake
  const changes = new OrgChangeWatch(sql, log, {
    evict: organizationId => { handshake.evict(organizationId) },
    dropAll: hold => {
      handshake.dropAll(hold)
      // Caches released again: every key is about to be verified anew, so have a hashing thread ready.
      if (!hold) argon2.warm()
    },
  })
  changes.start()
  try {
    await listeners.start(migrated)
  } catch (err) {
    changes.stop()
    await Promise.all(deliveries.map(async d => { await stopDeliveryThread(d, () => config.shutdownTimeoutMs) }))
    await argon2.close()
    await sql.end({ timeout: 1 })
    await embedded?.stop()
    throw err
  }

  // The fallback for key rotations whose NOTIFY was lost.
  const rotation = new RotationWatch(sql, log, organizationId => {
    log.debug({ organizationId, via: 'poll' }, 'organization changed')
    handshake.evict(organizationId)
  })
  rotation.start()
  const jobs = await startScheduledJobs({ config, log, sql, sources: () => init.sources, argon2Queue: () => argon2.queueSize })
  log.info({ port, threads: config.threads, delivery: config.deliveryEnabled, embedded: embedded !== null }, 'listening')

  let stopping: Promise<void> | null = null
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const deadline = Date.now() + config.shutdownTimeoutMs
      const left = (): number => Math.max(0, deadline - Date.now())
      rotation.stop()
      changes.stop()
      await jobs.stop()
      if (!await listeners.stop(left)) log.error('listeners did not finish draining within SHUTDOWN_TIMEOUT_MS')
      await Promise.all(deliveries.map(async d => { await stopDeliveryThread(d, left) }))
      await argon2.close()
      await sql.end({ timeout: 5 })
      await embedded?.stop()
      log.info({ drained: listeners.drained }, 'stopped')
    })()
    return stopping
  }

  return { port, metricsPort: jobs.metricsPort, databaseUrl, listeners: listeners.threads, delivery: deliveries[0] ?? null, deliveries, stop }
}
