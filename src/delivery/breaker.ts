/**
 * Per-endpoint admission for the delivery thread: a concurrency cap, a small wait queue and a circuit
 * breaker for each webhook origin (scheme://host:port). Node-local state; other nodes keep their own.
 *
 *            N consecutive failures                 cool-down elapsed
 *   closed ─────────────────────────▶ open ─────────────────────────────▶ half-open (one probe)
 *     ▲                                 ▲                                      │
 *     └──────────── probe succeeds ─────┼──────────────────────────────────────┤
 *                                       └──── probe fails (cool-down doubles) ─┘
 *
 * Any 2xx from the endpoint closes the breaker; any other outcome (non-2xx, timeout, connection error)
 * counts as a failure. `admit` answers 'busy' only for a closed breaker at its cap; the caller may then
 * park the attempt in the endpoint's `waiting` queue (FIFO, at most `waitPerEndpoint`) and start it when
 * an attempt to the endpoint settles. `capacities` tells the claim query how many more attempts each
 * origin can take now (free slots plus free queue places; 0 while full or open), so the claim does not
 * hand this node work it would have to defer; attempts that were claimed anyway are deferred (see
 * Release), not attempted.
 *
 * Invariants:
 *   - `waiting` is non-empty only while the endpoint is closed and at its cap (the caller starts or hands
 *     back waiting attempts whenever an attempt settles), so waiting attempts never outnumber attempts in
 *     flight.
 *   - Bounded: entries with nothing in flight, nothing waiting and no failures are dropped; past
 *     `maxEndpoints` the oldest idle entry is evicted; each endpoint remembers at most ORGS_PER_ENDPOINT
 *     organizations and queues at most `waitPerEndpoint` attempts; `capacities` lists at most
 *     CAPACITY_MAX origins and organizations.
 */

export type BreakerState = 'closed' | 'open' | 'half-open'
export type Admission = 'go' | 'busy' | 'open'

const ORGS_PER_ENDPOINT = 64
const CAPACITY_MAX = 500

export interface BreakerOptions {
  /** Attempts in flight to one endpoint. */
  readonly perEndpoint: number
  /** Attempts one endpoint may hold waiting for a slot. */
  readonly waitPerEndpoint: number
  /** Consecutive failures that open the breaker. */
  readonly threshold: number
  readonly cooldownMs: number
  readonly maxCooldownMs: number
  readonly maxEndpoints: number
}

/**
 * Fixed-capacity FIFO with an index cursor (STYLE C9: no Array.shift). The buffer is allocated on the
 * first push, so the many endpoints that never wait stay small.
 *
 *   buf: [ . . c d e . . ]      head → c, size 3; push writes at (head + size) % capacity
 */
export class WaitQueue<T> {
  readonly capacity: number
  #buf: (T | undefined)[] | null = null
  #head = 0
  #size = 0

  constructor (capacity: number) {
    this.capacity = capacity
  }

