/**
 * validateEvent: the field rules of POST /api/events (400 invalid_event with a details entry per bad
 * field, several at once), the `data` alias, and the payload size rule (413 payload_too_large, UTF-8
 * bytes of the compact JSON, 262144 allowed), fields checked before size.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MAX_PAYLOAD_BYTES, validateEvent } from '../../src/ingest/validate.ts'
import { ApiError } from '../../src/errors.ts'

function errorOf (body: Record<string, unknown>): ApiError {
  try {
    validateEvent(body)
  } catch (err) {
    assert.ok(err instanceof ApiError, `not an ApiError: ${String(err)}`)
    return err
  }
  assert.fail(`accepted: ${JSON.stringify(body).slice(0, 100)}`)
}

function detailsOf (body: Record<string, unknown>): Record<string, string> {
  const e = errorOf(body)
  assert.equal(e.code, 'invalid_event')
  assert.equal(e.status, 400)
  const d = e.context?.details
  assert.ok(d !== undefined, 'no details')
  return d
}

/** A payload {"a": "..."} whose compact JSON is exactly `bytes` UTF-8 bytes. */
function payloadOfBytes (bytes: number, unit = 'x'): { a: string } {
  const room = bytes - Buffer.byteLength('{"a":""}')
  const n = Math.floor(room / Buffer.byteLength(unit))
  const p = { a: unit.repeat(n) + 'x'.repeat(room - n * Buffer.byteLength(unit)) }
  assert.equal(Buffer.byteLength(JSON.stringify(p)), bytes)
  return p
}

test('a valid event: type, compact payload text, dedup_id or null', () => {
  const e = validateEvent({ type: 'order.created', payload: { b: [1, 2], a: { c: 'é' } }, dedup_id: 'd-1' })
  assert.equal(e.type, 'order.created')
  assert.equal(e.payload, '{"b":[1,2],"a":{"c":"é"}}')
  assert.equal(e.dedupId, 'd-1')
  assert.equal(validateEvent({ type: 't', payload: {} }).dedupId, null)
  assert.equal(validateEvent({ type: 't', payload: {} }).payload, '{}')
  // Unknown fields are ignored.
  assert.equal(validateEvent({ type: 't', payload: {}, extra: [1] }).type, 't')
})

test('`data` stands in for a missing `payload`; `payload` wins when both are present', () => {
  assert.equal(validateEvent({ type: 't', data: { x: 1 } }).payload, '{"x":1}')
  assert.equal(validateEvent({ type: 't', payload: { p: 1 }, data: { d: 1 } }).payload, '{"p":1}')
  assert.deepEqual(Object.keys(detailsOf({ type: 't', data: 'text' })), ['data'])
  assert.deepEqual(Object.keys(detailsOf({ type: 't', payload: [], data: {} })), ['payload'])
})

test('type: required string of 1-255 characters', () => {
  for (const type of [undefined, null, '', 'x'.repeat(256), 1, true, {}, ['t']]) {
    assert.deepEqual(Object.keys(detailsOf({ type, payload: {} })), ['type'], String(type))
  }
  assert.equal(validateEvent({ type: 'x', payload: {} }).type, 'x')
  assert.equal(validateEvent({ type: 'x'.repeat(255), payload: {} }).type.length, 255)
  assert.match(detailsOf({ payload: {} }).type!, /required/)
  assert.match(detailsOf({ type: 5, payload: {} }).type!, /string/)
  assert.match(detailsOf({ type: '', payload: {} }).type!, /1-255/)
})

test('payload: required JSON object ({} allowed)', () => {
  for (const payload of [undefined, null, [], [1], 'text', 0, false]) {
    assert.deepEqual(Object.keys(detailsOf({ type: 't', payload })), ['payload'], JSON.stringify(payload))
  }
})

test('dedup_id: optional string of 1-255 characters', () => {
  for (const dedup_id of ['', 'd'.repeat(256), 5, {}, ['a'], false]) {
    assert.deepEqual(Object.keys(detailsOf({ type: 't', payload: {}, dedup_id })), ['dedup_id'], JSON.stringify(dedup_id))
  }
  assert.equal(validateEvent({ type: 't', payload: {}, dedup_id: 'd' }).dedupId, 'd')
  assert.equal(validateEvent({ type: 't', payload: {}, dedup_id: 'd'.repeat(255) }).dedupId, 'd'.repeat(255))
  // null means "no dedup_id", like an absent field.
  assert.equal(validateEvent({ type: 't', payload: {}, dedup_id: null }).dedupId, null)
})

test('every bad field is reported at once', () => {
  assert.deepEqual(Object.keys(detailsOf({})).sort(), ['payload', 'type'])
  assert.deepEqual(Object.keys(detailsOf({ type: '', payload: 'x', dedup_id: 1 })).sort(), ['dedup_id', 'payload', 'type'])
  assert.deepEqual(Object.keys(detailsOf({ type: 't', payload: 1, dedup_id: '' })).sort(), ['dedup_id', 'payload'])
})

test(`payload size: ${MAX_PAYLOAD_BYTES} UTF-8 bytes of compact JSON are allowed, one more is 413`, () => {
  assert.equal(MAX_PAYLOAD_BYTES, 262_144)
  for (const unit of ['x', 'é', '€', '😀']) {
    const ok = validateEvent({ type: 't', payload: payloadOfBytes(MAX_PAYLOAD_BYTES, unit) })
    assert.equal(Buffer.byteLength(ok.payload), MAX_PAYLOAD_BYTES, unit)
    const e = errorOf({ type: 't', payload: payloadOfBytes(MAX_PAYLOAD_BYTES + 1, unit) })
    assert.equal(e.code, 'payload_too_large', unit)
    assert.equal(e.status, 413)
    assert.equal(e.message, 'Payload exceeds 256KB limit')
    assert.deepEqual(e.context, { size: MAX_PAYLOAD_BYTES + 1, limit: MAX_PAYLOAD_BYTES })
  }
  // The size is of the serialization, with JSON's own escapes: a quote costs two bytes.
  const quotes = { a: '"'.repeat((MAX_PAYLOAD_BYTES - 8) / 2) }
  assert.equal(Buffer.byteLength(validateEvent({ type: 't', payload: quotes }).payload), MAX_PAYLOAD_BYTES)
  const e = errorOf({ type: 't', payload: { a: '"'.repeat((MAX_PAYLOAD_BYTES - 8) / 2) + 'x' } })
  assert.equal(e.context?.size, MAX_PAYLOAD_BYTES + 1)
  // Small payloads of wide characters that would pass the 3-bytes-per-unit shortcut are fine.
  assert.equal(validateEvent({ type: 't', payload: { a: '€'.repeat(80_000) } }).payload.length, 80_008)
})

test('fields are checked before size: a bad field with a huge payload is 400, not 413', () => {
  const big = payloadOfBytes(MAX_PAYLOAD_BYTES + 100)
  assert.deepEqual(Object.keys(detailsOf({ type: '', payload: big })), ['type'])
  assert.deepEqual(Object.keys(detailsOf({ type: 't', payload: big, dedup_id: 3 })), ['dedup_id'])
})
