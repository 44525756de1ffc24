/**
 * Fixed one-minute windows counted in shared memory, exact across every listener thread of a node.
 * The primary allocates the SharedArrayBuffer; each listener wraps it. Layout (open addressing, linear
 * probing, `slots` a power of two):
 *
 *   keys:   Int32Array[slots]     0 = empty, else the caller's id + 1 (claimed once with CAS, never freed)
 *   counts: BigInt64Array[slots]  (window << 32) | count, updated with compareExchange
 *
 * A slot whose window is not the current one counts as zero, so a new window needs no reset pass.
 * Slots are never reclaimed: with 2^18 slots a node tracks 262,144 distinct organizations (or IPs)
 * between restarts; past that, `hit` reports `full` and the caller falls back (see limiter.ts).
 */

export const DEFAULT_SLOTS = 1 << 18

export function allocateWindows (slots = DEFAULT_SLOTS): SharedArrayBuffer {
  if ((slots & (slots - 1)) !== 0) throw new RangeError('slots must be a power of two')
  return new SharedArrayBuffer(slots * 4 + slots * 8)
}

export const HitKind = { Allowed: 0, Limited: 1, Full: 2 } as const
export type HitKind = typeof HitKind[keyof typeof HitKind]

/** One result object reused per thread (hot path, no allocation). */
export class HitResult {
  kind: HitKind = HitKind.Allowed as HitKind
  /** Requests counted in the current window after this one (or at the limit when Limited). */
  count = 0
}

const LOW32 = 0xffffffffn

export class SharedWindows {
  readonly #keys: Int32Array
  readonly #counts: BigInt64Array
  readonly #mask: number

  constructor (sab: SharedArrayBuffer) {
    const slots = sab.byteLength / 12
    this.#keys = new Int32Array(sab, 0, slots)
    this.#counts = new BigInt64Array(sab, slots * 4, slots)
    this.#mask = slots - 1
  }

  #slot (id: number): number {
    // As stored in an Int32Array: id 2^31 - 1 becomes -2^31 (still never 0), and compares equal.
    const want = (id + 1) | 0
    // Fibonacci hashing spreads sequential ids.
    let i = Math.imul(want, 0x9e3779b1) >>> 0 & this.#mask
    for (let probes = 0; probes <= this.#mask; probes++) {
      const k = Atomics.load(this.#keys, i)
      if (k === want) return i
      if (k === 0) {
        const prev = Atomics.compareExchange(this.#keys, i, 0, want)
        if (prev === 0 || prev === want) return i
      }
      i = (i + 1) & this.#mask
    }
    return -1
  }

  /**
   * Counts one request of `id` in `window` unless that would exceed `limit`. `id` is a non-negative
   * 31-bit integer (an organization number, or a hash of a client IP).
   */
  hit (id: number, window: number, limit: number, out: HitResult): HitResult {
    const i = this.#slot(id)
    if (i < 0) { out.kind = HitKind.Full; out.count = 0; return out }
    const asked = BigInt(window)
    for (;;) {
      const old = Atomics.load(this.#counts, i)
      // Threads' coarse clocks differ by a tick or more at a minute boundary: a thread still in the
      // previous window counts in the newer one already stored instead of resetting it.
      const stored = old >> 32n
      const w = stored > asked ? stored : asked
      const count = stored === w ? Number(old & LOW32) : 0
      if (count >= limit) { out.kind = HitKind.Limited; out.count = count; return out }
      const next = (w << 32n) | BigInt(count + 1)
      if (Atomics.compareExchange(this.#counts, i, old, next) === old) {
        out.kind = HitKind.Allowed
        out.count = count + 1
        return out
      }
    }
  }

  /** The count of `id` in `window` (for tests and metrics). */
  peek (id: number, window: number): number {
    const i = this.#slot(id)
    if (i < 0) return 0
    const v = Atomics.load(this.#counts, i)
    return (v >> 32n) === BigInt(window) ? Number(v & LOW32) : 0
  }
}
