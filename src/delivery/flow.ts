/**
 * Flow control per endpoint (the contract, docs/api.md "Flow control per endpoint"), as the pure planner of a claim
 * (db/queries/claim-deliveries.ts runs it on rows it holds locked, so its decisions are atomic across
 * every delivering node). For each endpoint of the candidates, in due order:
 *
 *   paused / disabled        hold: next_attempt_at NULL (waiting, not attempting; retries kept)
 *   throttled_until > now    defer every candidate to throttled_until (receiver backpressure)
 *   breaker open             defer to breaker_until; half-open lets one lease through as the probe
 *   concurrency              lease while leases on all nodes < max_concurrency (and this thread has
 *                            free slots); the rest stay due, and the endpoint is reported full
 *   rate limit               GCRA (a token bucket in one timestamp): interval T = period/limit, burst
 *                            tolerance τ = (limit − 1)·T. A start at `now` is allowed when
 *                            tat − τ ≤ now, and moves tat to max(tat, now) + T. A candidate the limit
 *                            does not allow yet is deferred to its slot tat − τ and keeps that slot
 *                            (rate_reserved): when it comes due it starts without taking another.
 *                            So starts are released evenly, a burst is at most `limit`, any window of
 *                            one period sees at most 2·limit starts, and a long run never exceeds the
 *                            rate. Waiting is not an attempt: nothing here touches attempts.
 *
 * Deferring and holding move rows out of the due set, so a throttled, paused or rate-limited endpoint's
 * backlog is not scanned again by every claim and never delays other endpoints (fan-out rule 5). Pure
 * module (delivery thread); unit-tested in test/unit/flow.test.ts.
 */
import type { Candidate, ClaimPlan, EndpointFlow } from '../db/queries/claim-deliveries.ts'

export interface FlowOptions {
  /** Attempts this thread may still start (its free slots). */
  readonly free: number
  /** max_concurrency of endpoints that set none (DELIVERY_PER_ENDPOINT_CONCURRENCY). */
  readonly defaultConcurrency: number
  /** Consecutive failures that open an endpoint's breaker. */
  readonly breakerThreshold: number
  /** How long candidates wait behind a half-open breaker's probe before they are looked at again. */
  readonly probeWaitMs: number
}

/** Per-endpoint working state of one planning pass (fixed shape). */
class Gate {
  room: number
  tat: number
  tatChanged = false
  readonly interval: number
  readonly tolerance: number
  constructor (room: number, tat: number, interval: number, tolerance: number) {
    this.room = room
    this.tat = tat
    this.interval = interval
    this.tolerance = tolerance
  }
}

/** Cool-down of an open breaker after `failures` consecutive failures: 5 s, doubling every `threshold` failures, at most 60 s. */
export function breakerCooldownMs (failures: number, threshold: number): number {
  const steps = Math.min(4, Math.floor(Math.max(0, failures - threshold) / Math.max(1, threshold)))
  return Math.min(60_000, 5000 * 2 ** steps)
}

export function planClaim (o: FlowOptions, candidates: readonly Candidate[], endpoints: ReadonlyMap<string, EndpointFlow>, now: number, plan: ClaimPlan): void {
  let free = o.free
  const gates = new Map<string, Gate | null>()
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!
    plan.actions[i] = null
    plan.at[i] = 0
    plan.reserved[i] = false
    const ep = endpoints.get(c.endpoint_id)
    if (ep === undefined) continue // another claimer holds the endpoint: leave the row due
    if (ep.status !== 'active') { plan.actions[i] = 'H'; continue }
    if (ep.throttled_until !== null && ep.throttled_until > now) { defer(plan, i, ep.throttled_until, false); continue }
    const broken = ep.consecutive_failures >= o.breakerThreshold
    if (broken && ep.breaker_until !== null && ep.breaker_until > now) { defer(plan, i, ep.breaker_until, false); continue }

    let g = gates.get(ep.id)
    if (g === undefined) {
      const limit = ep.max_concurrency ?? o.defaultConcurrency
      let room = Math.max(0, limit - ep.leased)
      if (broken) room = Math.min(room, 1) // half-open: one probe
      let interval = 0
      let tolerance = 0
      if (ep.rate_limit !== null && ep.rate_period_seconds !== null) {
        interval = ep.rate_period_seconds * 1000 / ep.rate_limit
        tolerance = (ep.rate_limit - 1) * interval
      }
      g = new Gate(room, ep.rate_tat === null ? now : Math.max(ep.rate_tat, now - tolerance), interval, tolerance)
      gates.set(ep.id, g)
    }
    if (g === null) continue

    // A reserved slot counts only while it is on time: a delivery that could not start at its slot
    // (no room, no free thread slot) takes a new one, so late starts cannot bunch up past the rate.
    const reserved = c.rate_reserved && now - c.due_ms < g.interval
    if (g.interval > 0 && !reserved) {
      const slot = Math.max(now, g.tat - g.tolerance)
      if (slot > now) {
        // Not allowed yet: keep its slot and come back then.
        defer(plan, i, slot, true)
        g.tat = Math.max(g.tat, now) + g.interval
        g.tatChanged = true
        continue
      }
    }
    if (g.room === 0 || free === 0) {
      if (broken && g.room === 0) defer(plan, i, now + o.probeWaitMs, false)
      else if (g.room === 0) plan.full.add(ep.id)
      continue
    }
    plan.actions[i] = 'L'
    g.room--
    free--
    if (broken) plan.probes.add(ep.id)
    if (g.interval > 0 && !reserved) {
      g.tat = Math.max(g.tat, now) + g.interval
      g.tatChanged = true
    }
  }
  for (const [id, g] of gates) if (g !== null && g.tatChanged) plan.tat.set(id, g.tat)
}

function defer (plan: ClaimPlan, i: number, at: number, reserved: boolean): void {
  plan.actions[i] = 'D'
  plan.at[i] = at
  plan.reserved[i] = reserved
}
