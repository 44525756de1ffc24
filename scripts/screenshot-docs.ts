/**
 * Takes docs/api-reference.png: the real service's /docs page in headless Chromium (the same browser
 * set-up as test/integration/docs-browser.test.ts), scrolled to POST /api/events so its description,
 * request example and response samples show.
 *
 *   node --import tsx scripts/screenshot-docs.ts [out.png]
 *
 * Uses DATABASE_URL when set (it must allow CREATE DATABASE), otherwise starts an embedded PostgreSQL
 * under .test-data/ for the run. Installs Chromium with apt-get when missing and allowed to.
 */
import path from 'node:path'
import { startEmbedded, type EmbeddedDb } from '../src/db/embedded.ts'
import { ensureChromium, openBrowser } from '../test/helpers/chromium.ts'

const out = path.resolve(process.argv[2] ?? 'docs/api-reference.png')
const unavailable = ensureChromium()
if (unavailable !== null) {
  process.stderr.write(`screenshot-docs: ${unavailable}\n`)
  process.exit(1)
}

let embedded: EmbeddedDb | null = null
if (process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '') {
  embedded = await startEmbedded('.test-data')
  process.env.DATABASE_URL = embedded.url
}
// Imported after DATABASE_URL is settled: the test database helper reads it.
const { startTestService } = await import('../test/helpers/server.ts')
const service = await startTestService({ THREADS: '1' })
const browser = await openBrowser({ width: 1440, height: 900 })
try {
  const page = await browser.context.newPage()
  await page.goto(`${service.base}/docs`, { waitUntil: 'load' })
  const section = page.locator('[data-section-id="operation/postApiEvents"]')
  await section.waitFor({ timeout: 60_000 })
  await page.evaluate('document.querySelector(\'[data-section-id="operation/postApiEvents"]\').scrollIntoView({ block: "start" })')
  await page.screenshot({ path: out })
  process.stdout.write(`wrote ${path.relative(process.cwd(), out)}\n`)
} finally {
  await browser.close()
  await service.stop()
  await embedded?.stop()
}
