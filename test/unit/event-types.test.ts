/**
 * Event-type filters (docs/api.md "The endpoint object"): one table of cases, checked against both the
 * TypeScript rule (matchesType) and the SQL function ingest uses (triggers_type_matches, in a test
 * database), so the two can never drift apart; and the validation of an `event_types` value.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { checkEventTypes, matchesType, MAX_PATTERNS } from '../../src/webhooks/event-types.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'

let db: TestDatabase
before(async () => { db = await createTestDatabase() })
after(async () => { await db.drop() })

/** [patterns, event type, matches?] */
const CASES: readonly (readonly [readonly string[], string, boolean])[] = [
  // "*" matches everything
  [['*'], 'a', true],
  [['*'], 'order.created', true],
  [['*'], '.', true],
  [['*'], 'ÉTÉ.🎉', true],
  // exact
  [['a'], 'a', true],
  [['a'], 'a.b', false],
  [['a'], 'A', false],
  [['a.b'], 'a.b', true],
  [['a.b'], 'a.b.c', false],
  [['a.b'], 'a', false],
  [['a.b'], 'A.B', false],
  [['order.created'], 'order.created ', false],
  // prefix wildcard: starts with "<prefix>." and is longer than it
  [['a.*'], 'a', false],
  [['a.*'], 'a.', false],
  [['a.*'], 'a.b', true],
  [['a.*'], 'a.b.c', true],
  [['a.*'], 'a..', true],
  [['a.*'], 'ab.c', false],
  [['a.*'], 'ab', false],
  [['a.*'], 'b.a', false],
  [['a.*'], 'A.b', false],
  [['a.*'], 'a.B', true],
  [['A.*'], 'a.b', false],
  [['a.b.*'], 'a.b.c', true],
  [['a.b.*'], 'a.b', false],
  [['a.b.*'], 'a.bc', false],
  [['a.b.*'], 'a.c.d', false],
  [['a.*'], 'a.*', true],
  // unicode: code points compared as they are (no case folding, no normalization)
  [['café.*'], 'café.x', true],
  [['cafe.*'], 'café.x', false],
  [['café.*'], 'cafe\u0301.x', false],
  [['café.*'], 'CAFÉ.x', false],
  [['é.*'], 'é.ü', true],
  [['🎉.*'], '🎉.x', true],
  [['🎉.*'], '🎉.', false],
  [['🎉.*'], '🎉', false],
  [['🎉.*'], '🎊.x', false],
  [['日本.*'], '日本.注文', true],
  [['注文.作成'], '注文.作成', true],
  // patterns validation refuses: they still match the same way in both rules
  [['.*'], '.*', true],
  [['.*'], '.a', true],
  [['.*'], 'a', false],
  [['.*'], '.', false],
  [['a*'], 'a*', true],
  [['a*'], 'ab', false],
  [['a*'], 'a.b', false],
  [['*a'], '*a', true],
  [['*a'], 'ba', false],
  [['a.*.b'], 'a.*.b', true],
  [['a.*.b'], 'a.x.b', false],
  [['**'], '**', true],
  [['**'], 'a', false],
  [['*.*'], '*.x', true],
  [['*.*'], 'a.x', false],
  // several patterns: any one is enough
  [['x', 'a.*'], 'a.b', true],
  [['x', 'y.*'], 'a.b', false],
  [['order.created', 'order.*'], 'order.created', true],
  [['invoice.*', 'order'], 'order.created', false],
]

test('matchesType: the table', () => {
  for (const [patterns, type, want] of CASES) {
    assert.equal(matchesType(patterns, type), want, `${JSON.stringify(patterns)} vs ${JSON.stringify(type)}`)
  }
})

test('triggers_type_matches (SQL): the same table', async () => {
  const rows = await db.sql<{ i: number, m: boolean }[]>`
    select t.i, triggers_type_matches(string_to_array(t.p, chr(31)), t.ty) as m
      from unnest(${CASES.map((_, i) => i)}::int[], ${CASES.map(c => c[0].join('\x1f'))}::text[],
                  ${CASES.map(c => c[1])}::text[]) as t(i, p, ty)
     order by t.i`
  assert.equal(rows.length, CASES.length)
  for (const r of rows) {
    const [patterns, type, want] = CASES[r.i]!
    assert.equal(r.m, want, `SQL: ${JSON.stringify(patterns)} vs ${JSON.stringify(type)}`)
  }
})

test('checkEventTypes: valid filters, duplicates removed in order', () => {
  const ok = (raw: unknown, want: string[]): void => {
    const c = checkEventTypes(raw)
    assert.deepEqual(c, { ok: true, patterns: want }, JSON.stringify(raw))
  }
  ok(['*'], ['*'])
  ok(['a'], ['a'])
  ok(['a.*'], ['a.*'])
  ok(['a.b.*', 'order.created', '*'], ['a.b.*', 'order.created', '*'])
  ok(['b', 'a', 'b', 'a', 'c'], ['b', 'a', 'c'])
  ok(['x'.repeat(255)], ['x'.repeat(255)])
  ok(['🎉'.repeat(255)], ['🎉'.repeat(255)]) // 255 characters (code points), 510 UTF-16 units
  ok(['é.*', 'A.B'], ['é.*', 'A.B'])
  ok(['a.', '.a', 'a..b'], ['a.', '.a', 'a..b'])
  const hundred = Array.from({ length: MAX_PATTERNS }, (_, i) => `t${i}`)
  ok(hundred, hundred)
  // Duplicates are removed before counting: 150 entries naming 100 patterns are 100 patterns.
  ok([...hundred, ...hundred.slice(0, 50)], hundred)
})

test('checkEventTypes: refused filters', () => {
  const bad = (raw: unknown): void => {
    const c = checkEventTypes(raw)
    assert.equal(c.ok, false, JSON.stringify(raw))
    if (!c.ok) assert.ok(c.reason.length > 0)
  }
  bad([])
  bad(null)
  bad('*')
  bad({ 0: '*' })
  bad([''])
  bad([1])
  bad([null])
  bad(['a', ['b']])
  bad(['x'.repeat(256)])
  bad(['🎉'.repeat(256)])
  for (const p of ['.*', 'a*', '*a', 'a.*.b', '**', '*.*', 'a.**', 'a.b*', '*.a', 'a*.b', 'a.* ', ' *']) bad([p])
  bad(['a', '*a'])
  bad(Array.from({ length: MAX_PATTERNS + 1 }, (_, i) => `t${i}`))
})
