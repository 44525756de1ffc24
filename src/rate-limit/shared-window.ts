/**
 * The node-local half of the rate limits: per key (an organization number or a client-address hash),
 * the tokens this node has leased for the current clock-minute window (limiter.ts leases them from
 * PostgreSQL) and how many of them its requests have spent. One SharedArrayBuffer, allocated by the
 * primary and wrapped by every listener thread, so spending is exact across the node's threads.
 *
 * Layout: slots of 8 Int32 words, open addressing with linear probing, `slots` a power of two:
 *
 *   KEY      0 = empty, else id + 1 (claimed once with CAS, never freed)
 *   WIN      the window (minutes since the epoch) the words below belong to; BUSY while being reset
 *   GRANTED  tag | tokens this node leased in WIN
 *   USED     tag | tokens this node's requests spent in WIN (may pass GRANTED for an instant while a
 *                  lease lands: see `reserve`)
 *   OTHERS   tag | tokens the other nodes had leased, as of this node's latest lease reply
 *   REFILL   tag | lease the next slice once fewer tokens than this are unspent (0: never)
 *   LEASE    0, or the stamp of this node's lease in flight for the key (one at a time; `tryLease`)
 *   STATE    tag | REGISTERED (this node counts as a holder of WIN) | ms into WIN of the latest reply + 1
 *
 * tag = (WIN & 0xff) << 24, values use the low 24 bits (at most 16,777,215 tokens). Every write is a
 * CAS against a value whose tag is the writer's window, so a write meant for one window can never land
 * in another: a lease reply that arrives after the minute turned is dropped, and a spend that raced a
 * window change fails its CAS and retries in the new window.
 *
 * Window change: the first thread to see a newer window CASes WIN to BUSY, stores the new tag with zero
 * in the tagged words, and then publishes WIN. Readers trust a tagged word only after reading WIN, so a
 * word left from a window 256·k minutes earlier (same tag) is never read as current. A thread whose
 * coarse clock still reads the previous minute uses the newer window it finds (it spends there rather
 * than resetting it).
 *
 * Slots are never reclaimed: with 2^18 slots a node tracks 262,144 distinct keys between restarts; past
 * that `slot` returns -1 and limiter.ts takes tokens straight from the database for those keys.
 */

export const DEFAULT_SLOTS = 1 << 18
const STRIDE = 8
const KEY = 0
const WIN = 1
const GRANTED = 2
const USED = 3
const OTHERS = 4
const REFILL = 5
const LEASE = 6
const STATE = 7

const BUSY = -1
const VALUE = 0xffffff
const TAG = ~VALUE
const REGISTERED = 1 << 20
const CHECKED = 0x1ffff
/** The most tokens a slot can count (24 bits). */
export const MAX_TOKENS = VALUE
/** Spinning on a window reset in progress gives up after this many reads (limiter.ts then retries). */
const SPINS = 1000
/** Lease stamps are coarse-clock milliseconds modulo this, plus one. */
const STAMP_MOD = 0x3fffffff

export function allocateWindows (slots = DEFAULT_SLOTS): SharedArrayBuffer {
  if ((slots & (slots - 1)) !== 0 || slots < 1) throw new RangeError('slots must be a power of two')
  return new SharedArrayBuffer(slots * STRIDE * 4)
}

// Atomics.waitAsync (Node 16+) is missing from the TypeScript lib this project targets.
const waitAsyncFn: unknown = Reflect.get(Atomics, 'waitAsync')
if (typeof waitAsyncFn !== 'function') throw new Error('Atomics.waitAsync is not available')
const waitAsync = waitAsyncFn

function tagOf (window: number): number {
  return (window & 0xff) << 24
}

/** Unspent tokens of one key, claimed by `sweep`. */
export interface Unspent {
  readonly id: number
  readonly window: number
  readonly tokens: number
  /** This sweep took the key off the node's holders (1), or another sweep already had (0). */
  readonly holder: number
}

export class SharedWindows {
  readonly #a: Int32Array
  readonly #mask: number
  /** GRANTED as read by the latest successful `spend` (per thread; for the refill check). */
  granted = 0
  /** USED after the latest successful `spendUpTo` (per thread). */
  usedAfter = 0

  constructor (sab: SharedArrayBuffer) {
    const slots = sab.byteLength / (STRIDE * 4)
    this.#a = new Int32Array(sab)
    this.#mask = slots - 1
  }

