/**
 * The primary's scheduled and background jobs once the node serves: the retention purge (once a
 * minute, retention.ts) and the Prometheus endpoint on METRICS_PORT (metrics/server.ts), which sums
 * every thread's metric slots at scrape time. The server listens at once; its registry (prom-client)
 * is built on the first scrape or REGISTRY_AFTER_MS after the node serves, whichever comes first:
 * loading prom-client blocks the primary's event loop for ~20-130 ms, which at start-up held up the
 * boot of the other threads or the first key verification the primary relays (the cold start,
 * README "Performance"). Process and GC metrics therefore count from that moment. Primary thread only.
 */
import type { Config } from '../config/load.ts'
import type { Logger } from '../log.ts'
import type { Sql } from '../db/client.ts'
import type { SlotSource } from '../metrics/registry.ts'
import type { Registry } from 'prom-client'
import { startMetricsServer } from '../metrics/server.ts'
import { countDueDeliveries, deliveryBacklog } from '../db/queries/count-deliveries.ts'
import { RetentionJob } from './retention.ts'

export interface ScheduledJobsOptions {
  readonly config: Config
  readonly log: Logger
  readonly sql: Sql
  readonly sources: () => readonly SlotSource[]
  readonly argon2Queue: () => number
}

export interface ScheduledJobs {
  /** The /metrics port (0 when METRICS_PORT=0). */
  readonly metricsPort: number
  /** Closes the metrics server and waits for a running purge. */
  stop (): Promise<void>
}

/** When the registry is built if nothing scraped before: well past a cold start's first requests. */
const REGISTRY_AFTER_MS = 2000

export async function startScheduledJobs (o: ScheduledJobsOptions): Promise<ScheduledJobs> {
  const { config, log, sql } = o
  const retention = new RetentionJob(sql, log, config.retentionDays,
    { retentionDays: config.attemptRetentionDays, bodyRetentionDays: config.attemptBodyRetentionDays })
  retention.start()
  if (config.metricsPort === 0) return { metricsPort: 0, stop: async () => { await retention.stop() } }

  let registry: Promise<Registry> | null = null
  let built: Registry | null = null
  const build = (): Promise<Registry> => {
    registry ??= import('../metrics/registry.ts').then(({ buildRegistry }) => {
      built = buildRegistry({
        sources: o.sources,
        argon2Queue: o.argon2Queue,
        dueDeliveries: async () => { try { return await countDueDeliveries(sql) } catch { return null } },
        backlog: async () => { try { return await deliveryBacklog(sql) } catch { return null } },
      })
      return built
    })
    return registry
  }
  const timer = setTimeout(() => { build().catch((err: unknown) => { log.error({ err }, 'building the metrics registry failed') }) }, REGISTRY_AFTER_MS)
  timer.unref()
  const server = await startMetricsServer({
    metrics: async () => await (await build()).metrics(),
    // Read once metrics() has resolved, so from the built registry.
    get contentType () { return built?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8' },
  }, config.host, config.metricsPort, log)
  const addr = server.address()
  const metricsPort = typeof addr === 'object' && addr !== null ? addr.port : config.metricsPort
  return {
    metricsPort,
    async stop () {
      clearTimeout(timer)
      server.close()
      await retention.stop()
    },
  }
}
