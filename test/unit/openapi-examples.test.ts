/**
 * Examples in the OpenAPI document (http/openapi-examples.ts, attached by http/openapi.ts): every
 * operation has a success-response example and, when it takes a body, a request example; each one
 * validates against the schema the document gives for it, with undocumented fields refused; every
 * documented error code has an example that is a valid error envelope; no entry is left over.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { buildOpenApi, missingExamples, operationKey, OPERATIONS } from '../../src/http/openapi.ts'
import { EXAMPLES } from '../../src/http/openapi-examples.ts'
import { CATALOGUE } from '../../src/errors.ts'
import { closed, isObject, type Json } from '../helpers/schema.ts'

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020
const doc = buildOpenApi('0.0.0-test') as { paths: Record<string, Record<string, Json>>, components: { schemas: Json } }
const ajv = addFormats(new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictRequired: false }))
// Components refer to each other as #/components/schemas/X; here they live under $defs.
const components = JSON.parse(JSON.stringify(closed(doc.components.schemas)).replaceAll('"#/components/schemas/', '"#/$defs/')) as Json
ajv.addSchema({ $id: 'urn:triggers:components', $defs: components })

/** Validates `value` against a media type's schema (a components $ref or an inline schema). */
function check (media: Json, value: unknown, what: string): void {
  const schema = media.schema as Json
  const ref = typeof schema.$ref === 'string' ? schema.$ref : null
  const validate = ref === null
    ? ajv.compile(closed(schema) as Json)
    : ajv.getSchema(`urn:triggers:components#/$defs/${ref.slice('#/components/schemas/'.length)}`)
  assert.ok(validate !== undefined, `${what}: schema ${ref ?? 'inline'} exists`)
  assert.ok(validate(value), `${what} matches its schema: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`)
}

test('every operation has its examples (add them to src/http/openapi-examples.ts)', () => {
  assert.deepEqual(missingExamples(), [])
})

test('every entry of EXAMPLES belongs to an operation, and request examples only to operations with a body', () => {
  const ops = new Map(OPERATIONS.map(op => [operationKey(op), op]))
  for (const [key, ex] of Object.entries(EXAMPLES)) {
    const op = ops.get(key)
    assert.ok(op !== undefined, `${key} is an operation of OPERATIONS`)
    if (ex.request !== undefined) assert.notEqual(op.request, null, `${key} takes a request body`)
  }
})

test('each request and success example is in the document and matches its schema', () => {
  for (const op of OPERATIONS) {
    const key = operationKey(op)
    const operation = doc.paths[op.path]?.[op.method]
    assert.ok(isObject(operation), `${key} is in the document`)
    if (op.request !== null) {
      const media = ((operation.requestBody as Json).content as Json)['application/json'] as Json
      assert.ok('example' in media, `${key} has a request example`)
      check(media, media.example, `${key} request example`)
    }
    // A 204 without a body has no content and so no example.
    const content = ((operation.responses as Json)[String(op.success.status)] as Json).content as Record<string, Json> | undefined
    assert.equal(content === undefined, 'empty' in op.success, `${key} has success content unless it is an empty 204`)
    for (const [type, media] of Object.entries(content ?? {})) {
      assert.ok('example' in media, `${key} ${op.success.status} ${type} has an example`)
      check(media, media.example, `${key} ${op.success.status} example`)
    }
  }
})

test('every error response carries one valid envelope example per error code it documents', () => {
  for (const op of OPERATIONS) {
    const responses = (doc.paths[op.path]?.[op.method] as Json).responses as Record<string, Json>
    for (const code of [...op.errors, 'not_found', 'method_not_allowed', 'internal_error'] as const) {
      const media = (responses[String(CATALOGUE[code].status)]?.content as Json)['application/json'] as Json
      const example = (media.examples as Record<string, Json>)[code]
      assert.ok(isObject(example), `${operationKey(op)} has an example of ${code}`)
      check(media, example.value, `${operationKey(op)} ${code} example`)
      assert.equal((example.value as Json).code, code)
    }
  }
})
