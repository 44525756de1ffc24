/**
 * Writes clients/typescript/src/generated/api.ts: TypeScript types for every schema, error code and
 * operation of the service's OpenAPI document (src/http/openapi.ts `buildOpenApi`, itself built from
 * src/http/schemas.ts and the error catalogue). Run after changing a schema or a route:
 * `node --import tsx clients/typescript/scripts/generate.ts`. test/client/generated.test.ts fails
 * when the committed file differs from what this produces.
 *
 * A small generator rather than a general one: it knows the JSON Schema keywords the document uses
 * (type, properties, required, additionalProperties, items, enum, const, oneOf, $ref, plus the
 * validation and annotation keywords, which become comments or are skipped) and throws on any other,
 * so a new construct in a schema stops generation instead of turning into a wrong type.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { buildOpenApi } from '../../../src/http/openapi.ts'

export const GENERATED_FILE = fileURLToPath(new URL('../src/generated/api.ts', import.meta.url))

type Json = Record<string, any>

/** Keywords that constrain values or annotate them: they do not change the TypeScript type. */
const IGNORED = new Set(['format', 'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'maxProperties', 'default', 'description', 'example', 'examples'])
const STRUCTURAL = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const', 'oneOf', '$ref'])
const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/

function refName (ref: string): string {
  const m = /^#\/components\/schemas\/([A-Za-z0-9_]+)$/.exec(ref)
  if (m === null) throw new Error(`unsupported $ref ${ref}`)
  return m[1]!
}

function literal (v: unknown): string {
  if (typeof v === 'string') return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v)
  throw new Error(`unsupported literal ${JSON.stringify(v)}`)
}

/**
 * Inline schemas worth a name of their own, by where they first stand (`Schema.prop`, `[]` for an
 * array's items, `|n` for the n-th oneOf variant). Any schema equal to a named one — a component or
 * one of these — is written as that name wherever it stands, so `AttemptList` holds `Attempt[]`.
 */
const HOISTED: ReadonlyArray<readonly [string, string]> = [
  ['BatchItemCreated', 'BatchResponse.results[]|0'],
  ['BatchItemDuplicate', 'BatchResponse.results[]|1'],
  ['BatchItemInvalid', 'BatchResponse.results[]|2'],
  ['BatchItemResult', 'BatchResponse.results[]'],
  ['EventDelivery', 'EventDeliveries.deliveries[]'],
  ['InboxEvent', 'InboxResponse.events[]'],
  ['EndpointStats', 'EndpointDetail.stats'],
]

function at (schemas: Json, where: string): Json {
  const [name, ...steps] = where.split(/(?=[.[|])/)
  let s: Json | undefined = schemas[name!]
  for (const step of steps) {
    if (s === undefined) break
    if (step === '[]') s = s.items
    else if (step.startsWith('.')) s = s.properties?.[step.slice(1)]
    else s = s.oneOf?.[Number(step.slice(1))]
  }
  if (s === undefined) throw new Error(`HOISTED: ${where} is not in the document any more`)
  return s
}

/** Named schemas by their JSON text; set per document by generateApiTypes. */
let NAMES = new Map<string, string>()

function key (name: string): string {
  return IDENT.test(name) ? name : `'${name}'`
}

function comment (schema: Json, indent: string): string[] {
  const parts: string[] = []
  if (typeof schema.description === 'string') parts.push(schema.description)
  if (schema.format === 'date-time') parts.push('ISO-8601 date-time.')
  if (schema.default !== undefined) parts.push(`@default ${JSON.stringify(schema.default)}`)
  if (parts.length === 0) return []
  const text = parts.join(' ').replace(/\*\//g, '*\\/')
  return [`${indent}/** ${text} */`]
}

/** The TypeScript type of a JSON Schema, written at `indent` (nested object members one level deeper). */
function typeOf (schema: Json, indent: string, self?: string): string {
  const named = NAMES.get(JSON.stringify(schema))
  if (named !== undefined && named !== self) return named
  for (const k of Object.keys(schema)) {
    if (!IGNORED.has(k) && !STRUCTURAL.has(k)) throw new Error(`unsupported JSON Schema keyword "${k}" in ${JSON.stringify(schema).slice(0, 120)}`)
  }
  if (schema.$ref !== undefined) return refName(schema.$ref)
  if (schema.const !== undefined) return literal(schema.const)
  if (schema.oneOf !== undefined) return (schema.oneOf as Json[]).map(s => typeOf(s, indent)).join(' | ')
  if (schema.enum !== undefined) return (schema.enum as unknown[]).map(literal).join(' | ')
  const types: string[] = Array.isArray(schema.type) ? schema.type : schema.type === undefined ? [] : [schema.type]
  if (types.length === 0) throw new Error(`schema without type: ${JSON.stringify(schema).slice(0, 120)}`)
  return types.map(t => single(t, schema, indent)).join(' | ')
}

function single (type: string, schema: Json, indent: string): string {
  switch (type) {
    case 'string': return 'string'
    case 'integer': case 'number': return 'number'
    case 'boolean': return 'boolean'
    case 'null': return 'null'
    case 'array': {
      if (schema.items === undefined) return 'unknown[]'
      const item = typeOf(schema.items, indent)
      return /[ |]/.test(item) ? `Array<${item}>` : `${item}[]`
    }
    case 'object': return objectType(schema, indent)
    default: throw new Error(`unsupported type ${type}`)
  }
}

function objectType (schema: Json, indent: string): string {
  const props: Json = schema.properties ?? {}
  const required = new Set<string>(schema.required ?? [])
  const inner = indent + '  '
  const lines: string[] = []
  for (const [name, prop] of Object.entries<Json>(props)) {
    lines.push(...comment(prop, inner))
    lines.push(`${inner}${key(name)}${required.has(name) ? '' : '?'}: ${typeOf(prop, inner)}`)
  }
  // Required names without a schema of their own (e.g. the /openapi.json document's top level).
  for (const name of required) if (!(name in props)) lines.push(`${inner}${key(name)}: unknown`)
  const extra = schema.additionalProperties
  if (extra === true || (extra === undefined && Object.keys(props).length === 0)) lines.push(`${inner}[key: string]: unknown`)
  else if (extra !== undefined && extra !== false) lines.push(`${inner}[key: string]: ${typeOf(extra, inner)}`)
  if (lines.length === 0) return 'Record<string, never>'
  return `{\n${lines.join('\n')}\n${indent}}`
}

/**
 * A named object whose every property (same schema, same required-ness) `schema` also has: `schema`
 * then extends it (EndpointCreated is Endpoint plus signing_secret). The one with most properties wins.
 */
function baseOf (schema: Json, earlier: ReadonlyArray<readonly [string, Json]>): readonly [string, Json] | undefined {
  if (schema.type !== 'object' || schema.properties === undefined || schema.additionalProperties !== undefined) return undefined
  const req = new Set<string>(schema.required ?? [])
  let best: readonly [string, Json] | undefined
  for (const [name, base] of earlier) {
    if (base.type !== 'object' || base.properties === undefined || base.additionalProperties !== undefined) continue
    const keys = Object.keys(base.properties)
    if (keys.length >= Object.keys(schema.properties).length || keys.length <= Object.keys(best?.[1].properties ?? {}).length) continue
    const baseReq = new Set<string>(base.required ?? [])
    const fits = keys.every(k => k in schema.properties && JSON.stringify(base.properties[k]) === JSON.stringify(schema.properties[k]) && baseReq.has(k) === req.has(k))
    if (fits) best = [name, base]
  }
  return best
}

/** `export interface` for an object with members (extending a named one it contains), `export type` for the rest. */
function declaration (name: string, schema: Json, earlier: ReadonlyArray<readonly [string, Json]>): string[] {
  const out = comment(schema, '')
  const base = baseOf(schema, earlier)
  if (base !== undefined) {
    const own = Object.keys(schema.properties).filter(k => !(k in base[1].properties))
    const rest = { type: 'object', properties: Object.fromEntries(own.map(k => [k, schema.properties[k]])), required: (schema.required as string[]).filter(k => own.includes(k)), additionalProperties: false }
    out.push(`export interface ${name} extends ${base[0]} ${typeOf(rest, '')}`)
    return out
  }
  const t = typeOf(schema, '', name)
  const isPlainObject = schema.type === 'object' && t.startsWith('{')
  out.push(isPlainObject ? `export interface ${name} ${t}` : `export type ${name} = ${t}`)
  return out
}

interface OperationFacts {
  readonly id: string
  readonly method: string
  readonly path: string
  readonly summary: string
  readonly auth: boolean
  readonly status: number
  readonly response: 'json' | 'text' | 'empty'
  readonly responseType: string
  readonly body: 'required' | 'optional' | 'none'
  readonly bodyType: string
  readonly pathParams: string
  readonly query: string
  readonly errors: string[]
}

function operationFacts (path: string, method: string, op: Json, indent: string): OperationFacts {
  const entries = Object.entries<Json>(op.responses)
  const success = entries.find(([st]) => st.startsWith('2'))
  if (success === undefined) throw new Error(`${method} ${path}: no 2xx response`)
  const [status, res] = success
  let response: OperationFacts['response'] = 'empty'
  let responseType = 'void'
  if (res.content !== undefined) {
    const [media, body] = Object.entries<Json>(res.content)[0]!
    response = media === 'application/json' ? 'json' : 'text'
    responseType = response === 'json' ? typeOf(body.schema, indent) : 'string'
  }
  const params: Json[] = op.parameters ?? []
  const member = (p: Json): string => [...comment({ description: p.description }, indent + '  '), `${indent}  ${key(p.name)}${p.required === true ? '' : '?'}: ${typeOf(p.schema, indent + '  ')}`].join('\n')
  const group = (where: string): string => {
    const list = params.filter(p => p.in === where)
    return list.length === 0 ? 'Record<string, never>' : `{\n${list.map(member).join('\n')}\n${indent}}`
  }
  const unknownIn = params.find(p => p.in !== 'path' && p.in !== 'query')
  if (unknownIn !== undefined) throw new Error(`${method} ${path}: unsupported parameter location ${unknownIn.in}`)
  const reqBody: Json | undefined = op.requestBody
  const body: OperationFacts['body'] = reqBody === undefined ? 'none' : reqBody.required === true ? 'required' : 'optional'
  const bodyType = reqBody === undefined ? 'never' : typeOf(reqBody.content['application/json'].schema, indent)
  const errors = new Set<string>()
  for (const [st, r] of entries) {
    if (st.startsWith('2')) continue
    for (const code of Object.keys(r.content?.['application/json']?.examples ?? {})) errors.add(code)
  }
  return {
    id: op.operationId, method: method.toUpperCase(), path, summary: op.summary, auth: (op.security ?? []).length > 0,
    status: Number(status), response, responseType, body, bodyType, pathParams: group('path'), query: group('query'), errors: [...errors].sort(),
  }
}

/** The generated module's text. */
export function generateApiTypes (): string {
  // The version is left out of the output: a release must not make the committed file stale.
  const doc = buildOpenApi('0.0.0') as Json
  const out: string[] = [
    '// GENERATED by clients/typescript/scripts/generate.ts from the service\'s OpenAPI document',
    '// (src/http/openapi.ts buildOpenApi) — do not edit. Regenerate after a schema or route change:',
    '//   node --import tsx clients/typescript/scripts/generate.ts',
    '/* eslint-disable */',
    '',
    '// ── Schemas (components.schemas) ──────────────────────────────────────────────────────────────',
    '',
  ]
  const schemas: Json = doc.components.schemas
  const declared: Array<readonly [string, Json]> = [...HOISTED.map(([name, where]) => [name, at(schemas, where)] as const), ...Object.entries<Json>(schemas)]
  NAMES = new Map()
  for (const [name, schema] of declared) {
    const text = JSON.stringify(schema)
    if (!NAMES.has(text)) NAMES.set(text, name)
  }
  declared.forEach(([name, schema], i) => out.push(...declaration(name, schema, declared.slice(0, i)), ''))

  out.push('// ── Error codes (x-error-codes: the service\'s error catalogue) ───────────────────────────────', '')
  out.push('/** Every `code` the service answers with, its HTTP status and meaning. */')
  out.push('export const ERROR_CODES = {')
  for (const [code, spec] of Object.entries<Json>(doc['x-error-codes'])) {
    out.push(`  ${code}: { status: ${spec.status as number}, description: ${literal(spec.description)} },`)
  }
  out.push('} as const', '', 'export type ErrorCode = keyof typeof ERROR_CODES', '')

  // Context fields per code: the fields each code's examples in the document carry beside error and code.
  const contexts = new Map<string, Set<string>>(Object.keys(doc['x-error-codes']).map(c => [c, new Set<string>()]))
  for (const methods of Object.values<Json>(doc.paths)) {
    for (const op of Object.values<Json>(methods)) {
      for (const r of Object.values<Json>(op.responses)) {
        for (const ex of Object.values<Json>(r.content?.['application/json']?.examples ?? {})) {
          const { error: _e, code, ...ctx } = ex.value as Json
          for (const f of Object.keys(ctx)) contexts.get(code)?.add(f)
        }
      }
    }
  }
  const envelope: Json = doc.components.schemas.ErrorEnvelope.properties
  out.push('/**', ' * The context fields each code carries (from the document\'s error examples), typed as present. Other',
    ' * fields of ErrorEnvelope may appear too; they are optional in ErrorContext.', ' */')
  out.push('export interface ErrorContexts {')
  for (const [code, fields] of contexts) {
    const list = [...fields].sort()
    for (const f of list) if (envelope[f] === undefined) throw new Error(`error example of ${code} has ${f}, which ErrorEnvelope lacks`)
    const fieldsSchema = { type: 'object', required: list, properties: Object.fromEntries(list.map(f => [f, envelope[f]])), additionalProperties: false }
    out.push(`  ${code}: ${list.length === 0 ? 'Record<never, never>' : typeOf(fieldsSchema, '  ')}`)
  }
  out.push('}', '')

  out.push('// ── Operations (paths) ────────────────────────────────────────────────────────────────────────', '')
  const ops: OperationFacts[] = []
  for (const [path, methods] of Object.entries<Json>(doc.paths)) {
    for (const [method, op] of Object.entries<Json>(methods)) ops.push(operationFacts(path, method, op, '    '))
  }
  out.push('/** The types of each operation, by operationId. `errors`: the codes the document lists for it. */')
  out.push('export interface Operations {')
  for (const o of ops) {
    out.push(`  /** ${o.method} ${o.path}: ${o.summary} */`)
    out.push(`  ${o.id}: {`)
    out.push(`    pathParams: ${o.pathParams}`)
    out.push(`    query: ${o.query}`)
    out.push(`    body: ${o.bodyType}`)
    out.push(`    response: ${o.responseType}`)
    out.push(`    errors: ${o.errors.length === 0 ? 'never' : o.errors.map(literal).join(' | ')}`)
    out.push('  }')
  }
  out.push('}', '')
  out.push('export type OperationId = keyof Operations', '')
  out.push('export interface OperationInfo {',
    "  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE'",
    '  readonly path: string',
    '  /** Sends X-API-Key. */',
    '  readonly auth: boolean',
    '  /** The success status. */',
    '  readonly status: number',
    "  readonly body: 'required' | 'optional' | 'none'",
    "  readonly response: 'json' | 'text' | 'empty'",
    '}', '')
  out.push('/** Method, path template and media of each operation, for the client to build requests with. */')
  out.push('export const OPERATIONS = {')
  for (const o of ops) {
    out.push(`  ${o.id}: { method: '${o.method}', path: '${o.path}', auth: ${String(o.auth)}, status: ${o.status}, body: '${o.body}', response: '${o.response}' },`)
  }
  out.push('} as const satisfies Record<OperationId, OperationInfo>', '')
  return out.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(GENERATED_FILE, generateApiTypes())
  process.stdout.write(`wrote ${GENERATED_FILE}\n`)
}
