/**
 * GET /openapi.json and GET /docs against the real service. The document must be valid OpenAPI 3.1
 * (checked with @seriousme/openapi-schema-validator), cover every route of the route table
 * (http/app.ts `routes()`) with its methods and every code of the error catalogue; and what the
 * service really sends must match it: each response of a real workflow is looked up in the document
 * by path, method and status, and its body is validated (ajv, JSON Schema 2020-12, the dialect of
 * OpenAPI 3.1) against the documented schema — with undocumented fields refused.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Validator } from '@seriousme/openapi-schema-validator'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { startTestService, type TestService, type ApiResponse } from '../helpers/server.ts'
import { loadConfig } from '../../src/config/load.ts'
import { routes } from '../../src/http/app.ts'
import type { Services } from '../../src/http/services.ts'
import { CATALOGUE } from '../../src/errors.ts'
import { closed, isObject, type Json } from '../helpers/schema.ts'

function obj (v: unknown, what: string): Json {
  assert.ok(isObject(v), `${what} is an object`)
  return v
}

/** The route table as [path template, methods]. `routes()` only builds closures over its argument. */
function routeTable (): Array<{ path: string, methods: string[] }> {
  const config = loadConfig({ DATABASE_URL: 'postgres://unused@127.0.0.1/unused', LOG_LEVEL: 'silent' })
  const onlyConfig = new Proxy({ config }, {
    get (target, prop) {
      if (prop === 'config') return target.config
      throw new Error(`routes() read services.${String(prop)} while building the table`)
    },
  }) as unknown as Services
  return routes(onlyConfig).map(r => ({ path: r.path, methods: Object.keys(r.methods) }))
}

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020

