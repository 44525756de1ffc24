/**
 * /docs in a real headless Chromium (Debian's, driven by playwright-core) against the real service:
 * the page renders every route of the OpenAPI document and every error code, shows the examples,
 * logs no console error (a Content-Security-Policy violation would be one), and requests nothing
 * from anywhere but the service itself — every request of the browser is recorded. Skips, saying
 * why, only when Chromium is missing and cannot be installed (test/helpers/chromium.ts).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestService, type TestService } from '../helpers/server.ts'
import { waitFor } from '../helpers/db.ts'
import { ensureChromium, openBrowser, type Browser } from '../helpers/chromium.ts'
import { CATALOGUE } from '../../src/errors.ts'
import { OPERATIONS } from '../../src/http/openapi.ts'

const unavailable = ensureChromium()
if (unavailable !== null) process.stdout.write(`# skipping the /docs browser test: ${unavailable}\n`)

describe('/docs in Chromium', { skip: unavailable ?? false }, () => {
  let s: TestService
  let browser: Browser
  const requests: string[] = []
  const consoleErrors: string[] = []
  let text = ''
  let operations = 0

  before(async () => {
    s = await startTestService({ THREADS: '1' })
    browser = await openBrowser()
    browser.context.on('request', r => { requests.push(r.url()) })
    const page = await browser.context.newPage()
    page.on('console', m => { if (m.type() === 'error') consoleErrors.push(m.text()) })
    page.on('pageerror', e => { consoleErrors.push(`uncaught: ${e.message}`) })
    const res = await page.goto(`${s.base}/docs`, { waitUntil: 'load' })
    assert.equal(res?.status(), 200)
    // Redoc renders each operation as a section with data-section-id "operation/<operationId>".
    // (Expressions as strings: this project's TypeScript has no DOM types.)
    // Polled from here, not with page.waitForFunction: a string predicate that is not true at once is
    // re-evaluated by the page itself, where the /docs Content-Security-Policy refuses eval — which
    // happened whenever Redoc had not rendered yet at the first check (a slow, busy machine).
    const sections = 'document.querySelectorAll(\'[data-section-id^="operation/"]\').length'
    operations = await waitFor(async () => {
      const n = Number(await page.evaluate(sections))
      return n >= OPERATIONS.length ? n : null
    }, 60_000, 'Redoc to render every operation')
    text = String(await page.evaluate('document.body.innerText'))
    await page.close()
  })
  after(async () => {
    await browser?.close()
    await s?.stop()
  })

  test('every operation of the OpenAPI document is on the page, with its method and path', async () => {
    const doc = (await s.api('GET', '/openapi.json')).json as { paths: Record<string, Record<string, unknown>> }
    const documented = Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).map(m => `${m} ${p}`))
    assert.equal(operations, documented.length, 'one section per operation')
    const upper = text.toUpperCase()
    for (const op of documented) {
      const [method = '', p = ''] = op.split(' ')
      assert.ok(text.includes(p), `the page shows ${p}`)
      assert.ok(upper.includes(`${method.toUpperCase()}\n${p.toUpperCase()}`) || upper.includes(`${method.toUpperCase()} ${p.toUpperCase()}`), `the page shows ${method.toUpperCase()} ${p}`)
    }
  })

  test('every error code and the request/response examples are shown', () => {
    for (const code of Object.keys(CATALOGUE)) assert.ok(text.includes(code), `the page lists ${code}`)
    for (const sample of ['"organization_name": "Acme"', '"dedup_id": "order-42"', '"status": "ready"']) {
      assert.ok(text.includes(sample), `the page shows the example ${sample}`)
    }
  })

  test('no console error', () => {
    assert.deepEqual(consoleErrors, [])
  })

  test('nothing is requested from anywhere but the service itself', () => {
    const own = new URL(s.base).origin
    const foreign = requests.filter(u => {
      if (u.startsWith('data:')) return false
      const url = new URL(u.startsWith('blob:') ? u.slice('blob:'.length) : u)
      return url.origin !== own
    })
    assert.deepEqual(foreign, [], `every request: ${requests.join(', ')}`)
    const paths = requests.filter(u => u.startsWith(own)).map(u => new URL(u).pathname)
    for (const p of ['/docs', '/docs/assets/redoc.standalone.js', '/openapi.json']) assert.ok(paths.includes(p), `the page loaded ${p}`)
  })
})
