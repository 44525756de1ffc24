/**
 * Per-organization and per-client-IP rate limits on fixed one-minute windows aligned to the clock
 * minute, held across every node that shares the database. Listener threads only.
 *
 *   limiter.organization(orgNo, limit, out, n = 1)  → Decision | Promise<Decision>
 *   limiter.clientIp(ip, limit, out, n = 1)         → Decision | Promise<Decision>
 *
 * Each call takes `n` tokens of the current window, all or nothing: allowed when at least `n` are
 * left (and all `n` are taken), otherwise not allowed and nothing is taken (a batch charging N events
 * gets its 429 without spending anything). A synchronous answer is written into `out` (one reusable
 * Decision per thread, STYLE C7/C10); a Promise resolves with a Decision of its own, since `out` may be
 * reused by other requests meanwhile. A Promise rejects with an `unavailable` ApiError (503) when the
 * database cannot be reached within LEASE_WAIT_MS.
 *
 * How (README "Rate limits across nodes"): the node leases tokens of the window from PostgreSQL in
 * slices (slice.ts) and spends them from shared memory (shared-window.ts), exact across its listener
 * threads. The hot path is synchronous: spend from the slot, and when fewer than half the latest
 * slice's surplus is left, start leasing the next slice in the background. Only when the node's
 * tokens are gone (the first request of a key in each minute, among others) does a request wait, on
 * one lease round trip per node and key at a time (other requests of the key wait for the same
 * lease). In the tail of a window (slices below MIN_SLICE) each request leases exactly what it needs,
 * so no node holds tokens another could use. A key known to be out of tokens is refused without the
 * database, re-checked at most every RECHECK_MS. On shutdown the node gives its unspent tokens back
 * (`giveBack`).
 *
 * X-RateLimit-Remaining is the limit less what this node spent less what the other nodes had leased at
 * this node's latest lease: exact on one node, never above what is truly left while the others' share
 * is current (best effort across nodes), never negative.
 */
import { coarseClock } from '../lib/coarse-clock.ts'
import { ApiError } from '../errors.ts'
import { dbError } from '../db/errors.ts'
import { MAX_TOKENS, SharedWindows, type Unspent } from './shared-window.ts'
import { COLD_HOLDERS, MIN_SLICE, NO_SLICE, SLICE_DIVISOR, refillBelow } from './slice.ts'
import type { LeaseStore, RateTable } from './lease-store.ts'

export const WINDOW_MS = 60_000
/** How long a request may wait for tokens from the database before it is answered 503. */
export const LEASE_WAIT_MS = 3000
/** A lease stamp this old belongs to a thread that died mid-lease: another thread may lease. */
const LEASE_STALE_MS = 10_000
/** A key found out of tokens is refused locally; the database is asked again after this long. */
export const RECHECK_MS = 1000

/** Decision for one request; the synchronous path reuses one per thread. */
export class Decision {
  allowed = true
  limit = 0
  remaining = 0
  /** Unix seconds when the window ends. */
  reset = 0
  /** Seconds until the window ends (Retry-After when limited), at least 1. */
  retryAfter = 1
}

function answer (out: Decision, allowed: boolean, limit: number, remaining: number, n: number, window: number, now: number): Decision {
  const end = (window + 1) * WINDOW_MS
  out.allowed = allowed
  out.limit = limit
  // A refusal means fewer than n are left.
  out.remaining = Math.max(0, allowed ? remaining : Math.min(remaining, n - 1))
  out.reset = end / 1000
  out.retryAfter = Math.max(1, Math.ceil((end - now) / 1000))
  return out
}

function fnv1a31 (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) }
  return h >>> 1
}

function unavailable (cause?: unknown): ApiError {
  return new ApiError('unavailable', 'Database unavailable', null, { cause, retryAfter: 1 })
}

/** Rejects with 503 `unavailable` if `p` has not settled within `ms`. */
async function within<T> (p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | null = null
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(unavailable()) }, Math.max(0, ms)) })
  try {
    return await Promise.race([p, late])
  } finally {
    if (timer !== null) clearTimeout(timer)
  }
}

class Table {
  readonly kind: RateTable
  readonly slots: SharedWindows
  constructor (kind: RateTable, slots: SharedWindows) {
    this.kind = kind
    this.slots = slots
  }
}

/** What a lease left this request: its remaining count, or -1 when it got nothing. */
const DENIED = -1

export class Limiter {
  readonly #orgs: Table
  readonly #ips: Table
  readonly #store: LeaseStore
  readonly #onError: (err: unknown) => void
  readonly #waitMs: number
  /** Background refills of this thread, awaited by `giveBack`. */
  readonly #refills = new Set<Promise<void>>()