describe('OpenAPI document and /docs', () => {
  let s: TestService
  let doc: Json
  let paths: Json
  let schemas: Json
  let ajv: Ajv2020
  const seen: Array<{ path: string, method: string, status: number }> = []

  before(async () => {
    s = await startTestService({ THREADS: '1' })
    const r = await s.api('GET', '/openapi.json')
    assert.equal(r.status, 200)
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/)
    doc = obj(r.json, 'the document')
    paths = obj(doc.paths, 'paths')
    schemas = obj(obj(doc.components, 'components').schemas, 'components.schemas')
    ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false })
    addFormats(ajv)
    ajv.addSchema({ $id: 'urn:triggers:components', $defs: closed(schemas) })
  })
  after(async () => { await s?.stop() })

  /** Validates a real response against the schema the document gives for (path, method, status). */
  function conforms (template: string, method: string, res: ApiResponse): void {
    const op = obj(obj(paths[template], `paths["${template}"]`)[method], `${method} ${template}`)
    const documented = obj(op.responses, 'responses')[String(res.status)]
    assert.ok(isObject(documented), `${method.toUpperCase()} ${template} documents status ${res.status} (${res.text.slice(0, 200)})`)
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
    const schema = obj(obj(obj(documented.content, 'content')['application/json'], 'application/json').schema, 'schema')
    const ref = String(schema.$ref)
    assert.match(ref, /^#\/components\/schemas\/\w+$/)
    const name = ref.slice('#/components/schemas/'.length)
    const validate = ajv.getSchema(`urn:triggers:components#/$defs/${name}`)
    assert.ok(validate !== undefined, `schema ${name} exists`)
    const ok = validate(res.json)
    assert.ok(ok, `${method.toUpperCase()} ${template} ${res.status} body matches ${name}: ${ajv.errorsText(validate.errors)}\n${res.text.slice(0, 500)}`)
    seen.push({ path: template, method, status: res.status })
  }

  test('is a valid OpenAPI 3.1 document', async () => {
    assert.equal(doc.openapi, '3.1.0')
    const v = new Validator()
    const res = await v.validate(structuredClone(doc))
    assert.equal(v.version, '3.1')
    assert.ok(res.valid, `validator errors: ${JSON.stringify(res.errors, null, 2)}`)
  })

  test('every route and method of the route table is documented', () => {
    const table = routeTable()
    assert.ok(table.length >= 10)
    for (const r of table) {
      const template = r.path.replace(/:([a-zA-Z_]+)/g, '{$1}')
      const item = paths[template]
      assert.ok(isObject(item), `${template} is in paths`)
      // uWS names DELETE `del`; OpenAPI names it `delete`.
      const served = r.methods.map(x => x === 'del' ? 'delete' : x)
      for (const m of served) assert.ok(isObject(item[m]), `${m.toUpperCase()} ${template} is documented`)
      const documented = Object.keys(item).filter(k => ['get', 'post', 'put', 'patch', 'delete'].includes(k))
      assert.deepEqual(documented.sort(), [...served].sort(), `${template}: documented methods are exactly the served ones`)
      const param = /\{(\w+)\}/.exec(template)?.[1]
      if (param !== undefined) {
        for (const m of served) {
          const params = obj(item[m], 'operation').parameters
          assert.ok(Array.isArray(params) && params.some(p => isObject(p) && p.name === param && p.in === 'path' && p.required === true), `${template} declares its path parameter`)
        }
      }
    }
    // And nothing documented that is not served.
    const served = new Set(table.map(r => r.path.replace(/:([a-zA-Z_]+)/g, '{$1}')))
    for (const p of Object.keys(paths)) assert.ok(served.has(p), `documented ${p} is served`)
  })

  test('every error code of the catalogue is in the document, with its status', () => {
    const codes = obj(doc['x-error-codes'], 'x-error-codes')
    assert.deepEqual(Object.keys(codes).sort(), Object.keys(CATALOGUE).sort())
    for (const [code, spec] of Object.entries(CATALOGUE)) {
      assert.equal(obj(codes[code], code).status, spec.status, `${code} status`)
    }
    // Each documented error response status belongs to some catalogue code, and the envelope schema is used.
    const statuses = new Set(Object.values(CATALOGUE).map(c => String(c.status)))
    for (const [p, item] of Object.entries(paths)) {
      for (const [m, op] of Object.entries(obj(item, p))) {
        for (const [st, resp] of Object.entries(obj(obj(op, m).responses, 'responses'))) {
          if (Number(st) < 400) continue
          // Readiness answers 503 with its own body (status not_ready), not an error envelope.
          if (p === '/health/ready' && st === '503') continue
          assert.ok(statuses.has(st), `${m} ${p} ${st} is a catalogue status`)
          assert.equal(JSON.stringify(resp).includes('#/components/schemas/ErrorEnvelope'), true, `${m} ${p} ${st} uses ErrorEnvelope`)
        }
      }
    }
  })

  test('real responses of a full workflow validate against the documented schemas', async () => {
    const gen = await s.api('POST', '/api/keys/generate', { body: { organization_name: 'OpenAPI Org', tier: 'pro' } })
    assert.equal(gen.status, 201)
    conforms('/api/keys/generate', 'post', gen)
    const key: string = gen.json.api_key

    conforms('/api/keys', 'get', await s.api('GET', '/api/keys', { key }))

    const created = await s.api('POST', '/api/events', { key, body: { type: 'doc.check', payload: { a: [1, { b: null }] }, dedup_id: 'd-1' } })
    assert.equal(created.status, 201)
    conforms('/api/events', 'post', created)
    const plain = await s.api('POST', '/api/events', { key, body: { type: 'doc.check', payload: {} } })
    assert.equal(plain.status, 201)
    conforms('/api/events', 'post', plain)
    assert.equal(plain.json.dedup_id, null)

    const dup = await s.api('POST', '/api/events', { key, body: { type: 'doc.check', payload: {}, dedup_id: 'd-1' } })
    assert.equal(dup.status, 409)
    conforms('/api/events', 'post', dup)
    const invalid = await s.api('POST', '/api/events', { key, body: { payload: 'nope' } })
    assert.equal(invalid.status, 400)
    conforms('/api/events', 'post', invalid)
    assert.ok(isObject(invalid.json.details))
    const big = await s.api('POST', '/api/events', { key, body: { type: 'big', payload: { s: 'x'.repeat(300_000) } } })
    assert.equal(big.status, 413)
    conforms('/api/events', 'post', big)
    const badJson = await s.api('POST', '/api/events', { key, raw: '{"type":', headers: { 'content-type': 'application/json' } })
    assert.equal(badJson.status, 400)
    conforms('/api/events', 'post', badJson)
    const noKey = await s.api('POST', '/api/events', { body: { type: 'x', payload: {} } })
    assert.equal(noKey.status, 401)
    conforms('/api/events', 'post', noKey)

    const inbox = await s.api('GET', '/api/inbox?limit=1', { key })
    assert.equal(inbox.status, 200)
    assert.equal(inbox.json.events.length, 1)
    assert.equal(typeof inbox.json.next_cursor, 'string')
    conforms('/api/inbox', 'get', inbox)
    const page2 = await s.api('GET', `/api/inbox?limit=1&cursor=${encodeURIComponent(inbox.json.next_cursor)}`, { key })
    conforms('/api/inbox', 'get', page2)
    const badStatus = await s.api('GET', '/api/inbox?status=weird', { key })
    assert.equal(badStatus.status, 400)
    conforms('/api/inbox', 'get', badStatus)

    const ack = await s.api('POST', `/api/ack/${created.json.id}`, { key })
    assert.equal(ack.status, 200)
    conforms('/api/ack/{event_id}', 'post', ack)
    const delivered = await s.api('GET', '/api/inbox?status=delivered', { key })
    assert.equal(delivered.json.events.length, 1)
    conforms('/api/inbox', 'get', delivered)
    const badId = await s.api('POST', '/api/ack/not-a-uuid', { key })
    assert.equal(badId.status, 400)
    conforms('/api/ack/{event_id}', 'post', badId)
    const unknown = await s.api('POST', '/api/ack/0190a0a0-0000-7000-8000-000000000000', { key })
    assert.equal(unknown.status, 404)
    conforms('/api/ack/{event_id}', 'post', unknown)
    const batch = await s.api('POST', '/api/ack', { key, body: { event_ids: [plain.json.id, '0190a0a0-0000-7000-8000-000000000001'] } })
    assert.equal(batch.status, 200)
    conforms('/api/ack', 'post', batch)

    const noHook = await s.api('POST', `/api/events/${plain.json.id}/redeliver`, { key })
    assert.equal(noHook.status, 422)
    conforms('/api/events/{event_id}/redeliver', 'post', noHook)
    const cfg = await s.api('POST', '/api/webhook/config', { key, body: { webhook_url: 'http://127.0.0.1:9/hook' } })
    assert.equal(cfg.status, 200)
    conforms('/api/webhook/config', 'post', cfg)
    const badUrl = await s.api('POST', '/api/webhook/config', { key, body: { webhook_url: 'ftp://x' } })
    assert.equal(badUrl.status, 422)
    conforms('/api/webhook/config', 'post', badUrl)
    const redeliver = await s.api('POST', `/api/events/${plain.json.id}/redeliver`, { key })
    assert.equal(redeliver.status, 202)
    conforms('/api/events/{event_id}/redeliver', 'post', redeliver)
    const secret = await s.api('POST', '/api/webhook/secret/rotate', { key })
    assert.equal(secret.status, 200)
    conforms('/api/webhook/secret/rotate', 'post', secret)
    const replay = await s.api('POST', '/api/webhook/replay', { key, body: { status: 'dead_letter' } })
    assert.equal(replay.status, 202)
    conforms('/api/webhook/replay', 'post', replay)

    const rotated = await s.api('POST', '/api/keys/rotate', { key })
    assert.equal(rotated.status, 200)
    conforms('/api/keys/rotate', 'post', rotated)
    const old = await s.api('GET', '/api/keys', { key })
    assert.equal(old.status, 401)
    conforms('/api/keys', 'get', old)

    // A served path with another method: 405, documented on every operation of that path.
    const wrongMethod = await s.api('GET', '/api/events', { key: rotated.json.api_key })
    assert.equal(wrongMethod.status, 405)
    assert.equal(wrongMethod.headers.get('allow'), 'POST, OPTIONS')
    conforms('/api/events', 'post', wrongMethod)

    for (const p of ['/health', '/health/live', '/health/ready']) {
      const h = await s.api('GET', p)
      assert.equal(h.status, 200)
      conforms(p, 'get', h)
    }
    assert.ok(seen.length >= 25, `validated ${seen.length} responses`)
  })

  test('unknown routes answer with the documented envelope', async () => {
    const r = await s.api('GET', '/nope')
    assert.equal(r.status, 404)
    const validate = ajv.getSchema('urn:triggers:components#/$defs/ErrorEnvelope')
    assert.ok(validate !== undefined)
    assert.ok(validate(r.json), ajv.errorsText(validate.errors))
    assert.equal(r.json.code, 'not_found')
  })

  test('GET /docs is an offline page: its script and the document from this service, a CSP allowing only this origin', async () => {
    const r = await s.api('GET', '/docs')
    assert.equal(r.status, 200)
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/)
    assert.match(r.text, /^<!doctype html>/i)
    assert.match(r.text, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self';/)
    assert.match(r.text, /<redoc spec-url="\/openapi\.json"/)
    const src = /<script src="([^"]+)"><\/script>/.exec(r.text)?.[1] ?? ''
    assert.match(src, /^\/docs\/assets\/redoc\.standalone\.js\?v=[0-9a-f]{16}$/)
    assert.doesNotMatch(r.text, /(src|href)\s*=\s*["']?(https?:)?\/\//i, 'nothing fetched from another origin')
    // The browser test (docs-browser.test.ts) checks what the page then shows and requests.

    const js = await s.api('GET', src)
    assert.equal(js.status, 200)
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/)
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    assert.ok(js.text.length > 500_000, `the bundle is whole (${js.text.length} characters)`)
    assert.ok(!js.text.includes('cdn.redoc.ly'), 'the remote logo reference is replaced')
  })
})
