/**
 * Property-based tests (fast-check) of the ingest validator: request bytes → strict UTF-8
 * (http/json.ts) → JSON object with the storability rules → event fields and payload size
 * (ingest/validate.ts) → the payload text stored (ingest/raw-payload.ts). Whatever the bytes, the only
 * thing thrown is an ApiError with a request-error code; an accepted payload is stored as the client's
 * own text without insignificant whitespace, which parses back to the same value; the size limit is
 * the UTF-8 length of the compact serialization; the depth and string rules hold at their edges.
 * Runs are seeded per run by fast-check and reported on failure (replay with `seed` and `path`).
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ApiError } from '../../src/errors.ts'
import { decodeUtf8, MAX_DEPTH, parseJsonText } from '../../src/http/json.ts'
import { MAX_PAYLOAD_BYTES, validateEvent } from '../../src/ingest/validate.ts'
import { compact, rawMember } from '../../src/ingest/raw-payload.ts'
import { parseBatch, validateItem } from '../../src/ingest/validate-batch.ts'

/** The whole path of a POST /api/events body, as the route runs it. */
function ingestBody (bytes: Buffer): ReturnType<typeof validateEvent> {
  const text = decodeUtf8(bytes)
  return validateEvent(parseJsonText(text), text)
}

const REQUEST_ERRORS = new Set(['invalid_json', 'invalid_event', 'payload_too_large'])

function expectRequestError (fn: () => unknown): ApiError | null {
  try {
    fn()
    return null
  } catch (err) {
    assert.ok(err instanceof ApiError, `threw a ${(err as Error)?.constructor?.name}: ${String(err)}`)
    assert.ok(REQUEST_ERRORS.has(err.code), `unexpected code ${err.code}`)
    return err
  }
}

// ── Arbitraries, shared with the batch properties below ──────────────────────────────────────────

/** JSON values PostgreSQL can store: no U+0000, no lone surrogates (fast-check's json strings are well formed). */
const storableString = fc.string({ unit: 'grapheme', maxLength: 40 }).filter(s => !s.includes('\u0000'))
const storableValue = fc.letrec<{ value: unknown }>(tie => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), storableString,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(storableString, tie('value'), { maxKeys: 5 }),
  ),
})).value
const storableObject = fc.dictionary(storableString, storableValue, { maxKeys: 8 })
const eventType = fc.string({ minLength: 1, maxLength: 255 }).filter(s => !s.includes('\u0000'))

/** JSON text of a value with random insignificant whitespace between tokens (never inside strings). */
function spaced (v: unknown, ws: string[]): string {
  let k = 0
  const pad = (): string => ws[k++ % ws.length] ?? ''
  const go = (x: unknown): string => {
    if (Array.isArray(x)) return `[${pad()}${x.map(e => go(e)).join(`${pad()},${pad()}`)}${pad()}]`
    if (x !== null && typeof x === 'object') {
      return `{${pad()}${Object.entries(x).map(([key, e]) => `${JSON.stringify(key)}${pad()}:${pad()}${go(e)}`).join(`${pad()},${pad()}`)}${pad()}}`
    }
    return JSON.stringify(x)
  }
  return go(v)
}
const whitespace = fc.array(fc.stringMatching(/^[ \t\r\n]{0,3}$/), { minLength: 1, maxLength: 8 })

// ── Single events ─────────────────────────────────────────────────────────────────────────────────

