/** KeyCache (auth/key-cache.ts): eviction by organization, and dropAll with and without hold. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AuthEntry, KeyCache } from '../../src/auth/key-cache.ts'
import { parsePrimaryToListener } from '../../src/threads/protocol.ts'

const A = new AuthEntry('org-a', 1, 'pro', 1000)
const B = new AuthEntry('org-b', 2, 'free', 100)

test('evictOrganization drops only that organization and bumps the generation', () => {
  const c = new KeyCache(100, 60_000)
  c.setValid('ka', A, c.generation)
  c.setValid('kb', B, c.generation)
  const g = c.generation
  assert.equal(c.evictOrganization('org-a'), 1)
  assert.equal(c.get('ka'), undefined)
  assert.equal(c.get('kb'), B)
  assert.equal(c.generation, g + 1)
  // A verification begun before the eviction does not cache its result.
  c.setValid('ka', A, g)
  assert.equal(c.get('ka'), undefined)
})

test('dropAll(true) drops every key and caches nothing until dropAll(false); refused keys stay refused', () => {
  const c = new KeyCache(100, 60_000)
  c.setValid('ka', A, c.generation)
  c.setRefused('bad')
  c.dropAll(true)
  assert.equal(c.held, true)
  assert.equal(c.size, 0)
  assert.equal(c.get('ka'), undefined)
  c.setValid('ka', A, c.generation)
  assert.equal(c.get('ka'), undefined, 'nothing is cached while held')
  assert.equal(c.isRefused('bad'), true)

  const g = c.generation
  c.dropAll(false)
  assert.equal(c.held, false)
  assert.equal(c.generation, g + 1)
  c.setValid('ka', A, c.generation)
  assert.equal(c.get('ka'), A)
})

test("the 'drop-caches' message parses with its hold flag and nothing else", () => {
  assert.deepEqual(parsePrimaryToListener({ v: 1, type: 'drop-caches', hold: true }), { v: 1, type: 'drop-caches', hold: true })
  assert.deepEqual(parsePrimaryToListener({ v: 1, type: 'drop-caches', hold: false }), { v: 1, type: 'drop-caches', hold: false })
  assert.equal(parsePrimaryToListener({ v: 1, type: 'drop-caches' }), null)
  assert.equal(parsePrimaryToListener({ v: 1, type: 'drop-caches', hold: 'yes' }), null)
})
