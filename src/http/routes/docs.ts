/**
 * GET /openapi.json, GET /docs and GET /docs/assets/redoc.standalone.js, each built once per thread on
 * its first request and sent from memory after that. Nothing of it is loaded at thread start: the
 * OpenAPI builder (http/openapi.ts, its examples) is imported on the first request for the document or
 * the page, and the 1.1 MB bundle is read on the first request for the page or the script — a
 * listener that never serves them keeps neither in memory. No auth, no rate limit. Listener threads only.
 *
 * /docs is Redoc (the `redoc` package's standalone bundle, 2.5.4: one 1.1 MB script, no web fonts,
 * no telemetry) rendering /openapi.json in the browser. Offline by construction:
 * - the page loads only its own script and /openapi.json, both from this service;
 * - the bundle's one remote reference that it loads by itself — the Redocly logo image in the sidebar
 *   credit — is blanked here (an empty data: URL; Redoc hides an image that fails to load, and the
 *   credit link stays);
 * - the page's Content-Security-Policy allows nothing but this origin (plus inline styles and a
 *   blob: worker, which Redoc's search uses), so a future bundle that tried to fetch from elsewhere
 *   would be refused by the browser and show up as a console error in the browser test.
 * test/integration/docs-browser.test.ts loads the page in Chromium and records every request.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Ctx } from '../context.ts'
import { sendDocument } from '../reply.ts'
import { VERSION } from '../../version.ts'

export const REDOC_ASSET = '/docs/assets/redoc.standalone.js'
const REDOCLY_LOGO = Buffer.from('https://cdn.redoc.ly/redoc/logo-mini.svg')
/**
 * Written over the logo URL in place, padded with spaces to the same length (a URL's surrounding
 * spaces are ignored): the bundle is neither decoded nor copied, which keeps this to a few
 * milliseconds of the first request that needs it.
 */
const NO_LOGO = Buffer.from('data:,'.padEnd(REDOCLY_LOGO.length, ' '))

/** The standalone bundle as served: the remote logo blanked. Throws if the package is missing. */
export function loadRedocBundle (): Buffer {
  const bundle = readFileSync(createRequire(import.meta.url).resolve('redoc/bundles/redoc.standalone.js'))
  for (let i = bundle.indexOf(REDOCLY_LOGO); i >= 0; i = bundle.indexOf(REDOCLY_LOGO, i)) NO_LOGO.copy(bundle, i)
  return bundle
}

/**
 * Everything the page may load: this origin only. Inline styles (styled-components), data: images
 * (icons), a blob: worker (search index), and scripts from this origin with no eval.
 */
export const DOCS_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "font-src 'self'; connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'"

function esc (s: string): string {
  return s.replace(/[&<>"]/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c] ?? c))
}

/** The /docs page; `assetHash` makes the script URL change whenever the bundle does. */
export function renderDocsPage (title: string, version: string, assetHash: string): string {
  const t = `${esc(title)} ${esc(version)}`
  return '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<meta http-equiv="Content-Security-Policy" content="${DOCS_CSP}">` +
    // No favicon request: the browser would otherwise ask for /favicon.ico (a 404).
    `<title>${t}</title><link rel="icon" href="data:,"><style>body{margin:0}</style></head><body>` +
    // Options are attributes (Redoc reads them at start); see redoc.ly's "Redoc configuration".
    '<redoc spec-url="/openapi.json" expand-responses="200,201,202" json-sample-expand-level="3" hide-hostname="true"' +
    ' required-props-first="true" path-in-middle-panel="true"></redoc>' +
    `<noscript><h1>${t}</h1><p>This page needs JavaScript. The machine-readable document is <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p></noscript>` +
    `<script src="${REDOC_ASSET}?v=${assetHash}"></script></body></html>`
}

interface Spec { readonly json: string, readonly title: string, readonly version: string }
interface Asset { readonly bundle: Buffer, readonly hash: string }

let spec: Promise<Spec> | null = null
let asset: Asset | null = null
let html: string | null = null

/** The OpenAPI document as JSON, built on first use (a failed build is tried again next time). */
function loadSpec (): Promise<Spec> {
  spec ??= import('../openapi.ts').then(({ buildOpenApi }) => {
    const doc = buildOpenApi(VERSION)
    const info = doc.info as { title: string, version: string }
    return { json: JSON.stringify(doc), title: info.title, version: info.version }
  }, (err: unknown) => { spec = null; throw err })
  return spec
}

function loadAsset (): Asset {
  if (asset === null) {
    const bundle = loadRedocBundle()
    asset = { bundle, hash: createHash('sha256').update(bundle).digest('hex').slice(0, 16) }
  }
  return asset
}

export async function openapi (ctx: Ctx): Promise<void> {
  const s = await loadSpec()
  sendDocument(ctx, 'application/json', s.json)
}

export async function docs (ctx: Ctx): Promise<void> {
  if (html === null) {
    const s = await loadSpec()
    html = renderDocsPage(s.title, s.version, loadAsset().hash)
  }
  sendDocument(ctx, 'text/html; charset=utf-8', html)
}

export function docsAsset (ctx: Ctx): void {
  sendDocument(ctx, 'text/javascript; charset=utf-8', loadAsset().bundle, 'public, max-age=31536000, immutable')
}
