/**
 * Scenario 8, the drain (also the throughput half of scenario 12): 20,000 events queued for the 8
 * organizations of a fleet (one endpoint each) and then delivered as fast as the service can.
 * Queueing: the endpoints are paused (created so; PATCHed again, which is idempotent, on a second
 * drain), the events go in through POST /api/events/batch (500 per request, 8 requests at a time), so
 * their deliveries are committed and held; then all 8 endpoints are PATCHed to `active` at once.
 * deliveries/s = events / (last arrival at the receiver − the moment just before the PATCHes were sent).
 *
 * The ceiling: the same number of same-size signed requests from a bare undici client process
 * (load/ceiling-client.ts) to the same receiver URLs, 16 in flight per endpoint URL, no database:
 * requests/s = count / (last arrival − first send). Run right after the drain it is compared with.
 */
import type { ReceiverProcess } from '../load/receiver-handle.ts'
import type { CeilingClient } from '../load/ceiling-handle.ts'
import { batchBody } from '../load/payload.ts'
import { inParallel, postBatch } from '../lib/api.ts'
import { describeLoad, type RunLoad } from '../lib/meter.ts'
import { epochNow, fmt, progress } from '../lib/progress.ts'
import { PgActivity, type ActivityShare } from '../lib/pg-activity.ts'
import { meter, type Bench, type Target } from './context.ts'
import { setFleetStatus, type Fleet } from './fleet.ts'

export const DRAIN_EVENTS = 20_000
export const CEILING_IN_FLIGHT = 16
const QUEUE_BATCH = 500
const WAIT_MS = 180_000

export interface DrainRun {
  readonly label: string
  readonly origins: 'many' | 'one'
  readonly events: number
  /** Time to queue the events through the batch route (ms). */
  readonly queueMs: number
  /** From just before the PATCHes to the last of their answers (ms). */
  readonly resumeMs: number
  readonly delivered: number
  readonly duplicates: number
  readonly badSignatures: number
  readonly verifiedSignatures: number
  /** First and last arrival after the resume (ms). */
  readonly firstArrivalMs: number | null
  readonly lastArrivalMs: number | null
  readonly deliveriesPerSec: number
  readonly timedOut: boolean
  /** Service CPU from the resume to the last arrival, per delivery (ms). */
  readonly serviceCpuMsPerDelivery: number | null
  /** What the database connections were doing during the drain (average connections per activity). */
  readonly postgresActivity: { samples: number, top: ActivityShare[] }
  readonly load: RunLoad
}

