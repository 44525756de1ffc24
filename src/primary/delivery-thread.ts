/**
 * Supervision of the delivery thread (one per node with DELIVERY_ENABLED): started after the
 * listeners accept, woken by message when a listener commits due events, and stopped after the
 * listeners drained — in-flight attempts finish or hand their leases back before `deadlineMs`, and
 * only then is the thread terminated if it has not exited. Primary thread only.
 */
import type { Config } from '../config/load.ts'
import type { Logger } from '../log.ts'
import { Supervised, workerUrl } from '../threads/spawn.ts'
import { parseDeliveryToPrimary, type PrimaryToDelivery } from '../threads/protocol.ts'
import type { ThreadInit } from './thread-init.ts'

export function startDeliveryThread (config: Config, log: Logger, init: ThreadInit): Supervised {
  return new Supervised({
    name: 'delivery',
    file: workerUrl('delivery/thread'),
    init: init.slot('delivery', 0),
    log,
    youngGenerationMb: config.threadYoungGenerationMb,
    onMessage: (w, raw) => {
      const m = parseDeliveryToPrimary(raw)
      if (m === null) log.warn({ thread: w.name }, 'unknown message from delivery')
    },
  })
}

export function wakeDelivery (delivery: Supervised | null): void {
  delivery?.post({ v: 1, type: 'wake' } satisfies PrimaryToDelivery)
}

/** Asks the thread to stop, leaving it 500 ms of `leftMs` to write results back, and waits (terminating after `leftMs`). */
export async function stopDeliveryThread (delivery: Supervised, leftMs: () => number): Promise<void> {
  delivery.stopping = true
  delivery.post({ v: 1, type: 'stop', deadlineMs: Math.max(0, leftMs() - 500) } satisfies PrimaryToDelivery)
  await delivery.stop(leftMs(), true)
}
