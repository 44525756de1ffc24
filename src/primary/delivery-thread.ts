/**
 * Supervision of the delivery threads (DELIVERY_THREADS of them on a node with DELIVERY_ENABLED):
 * started once the first listener accepts (the other listeners boot meanwhile), woken by message when
 * a listener commits due events (one thread per wake, in turn: each claims up to its free slots, and
 * every thread also hears NOTIFY), and
 * stopped after the listeners drained — in-flight attempts finish or hand their leases back before
 * `deadlineMs`, and only then is a thread terminated if it has not exited. Several threads claim
 * like several nodes do (claims skip rows and endpoints another claimer holds), so they need no
 * coordination of their own. Primary thread only.
 */
import type { Config } from '../config/load.ts'
import type { Logger } from '../log.ts'
import { Supervised, workerUrl } from '../threads/spawn.ts'
import { parseDeliveryToPrimary, type PrimaryToDelivery } from '../threads/protocol.ts'
import type { ThreadInit } from './thread-init.ts'

export function startDeliveryThreads (config: Config, log: Logger, init: ThreadInit): Supervised[] {
  const threads: Supervised[] = []
  for (let i = 0; i < config.deliveryThreads; i++) threads.push(startDeliveryThread(config, log, init, i))
  return threads
}

function startDeliveryThread (config: Config, log: Logger, init: ThreadInit, index: number): Supervised {
  const name = index === 0 ? 'delivery' : `delivery-${index}`
  return new Supervised({
    name,
    file: workerUrl('delivery/thread'),
    init: init.slot(name, index),
    log,
    youngGenerationMb: config.threadYoungGenerationMb,
    onMessage: (w, raw) => {
      const m = parseDeliveryToPrimary(raw)
      if (m === null) log.warn({ thread: w.name }, 'unknown message from delivery')
    },
  })
}

let turn = 0

/** Wakes one of the delivery threads, each in turn. */
export function wakeDelivery (threads: readonly Supervised[]): void {
  if (threads.length === 0) return
  turn = (turn + 1) % threads.length
  threads[turn]!.post({ v: 1, type: 'wake' } satisfies PrimaryToDelivery)
}

/** Asks the thread to stop, leaving it 500 ms of `leftMs` to write results back, and waits (terminating after `leftMs`). */
export async function stopDeliveryThread (delivery: Supervised, leftMs: () => number): Promise<void> {
  delivery.stopping = true
  delivery.post({ v: 1, type: 'stop', deadlineMs: Math.max(0, leftMs() - 500) } satisfies PrimaryToDelivery)
  await delivery.stop(leftMs(), true)
}
