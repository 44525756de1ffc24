/** The per-endpoint gate: concurrency cap, wait queue, circuit breaker transitions, claim capacities, bounds. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EndpointTable, WaitQueue } from '../../src/delivery/breaker.ts'

const opts = { perEndpoint: 2, waitPerEndpoint: 2, threshold: 3, cooldownMs: 1000, maxCooldownMs: 4000, maxEndpoints: 100 }
const ORG = '00000000-0000-7000-8000-00000000000a'
const ORG2 = '00000000-0000-7000-8000-00000000000b'

/** Room per listed origin, and the organizations the claim should skip. */
function caps (t: EndpointTable<string>, now: number): { rooms: Map<string, number>, excluded: string[] } {
  const excluded: string[] = []
  const origins: string[] = []
  const rooms: number[] = []
  t.capacities(now, excluded, origins, rooms)
  return { rooms: new Map(origins.map((o, i) => [o, rooms[i]!])), excluded }
}

test('WaitQueue: FIFO with a fixed capacity, wrapping around', () => {
  const q = new WaitQueue<number>(3)
  assert.equal(q.shift(), undefined)
  assert.ok(q.push(1) && q.push(2) && q.push(3))
  assert.equal(q.push(4), false, 'full')
  assert.equal(q.size, 3)
  assert.equal(q.shift(), 1)
  assert.ok(q.push(4))
  assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift()], [2, 3, 4, undefined])
  assert.equal(q.size, 0)
  for (let i = 0; i < 10; i++) { assert.ok(q.push(i)); assert.equal(q.shift(), i) }
})

test('concurrency cap per endpoint, reported to the claim as remaining room (slots plus wait places)', () => {
  const t = new EndpointTable<string>(opts)
  assert.equal(t.defaultRoom, 4)
  const ep = t.get('http://a', ORG)
  t.get('http://a', ORG2)
  assert.equal(caps(t, 0).rooms.size, 0)
  assert.equal(t.admit(ep, 0), 'go')
  assert.equal(caps(t, 0).rooms.get('http://a'), 3)
  assert.equal(t.admit(ep, 0), 'go')
  assert.equal(caps(t, 0).rooms.get('http://a'), 2, 'both slots taken, both wait places free')
  assert.equal(t.admit(ep, 0), 'busy')
  assert.ok(ep.waiting.push('w1') && ep.waiting.push('w2'))
  assert.equal(ep.waiting.push('w3'), false)
  assert.deepEqual(caps(t, 0), { rooms: new Map([['http://a', 0]]), excluded: [ORG, ORG2] })
  // The caller starts a waiting attempt when one settles: the entry must survive in between.
  t.settle(ep, true, true, 0)
  t.settle(ep, true, true, 0)
  assert.equal(t.size, 1, 'an endpoint with waiting attempts is not forgotten')
  assert.equal(t.get('http://a', ORG), ep)
  assert.equal(ep.waiting.shift(), 'w1')
  assert.equal(t.admit(ep, 0), 'go')
  const drained: string[] = []
  t.takeAllWaiting(drained)
  assert.deepEqual(drained, ['w2'])
  t.settle(ep, true, true, 0)
  assert.equal(t.size, 0)

  const b = new EndpointTable<string>(opts)
  const epb = b.get('http://b', ORG)
  assert.equal(b.admit(epb, 0), 'go')
  assert.equal(b.admit(epb, 0), 'go')
  assert.equal(b.admit(epb, 0), 'busy')
  assert.equal(b.retryAt(epb, 'busy', 0, 250), 250)
  b.settle(epb, true, true, 0)
  assert.equal(b.admit(epb, 0), 'go')
  b.settle(epb, true, true, 0)
  b.settle(epb, true, true, 0)
  assert.equal(b.size, 0, 'an idle, healthy endpoint is forgotten')
})

test('opens after N consecutive failures, probes once after the cool-down, closes on success', () => {
  const t = new EndpointTable<string>(opts)
  const ep = t.get('http://b', ORG)
  for (let i = 0; i < 3; i++) {
    assert.equal(t.admit(ep, 0), 'go')
    t.settle(ep, false, true, 0)
  }
  assert.equal(ep.state, 'open')
  assert.equal(t.admit(ep, 500), 'open')
  assert.equal(t.retryAt(ep, 'open', 500, 250), 1000)
  assert.deepEqual(caps(t, 500), { rooms: new Map([['http://b', 0]]), excluded: [ORG] })
  assert.equal(caps(t, 1000).rooms.get('http://b'), 1, 'room for the probe')
  assert.equal(t.admit(ep, 1000), 'go', 'the probe')
  assert.equal(ep.state, 'half-open')
  assert.equal(t.admit(ep, 1000), 'open', 'only one probe at a time')
  assert.equal(caps(t, 1000).rooms.get('http://b'), 0)
  t.settle(ep, true, true, 1100)
  assert.equal(ep.state, 'closed')
  assert.equal(ep.failures, 0)
  assert.equal(t.size, 0)
})

test('a failed probe re-opens with a doubled cool-down (capped)', () => {
  const t = new EndpointTable<string>(opts)
  const ep = t.get('http://c', ORG)
  for (let i = 0; i < 3; i++) { t.admit(ep, 0); t.settle(ep, false, true, 0) }
  let now = 1000
  for (const expected of [2000, 4000, 4000]) {
    assert.equal(t.admit(ep, now), 'go')
    t.settle(ep, false, true, now)
    assert.equal(ep.state, 'open')
    assert.equal(ep.openUntil - now, expected)
    now = ep.openUntil
  }
})

test('a success between failures resets the count; attempts cut short by us do not count', () => {
  const t = new EndpointTable<string>(opts)
  const ep = t.get('http://d', ORG)
  for (const ok of [false, false, true, false, false]) { t.admit(ep, 0); t.settle(ep, ok, true, 0) }
  assert.equal(ep.state, 'closed')
  t.admit(ep, 0)
  t.settle(ep, false, false, 0)
  assert.equal(ep.state, 'closed')
  assert.equal(ep.failures, 2)
})

test('bounded: idle endpoints are evicted past maxEndpoints', () => {
  const t = new EndpointTable<string>({ ...opts, maxEndpoints: 3 })
  for (let i = 0; i < 10; i++) {
    const ep = t.get(`http://e${i}`, ORG)
    t.admit(ep, 0)
    t.settle(ep, false, true, 0)
  }
  assert.ok(t.size <= 3)
})
