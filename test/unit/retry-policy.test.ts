/** The retry policy is pure: classification, jitter bounds, Retry-After parsing and the series decision. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AttemptResult, classify, decide, jittered, parseRetryAfter, RETRY_AFTER_CAP_MS } from '../../src/delivery/retry-policy.ts'

const http = (status: number, retryAfter: string | null = null): AttemptResult => new AttemptResult('http', status, `HTTP ${status}`, retryAfter)
const NOW = Date.parse('2025-01-01T00:00:00.000Z')
const DELAYS = [1000, 2000, 4000, 8000, 16000]

test('classify: 2xx success, 410 dead, everything else retries', () => {
  assert.equal(classify(new AttemptResult('success', 200, null, null)), 'success')
  for (const s of [200, 201, 204, 299]) assert.equal(classify(http(s)), 'success')
  assert.equal(classify(http(410)), 'dead')
  for (const s of [301, 302, 304, 307, 400, 401, 404, 409, 429, 500, 502, 503, 504]) assert.equal(classify(http(s)), 'retry', String(s))
  for (const kind of ['timeout', 'network', 'refused'] as const) assert.equal(classify(new AttemptResult(kind, 0, kind, null)), 'retry')
})

test('jitter stays within ±20%', () => {
  assert.equal(jittered(1000, 0), 800)
  assert.equal(jittered(1000, 0.5), 1000)
  assert.ok(jittered(1000, 0.999999) <= 1200)
  for (let i = 0; i < 1000; i++) {
    const d = jittered(16000, Math.random())
    assert.ok(d >= 12800 && d <= 19200, String(d))
  }
})

test('Retry-After: seconds, HTTP date, garbage, cap at 10 minutes', () => {
  assert.equal(parseRetryAfter(null, NOW), null)
  assert.equal(parseRetryAfter('0', NOW), 0)
  assert.equal(parseRetryAfter('7', NOW), 7000)
  assert.equal(parseRetryAfter(' 30 ', NOW), 30000)
  assert.equal(parseRetryAfter('3600', NOW), RETRY_AFTER_CAP_MS)
  assert.equal(parseRetryAfter(new Date(NOW + 90_000).toUTCString(), NOW), 90_000)
  assert.equal(parseRetryAfter(new Date(NOW - 90_000).toUTCString(), NOW), 0)
  assert.equal(parseRetryAfter(new Date(NOW + 86_400_000).toUTCString(), NOW), RETRY_AFTER_CAP_MS)
  assert.equal(parseRetryAfter('soon', NOW), null)
  assert.equal(parseRetryAfter('-5', NOW), null)
  assert.equal(parseRetryAfter('1.5', NOW), null)
})

test('decide walks the configured series and dead-letters after the last retry', () => {
  for (let k = 1; k <= DELAYS.length; k++) {
    const d = decide(http(500), k, DELAYS, NOW, 0.5)
    assert.equal(d.verdict, 'retry')
    assert.equal(d.delayMs, DELAYS[k - 1])
  }
  assert.equal(decide(http(500), DELAYS.length + 1, DELAYS, NOW, 0.5).verdict, 'dead')
  assert.equal(decide(http(500), 1, [], NOW, 0.5).verdict, 'dead')
  const lo = decide(http(500), 3, DELAYS, NOW, 0)
  assert.equal(lo.delayMs, 3200)
})

test('decide: success, 410 and Retry-After', () => {
  const ok = decide(http(204), 5, DELAYS, NOW, 0.5)
  assert.equal(ok.verdict, 'delivered')
  assert.equal(ok.delayMs, -1)
  assert.equal(decide(http(410), 1, DELAYS, NOW, 0.5).verdict, 'dead')
  const ra = decide(http(503, '120'), 1, DELAYS, NOW, 0.9)
  assert.equal(ra.verdict, 'retry')
  assert.equal(ra.delayMs, 120_000) // honoured as given, no jitter
  assert.equal(decide(http(429, '99999'), 2, DELAYS, NOW, 0.9).delayMs, RETRY_AFTER_CAP_MS)
  assert.equal(decide(http(429, 'nonsense'), 2, DELAYS, NOW, 0.5).delayMs, 2000)
  // Retry-After never extends the series.
  assert.equal(decide(http(503, '1'), DELAYS.length + 1, DELAYS, NOW, 0.5).verdict, 'dead')
})

test('decide treats a missing series position as the first attempt', () => {
  assert.equal(decide(http(500), 0, DELAYS, NOW, 0.5).delayMs, 1000)
})
