/**
 * What every thread the primary starts receives (WorkerInit through workerData): the frozen config,
 * the resolved database URL, the port, the shared rate-limit tables, and a metrics buffer of its own.
 * A thread slot keeps its metrics buffer across replacements, so counters keep counting; the
 * /metrics registry reads every slot through `sources`. Primary thread only.
 */
import type { Config } from '../config/load.ts'
import type { WorkerInit } from '../threads/protocol.ts'
import { allocateWindows } from '../rate-limit/shared-window.ts'
import { allocateMetrics } from '../metrics/layout.ts'
import type { SlotSource } from '../metrics/registry.ts'

export class ThreadInit {
  readonly #config: Config
  readonly #databaseUrl: string
  readonly #port: number
  readonly #orgWindows = allocateWindows()
  readonly #ipWindows = allocateWindows()
  /** Every thread slot's metrics, for the /metrics registry. */
  readonly sources: SlotSource[] = []
  /** Set once migrations are applied: a thread started from then on (a replacement) listens at once. */
  accepting = false

  constructor (config: Config, databaseUrl: string, port: number) {
    this.#config = config
    this.#databaseUrl = databaseUrl
    this.#port = port
  }

  /** The workerData factory of one thread slot (called again for each replacement). */
  slot (thread: string, threadIndex: number): () => WorkerInit {
    const sab = allocateMetrics()
    this.sources.push({ thread, slots: new Float64Array(sab) })
    return () => ({
      config: this.#config,
      databaseUrl: this.#databaseUrl,
      threadIndex,
      port: this.#port,
      orgWindows: this.#orgWindows,
      ipWindows: this.#ipWindows,
      // With /metrics off, threads get no buffer and count nothing (NoopMetrics).
      metrics: this.#config.metricsPort === 0 ? null : sab,
      listenNow: this.accepting,
    })
  }
}
