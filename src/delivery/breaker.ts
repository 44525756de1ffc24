/**
 * Per-endpoint admission for the delivery thread: a concurrency cap and a circuit breaker for each
 * webhook origin (scheme://host:port). Node-local state; other nodes keep their own.
 *
 *            N consecutive failures                 cool-down elapsed
 *   closed ─────────────────────────▶ open ─────────────────────────────▶ half-open (one probe)
 *     ▲                                 ▲                                      │
 *     └──────────── probe succeeds ─────┼──────────────────────────────────────┤
 *                                       └──── probe fails (cool-down doubles) ─┘
 *
 * Any 2xx from the endpoint closes the breaker; any other outcome (non-2xx, timeout, connection error)
 * counts as a failure. `capacities` tells the claim query how many more attempts each organization's
 * endpoint can take (0 while it is busy or open), so the claim does not hand their backlog to this
 * node; attempts that were claimed anyway are deferred (see Release), not attempted.
 *
 * Bounded: entries with nothing in flight and no failures are dropped; past `maxEndpoints` the oldest
 * idle entry is evicted; each endpoint remembers at most ORGS_PER_ENDPOINT organizations.
 */

export type BreakerState = 'closed' | 'open' | 'half-open'
export type Admission = 'go' | 'busy' | 'open'

const ORGS_PER_ENDPOINT = 64
const CAPACITY_MAX = 500

export interface BreakerOptions {
  /** Attempts in flight to one endpoint. */
  readonly perEndpoint: number
  /** Consecutive failures that open the breaker. */
  readonly threshold: number
  readonly cooldownMs: number
  readonly maxCooldownMs: number
  readonly maxEndpoints: number
}

/** One endpoint's state (fixed shape, STYLE C7). */
export class Endpoint {
  readonly key: string
  inFlight = 0
  failures = 0
  state: BreakerState = 'closed'
  /** When an open breaker lets a probe through (ms since epoch). */
  openUntil = 0
  cooldownMs: number
  probing = false
  readonly orgs = new Set<string>()

  constructor (key: string, cooldownMs: number) {
    this.key = key
    this.cooldownMs = cooldownMs
  }
}

export class EndpointTable {
  readonly #o: BreakerOptions
  readonly #endpoints = new Map<string, Endpoint>()

  constructor (o: BreakerOptions) {
    this.#o = o
  }

  get size (): number { return this.#endpoints.size }

  /** The endpoint for `key`, created on first use; records that `orgId` delivers to it. */
  get (key: string, orgId: string): Endpoint {
    let ep = this.#endpoints.get(key)
    if (ep === undefined) {
      if (this.#endpoints.size >= this.#o.maxEndpoints) this.#evictOne()
      ep = new Endpoint(key, this.#o.cooldownMs)
      this.#endpoints.set(key, ep)
    }
    if (ep.orgs.size < ORGS_PER_ENDPOINT) ep.orgs.add(orgId)
    return ep
  }

  /**
   * May an attempt to `ep` start now? 'go' reserves a slot (the caller must call `settle`); 'busy'
   * and 'open' mean defer it (see `retryAt`).
   */
  admit (ep: Endpoint, now: number): Admission {
    if (ep.state === 'open') {
      if (now < ep.openUntil) return 'open'
      ep.state = 'half-open'
      ep.probing = false
    }
    if (ep.state === 'half-open') {
      if (ep.probing) return 'open'
      ep.probing = true
      ep.inFlight++
      return 'go'
    }
    if (ep.inFlight >= this.#o.perEndpoint) return 'busy'
    ep.inFlight++
    return 'go'
  }

  /** Records the end of an admitted attempt; `ok` is a 2xx answer. `counts` false for attempts cut short by us. */
  settle (ep: Endpoint, ok: boolean, counts: boolean, now: number): void {
    ep.inFlight--
    if (!counts) {
      if (ep.state === 'half-open') ep.probing = false
    } else if (ok) {
      ep.failures = 0
      ep.state = 'closed'
      ep.probing = false
      ep.cooldownMs = this.#o.cooldownMs
    } else {
      ep.failures++
      if (ep.state === 'half-open') {
        ep.cooldownMs = Math.min(ep.cooldownMs * 2, this.#o.maxCooldownMs)
        this.#open(ep, now)
      } else if (ep.state === 'closed' && ep.failures >= this.#o.threshold) {
        this.#open(ep, now)
      }
    }
    if (ep.inFlight === 0 && ep.failures === 0 && ep.state === 'closed') this.#endpoints.delete(ep.key)
  }

  /** When a deferred attempt to `ep` should be due again. */
  retryAt (ep: Endpoint, admission: Admission, now: number, busyDeferMs: number): number {
    if (admission === 'open' && ep.state === 'open') return Math.max(ep.openUntil, now)
    if (admission === 'open') return now + Math.min(ep.cooldownMs, 1000) // a probe is in flight
    return now + busyDeferMs
  }

  /**
   * Room per organization for the claim (bounded): for every endpoint with attempts in flight or a
   * breaker not closed, each of its organizations with how many more attempts it may start now
   * (0 = busy or open: do not claim). Organizations not listed get the claim's default cap.
   */
  capacities (now: number, orgs: string[], remaining: number[]): void {
    orgs.length = 0
    remaining.length = 0
    for (const ep of this.#endpoints.values()) {
      let room: number
      if (ep.state === 'open') room = now < ep.openUntil ? 0 : 1
      else if (ep.state === 'half-open') room = ep.probing ? 0 : 1
      else room = Math.max(0, this.#o.perEndpoint - ep.inFlight)
      if (room >= this.#o.perEndpoint) continue
      for (const org of ep.orgs) {
        if (orgs.length >= CAPACITY_MAX) return
        orgs.push(org)
        remaining.push(room)
      }
    }
  }

  #open (ep: Endpoint, now: number): void {
    ep.state = 'open'
    ep.probing = false
    ep.openUntil = now + ep.cooldownMs
  }

  #evictOne (): void {
    for (const ep of this.#endpoints.values()) {
      if (ep.inFlight === 0) { this.#endpoints.delete(ep.key); return }
    }
  }
}
