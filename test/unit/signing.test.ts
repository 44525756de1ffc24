/** Signatures verify with an independent Standard Webhooks implementation (the `standardwebhooks` package). */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { Webhook } from 'standardwebhooks'
import { newSigningSecret, signatureHeader, signingKey } from '../../src/webhooks/signing.ts'

const ID = '01936b2e-1c2d-7a3b-8c4d-5e6f7a8b9c0d'

test('a new secret is whsec_ + base64 of 32 random bytes', () => {
  const a = newSigningSecret()
  const b = newSigningSecret()
  assert.match(a, /^whsec_[A-Za-z0-9+/]{43}=$/)
  assert.notEqual(a, b)
  assert.equal(Buffer.from(a.slice(6), 'base64').length, 32)
  assert.equal(signingKey(a).length, 32)
})

test('one secret: v1,<base64 HMAC-SHA256 of id.ts.body> that standardwebhooks verifies', () => {
  const secret = newSigningSecret()
  const body = '{"id":"' + ID + '","type":"order.created","data":{"n":1,"s":"é ✓"},"timestamp":"2025-01-01T00:00:00.000Z"}'
  const ts = Math.floor(Date.now() / 1000)
  const header = signatureHeader([secret], ID, ts, body)
  const expected = createHmac('sha256', Buffer.from(secret.slice(6), 'base64')).update(`${ID}.${ts}.${body}`).digest('base64')
  assert.equal(header, 'v1,' + expected)
  const payload = new Webhook(secret).verify(body, { 'webhook-id': ID, 'webhook-timestamp': String(ts), 'webhook-signature': header })
  assert.deepEqual(payload, JSON.parse(body))
})

test('two secrets (rotation): two space-separated entries, each verifies on its own', () => {
  const current = newSigningSecret()
  const previous = newSigningSecret()
  const body = '{"id":"' + ID + '","type":"t","data":{},"timestamp":"2025-01-01T00:00:00.000Z"}'
  const ts = Math.floor(Date.now() / 1000)
  const header = signatureHeader([current, previous], ID, ts, body)
  const parts = header.split(' ')
  assert.equal(parts.length, 2)
  for (const p of parts) assert.match(p, /^v1,[A-Za-z0-9+/]+=*$/)
  const headers = { 'webhook-id': ID, 'webhook-timestamp': String(ts), 'webhook-signature': header }
  assert.doesNotThrow(() => new Webhook(current).verify(body, headers))
  assert.doesNotThrow(() => new Webhook(previous).verify(body, headers))
  assert.throws(() => new Webhook(newSigningSecret()).verify(body, headers))
})

test('a changed body, id or timestamp does not verify', () => {
  const secret = newSigningSecret()
  const body = '{"a":1}'
  const ts = Math.floor(Date.now() / 1000)
  const header = signatureHeader([secret], ID, ts, body)
  const wh = new Webhook(secret)
  assert.throws(() => wh.verify('{"a":2}', { 'webhook-id': ID, 'webhook-timestamp': String(ts), 'webhook-signature': header }))
  assert.throws(() => wh.verify(body, { 'webhook-id': ID.replace('0d', '0e'), 'webhook-timestamp': String(ts), 'webhook-signature': header }))
  assert.throws(() => wh.verify(body, { 'webhook-id': ID, 'webhook-timestamp': String(ts + 1), 'webhook-signature': header }))
})

test('no secrets: empty header', () => {
  assert.equal(signatureHeader([], ID, 1, '{}'), '')
})
