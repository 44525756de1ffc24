/**
 * Scenario 10, mixed ingest and delivery: the highest ingest rate at which the node still delivers
 * everything it ingests. The open-loop ingest rate steps up (1,000, 2,000, 3,000 … events/s, 10 s
 * each; 30 s with --long) to the `steady` fleet (8 organizations, one endpoint each, 8 origins), with
 * delivery on. Backlog = events answered 201 so far − deliveries arrived so far, sampled every second.
 *
 * A step is **sustained** when every request was answered 2xx (nothing dropped) and the backlog at the
 * end of the step is below 1 s of that step's ingest (a node that keeps up holds about rate × delivery
 * latency, tens of events; one that delivers 10 % slower than it ingests ends a 10 s step with 1 s of
 * ingest waiting, and the backlog grows without end). After each step the bench waits (up to 20 s) for
 * the backlog to drain, so every step starts from an empty queue. The first step that is not sustained
 * ends the scenario; the result is the highest sustained step.
 */
import { OpenLoop } from '../load/open-loop.ts'
import type { ReceiverProcess } from '../load/receiver-handle.ts'
import { eventRequests } from '../lib/api.ts'
import { describeLoad, type RunLoad } from '../lib/meter.ts'
import { latencyRun } from '../lib/latency.ts'
import { epochNow, fmt, progress } from '../lib/progress.ts'
import { meter, type Bench, type Target } from './context.ts'
import type { Fleet } from './fleet.ts'

export const MIXED_RATES = [1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000, 12_000, 15_000]
/** Sustained: backlog at the end of the step below this many seconds of its ingest. */
export const MIXED_BACKLOG_S = 1
const DRAIN_WAIT_MS = 20_000
const CONNECTIONS = 64

export interface MixedStep {
  readonly rate: number
  readonly durationMs: number
  readonly accepted: number
  readonly non2xx: number
  readonly errors: number
  readonly dropped: number
  readonly ingestP99Ms: number
  /** Deliveries that arrived during the step, per second. */
  readonly deliveredPerSec: number
  /** Backlog (events) at the end of each second of the step. */
  readonly backlogBySecond: number[]
  readonly backlogAtEnd: number
  readonly sustained: boolean
  /** How long the backlog took to drain after the step (null: not within 20 s). */
  readonly drainedAfterMs: number | null
  readonly load: RunLoad
}

export interface MixedScenario {
  readonly rule: string
  readonly steps: MixedStep[]
  /** The highest sustained rate (events/s), or null if even the first step was not. */
  readonly highestSustainedRate: number | null
}

export async function mixed (b: Bench, server: Target, receiver: ReceiverProcess, fleet: Fleet): Promise<MixedScenario> {
  const steps: MixedStep[] = []
  const loop = new OpenLoop(server.port, CONNECTIONS)
  try {
    await receiver.reset()
    let delivered0 = 0
    for (const rate of MIXED_RATES) {
      progress(`scenario 10: ${fmt(rate)} events/s for ${b.D.mixedStepMs / 1000} s with delivery on`)
      let accepted = 0
      const backlogBySecond: number[] = []
      let sampling = false
      const timer = setInterval(() => {
        if (sampling) return
        sampling = true
        void receiver.stats(fleet.prefix).then(s => { backlogBySecond.push(accepted - (s.count - delivered0)) }, () => {}).finally(() => { sampling = false })
      }, 1000)
      const m = await meter(b, { service: server.pid, receiver: receiver.pid })
      const r = await loop.run({
        port: server.port, path: '/api/events', rate, durationMs: b.D.mixedStepMs,
        make: eventRequests(fleet.orgs, b.payloads, `${b.runId}-s10-${rate}-`),
        onAnswer: (_i, status) => { if (status === 201) accepted++ },
      })
      clearInterval(timer)
      const end = await receiver.stats(fleet.prefix)
      const load = await m.stop()
      const deliveredInStep = end.count - delivered0
      const backlogAtEnd = accepted - deliveredInStep
      const run = latencyRun(r)
      const sustained = run.non2xx + run.errors + run.dropped === 0 && backlogAtEnd < rate * MIXED_BACKLOG_S
      const t0 = epochNow()
      const { stats, timedOut } = await receiver.waitFor(fleet.prefix, delivered0 + accepted, DRAIN_WAIT_MS, 50)
      const step: MixedStep = {
        rate,
        durationMs: b.D.mixedStepMs,
        accepted,
        non2xx: run.non2xx,
        errors: run.errors,
        dropped: run.dropped,
        ingestP99Ms: run.latencyMs.p99,
        deliveredPerSec: Math.round(deliveredInStep / (load.wallS || 1)),
        backlogBySecond,
        backlogAtEnd,
        sustained,
        drainedAfterMs: timedOut ? null : Math.round(epochNow() - t0),
        load,
      }
      steps.push(step)
      delivered0 = stats.count
      progress(`scenario 10: ${fmt(rate)}/s: ${fmt(accepted)} accepted (${run.non2xx} non-2xx, ${run.errors} errors, ${run.dropped} dropped; ingest p99 ${run.latencyMs.p99} ms), ` +
        `${fmt(step.deliveredPerSec)} deliveries/s; backlog by second ${backlogBySecond.join(' ')}, at end ${fmt(backlogAtEnd)} → ${sustained ? 'sustained' : 'NOT sustained'}` +
        `; drained ${step.drainedAfterMs === null ? 'NOT within 20 s' : `after ${fmt(step.drainedAfterMs)} ms`}`)
      progress(`  ${describeLoad(load)}`)
      if (!sustained) break
    }
  } finally {
    await loop.close()
  }
  const ok = steps.filter(s => s.sustained)
  return {
    rule: `sustained: all ingest answered 2xx and the backlog at the end of a ${b.D.mixedStepMs / 1000} s step < ${MIXED_BACKLOG_S} s of its ingest`,
    steps,
    highestSustainedRate: ok.length === 0 ? null : ok[ok.length - 1]!.rate,
  }
}