  /** The slot of `id` (a non-negative 31-bit integer) as a word offset, claimed if new; -1 when full. */
  slot (id: number): number {
    const a = this.#a
    // As stored in an Int32Array: id 2^31 - 1 becomes -2^31 (still never 0), and compares equal.
    const want = (id + 1) | 0
    // Fibonacci hashing spreads sequential ids.
    let i = Math.imul(want, 0x9e3779b1) >>> 0 & this.#mask
    for (let probes = 0; probes <= this.#mask; probes++) {
      const at = i * STRIDE
      const k = Atomics.load(a, at + KEY)
      if (k === want) return at
      if (k === 0) {
        const prev = Atomics.compareExchange(a, at + KEY, 0, want)
        if (prev === 0 || prev === want) return at
      }
      i = (i + 1) & this.#mask
    }
    return -1
  }

  /**
   * Makes the slot current for `window` (resetting it when it holds an older one) and returns the
   * window it is in: `window`, a newer one another thread already entered, or -1 while another thread
   * is still resetting it (rare; try again later).
   */
  enter (s: number, window: number): number {
    const a = this.#a
    for (let spins = 0; spins < SPINS; spins++) {
      const cur = Atomics.load(a, s + WIN)
      if (cur >= window) return cur
      if (cur === BUSY || Atomics.compareExchange(a, s + WIN, cur, BUSY) !== cur) continue
      const tag = tagOf(window)
      Atomics.store(a, s + GRANTED, tag)
      Atomics.store(a, s + USED, tag)
      Atomics.store(a, s + OTHERS, tag)
      Atomics.store(a, s + REFILL, tag)
      Atomics.store(a, s + STATE, tag)
      Atomics.store(a, s + WIN, window)
      return window
    }
    return -1
  }

  /**
   * Spends `n` tokens of `window` if that many are unspent; returns USED after it, or -1 (not enough
   * leased, or the window moved on). The hot path: three loads and one CAS.
   */
  spend (s: number, window: number, n: number): number {
    const a = this.#a
    const tag = tagOf(window)
    const g = Atomics.load(a, s + GRANTED)
    if ((g & TAG) !== tag) return -1
    const granted = g & VALUE
    for (;;) {
      const u = Atomics.load(a, s + USED)
      if ((u & TAG) !== tag) return -1
      const used = (u & VALUE) + n
      if (used > granted) return -1
      if (Atomics.compareExchange(a, s + USED, u, tag | used) === u) {
        this.granted = granted
        return used
      }
    }
  }

  /** Spends up to `n` unspent tokens of `window`; returns how many it spent (USED after it: `usedAfter`). */
  spendUpTo (s: number, window: number, n: number): number {
    const a = this.#a
    const tag = tagOf(window)
    for (;;) {
      const g = Atomics.load(a, s + GRANTED)
      const u = Atomics.load(a, s + USED)
      if ((g & TAG) !== tag || (u & TAG) !== tag) return 0
      const k = Math.min(n, (g & VALUE) - (u & VALUE))
      if (k <= 0) return 0
      if (Atomics.compareExchange(a, s + USED, u, tag | ((u & VALUE) + k)) === u) {
        this.usedAfter = (u & VALUE) + k
        return k
      }
    }
  }

  /**
   * Adds `n` to USED without checking GRANTED (negative `n` gives spent tokens back); returns USED
   * after it, or -1 if the slot left `window`. A lease's own need is reserved this way before its grant
   * is added to GRANTED, so no other request can take those tokens in between (USED then passes
   * GRANTED for an instant, which only sends other requests to the slow path).
   */
  reserve (s: number, window: number, n: number): number {
    return this.#add(s + USED, window, n)
  }

  /** Adds `n` leased tokens to GRANTED; returns GRANTED after it, or -1 if the slot left `window`. */
  grant (s: number, window: number, n: number): number {
    return this.#add(s + GRANTED, window, n)
  }

