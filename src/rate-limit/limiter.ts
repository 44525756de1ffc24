/**
 * Per-organization and per-IP rate limits on fixed one-minute windows aligned to the clock minute
 * (X-RateLimit-Reset is the end of the current minute). Counting is exact across this node's listener
 * threads through SharedWindows. Reads time from the coarse clock (STYLE C9). Listener threads only.
 */
import { coarseClock } from '../lib/coarse-clock.ts'
import { HitKind, HitResult, SharedWindows } from './shared-window.ts'
import { LRUCache } from 'lru-cache'

export const WINDOW_MS = 60_000

/** Decision for one request; reused (one per thread). */
export class Decision {
  allowed = true
  limit = 0
  remaining = 0
  /** Unix seconds when the window ends. */
  reset = 0
  /** Seconds until the window ends (Retry-After when limited), at least 1. */
  retryAfter = 1
}

function fnv1a31 (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) }
  return h >>> 1
}

export class Limiter {
  readonly #orgs: SharedWindows
  readonly #ips: SharedWindows
  readonly #hit = new HitResult()
  // Used only if the shared table is full: a per-thread fallback, bounded.
  readonly #fallback = new LRUCache<number, { w: number, n: number }>({ max: 100_000 })

  constructor (orgs: SharedArrayBuffer, ips: SharedArrayBuffer) {
    this.#orgs = new SharedWindows(orgs)
    this.#ips = new SharedWindows(ips)
  }

  #decide (table: SharedWindows, id: number, limit: number, out: Decision): Decision {
    const now = coarseClock.now()
    const window = Math.floor(now / WINDOW_MS)
    const end = (window + 1) * WINDOW_MS
    const r = table.hit(id, window, limit, this.#hit)
    let count = r.count
    let allowed = r.kind === HitKind.Allowed
    if (r.kind === HitKind.Full) {
      let e = this.#fallback.get(id)
      if (e === undefined || e.w !== window) { e = { w: window, n: 0 }; this.#fallback.set(id, e) }
      allowed = e.n < limit
      if (allowed) e.n++
      count = e.n
    }
    out.allowed = allowed
    out.limit = limit
    out.remaining = Math.max(0, limit - count)
    out.reset = Math.ceil(end / 1000)
    out.retryAfter = Math.max(1, Math.ceil((end - now) / 1000))
    return out
  }

  organization (orgNo: number, limit: number, out: Decision): Decision {
    return this.#decide(this.#orgs, orgNo, limit, out)
  }

  clientIp (ip: string, limit: number, out: Decision): Decision {
    return this.#decide(this.#ips, fnv1a31(ip), limit, out)
  }
}
