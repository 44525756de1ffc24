/**
 * The TypeScript client's generated types and its package, without a service:
 * - clients/typescript/src/generated/api.ts is exactly what scripts/generate.ts makes from the current
 *   OpenAPI document (a schema, route or error-code change must reach the client);
 * - every operation of the document has a client method (the two browser pages aside), and every
 *   code of the error catalogue is typed;
 * - the package builds with its own tsconfig, and the built JavaScript runs under plain Node (no tsx):
 *   it loads, builds requests, and verifies a webhook signed by the standardwebhooks package;
 * - its dependencies are pinned to the versions the root installs (root `npm ci` is what provides them).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { GENERATED_FILE, generateApiTypes } from '../../clients/typescript/scripts/generate.ts'
import { BROWSER_PAGES, ERROR_CODES, METHOD_OPERATIONS, OPERATIONS, TriggersClient } from '../../clients/typescript/src/index.ts'
import { buildOpenApi } from '../../src/http/openapi.ts'
import { CATALOGUE } from '../../src/errors.ts'

const run = promisify(execFile)
const CLIENT_DIR = fileURLToPath(new URL('../../clients/typescript/', import.meta.url))

test('src/generated/api.ts is up to date with the OpenAPI document', () => {
  assert.equal(readFileSync(GENERATED_FILE, 'utf8'), generateApiTypes(),
    'the generated client types are stale: run `node --import tsx clients/typescript/scripts/generate.ts`')
})

test('every operation of the document has a client method; every error code is typed', () => {
  const doc = buildOpenApi('test') as { paths: Record<string, Record<string, { operationId: string }>> }
  const documented = Object.values(doc.paths).flatMap(methods => Object.values(methods).map(op => op.operationId)).sort()
  assert.deepEqual(Object.keys(OPERATIONS).sort(), documented)
  const covered = new Set<string>([...Object.values(METHOD_OPERATIONS), ...BROWSER_PAGES])
  assert.deepEqual(documented.filter(id => !covered.has(id)), [], 'operations without a client method')
  for (const method of Object.keys(METHOD_OPERATIONS)) {
    assert.equal(typeof (TriggersClient.prototype as unknown as Record<string, unknown>)[method], 'function', `TriggersClient.${method}`)
  }
  assert.deepEqual(Object.fromEntries(Object.entries(ERROR_CODES).map(([c, s]) => [c, s.status])),
    Object.fromEntries(Object.entries(CATALOGUE).map(([c, s]) => [c, s.status])))
})

test('the client package pins the versions the root installs', () => {
  const root = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  const pkg = JSON.parse(readFileSync(new URL('package.json', `file://${CLIENT_DIR}`), 'utf8'))
  const rootVersions = { ...root.dependencies, ...root.devDependencies }
  assert.deepEqual(Object.keys(pkg.dependencies ?? {}), ['standardwebhooks'], 'the client has one runtime dependency')
  for (const [name, version] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) {
    assert.equal(version, rootVersions[name], `${name}: clients/typescript/package.json has ${String(version)}, the root package.json ${String(rootVersions[name])}`)
  }
  assert.equal(pkg.type, 'module')
  assert.equal(pkg.engines.node, '>=20')
})

test('the package builds and its JavaScript runs under plain Node', async () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  rmSync(`${CLIENT_DIR}dist`, { recursive: true, force: true })
  await run(process.execPath, [tsc, '-p', `${CLIENT_DIR}tsconfig.json`], { cwd: CLIENT_DIR })
  const script = `
    import { Webhook } from 'standardwebhooks'
    import * as client from ${JSON.stringify(`${CLIENT_DIR}dist/index.js`)}
    const secret = 'whsec_' + Buffer.alloc(32, 7).toString('base64')
    const body = JSON.stringify({ id: 'e1', type: 'order.created', data: { n: 1 }, timestamp: '2026-01-01T00:00:00.000Z' })
    const now = new Date()
    const headers = { 'webhook-id': 'e1', 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign('e1', now, body) }
    const event = client.verifyWebhook(secret, Buffer.from(body), headers)
    let refused = ''
    try { client.verifyWebhook(secret, body.replace('1}', '2}'), headers) } catch (e) { refused = e.name }
    const c = new client.TriggersClient({ baseUrl: 'http://127.0.0.1:1', retry: { maxRetries: 0 } })
    let offline = ''
    try { await c.health({ timeoutMs: 2000 }) } catch (e) { offline = e.name }
    console.log(JSON.stringify({ event, refused, offline, exports: Object.keys(client).length }))
  `
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: CLIENT_DIR })
  const out = JSON.parse(stdout)
  assert.deepEqual(out.event, { id: 'e1', type: 'order.created', data: { n: 1 }, timestamp: '2026-01-01T00:00:00.000Z' })
  assert.equal(out.refused, 'WebhookVerificationError')
  assert.equal(out.offline, 'TriggersConnectionError')
  assert.ok(out.exports > 10)
})
