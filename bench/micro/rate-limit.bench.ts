/**
 * What one rate-limit decision costs on the request path, before and after rate limits were held
 * across nodes: ns per `organization()` / `clientIp()` call, over 1,000 keys taken in turn.
 *
 *   before  the exact node-local count of commit 70889bb, reproduced below: one BigInt64 word
 *           (window << 32 | count) per key, a load and a CAS per decision
 *   after   the Limiter of src/rate-limit/: the key's slot spends from tokens the node leased (three
 *           Int32 loads and a CAS, plus two loads for Remaining and the refill mark); leases come from an
 *           in-memory store here, since only the synchronous hot path is measured (one node alone takes a
 *           quarter of what is left per lease, so a round of 2,000 decisions per key never waits)
 *
 * Cases: allowed (well under the limit), limited (over the limit: the 429 path, answered from memory),
 * and per client IP (allowed, with the address hashed). Every decision of the measured rounds must be
 * synchronous; the script fails otherwise. Run: node --import tsx bench/micro/rate-limit.bench.ts
 */
import { Decision, Limiter, WINDOW_MS } from '../../src/rate-limit/limiter.ts'
import { allocateWindows } from '../../src/rate-limit/shared-window.ts'
import type { LeaseParams, LeaseRow, LeaseStore } from '../../src/rate-limit/lease-store.ts'
import { sliceGrant } from '../../src/rate-limit/slice.ts'
import { coarseClock } from '../../src/lib/coarse-clock.ts'

const N = 2_000_000
const KEYS = 1000
const BIG = 10_000_000

// ---- before: the node-local exact count (src/rate-limit/shared-window.ts and limiter.ts at 70889bb) ----

const LOW32 = 0xffffffffn

class CountWindows {
  readonly #keys: Int32Array
  readonly #counts: BigInt64Array
  readonly #mask: number
  constructor (slots: number) {
    const sab = new SharedArrayBuffer(slots * 12)
    this.#keys = new Int32Array(sab, 0, slots)
    this.#counts = new BigInt64Array(sab, slots * 4, slots)
    this.#mask = slots - 1
  }

  #slot (id: number): number {
    const want = (id + 1) | 0
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

  /** The count after this hit, or -1 when limited. */
  hit (id: number, window: number, limit: number): number {
    const i = this.#slot(id)
    const asked = BigInt(window)
    for (;;) {
      const old = Atomics.load(this.#counts, i)
      const stored = old >> 32n
      const w = stored > asked ? stored : asked
      const count = stored === w ? Number(old & LOW32) : 0
      if (count >= limit) return -1
      if (Atomics.compareExchange(this.#counts, i, old, (w << 32n) | BigInt(count + 1)) === old) return count + 1
    }
  }
}

function fnv1a31 (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) }
  return h >>> 1
}

class Before {
  readonly #orgs = new CountWindows(1 << 18)
  readonly #ips = new CountWindows(1 << 18)
  #decide (t: CountWindows, id: number, limit: number, out: Decision): Decision {
    const now = coarseClock.now()
    const window = Math.floor(now / WINDOW_MS)
    const end = (window + 1) * WINDOW_MS
    const count = t.hit(id, window, limit)
    out.allowed = count >= 0
    out.limit = limit
    out.remaining = Math.max(0, limit - (count < 0 ? limit : count))
    out.reset = Math.ceil(end / 1000)
    out.retryAfter = Math.max(1, Math.ceil((end - now) / 1000))
    return out
  }

  organization (orgNo: number, limit: number, out: Decision): Decision { return this.#decide(this.#orgs, orgNo, limit, out) }
  clientIp (ip: string, limit: number, out: Decision): Decision { return this.#decide(this.#ips, fnv1a31(ip), limit, out) }
}

// ---- after: the Limiter, leasing from memory ----

/** One node alone: the database's grant with holders 1 and nothing else to share with. */
class SoloStore implements LeaseStore {
  readonly #leased = new Map<string, number>()
  lease = async (p: LeaseParams): Promise<LeaseRow> => {
    const k = `${p.table}:${p.id}:${p.window}`
    const leased = this.#leased.get(k) ?? 0
    const granted = sliceGrant(p.limit - leased, 1, p.need, p.divisor, p.minSlice)
    this.#leased.set(k, leased + granted)
    return { granted, leased: leased + granted, holders: 1 }
  }

  giveBack = async (): Promise<number> => 0
}

interface Subject {
  organization: (orgNo: number, limit: number, out: Decision) => Decision | Promise<Decision>
  clientIp: (ip: string, limit: number, out: Decision) => Decision | Promise<Decision>
}

const ips = Array.from({ length: KEYS }, (_, i) => `203.0.${i >> 8}.${i & 255}`)
const out = new Decision()

/** ns per decision over N synchronous decisions; throws if one was not synchronous or not as expected. */
function round (decide: (i: number) => Decision | Promise<Decision>, allowed: boolean): number {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    const d = decide(i)
    if (!(d instanceof Decision) || d.allowed !== allowed) throw new Error(`decision ${i} was not a synchronous ${allowed ? 'allow' : 'refusal'}`)
  }
  return Number(process.hrtime.bigint() - t0) / N
}

/** Settles every key's first decision of the window (the lease it waits for) and spends the limited keys. */
async function warm (s: Subject): Promise<void> {
  for (let i = 0; i < KEYS; i++) {
    await s.organization(i, BIG, out)
    await s.clientIp(ips[i]!, BIG, out)
    await s.organization(100_000 + i, 1, out)
    await s.organization(100_000 + i, 1, out)
  }
}

const cases = {
  allowed: (s: Subject) => round(i => s.organization(i % KEYS, BIG, out), true),
  limited: (s: Subject) => round(i => s.organization(100_000 + (i % KEYS), 1, out), false),
  ip: (s: Subject) => round(i => s.clientIp(ips[i % KEYS]!, BIG, out), true),
}

const before = new Before()
const after = new Limiter(allocateWindows(), allocateWindows(), new SoloStore(), err => { throw err })
await warm(before)
await warm(after)
const results: Record<string, { before: number[], after: number[] }> = {}
for (let r = 0; r < 9; r++) {
  for (const [name, run] of Object.entries(cases)) {
    const x = results[name] ??= { before: [], after: [] }
    x.before.push(run(before))
    x.after.push(run(after))
    // Refills in flight land between rounds.
    await new Promise(resolve => setImmediate(resolve))
  }
}
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
console.log('| case | before (ns) | after (ns) | after / before |')
console.log('| --- | --- | --- | --- |')
for (const [name, x] of Object.entries(results)) {
  // The first two rounds warm the JIT.
  const b = med(x.before.slice(2))
  const a = med(x.after.slice(2))
  console.log(`| ${name} | ${b.toFixed(1)} | ${a.toFixed(1)} | ${(a / b).toFixed(2)}× |`)
}