  get size (): number { return this.#size }

  /** Appends `x`; false (and nothing stored) when full. */
  push (x: T): boolean {
    if (this.#size >= this.capacity) return false
    if (this.#buf === null) this.#buf = new Array<T | undefined>(this.capacity).fill(undefined)
    this.#buf[(this.#head + this.#size) % this.capacity] = x
    this.#size++
    return true
  }

  /** Removes and returns the oldest entry, or undefined when empty. */
  shift (): T | undefined {
    if (this.#size === 0 || this.#buf === null) return undefined
    const x = this.#buf[this.#head]
    this.#buf[this.#head] = undefined
    this.#head = (this.#head + 1) % this.capacity
    this.#size--
    return x
  }
}

/** One endpoint's state (fixed shape, STYLE C7). */
export class Endpoint<W> {
  readonly key: string
  inFlight = 0
  failures = 0
  state: BreakerState = 'closed'
  /** When an open breaker lets a probe through (ms since epoch). */
  openUntil = 0
  cooldownMs: number
  probing = false
  readonly orgs = new Set<string>()
  /** Claimed attempts waiting for a slot of this endpoint (managed by the caller). */
  readonly waiting: WaitQueue<W>

  constructor (key: string, cooldownMs: number, waitCapacity: number) {
    this.key = key
    this.cooldownMs = cooldownMs
    this.waiting = new WaitQueue<W>(waitCapacity)
  }
}

export class EndpointTable<W> {
  readonly #o: BreakerOptions
  readonly #endpoints = new Map<string, Endpoint<W>>()
  /** Room of an origin the table does not list: a full set of slots plus a full wait queue. */
  readonly defaultRoom: number

  constructor (o: BreakerOptions) {
    this.#o = o
    this.defaultRoom = o.perEndpoint + o.waitPerEndpoint
  }

  get size (): number { return this.#endpoints.size }

  /** The endpoint for `key`, created on first use; records that `orgId` delivers to it. */
  get (key: string, orgId: string): Endpoint<W> {
    let ep = this.#endpoints.get(key)
    if (ep === undefined) {
      if (this.#endpoints.size >= this.#o.maxEndpoints) this.#evictOne()
      ep = new Endpoint<W>(key, this.#o.cooldownMs, this.#o.waitPerEndpoint)
      this.#endpoints.set(key, ep)
    }
    if (ep.orgs.size < ORGS_PER_ENDPOINT) ep.orgs.add(orgId)
    return ep
  }

  /**
   * May an attempt to `ep` start now? 'go' reserves a slot (the caller must call `settle`); 'busy'
   * (closed, at the cap) means wait for a slot or defer; 'open' means defer (see `retryAt`).
   */
  admit (ep: Endpoint<W>, now: number): Admission {
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
  settle (ep: Endpoint<W>, ok: boolean, counts: boolean, now: number): void {
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
    if (ep.inFlight === 0 && ep.waiting.size === 0 && ep.failures === 0 && ep.state === 'closed') this.#endpoints.delete(ep.key)
  }

  /** When a deferred attempt to `ep` should be due again. */
  retryAt (ep: Endpoint<W>, admission: Admission, now: number, busyDeferMs: number): number {
    if (admission === 'open' && ep.state === 'open') return Math.max(ep.openUntil, now)
    if (admission === 'open') return now + Math.min(ep.cooldownMs, 1000) // a probe is in flight
    return now + busyDeferMs
  }

  /**
   * Room for the claim (bounded): every listed origin with how many more attempts this node can take
   * for it now (free slots plus free wait places; 0 = full or open). Origins not listed have
   * `defaultRoom`. `excludedOrgs` gets the organizations of the origins with no room, so the claim can
   * skip their rows before the per-origin cap even looks at them.
   */
  capacities (now: number, excludedOrgs: string[], origins: string[], rooms: number[]): void {
    excludedOrgs.length = 0
    origins.length = 0
    rooms.length = 0
    for (const ep of this.#endpoints.values()) {
      let room: number
      if (ep.state === 'open') room = now < ep.openUntil ? 0 : 1
      else if (ep.state === 'half-open') room = ep.probing ? 0 : 1
      else room = Math.max(0, this.#o.perEndpoint - ep.inFlight) + Math.max(0, ep.waiting.capacity - ep.waiting.size)
      if (room >= this.defaultRoom) continue
      if (origins.length >= CAPACITY_MAX) return
      origins.push(ep.key)
      rooms.push(room)
      if (room > 0) continue
      for (const org of ep.orgs) {
        if (excludedOrgs.length >= CAPACITY_MAX) break
        excludedOrgs.push(org)
      }
    }
  }

  /** Moves every waiting attempt of every endpoint to `out` (at stop). */
  takeAllWaiting (out: W[]): void {
    for (const ep of this.#endpoints.values()) {
      for (let x = ep.waiting.shift(); x !== undefined; x = ep.waiting.shift()) out.push(x)
    }
  }

  #open (ep: Endpoint<W>, now: number): void {
    ep.state = 'open'
    ep.probing = false
    ep.openUntil = now + ep.cooldownMs
  }

  #evictOne (): void {
    for (const ep of this.#endpoints.values()) {
      if (ep.inFlight === 0 && ep.waiting.size === 0) { this.#endpoints.delete(ep.key); return }
    }
  }
}