  /**
   * `onError` hears about failed background refills (the requests themselves see their own errors);
   * `waitMs` bounds a request's wait for tokens (LEASE_WAIT_MS).
   */
  constructor (orgs: SharedArrayBuffer, ips: SharedArrayBuffer, store: LeaseStore, onError: (err: unknown) => void, waitMs = LEASE_WAIT_MS) {
    this.#orgs = new Table('org', new SharedWindows(orgs))
    this.#ips = new Table('ip', new SharedWindows(ips))
    this.#store = store
    this.#onError = onError
    this.#waitMs = waitMs
  }

  organization (orgNo: number, limit: number, out: Decision, n = 1): Decision | Promise<Decision> {
    return this.#decide(this.#orgs, orgNo, limit, n, out)
  }

  clientIp (ip: string, limit: number, out: Decision, n = 1): Decision | Promise<Decision> {
    return this.#decide(this.#ips, fnv1a31(ip), limit, n, out)
  }

  /**
   * The organization's headers as this node knows them, taking nothing and never waiting: for answers
   * decided before the route charges its tokens (the batch route refuses a bad body first). Remaining
   * is what this node last knew is left (the limit when it knows nothing of this window yet).
   */
  peekOrganization (orgNo: number, limit: number, out: Decision): Decision {
    const now = coarseClock.now()
    const window = Math.floor(now / WINDOW_MS)
    const slots = this.#orgs.slots
    const s = slots.slot(orgNo)
    const w = s < 0 ? 0 : slots.enter(s, window)
    const left = w === window ? limit - slots.used(s, w) - slots.others(s, w) : limit
    return answer(out, true, limit, left, 1, window, now)
  }