describe('validateEvent (src/ingest/validate.ts) with json.ts and raw-payload.ts', () => {
  test('any bytes: accepted, or an ApiError with a request-error code — never anything else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), bytes => {
      expectRequestError(() => ingestBody(Buffer.from(bytes)))
    }), { numRuns: 2000 })
  })

  test('any JSON text (objects, arrays, scalars, events with odd members): accepted or an ApiError', () => {
    const member = fc.oneof(storableValue, fc.jsonValue({ maxDepth: 3 }))
    const body = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }),
      fc.record({ type: member, payload: member, dedup_id: member, data: member }, { requiredKeys: [] }),
    )
    fc.assert(fc.property(body, v => {
      const text = JSON.stringify(v) ?? 'null'
      expectRequestError(() => ingestBody(Buffer.from(text)))
    }), { numRuns: 1000 })
  })

  test('an accepted payload is stored as the client wrote it without whitespace, and parses back to the same value', () => {
    fc.assert(fc.property(eventType, storableObject, whitespace, fc.boolean(), (type, payload, ws, useData) => {
      const member = useData ? 'data' : 'payload'
      const text = spaced({ type, [member]: payload }, ws)
      const input = ingestBody(Buffer.from(text))
      assert.equal(input.type, type)
      assert.equal(input.dedupId, null)
      // Insignificant whitespace gone, everything else exactly as written (JSON.stringify wrote it).
      assert.equal(input.payload, JSON.stringify(payload))
      assert.deepEqual(JSON.parse(input.payload), JSON.parse(JSON.stringify(payload)))
    }), { numRuns: 500 })
  })

  test('numbers and keys are kept as sent: big integers, 1.0, exponents, integer-like keys after others', () => {
    const number = fc.oneof(
      fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map(n => n.toString()),
      fc.integer().map(n => `${n}.0`),
      fc.tuple(fc.integer({ min: -9, max: 9 }), fc.integer({ min: -300, max: 300 })).map(([m, e]) => `${m}e${e}`),
    )
    fc.assert(fc.property(fc.array(number, { minLength: 1, maxLength: 6 }), whitespace, (numbers, ws) => {
      const members = numbers.map((n, i) => `"${i % 2 === 0 ? `k${i}` : String(i)}"${ws[0] ?? ''}:${ws[1] ?? ''}${n}`)
      const raw = `{${members.join(',')}}`
      const text = `{"type":"t","payload":${raw}}`
      const input = ingestBody(Buffer.from(text))
      assert.equal(input.payload, compact(raw))
      assert.equal(rawMember(text, 'payload'), compact(raw))
    }), { numRuns: 500 })
  })

  test('size: payload_too_large exactly when the compact serialization is over the limit in UTF-8 bytes, with that size', () => {
    // A payload near the limit made of 1- to 4-byte characters and characters JSON escapes.
    const piece = fc.constantFrom('a', 'é', '€', '😀', '"', '\\', '\n', '\u0001')
    fc.assert(fc.property(fc.integer({ min: -64, max: 64 }), fc.array(piece, { minLength: 1, maxLength: 16 }), (delta, pieces) => {
      const unit = pieces.join('')
      const unitBytes = Buffer.byteLength(JSON.stringify(unit).slice(1, -1))
      const frame = Buffer.byteLength(JSON.stringify({ s: '' }))
      const repeats = Math.max(0, Math.floor((MAX_PAYLOAD_BYTES - frame) / unitBytes))
      const s = unit.repeat(repeats) + 'x'.repeat(Math.max(0, MAX_PAYLOAD_BYTES - frame - repeats * unitBytes + delta))
      const payload = { s }
      const size = Buffer.byteLength(JSON.stringify(payload))
      const err = expectRequestError(() => ingestBody(Buffer.from(JSON.stringify({ type: 't', payload }))))
      if (size > MAX_PAYLOAD_BYTES) {
        assert.equal(err?.code, 'payload_too_large')
        assert.equal(err?.context?.size, size)
        assert.equal(err?.context?.limit, MAX_PAYLOAD_BYTES)
      } else {
        assert.equal(err, null, `size ${size} was refused`)
      }
    }), { numRuns: 200 })
  })

  test(`depth: nesting over ${MAX_DEPTH} levels is invalid_event, at most ${MAX_DEPTH} is accepted`, () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: MAX_DEPTH + 40 }), fc.boolean(), (depth, objects) => {
      // `depth` levels in all: the body object is level 1, the payload object level 2.
      const nested = objects
        ? '{"a":'.repeat(depth - 2) + '{}' + '}'.repeat(depth - 2)
        : depth === 2 ? '{}' : '{"a":' + '['.repeat(depth - 2) + ']'.repeat(depth - 2) + '}'
      const err = expectRequestError(() => ingestBody(Buffer.from(`{"type":"t","payload":${nested}}`)))
      if (depth > MAX_DEPTH) assert.equal(err?.code, 'invalid_event', `depth ${depth}`)
      else assert.equal(err, null, `depth ${depth}`)
    }), { numRuns: 300 })
  })

  test('strings PostgreSQL cannot store (U+0000, a lone surrogate), written as escapes anywhere, are invalid_event', () => {
    const bad = fc.constantFrom('\\u0000', '\\ud800', '\\udfff', 'a\\ud83d', '\\ude00b')
    fc.assert(fc.property(storableString, bad, fc.constantFrom('type', 'key', 'value', 'dedup'), (prefix, escape, where) => {
      const s = JSON.stringify(prefix).slice(1, -1) + escape
      const text = where === 'type'
        ? `{"type":"${s}","payload":{}}`
        : where === 'key'
          ? `{"type":"t","payload":{"${s}":1}}`
          : where === 'value'
            ? `{"type":"t","payload":{"k":["${s}"]}}`
            : `{"type":"t","payload":{},"dedup_id":"${s}"}`
      const err = expectRequestError(() => ingestBody(Buffer.from(text)))
      assert.equal(err?.code, 'invalid_event', text)
    }), { numRuns: 300 })
  })

  test('invalid UTF-8 anywhere is invalid_json', () => {
    const invalid = fc.constantFrom([0xc0, 0xaf], [0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xff])
    fc.assert(fc.property(fc.string({ maxLength: 20 }), invalid, fc.nat(), (s, bad, at) => {
      const text = Buffer.from(JSON.stringify({ type: 't', payload: { s } }))
      const cut = 1 + (at % (text.length - 1))
      const bytes = Buffer.concat([text.subarray(0, cut), Buffer.from(bad), text.subarray(cut)])
      assert.equal(expectRequestError(() => ingestBody(bytes))?.code, 'invalid_json')
    }), { numRuns: 300 })
  })
})