  #add (at: number, window: number, n: number): number {
    const a = this.#a
    const tag = tagOf(window)
    for (;;) {
      const v = Atomics.load(a, at)
      if ((v & TAG) !== tag) return -1
      const next = Math.min(VALUE, Math.max(0, (v & VALUE) + n))
      if (Atomics.compareExchange(a, at, v, tag | next) === v) return next
    }
  }

  /** Sets a tagged word of `window` (OTHERS, REFILL); false if the slot left the window. */
  #set (at: number, window: number, value: number): boolean {
    const a = this.#a
    const tag = tagOf(window)
    for (;;) {
      const v = Atomics.load(a, at)
      if ((v & TAG) !== tag) return false
      if (Atomics.compareExchange(a, at, v, tag | (Math.min(VALUE, Math.max(0, value)) & VALUE)) === v) return true
    }
  }

  #get (at: number, window: number): number {
    const v = Atomics.load(this.#a, at)
    return (v & TAG) === tagOf(window) ? v & VALUE : 0
  }

  used (s: number, window: number): number { return this.#get(s + USED, window) }
  others (s: number, window: number): number { return this.#get(s + OTHERS, window) }
  refillBelow (s: number, window: number): number { return this.#get(s + REFILL, window) }

  /**
   * Records a lease reply: the other nodes' share of `leased`, the refill mark, this node's
   * registration as a holder, and when (ms into the window).
   */
  landed (s: number, window: number, others: number, refill: number, msIntoWindow: number): void {
    if (!this.#set(s + OTHERS, window, others)) return
    this.#set(s + REFILL, window, refill)
    this.#set(s + STATE, window, REGISTERED | (Math.min(CHECKED - 1, Math.max(0, msIntoWindow)) + 1))
  }

  /** Stops refilling ahead of need for the rest of `window` (after a failed refill). */
  stopRefill (s: number, window: number): void {
    this.#set(s + REFILL, window, 0)
  }

  registered (s: number, window: number): boolean {
    return (this.#get(s + STATE, window) & REGISTERED) !== 0
  }

  /** ms into `window` of the latest lease reply, or -1 if there was none in this window. */
  checkedAt (s: number, window: number): number {
    return (this.#get(s + STATE, window) & CHECKED) - 1
  }

  /**
   * Takes the node's lease of this key: returns a stamp to pass to `release`, or 0 if another thread
   * holds it. A stamp older than `staleMs` (its thread died mid-lease) is taken over.
   */
  tryLease (s: number, now: number, staleMs: number): number {
    const a = this.#a
    const cur = Atomics.load(a, s + LEASE)
    const stamp = (now % STAMP_MOD) + 1
    if (cur !== 0) {
      // Threads' coarse clocks differ by a tick: a stamp from a little "in the future" is fresh too.
      let age = stamp - cur
      if (age > STAMP_MOD / 2) age -= STAMP_MOD
      else if (age < -STAMP_MOD / 2) age += STAMP_MOD
      if (age < staleMs) return 0
    }
    return Atomics.compareExchange(a, s + LEASE, cur, stamp) === cur ? stamp : 0
  }

  /** Releases the lease taken with `stamp` and wakes every thread waiting on it. */
  release (s: number, stamp: number): void {
    if (Atomics.compareExchange(this.#a, s + LEASE, stamp, 0) === stamp) Atomics.notify(this.#a, s + LEASE)
  }

  /** Resolves when the lease in flight is released or after `ms`; null when none is in flight. */
  leaseReleased (s: number, ms: number): Promise<unknown> | null {
    const cur = Atomics.load(this.#a, s + LEASE)
    if (cur === 0) return null
    const r: unknown = Reflect.apply(waitAsync, Atomics, [this.#a, s + LEASE, cur, ms])
    // { async: false } when the lease was released in the meantime.
    return typeof r === 'object' && r !== null && 'value' in r && r.value instanceof Promise ? r.value : null
  }

  /**
   * Claims every unspent token of windows `fromWindow` and later (USED := GRANTED) and every holder
   * registration, for giving back to the database when the node stops. Safe to run on several threads
   * at once: each token and registration is claimed by exactly one of them.
   */
  sweep (fromWindow: number): Unspent[] {
    const a = this.#a
    const out: Unspent[] = []
    for (let at = 0; at < a.length; at += STRIDE) {
      const k = Atomics.load(a, at + KEY)
      const w = Atomics.load(a, at + WIN)
      if (k === 0 || w < fromWindow) continue
      const tag = tagOf(w)
      let tokens = 0
      for (;;) {
        const g = Atomics.load(a, at + GRANTED)
        const u = Atomics.load(a, at + USED)
        if ((g & TAG) !== tag || (u & TAG) !== tag || (u & VALUE) >= (g & VALUE)) break
        if (Atomics.compareExchange(a, at + USED, u, g) === u) { tokens = (g & VALUE) - (u & VALUE); break }
      }
      let holder = 0
      for (;;) {
        const st = Atomics.load(a, at + STATE)
        if ((st & TAG) !== tag || (st & REGISTERED) === 0) break
        if (Atomics.compareExchange(a, at + STATE, st, st & ~REGISTERED) === st) { holder = 1; break }
      }
      if (tokens > 0 || holder > 0) out.push({ id: (k - 1) >>> 0 & 0x7fffffff, window: w, tokens, holder })
    }
    return out
  }
}
