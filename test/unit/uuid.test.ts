/** UUIDv7 (RFC 9562 §5.7): format, version and variant bits, the timestamp, monotonic order; isUuid. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isUuid, uuidv7 } from '../../src/lib/uuid.ts'

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

function timeOf (id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
}

test('format: lowercase 8-4-4-4-12, version 7, RFC 9562 variant (10xx)', () => {
  for (let i = 0; i < 10_000; i++) {
    const id = uuidv7()
    assert.match(id, V7)
    const bytes = Buffer.from(id.replace(/-/g, ''), 'hex')
    assert.equal(bytes.length, 16)
    assert.equal(bytes[6]! >> 4, 7, 'version nibble')
    assert.equal(bytes[8]! >> 6, 0b10, 'variant bits')
  }
})

test('the first 48 bits are the Unix time in milliseconds', () => {
  const before = Date.now()
  const id = uuidv7()
  const after = Date.now()
  const t = timeOf(id)
  // The monotonic counter may have run a few ms ahead of the clock in earlier bursts.
  assert.ok(t >= before && t <= after + 1000, `${t} not in [${before}, ${after}]`)
})

test('strictly increasing over many calls (same millisecond and counter overflow included), all distinct', () => {
  const n = 200_000
  const ids: string[] = new Array<string>(n)
  for (let i = 0; i < n; i++) ids[i] = uuidv7()
  let sameMs = 0
  for (let i = 1; i < n; i++) {
    assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} !< ${ids[i]}`)
    if (timeOf(ids[i - 1]!) === timeOf(ids[i]!)) sameMs++
  }
  assert.ok(sameMs > 4096, 'the test never made two ids in one millisecond')
  assert.equal(new Set(ids).size, n)
  // Byte order is string order, so PostgreSQL's uuid ordering agrees with creation order.
  const a = Buffer.from(ids[0]!.replace(/-/g, ''), 'hex')
  const b = Buffer.from(ids[n - 1]!.replace(/-/g, ''), 'hex')
  assert.equal(Buffer.compare(a, b), -1)
})

test('the random tail differs between ids of the same millisecond', () => {
  const tails = new Set<string>()
  for (let i = 0; i < 1000; i++) tails.add(uuidv7().slice(19))
  assert.equal(tails.size, 1000)
})

test('isUuid: canonical 8-4-4-4-12 hex of any case and version; nothing else', () => {
  assert.equal(isUuid(uuidv7()), true)
  assert.equal(isUuid('01936B2E-1C2D-7A3B-8C4D-5E6F7A8B9C0D'), true)
  assert.equal(isUuid('123e4567-e89b-42d3-a456-426614174000'), true)
  assert.equal(isUuid('00000000-0000-0000-0000-000000000000'), true)
  for (const bad of [
    '',
    '123e4567e89b42d3a456426614174000',
    '{123e4567-e89b-42d3-a456-426614174000}',
    '123e4567-e89b-42d3-a456-42661417400',
    '123e4567-e89b-42d3-a456-4266141740000',
    '123e4567-e89b-42d3-a456_426614174000',
    '123e4567-e89b-42d3-a456-42661417400g',
    ' 123e4567-e89b-42d3-a456-426614174000',
    '123e4567-e89b-42d3-a456-426614174000\n',
    'urn:uuid:123e4567-e89b-42d3-a456-426614174000',
    '../../etc/passwd-0000-0000-000000000000',
  ]) assert.equal(isUuid(bad), false, JSON.stringify(bad))
})