// ── Batch validation (src/ingest/validate-batch.ts) ───────────────────────────────────────────────

/** The batch route's path after the body cap: decode, shape and count, then each item on its own. */
function batchBody (bytes: Buffer, maxEvents: number): { shape: ReturnType<typeof parseBatch>, items: (ReturnType<typeof validateItem>)[] } {
  const text = decodeUtf8(bytes)
  const shape = parseBatch(text, maxEvents)
  return { shape, items: shape.items.map((item, i) => validateItem(item, shape.texts[i]!)) }
}

const BATCH_ERRORS = new Set(['invalid_json', 'invalid_batch', 'batch_too_large'])

describe('batch validation (src/ingest/validate-batch.ts)', () => {
  test('any bytes: a batch of per-item results, or an ApiError with a batch request-error code', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), bytes => {
      try {
        const { items } = batchBody(Buffer.from(bytes), 500)
        for (const r of items) if (r instanceof ApiError) assert.ok(REQUEST_ERRORS.has(r.code), r.code)
      } catch (err) {
        assert.ok(err instanceof ApiError && BATCH_ERRORS.has(err.code), String(err))
      }
    }), { numRuns: 1000 })
  })

  test('an item is judged exactly as POST /api/events judges the same body, and stored as the same text', () => {
    const item = fc.oneof(
      fc.record({ type: eventType, payload: storableObject }),
      fc.record({ type: eventType, data: storableObject, dedup_id: fc.string({ minLength: 1, maxLength: 20 }) }),
      fc.record({ type: fc.oneof(eventType, fc.constant(''), fc.integer()), payload: fc.oneof(storableObject, fc.constant(null), fc.integer()) }, { requiredKeys: [] }),
      fc.jsonValue({ maxDepth: 2 }),
    )
    fc.assert(fc.property(fc.array(fc.tuple(item, whitespace), { minLength: 1, maxLength: 12 }), whitespace, (entries, ws) => {
      const texts = entries.map(([v, w]) => spaced(v, w))
      const body = `{${ws[0] ?? ''}"events"${ws[1] ?? ''}:${ws[2] ?? ''}[${texts.join(`${ws[3] ?? ''},${ws[4] ?? ''}`)}]}`
      const { shape, items } = batchBody(Buffer.from(body), 500)
      assert.equal(items.length, entries.length, 'one result per item, in order')
      assert.deepEqual([...shape.texts], texts, 'each item keeps its own text')
      entries.forEach(([v], i) => {
        const alone = v !== null && typeof v === 'object' && !Array.isArray(v)
          ? (() => { try { return ingestBody(Buffer.from(texts[i]!)) } catch (err) { return err } })()
          : new ApiError('invalid_event')
        const got = items[i]!
        if (alone instanceof ApiError) {
          assert.ok(got instanceof ApiError, `item ${i} accepted in a batch but refused alone`)
          assert.equal(got.code, alone.code)
        } else {
          assert.ok(!(got instanceof ApiError), `item ${i} refused in a batch (${(got as ApiError).code}) but accepted alone`)
          assert.deepEqual(got, alone, 'the same type, dedup_id and stored payload text')
        }
      })
    }), { numRuns: 300 })
  })

  test('the count limit holds exactly at its edge; an empty or missing events list is invalid_batch', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 60 }), (n, max) => {
      const body = Buffer.from(JSON.stringify({ events: Array.from({ length: n }, (_, i) => ({ type: 't', payload: { i } })) }))
      try {
        const { items } = batchBody(body, max)
        assert.ok(n <= max, `${n} items passed a limit of ${max}`)
        assert.equal(items.length, n)
      } catch (err) {
        assert.ok(err instanceof ApiError && err.code === 'batch_too_large' && n > max, String(err))
        assert.equal(err.context?.max_events, max)
      }
    }), { numRuns: 300 })
    for (const body of ['{}', '{"events":[]}', '{"events":{}}', '{"events":null}', '{"events":[{}],"atomic":1}']) {
      assert.throws(() => batchBody(Buffer.from(body), 10), (e: unknown) => e instanceof ApiError && e.code === 'invalid_batch', body)
    }
  })
})
