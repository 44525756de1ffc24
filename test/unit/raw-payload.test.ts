/**
 * rawMember/compact: the stored payload is the client's own JSON text of the member, compacted,
 * and the last duplicate member wins as in JSON.parse.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compact, rawMember } from '../../src/ingest/raw-payload.ts'

test('finds the member and keeps numbers and key order as written', () => {
  const t = '{"type":"x","payload":{"big":12345678901234567890,"f":1.0,"2":1,"1":0}}'
  assert.equal(rawMember(t, 'payload'), '{"big":12345678901234567890,"f":1.0,"2":1,"1":0}')
})

test('strips whitespace outside strings only', () => {
  assert.equal(compact('{ "a" : [ 1 , { "b" : "  x \\" y  " } ] }'), '{"a":[1,{"b":"  x \\" y  "}]}')
  assert.equal(compact('{"a":1}'), '{"a":1}')
})

test('escaped keys match, the last duplicate wins, absent members are null', () => {
  const t = ' {\n "pay\\u006coad" : {"first":true} , "payload" : { "second" : true } } '
  assert.equal(rawMember(t, 'payload'), '{"second":true}')
  assert.deepEqual(JSON.parse(rawMember(t, 'payload') ?? 'null'), JSON.parse(t).payload)
  assert.equal(rawMember('{"data":{}}', 'payload'), null)
  assert.equal(rawMember('{"data":{ }}', 'data'), '{}')
})

test('skips nested brackets and strings holding brackets or quotes', () => {
  const t = '{"a":{"payload":1,"s":"}]{["},"b":["payload",{"x":"\\\\"}],"payload":{"ok":"]}"}}'
  assert.equal(rawMember(t, 'payload'), '{"ok":"]}"}')
})
