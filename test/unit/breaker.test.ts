/** The per-endpoint gate: concurrency cap, circuit breaker transitions, claim capacities, bounds. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EndpointTable } from '../../src/delivery/breaker.ts'

const opts = { perEndpoint: 2, threshold: 3, cooldownMs: 1000, maxCooldownMs: 4000, maxEndpoints: 100 }
const ORG = '00000000-0000-7000-8000-00000000000a'

function caps (t: EndpointTable, now: number): Map<string, number> {
  const orgs: string[] = []
  const remaining: number[] = []
  t.capacities(now, orgs, remaining)
  return new Map(orgs.map((o, i) => [o, remaining[i]!]))
}

test('concurrency cap per endpoint, reported to the claim as remaining room', () => {
  const t = new EndpointTable(opts)
  const ep = t.get('http://a', ORG)
  assert.equal(caps(t, 0).size, 0)
  assert.equal(t.admit(ep, 0), 'go')
  assert.equal(caps(t, 0).get(ORG), 1)
  assert.equal(t.admit(ep, 0), 'go')
  assert.equal(caps(t, 0).get(ORG), 0)
  assert.equal(t.admit(ep, 0), 'busy')
  assert.equal(t.retryAt(ep, 'busy', 0, 250), 250)
  t.settle(ep, true, true, 0)
  assert.equal(t.admit(ep, 0), 'go')
  t.settle(ep, true, true, 0)
  t.settle(ep, true, true, 0)
  assert.equal(t.size, 0, 'an idle, healthy endpoint is forgotten')
})

test('opens after N consecutive failures, probes once after the cool-down, closes on success', () => {
  const t = new EndpointTable(opts)
  const ep = t.get('http://b', ORG)
  for (let i = 0; i < 3; i++) {
    assert.equal(t.admit(ep, 0), 'go')
    t.settle(ep, false, true, 0)
  }
  assert.equal(ep.state, 'open')
  assert.equal(t.admit(ep, 500), 'open')
  assert.equal(t.retryAt(ep, 'open', 500, 250), 1000)
  assert.equal(caps(t, 500).get(ORG), 0)
  assert.equal(t.admit(ep, 1000), 'go', 'the probe')
  assert.equal(ep.state, 'half-open')
  assert.equal(t.admit(ep, 1000), 'open', 'only one probe at a time')
  assert.equal(caps(t, 1000).get(ORG), 0)
  t.settle(ep, true, true, 1100)
  assert.equal(ep.state, 'closed')
  assert.equal(ep.failures, 0)
  assert.equal(t.size, 0)
})

test('a failed probe re-opens with a doubled cool-down (capped)', () => {
  const t = new EndpointTable(opts)
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
  const t = new EndpointTable(opts)
  const ep = t.get('http://d', ORG)
  for (const ok of [false, false, true, false, false]) { t.admit(ep, 0); t.settle(ep, ok, true, 0) }
  assert.equal(ep.state, 'closed')
  t.admit(ep, 0)
  t.settle(ep, false, false, 0)
  assert.equal(ep.state, 'closed')
  assert.equal(ep.failures, 2)
})

test('bounded: idle endpoints are evicted past maxEndpoints', () => {
  const t = new EndpointTable({ ...opts, maxEndpoints: 3 })
  for (let i = 0; i < 10; i++) {
    const ep = t.get(`http://e${i}`, ORG)
    t.admit(ep, 0)
    t.settle(ep, false, true, 0)
  }
  assert.ok(t.size <= 3)
})
