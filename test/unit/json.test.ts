/**
 * parseJsonObject: strict UTF-8, objects only, nesting at most 128 levels, and no string or key that
 * PostgreSQL cannot store (U+0000, lone surrogates) — each with the right error code and details.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MAX_DEPTH, parseJsonObject } from '../../src/http/json.ts'
import { ApiError } from '../../src/errors.ts'

function parse (text: string | Buffer): Record<string, unknown> {
  return parseJsonObject(typeof text === 'string' ? Buffer.from(text) : text)
}

/** The ApiError parseJsonObject throws for `text`. */
function errorOf (text: string | Buffer): ApiError {
  try {
    parse(text)
  } catch (err) {
    assert.ok(err instanceof ApiError, `not an ApiError: ${String(err)}`)
    return err
  }
  assert.fail(`accepted: ${String(text).slice(0, 80)}`)
}

function assertInvalidJson (text: string | Buffer): void {
  const e = errorOf(text)
  assert.equal(e.code, 'invalid_json', String(text).slice(0, 80))
  assert.equal(e.status, 400)
}

/** The details of the invalid_event error for `text`. */
function detailsOf (text: string): Record<string, string> {
  const e = errorOf(text)
  assert.equal(e.code, 'invalid_event', text.slice(0, 80))
  assert.equal(e.status, 400)
  const d = e.context?.details
  assert.ok(d !== undefined && Object.keys(d).length > 0, 'no details')
  return d
}

/** A document nested exactly `depth` levels, alternating objects and arrays. */
function nested (depth: number, arrays = false): string {
  let open = ''
  let close = ''
  for (let i = 0; i < depth; i++) {
    if (i === 0 || !arrays || i % 2 === 0) { open += i === depth - 1 ? '{' : '{"a":'; close = '}' + close } else { open += '['; close = ']' + close }
  }
  return open + close
}

test('objects parse; the result is the parsed value', () => {
  assert.deepEqual(parse('{}'), {})
  assert.deepEqual(parse(' \r\n\t{"a":[1,{"b":null}],"c":"é ✓ 😀"} \n'), { a: [1, { b: null }], c: 'é ✓ 😀' })
  // Duplicate keys: the last wins, as in JSON.parse.
  assert.deepEqual(parse('{"a":1,"a":2}'), { a: 2 })
})

test('anything but an object is invalid_json: arrays, scalars, null, empty, malformed', () => {
  for (const t of ['[]', '[{}]', 'null', '1', '"s"', 'true', '', ' ', '{', '{"a":}', "{'a':1}", '{"a":1,}', '{"a":1} x', 'NaN', '{"a":01}']) {
    assertInvalidJson(t)
  }
  // A raw control character inside a string is not JSON either.
  assertInvalidJson('{"a":"x\u0001y"}')
  assertInvalidJson('{"a":"x\u0000y"}')
})

test('invalid UTF-8 is invalid_json, never replaced', () => {
  const wrap = (bytes: number[]): Buffer => Buffer.concat([Buffer.from('{"a":"'), Buffer.from(bytes), Buffer.from('"}')])
  assertInvalidJson(Buffer.from([0xff, 0xfe]))
  assertInvalidJson(Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00])) // UTF-16LE "{}"
  assertInvalidJson(wrap([0xc3, 0x28])) // bad continuation
  assertInvalidJson(wrap([0xc0, 0xaf])) // overlong "/"
  assertInvalidJson(wrap([0xed, 0xa0, 0x80])) // an encoded surrogate (CESU-8)
  assertInvalidJson(wrap([0xf4, 0x90, 0x80, 0x80])) // above U+10FFFF
  assertInvalidJson(wrap([0x80])) // a lone continuation byte
  assertInvalidJson(Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xe2, 0x82])])) // truncated
  // Well-formed multi-byte text is fine.
  assert.deepEqual(parse(wrap([0xe2, 0x82, 0xac])), { a: '€' })
})

test('a UTF-8 byte order mark before the object is ignored (RFC 8259 §8.1 allows it); inside, it is not JSON', () => {
  assert.deepEqual(parse(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')])), { a: 1 })
  assertInvalidJson(Buffer.concat([Buffer.from('{"a":1}'), Buffer.from([0xef, 0xbb, 0xbf])]))
  assertInvalidJson(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf]), Buffer.from('{}')]))
})

test(`nesting: ${MAX_DEPTH} levels are accepted, ${MAX_DEPTH + 1} are invalid_event with details`, () => {
  assert.equal(MAX_DEPTH, 128)
  parse(nested(128))
  parse(nested(128, true))
  const d = detailsOf(nested(129))
  assert.match(Object.values(d).join(' '), /128/)
  detailsOf(nested(129, true))
  detailsOf(nested(5000, true))
  // Many brackets that are not nesting: siblings, and brackets inside strings.
  parse(JSON.stringify({ list: Array.from({ length: 500 }, () => [{ x: [1] }]) }))
  parse(JSON.stringify({ s: '{['.repeat(1000) }))
  // Exactly 128 with the deepest level an array.
  parse('{"a":'.repeat(127) + '[]' + '}'.repeat(127))
  detailsOf('{"a":'.repeat(128) + '[]' + '}'.repeat(128))
})

test('U+0000 and lone surrogates in values and keys are invalid_event naming the top-level field', () => {
  const cases: [string, string][] = [
    [String.raw`{"type":"a\u0000b"}`, 'type'],
    [String.raw`{"type":"\ud800"}`, 'type'],
    [String.raw`{"type":"x\udfff"}`, 'type'],
    [String.raw`{"type":"\ude00\ud83d"}`, 'type'],
    [String.raw`{"payload":{"a":"\u0000"}}`, 'payload'],
    [String.raw`{"payload":{"a":{"b":["ok","\ud800"]}}}`, 'payload'],
    [String.raw`{"payload":{"k\u0000":1}}`, 'payload'],
    [String.raw`{"payload":{"\udbff":1}}`, 'payload'],
    [String.raw`{"payload":[{"\udc00":1}]}`, 'payload'],
    [String.raw`{"dedup_id":"\ud800"}`, 'dedup_id'],
  ]
  for (const [text, field] of cases) {
    const d = detailsOf(text)
    assert.deepEqual(Object.keys(d), [field], text)
    assert.match(d[field]!, /\\u0000|surrogate/, text)
  }
  // A bad top-level key has no field of its own to name.
  const top = detailsOf(String.raw`{"\u0000":1}`)
  assert.equal(Object.keys(top).length, 1)
  // The nested path is reported.
  const deep = detailsOf(String.raw`{"payload":{"a":{"b":["ok","\ud800"]}}}`)
  assert.match(deep.payload!, /payload\.a\.b\[1\]/)
})

test('well-formed escapes are ordinary text', () => {
  assert.deepEqual(parse(String.raw`{"a":"\ud83d\ude00"}`), { a: '😀' })
  assert.deepEqual(parse(String.raw`{"a":"\\u0000"}`), { a: '\\u0000' })
  assert.deepEqual(parse(String.raw`{"a":"\u0001\u00e9\uffff"}`), { a: '\u0001é\uffff' })
  assert.deepEqual(parse(String.raw`{"\u0061":"\u0062"}`), { a: 'b' })
})

test('"__proto__" stays an own key and does not change the prototype', () => {
  const v = parse('{"__proto__":{"polluted":true},"a":1}')
  assert.equal(Object.getPrototypeOf(v), Object.prototype)
  assert.ok(Object.hasOwn(v, '__proto__'))
  assert.equal(({} as Record<string, unknown>).polluted, undefined)
})
