/**
 * The claim planner (src/delivery/flow.ts planClaim), pure: per candidate lease ('L'), defer ('D' to a
 * time), hold ('H') or leave due (null), and per endpoint its new GCRA time, breaker probe and "full"
 * mark — for docs/api.md "Flow control per endpoint". Times are plain numbers (ms); no clock is read.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { breakerCooldownMs, planClaim, type FlowOptions } from '../../src/delivery/flow.ts'
import { ClaimPlan, type Candidate, type EndpointFlow } from '../../src/db/queries/claim-deliveries.ts'

const NOW = Date.parse('2026-01-01T00:00:00.000Z')
const ORG = '00000000-0000-7000-8000-000000000001'
const OPTS: FlowOptions = { free: 100, defaultConcurrency: 16, breakerThreshold: 5, probeWaitMs: 1000 }

function endpoint (id: string, o: Partial<EndpointFlow> = {}): EndpointFlow {
  return {
    organization_id: ORG, id, url: 'http://127.0.0.1/hook', status: 'active', is_default: false, signing_secret: 'whsec_x',
    previous_secret: null, rate_limit: null, rate_period_seconds: null, max_concurrency: null, rate_tat: null,
    throttled_until: null, breaker_until: null, consecutive_failures: 0, leased: 0, ...o,
  }
}

let seq = 0
function cand (endpointId: string, reserved = false, due = NOW): Candidate {
  seq++
  return { organization_id: ORG, event_id: `event-${seq}`, endpoint_id: endpointId, rate_reserved: reserved, due_ms: due }
}

function plan (candidates: readonly Candidate[], eps: readonly EndpointFlow[], o: Partial<FlowOptions> = {}, now = NOW): ClaimPlan {
  const p = new ClaimPlan()
  planClaim({ ...OPTS, ...o }, candidates, new Map(eps.map(e => [e.id, e])), now, p)
  assert.equal(p.actions.length, candidates.length, 'one action per candidate')
  assert.equal(p.at.length, candidates.length)
  assert.equal(p.reserved.length, candidates.length)
  for (let i = 0; i < candidates.length; i++) {
    if (p.actions[i] !== 'D') assert.equal(p.at[i], 0, 'only a deferral carries a time')
    if (p.actions[i] !== 'D') assert.equal(p.reserved[i], false, 'only a deferral keeps a rate slot')
  }
  return p
}

const many = (n: number, endpointId: string, reserved = false): Candidate[] => Array.from({ length: n }, () => cand(endpointId, reserved))

test('an active endpoint without limits: every candidate is leased, nothing else changes', () => {
  const p = plan(many(5, 'a'), [endpoint('a')])
  assert.deepEqual(p.actions, ['L', 'L', 'L', 'L', 'L'])
  assert.equal(p.tat.size, 0)
  assert.equal(p.probes.size, 0)
  assert.equal(p.full.size, 0)
})

test('paused and disabled endpoints: their candidates are held, and take no slot from others', () => {
  const cs = [cand('p'), cand('d'), cand('a'), cand('p', true), cand('a')]
  const p = plan(cs, [endpoint('p', { status: 'paused' }), endpoint('d', { status: 'disabled' }), endpoint('a')], { free: 2 })
  assert.deepEqual(p.actions, ['H', 'H', 'L', 'H', 'L'])
  // Holding wins over every other state (throttle, breaker, rate limit).
  const q = plan([cand('p'), cand('p')], [endpoint('p', {
    status: 'paused', throttled_until: NOW + 5000, consecutive_failures: 9, breaker_until: NOW + 5000, rate_limit: 1, rate_period_seconds: 60, rate_tat: NOW + 60_000,
  })])
  assert.deepEqual(q.actions, ['H', 'H'])
  assert.equal(q.tat.size, 0)
})

test('throttled_until in the future: every candidate is deferred to it, without a slot', () => {
  const until = NOW + 30_000
  const p = plan([cand('t'), cand('t', true), cand('b')], [endpoint('t', { throttled_until: until }), endpoint('b')], { free: 1 })
  assert.deepEqual(p.actions, ['D', 'D', 'L'])
  assert.deepEqual([p.at[0], p.at[1]], [until, until])
  assert.deepEqual([p.reserved[0], p.reserved[1]], [false, false])
  // Passed (or now): no effect.
  assert.deepEqual(plan([cand('t')], [endpoint('t', { throttled_until: NOW })]).actions, ['L'])
  assert.deepEqual(plan([cand('t')], [endpoint('t', { throttled_until: NOW - 1 })]).actions, ['L'])
})

test('breaker open: deferred to breaker_until; below the threshold the breaker is not consulted', () => {
  const until = NOW + 5000
  const open = endpoint('e', { consecutive_failures: 5, breaker_until: until })
  const p = plan(many(3, 'e'), [open])
  assert.deepEqual(p.actions, ['D', 'D', 'D'])
  assert.deepEqual(p.at, [until, until, until])
  assert.equal(p.probes.size, 0)
  const healthy = endpoint('e', { consecutive_failures: 4, breaker_until: until })
  assert.deepEqual(plan(many(3, 'e'), [healthy]).actions, ['L', 'L', 'L'])
})

test('breaker half-open: exactly one probe is leased, the rest wait probeWaitMs (a rate slot would be late: given up)', () => {
  for (const breakerUntil of [null, NOW, NOW - 1]) {
    const ep = endpoint('e', { consecutive_failures: 7, breaker_until: breakerUntil })
    const cs = [cand('e'), cand('e', true), cand('e'), cand('x')]
    const p = plan(cs, [ep, endpoint('x')])
    assert.deepEqual(p.actions, ['L', 'D', 'D', 'L'])
    assert.deepEqual([p.at[1], p.at[2]], [NOW + 1000, NOW + 1000])
    assert.deepEqual([p.reserved[1], p.reserved[2]], [false, false], 'the wait gives the slot up: it would be late, and a late slot is not kept')
    assert.deepEqual([...p.probes], ['e'])
    assert.equal(p.full.size, 0, 'a broken endpoint is not reported full')
  }
  // Half-open but its concurrency is used up (a probe in flight elsewhere): no probe, all wait.
  const busy = endpoint('e', { consecutive_failures: 5, max_concurrency: 1, leased: 1 })
  const p = plan(many(2, 'e'), [busy])
  assert.deepEqual(p.actions, ['D', 'D'])
  assert.equal(p.probes.size, 0)
  // Half-open and this thread has no free slot: left due, not deferred, no probe.
  const q = plan(many(2, 'e'), [endpoint('e', { consecutive_failures: 5 })], { free: 0 })
  assert.deepEqual(q.actions, [null, null])
  assert.equal(q.probes.size, 0)
})

test('concurrency: room is max_concurrency minus the live leases on every node; the rest stay due and the endpoint is full', () => {
  const p = plan(many(5, 'e'), [endpoint('e', { max_concurrency: 3, leased: 1 })])
  assert.deepEqual(p.actions, ['L', 'L', null, null, null])
  assert.deepEqual([...p.full], ['e'])
  // Already at (or past) its limit: nothing leased.
  for (const leased of [3, 7]) {
    const q = plan(many(2, 'e'), [endpoint('e', { max_concurrency: 3, leased })])
    assert.deepEqual(q.actions, [null, null])
    assert.deepEqual([...q.full], ['e'])
  }
  // No max_concurrency: the operator default.
  const d = plan(many(6, 'e'), [endpoint('e', { leased: 2 })], { defaultConcurrency: 4 })
  assert.deepEqual(d.actions, ['L', 'L', null, null, null, null])
  // Exactly filled with no candidate left over: not reported full.
  const exact = plan(many(2, 'e'), [endpoint('e', { max_concurrency: 2 })])
  assert.deepEqual(exact.actions, ['L', 'L'])
  assert.equal(exact.full.size, 0)
})

test('free slots: at most `free` leases in due order; a candidate left for lack of slots is not a full endpoint', () => {
  const cs = [cand('a'), cand('b'), cand('a'), cand('b'), cand('c')]
  const p = plan(cs, [endpoint('a'), endpoint('b'), endpoint('c')], { free: 3 })
  assert.deepEqual(p.actions, ['L', 'L', 'L', null, null])
  assert.equal(p.full.size, 0)
  const none = plan(cs, [endpoint('a'), endpoint('b'), endpoint('c')], { free: 0 })
  assert.deepEqual(none.actions, [null, null, null, null, null])
})

test('one full endpoint does not stop another from leasing (fan-out rule 5)', () => {
  const cs = [...many(4, 'slow'), ...many(3, 'fast')]
  const p = plan(cs, [endpoint('slow', { max_concurrency: 2, leased: 2 }), endpoint('fast')], { free: 3 })
  assert.deepEqual(p.actions, [null, null, null, null, 'L', 'L', 'L'])
  assert.deepEqual([...p.full], ['slow'])
})

test('rate limit (GCRA): a burst of `limit`, then deferrals to evenly spaced slots that are reserved', () => {
  // 4 per second: interval 250 ms, burst tolerance 750 ms.
  const ep = endpoint('r', { rate_limit: 4, rate_period_seconds: 1 })
  const p = plan(many(8, 'r'), [ep])
  assert.deepEqual(p.actions, ['L', 'L', 'L', 'L', 'D', 'D', 'D', 'D'])
  assert.deepEqual(p.at.slice(4), [NOW + 250, NOW + 500, NOW + 750, NOW + 1000])
  assert.deepEqual(p.reserved.slice(4), [true, true, true, true])
  assert.equal(p.tat.get('r'), NOW + 8 * 250, 'the theoretical arrival time moved one interval per slot handed out')
})

test('rate limit: a remembered tat is honoured; an old one grants no more than one burst', () => {
  const later = endpoint('r', { rate_limit: 4, rate_period_seconds: 1, rate_tat: NOW + 1000 })
  const p = plan(many(2, 'r'), [later])
  assert.deepEqual(p.actions, ['D', 'D'])
  assert.deepEqual(p.at, [NOW + 250, NOW + 500])
  assert.equal(p.tat.get('r'), NOW + 1500)
  const old = endpoint('r', { rate_limit: 4, rate_period_seconds: 1, rate_tat: NOW - 3_600_000 })
  const q = plan(many(6, 'r'), [old])
  assert.deepEqual(q.actions, ['L', 'L', 'L', 'L', 'D', 'D'])
  assert.equal(q.at[4], NOW + 250)
})

test('rate_reserved candidates start without taking a new slot', () => {
  // The bucket is empty (tat far ahead), yet reserved candidates lease and leave tat alone.
  const ep = endpoint('r', { rate_limit: 2, rate_period_seconds: 10, rate_tat: NOW + 60_000 })
  const p = plan([cand('r', true), cand('r', true), cand('r')], [ep])
  assert.deepEqual(p.actions, ['L', 'L', 'D'])
  assert.equal(p.at[2], NOW + 60_000 - 5000, 'the unreserved one gets the next slot (tat − τ)')
  assert.equal(p.tat.get('r'), NOW + 65_000)
  const only = plan([cand('r', true)], [ep])
  assert.deepEqual(only.actions, ['L'])
  assert.equal(only.tat.size, 0, 'no slot taken: tat unchanged')
})

test('rate limit with concurrency: a deferred slot is kept, a candidate left due takes no slot', () => {
  const ep = endpoint('r', { rate_limit: 2, rate_period_seconds: 1, max_concurrency: 1 })
  const p = plan(many(4, 'r'), [ep])
  // First leases; second is allowed by the bucket but there is no room: left due (no slot taken);
  // third also allowed, left due; the bucket only advanced for the one start.
  assert.deepEqual(p.actions, ['L', null, null, null])
  assert.equal(p.tat.get('r'), NOW + 500)
  assert.deepEqual([...p.full], ['r'])
  // A reserved candidate with no room stays due and keeps its reservation (no row update at all).
  const q = plan([cand('r', true)], [endpoint('r', { rate_limit: 2, rate_period_seconds: 1, max_concurrency: 1, leased: 1 })])
  assert.deepEqual(q.actions, [null])
})

test('unknown endpoints (locked by another claimer) are left due and untouched', () => {
  const cs = [cand('gone'), cand('a'), cand('gone')]
  const p = plan(cs, [endpoint('a', { rate_limit: 1, rate_period_seconds: 1 })])
  assert.deepEqual(p.actions, [null, 'L', null])
  assert.deepEqual([...p.tat.keys()], ['a'])
  assert.equal(p.full.size, 0)
  assert.equal(p.probes.size, 0)
})

test('several endpoints in one claim keep separate state', () => {
  const cs = [cand('r'), cand('c'), cand('r'), cand('c'), cand('r'), cand('h'), cand('c')]
  const p = plan(cs, [
    endpoint('r', { rate_limit: 2, rate_period_seconds: 2 }),
    endpoint('c', { max_concurrency: 2 }),
    endpoint('h', { status: 'paused' }),
  ])
  assert.deepEqual(p.actions, ['L', 'L', 'L', 'L', 'D', 'H', null])
  assert.equal(p.at[4], NOW + 1000)
  assert.deepEqual([...p.full], ['c'])
  assert.deepEqual([...p.tat.keys()], ['r'])
})

test('GCRA over many claims at arbitrary times: no window of x ms holds more than limit + x/T starts', () => {
  // A simulated backlog drained by claims at every due time plus extra claims at random moments (as
  // several nodes would make); each claim sees a random slice of the due rows and has room for all of
  // it. The flow state (rate_tat) carries over between claims as the database row would.
  for (const [limit, period] of [[4, 1], [3, 2], [10, 1], [1, 1]] as const) {
    const T = period * 1000 / limit
    let rateTat: number | null = null
    const rows = Array.from({ length: 60 }, (_, i) => ({ c: cand('g'), due: NOW, n: i }))
    const starts: number[] = []
    let now = NOW
    let rnd = 12345
    const random = (): number => { rnd = (rnd * 1103515245 + 12345) % 2 ** 31; return rnd / 2 ** 31 }
    for (let round = 0; round < 10_000 && rows.length > 0; round++) {
      const due = rows.filter(r => r.due <= now).sort((a, b) => a.due - b.due || a.n - b.n)
      const take = due.slice(0, 1 + Math.floor(random() * 8))
      if (take.length > 0) {
        const p = plan(take.map(r => r.c), [endpoint('g', { rate_limit: limit, rate_period_seconds: period, rate_tat: rateTat })], {}, now)
        rateTat = p.tat.get('g') ?? rateTat
        take.forEach((r, i) => {
          const a = p.actions[i]
          if (a === 'L') { starts.push(now); rows.splice(rows.indexOf(r), 1) }
          if (a === 'D') { r.due = p.at[i]!; r.c = { ...r.c, rate_reserved: p.reserved[i]!, due_ms: p.at[i]! } }
        })
      }
      const next = rows.reduce((m, r) => Math.min(m, r.due), Infinity)
      // Claims happen at the next due time, or sooner at random.
      now = Math.max(now, random() < 0.3 ? Math.min(next, now + random() * T) : next)
    }
    assert.equal(rows.length, 0, 'everything started')
    starts.sort((a, b) => a - b)
    for (let i = 0; i < starts.length; i++) {
      for (let j = i; j < starts.length; j++) {
        const x = starts[j]! - starts[i]!
        assert.ok(j - i + 1 <= limit + Math.floor(x / T + 1e-9), `${limit}/${period}s: ${j - i + 1} starts within ${x} ms`)
      }
      // In particular any one period holds at most 2 × limit.
      const inWindow = starts.filter(t => t >= starts[i]! && t < starts[i]! + period * 1000).length
      assert.ok(inWindow <= 2 * limit)
    }
    // At most `limit` start at once, and the last one no sooner than the rate allows.
    assert.ok(starts.filter(t => t === NOW).length <= limit)
    assert.ok(starts.at(-1)! - NOW >= (60 - limit) * T - 1e-6)
  }
})

test('rate limit: reserved slots that could not start on time do not all start at once later', () => {
  // 1 per second (T = 1000 ms, no burst beyond 1). A claim at NOW starts one and reserves slots at
  // +1 s … +4 s. The delivering thread is busy (no free slot) when those come due, so they cannot
  // start. A reserved slot is kept only while on time (less than T late): later, the delivery takes a
  // new slot. So when the thread has room again at +4.5 s they cannot all start at once (the contract
  // allows at most 2 × limit = 2 within one period).
  const spec = { rate_limit: 1, rate_period_seconds: 1 }
  const cs = many(5, 'r')
  const first = plan(cs, [endpoint('r', spec)])
  assert.deepEqual(first.actions, ['L', 'D', 'D', 'D', 'D'])
  let tat = first.tat.get('r')!
  const waiting = cs.slice(1).map((c, i) => ({ ...c, rate_reserved: first.reserved[i + 1]!, due_ms: first.at[i + 1]! }))
  for (const at of [1000, 2000, 3000, 4000]) {
    const busy = plan(waiting.slice(0, at / 1000), [endpoint('r', { ...spec, rate_tat: tat })], { free: 0 }, NOW + at)
    assert.ok(busy.actions.every(a => a !== 'L'), 'nothing starts without a free slot')
    busy.actions.forEach((a, i) => { if (a === 'D') waiting[i] = { ...waiting[i]!, rate_reserved: busy.reserved[i]!, due_ms: busy.at[i]! } })
    tat = busy.tat.get('r') ?? tat
  }
  // A claim only ever sees due rows.
  const late = plan(waiting.filter(c => c.due_ms <= NOW + 4500), [endpoint('r', { ...spec, rate_tat: tat })], {}, NOW + 4500)
  const started = late.actions.filter(a => a === 'L').length
  assert.ok(started <= 2, `${started} starts at one moment for a limit of 1 per second`)
})

test('breakerCooldownMs: 5 s, doubling every `threshold` failures, at most 60 s', () => {
  assert.equal(breakerCooldownMs(5, 5), 5000)
  assert.equal(breakerCooldownMs(9, 5), 5000)
  assert.equal(breakerCooldownMs(10, 5), 10_000)
  assert.equal(breakerCooldownMs(15, 5), 20_000)
  assert.equal(breakerCooldownMs(20, 5), 40_000)
  assert.equal(breakerCooldownMs(25, 5), 60_000)
  assert.equal(breakerCooldownMs(1000, 5), 60_000)
})