export async function drain (b: Bench, server: Target, receiver: ReceiverProcess, fleet: Fleet, label: string, tag = '8'): Promise<DrainRun> {
  const what = `scenario ${tag} · drain ${label}`
  await receiver.reset()
  await setFleetStatus(server.port, fleet, 'paused')
  progress(`${what}: queueing ${fmt(DRAIN_EVENTS)} events for ${fleet.orgs.length} paused endpoints (${fleet.origins === 'one' ? 'one origin' : `${fleet.orgs.length} origins`}) through the batch route`)
  const q0 = epochNow()
  const perOrg = Math.ceil(DRAIN_EVENTS / fleet.orgs.length)
  const jobs: (() => Promise<void>)[] = []
  let queued = 0
  for (const [i, org] of fleet.orgs.entries()) {
    for (let first = 0; first < perOrg && queued < DRAIN_EVENTS; first += QUEUE_BATCH) {
      const n = Math.min(QUEUE_BATCH, perOrg - first, DRAIN_EVENTS - queued)
      queued += n
      const body = batchBody(`${b.runId}-s${tag}-${label}-${i}-`, b.payloads, n, first)
      jobs.push(async () => { await postBatch(server.port, org, body, n) })
    }
  }
  await inParallel(jobs, 8)
  const queueMs = Math.round(epochNow() - q0)
  const early = await receiver.stats(fleet.prefix)
  if (early.count > 0) progress(`${what}: ${early.count} deliveries arrived while the endpoints were paused`)
  progress(`${what}: queued in ${fmt(queueMs)} ms; resuming all ${fleet.endpoints.length} endpoints`)
  const m = await meter(b, { service: server.pid, receiver: receiver.pid })
  const activity = new PgActivity(b.db)
  activity.start()
  const resumeAt = epochNow()
  await setFleetStatus(server.port, fleet, 'active')
  const resumeMs = Math.round(epochNow() - resumeAt)
  const { stats, timedOut } = await receiver.waitFor(fleet.prefix, DRAIN_EVENTS, WAIT_MS, 20)
  const postgresActivity = activity.stop()
  const load = await m.stop()
  const last = stats.last ?? NaN
  const deliveriesPerSec = Math.round(stats.count / ((last - resumeAt) / 1000))
  const cpuS = (load.cpuCores.service ?? NaN) * load.wallS
  const out: DrainRun = {
    label,
    origins: fleet.origins,
    events: DRAIN_EVENTS,
    queueMs,
    resumeMs,
    delivered: stats.count,
    duplicates: stats.duplicates,
    badSignatures: stats.badSignatures,
    verifiedSignatures: stats.verified,
    firstArrivalMs: stats.first === null ? null : Math.round(stats.first - resumeAt),
    lastArrivalMs: stats.last === null ? null : Math.round(last - resumeAt),
    deliveriesPerSec: Number.isFinite(deliveriesPerSec) ? deliveriesPerSec : 0,
    timedOut,
    serviceCpuMsPerDelivery: stats.count === 0 || Number.isNaN(cpuS) ? null : Math.round((cpuS * 1000 / stats.count) * 1000) / 1000,
    postgresActivity,
    load,
  }
  progress(`${what}: ${fmt(out.delivered)}/${fmt(DRAIN_EVENTS)} delivered${timedOut ? ' (TIMED OUT)' : ''} in ${fmt(out.lastArrivalMs ?? NaN)} ms after the resume ` +
    `(PATCHes ${resumeMs} ms, first arrival at ${out.firstArrivalMs ?? '?'} ms): ${fmt(out.deliveriesPerSec)} deliveries/s; ` +
    `${out.duplicates} duplicates, ${out.badSignatures} bad signatures (${out.verifiedSignatures} checked); service CPU ${out.serviceCpuMsPerDelivery ?? '?'} ms per delivery`)
  progress(`  ${describeLoad(load)}`)
  progress(`  database connections busy (average): ${postgresActivity.top.slice(0, 4).map(a => `${a.share} ${a.what}`).join(' | ')}`)
  return out
}

export interface CeilingRun {
  readonly label: string
  readonly requests: number
  readonly inFlightPerEndpoint: number
  readonly ok: number
  readonly non2xx: number
  readonly errors: number
  readonly firstError: string | null
  readonly arrived: number
  readonly badSignatures: number
  readonly verifiedSignatures: number
  /** From the first send to the last arrival (ms). */
  readonly lastArrivalMs: number | null
  readonly requestsPerSec: number
  readonly load: RunLoad
}

export async function ceiling (b: Bench, client: CeilingClient, receiver: ReceiverProcess, fleet: Fleet, label: string): Promise<CeilingRun> {
  await receiver.reset()
  progress(`scenario 8 · ceiling ${label}: ${fmt(DRAIN_EVENTS)} signed requests from the bare undici client, ${CEILING_IN_FLIGHT} in flight per endpoint URL`)
  const m = await meter(b, { client: client.pid, receiver: receiver.pid })
  const sent = await client.run(fleet.endpoints.map(e => ({ url: e.url, secret: e.secret, endpointId: e.id })), DRAIN_EVENTS, CEILING_IN_FLIGHT, b.payloads)
  const { stats } = await receiver.waitFor(fleet.prefix, sent.ok, 10_000, 20)
  const load = await m.stop()
  const last = stats.last ?? NaN
  const perSec = Math.round(stats.count / ((last - sent.firstSendAt) / 1000))
  const out: CeilingRun = {
    label,
    requests: DRAIN_EVENTS,
    inFlightPerEndpoint: CEILING_IN_FLIGHT,
    ok: sent.ok,
    non2xx: sent.non2xx,
    errors: sent.errors,
    firstError: sent.firstError,
    arrived: stats.count,
    badSignatures: stats.badSignatures,
    verifiedSignatures: stats.verified,
    lastArrivalMs: Number.isFinite(last) ? Math.round(last - sent.firstSendAt) : null,
    requestsPerSec: Number.isFinite(perSec) ? perSec : 0,
    load,
  }
  progress(`scenario 8 · ceiling ${label}: ${fmt(out.requestsPerSec)} requests/s (${fmt(out.arrived)} arrived, ${out.non2xx} non-2xx, ${out.errors} errors` +
    `${out.firstError === null ? '' : `: ${out.firstError}`}; ${out.badSignatures} bad signatures of ${out.verifiedSignatures + out.badSignatures} checked)`)
  progress(`  ${describeLoad(load)}`)
  return out
}
