/**
 * Scenario 9, fan-out: closed-loop single-event ingest (scenario 1's settings) to the 16 organizations
 * of the `fan` fleet, each with 5 endpoints subscribed to `*` (on 5 origins of the receiver), so every
 * event is committed with 5 deliveries and then delivered 5 times. Measured: 201/s (against scenario
 * 1's ingest with no endpoints, same run) and deliveries arrived per second during the measured run.
 * Afterwards: deliveries stored = 5 × events stored for these organizations (the fan-out is complete).
 * The backlog left at the end is not waited for (it is far larger than a few seconds' worth); the
 * harness runs this scenario last on its service.
 */
import type { ReceiverProcess } from '../load/receiver-handle.ts'
import { fmt, progress } from '../lib/progress.ts'
import type { Bench, Target } from './context.ts'
import type { Fleet } from './fleet.ts'
import { ingest, type IngestScenario } from './ingest.ts'

export const FAN_ORGS = 16
export const FAN_OUT = 5

export interface FanOutScenario {
  readonly endpointsPerEvent: number
  readonly organizations: number
  readonly ingest: IngestScenario
  readonly deliveredDuringRun: number
  readonly deliveriesPerSec: number
  readonly duplicates: number
  readonly badSignatures: number
  readonly eventsStored: number
  readonly deliveriesStored: number
  readonly fanOutComplete: boolean
}

export async function fanOut (b: Bench, server: Target, receiver: ReceiverProcess, fleet: Fleet): Promise<FanOutScenario> {
  await receiver.reset()
  let before = 0
  let after = 0
  let duplicates = 0
  let badSignatures = 0
  const i = await ingest(b, 'fan-out', server, fleet.orgs, {
    tag: '9', batch: 0, table: 'events', procs: { receiver: receiver.pid },
    before: async () => { before = (await receiver.stats(fleet.prefix)).count },
    after: async () => { const s = await receiver.stats(fleet.prefix); after = s.count; duplicates = s.duplicates; badSignatures = s.badSignatures },
  })
  const delivered = after - before
  const seconds = i.load.wallS
  const ids = fleet.orgs.map(o => o.id)
  const [e] = await b.db.sql<{ n: string }[]>`select count(*)::text as n from events where organization_id = any(${ids}::uuid[])`
  const [d] = await b.db.sql<{ n: string }[]>`select count(*)::text as n from deliveries where organization_id = any(${ids}::uuid[])`
  const eventsStored = Number(e?.n ?? 0)
  const deliveriesStored = Number(d?.n ?? 0)
  const out: FanOutScenario = {
    endpointsPerEvent: FAN_OUT,
    organizations: fleet.orgs.length,
    ingest: i,
    deliveredDuringRun: delivered,
    deliveriesPerSec: Math.round(delivered / seconds),
    duplicates,
    badSignatures,
    eventsStored,
    deliveriesStored,
    fanOutComplete: deliveriesStored === FAN_OUT * eventsStored,
  }
  progress(`scenario 9: ${fmt(i.run.eventsPerSec)} 201/s with ${FAN_OUT} endpoints per event; ${fmt(out.deliveriesPerSec)} deliveries/s ` +
    `(${fmt(delivered)} in ${seconds} s, ${duplicates} duplicates, ${badSignatures} bad signatures); ${fmt(deliveriesStored)} deliveries stored for ${fmt(eventsStored)} events` +
    `${out.fanOutComplete ? '' : ' — NOT 5 per event'}`)
  return out
}