  #decide (t: Table, id: number, limit: number, n: number, out: Decision): Decision | Promise<Decision> {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`tokens must be a positive integer, got ${n}`)
    if (!Number.isInteger(limit) || limit < 0 || limit > MAX_TOKENS) throw new RangeError(`limit out of range: ${limit}`)
    const now = coarseClock.now()
    const slots = t.slots
    const s = slots.slot(id)
    if (s < 0) return this.#direct(t, id, limit, n, now)
    const w = slots.enter(s, Math.floor(now / WINDOW_MS))
    if (w > 0) {
      const used = slots.spend(s, w, n)
      if (used >= 0) {
        const others = slots.others(s, w)
        if (slots.granted - used < slots.refillBelow(s, w)) this.#refill(t, s, id, w, limit, limit - others - slots.granted, now)
        return answer(out, true, limit, limit - used - others, n, w, now)
      }
      const left = this.#knownLeft(slots, s, w, limit, now)
      if (left < n) return answer(out, false, limit, left, n, w, now)
    }
    return this.#settle(t, s, id, limit, n)
  }

  /**
   * Tokens known to be left for the key in `window` (this node's unspent plus the database's
   * remainder as of the latest lease reply), or Infinity when that reply is older than RECHECK_MS or
   * there was none: then only the database can tell.
   */
  #knownLeft (slots: SharedWindows, s: number, window: number, limit: number, now: number): number {
    const checked = slots.checkedAt(s, window)
    if (checked < 0 || now - window * WINDOW_MS - checked >= RECHECK_MS) return Infinity
    return limit - slots.used(s, window) - slots.others(s, window)
  }

  /**
   * The slow path: wait for this node's lease of the key in flight, or lease; within the lease wait
   * (measured on the wall clock: the coarse clock only decides windows).
   */
  async #settle (t: Table, s: number, id: number, limit: number, n: number): Promise<Decision> {
    const slots = t.slots
    const out = new Decision()
    const deadline = Date.now() + this.#waitMs
    try {
      for (;;) {
        const now = coarseClock.now()
        const wait = deadline - Date.now()
        if (wait <= 0) throw unavailable()
        const w = slots.enter(s, Math.floor(now / WINDOW_MS))
        if (w < 0) { await new Promise(resolve => setImmediate(resolve)); continue }
        const used = slots.spend(s, w, n)
        if (used >= 0) return answer(out, true, limit, limit - used - slots.others(s, w), n, w, now)
        if (n > limit) return answer(out, false, limit, limit - slots.used(s, w) - slots.others(s, w), n, w, now)
        const left = this.#knownLeft(slots, s, w, limit, now)
        if (left < n) return answer(out, false, limit, left, n, w, now)
        const stamp = slots.tryLease(s, now, LEASE_STALE_MS)
        if (stamp !== 0) {
          const remaining = await within(this.#leaseFor(t, s, id, w, limit, n, stamp), wait)
          if (remaining !== DENIED) return answer(out, true, limit, remaining, n, w, coarseClock.now())
          continue // the reply is now the latest knowledge: the next round refuses or spends
        }
        const released = slots.leaseReleased(s, Math.min(wait, RECHECK_MS))
        if (released !== null) await released
      }
    } catch (err) {
      throw dbError(err)
    }
  }

  /**
   * Leases for one request holding the node's lease `stamp`: takes what is unspent on the node (up to
   * `n`), asks the database for the rest, and gives back what it took if the database has too little.
   * Returns the request's remaining count, or DENIED.
   */
  async #leaseFor (t: Table, s: number, id: number, w: number, limit: number, n: number, stamp: number): Promise<number> {
    const slots = t.slots
    try {
      const held = slots.spendUpTo(s, w, n)
      // Tokens arrived since the hot path looked (a lease of another thread landed): no lease needed.
      if (held === n) return limit - slots.usedAfter - slots.others(s, w)
      const used = await this.#lease(t, s, id, w, limit, n - held)
      if (used === DENIED) {
        slots.reserve(s, w, -held)
        return DENIED
      }
      return limit - used - slots.others(s, w)
    } finally {
      slots.release(s, stamp)
    }
  }

  /**
   * One lease of `need` tokens (0: a refill) landed in the slot; returns USED after reserving `need`
   * (the current USED for a refill), or DENIED when the database had fewer than `need` left.
   */
  async #lease (t: Table, s: number, id: number, w: number, limit: number, need: number): Promise<number> {
    const slots = t.slots
    const row = await this.#store.lease({
      table: t.kind, id, window: w, limit, need, first: !slots.registered(s, w), divisor: SLICE_DIVISOR, minSlice: MIN_SLICE, coldHolders: COLD_HOLDERS,
    })
    const granted = row?.granted ?? 0
    const leased = row?.leased ?? limit
    const ok = granted >= need
    // Reserve the request's own tokens before the grant becomes visible to other requests.
    let used = ok && need > 0 ? slots.reserve(s, w, need) : slots.used(s, w)
    const total = slots.grant(s, w, granted)
    if (total >= 0) slots.landed(s, w, leased - total, refillBelow(granted, need), coarseClock.now() - w * WINDOW_MS)
    // The minute turned while the lease was in flight: the tokens were granted in `w`, the request may
    // still spend them; its remaining is what the database said.
    else if (ok) used = leased
    return ok ? used : DENIED
  }

  /** Leases the next slice in the background (at most one lease per node and key at a time). */
  #refill (t: Table, s: number, id: number, w: number, limit: number, dbLeft: number, now: number): void {
    if (dbLeft <= 0) return
    const stamp = t.slots.tryLease(s, now, LEASE_STALE_MS)
    if (stamp === 0) return
    const p: Promise<void> = this.#lease(t, s, id, w, limit, 0).then(() => {
      t.slots.release(s, stamp)
      this.#refills.delete(p)
    }, (err: unknown) => {
      // Requests that run out lease for themselves and answer 503 if that fails too.
      t.slots.stopRefill(s, w)
      t.slots.release(s, stamp)
      this.#refills.delete(p)
      this.#onError(err)
    })
    this.#refills.add(p)
  }

  /**
   * A key the node-local table has no room for: every request takes exactly its tokens from the
   * database, and nothing is held on the node.
   */
  async #direct (t: Table, id: number, limit: number, n: number, now: number): Promise<Decision> {
    const w = Math.floor(now / WINDOW_MS)
    let row
    try {
      row = await within(this.#store.lease({ table: t.kind, id, window: w, limit, need: n, first: false, divisor: SLICE_DIVISOR, minSlice: NO_SLICE, coldHolders: COLD_HOLDERS }), this.#waitMs)
    } catch (err) {
      throw dbError(err)
    }
    const granted = row?.granted ?? 0
    return answer(new Decision(), granted >= n, limit, limit - (row?.leased ?? limit), n, w, coarseClock.now())
  }

  /**
   * Gives this node's unspent tokens of the current window back to the database, and takes the node
   * off the holders of every key it leased: for a node that stops (never for one listener thread
   * being replaced, whose node keeps spending). Waits for this thread's refills first, within
   * the lease wait. Returns the tokens given back.
   */
  async giveBack (): Promise<number> {
    const pending = Promise.allSettled([...this.#refills])
    await within(pending, this.#waitMs).then(undefined, () => null) // a refill still hanging is not waited for
    const fromWindow = Math.floor(coarseClock.now() / WINDOW_MS)
    let total = 0
    for (const t of [this.#orgs, this.#ips]) {
      const byWindow = new Map<number, Unspent[]>()
      for (const u of t.slots.sweep(fromWindow)) {
        let list = byWindow.get(u.window)
        if (list === undefined) { list = []; byWindow.set(u.window, list) }
        list.push(u)
        total += u.tokens
      }
      for (const [window, list] of byWindow) {
        await this.#store.giveBack(t.kind, window, list.map(u => u.id), list.map(u => u.tokens), list.map(u => u.holder))
      }
    }
    return total
  }
}
