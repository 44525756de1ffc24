/**
 * The primary's scheduled and background jobs once the node serves: the retention purge (once a
 * minute, retention.ts) and the Prometheus endpoint on METRICS_PORT (metrics/server.ts), which sums
 * every thread's metric slots at scrape time. prom-client is loaded by `preloadMetrics` while the node
 * boots (the primary mostly waits then), not once it serves: loading it blocks the primary's event
 * loop, which relays the first key verifications. Primary thread only.
 */
import type { Config } from '../config/load.ts'
import type { Logger } from '../log.ts'
import type { Sql } from '../db/client.ts'
import type { SlotSource } from '../metrics/registry.ts'
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

type RegistryModule = typeof import('../metrics/registry.ts')
let registryModule: Promise<RegistryModule> | null = null

/** Starts loading the /metrics registry (prom-client) now; startScheduledJobs waits for it. */
export function preloadMetrics (config: Config): void {
  if (config.metricsPort !== 0) registryModule ??= import('../metrics/registry.ts')
}

export async function startScheduledJobs (o: ScheduledJobsOptions): Promise<ScheduledJobs> {
  const { config, log, sql } = o
  const retention = new RetentionJob(sql, log, config.retentionDays,
    { retentionDays: config.attemptRetentionDays, bodyRetentionDays: config.attemptBodyRetentionDays })
  retention.start()
  if (config.metricsPort === 0) return { metricsPort: 0, stop: async () => { await retention.stop() } }

  const { buildRegistry } = await (registryModule ??= import('../metrics/registry.ts'))
  const registry = buildRegistry({
    sources: o.sources,
    argon2Queue: o.argon2Queue,
    dueDeliveries: async () => { try { return await countDueDeliveries(sql) } catch { return null } },
    backlog: async () => { try { return await deliveryBacklog(sql) } catch { return null } },
  })
  const server = await startMetricsServer(registry, config.host, config.metricsPort, log)
  const addr = server.address()
  const metricsPort = typeof addr === 'object' && addr !== null ? addr.port : config.metricsPort
  return {
    metricsPort,
    async stop () {
      server.close()
      await retention.stop()
    },
  }
}
