/**
 * The OpenAPI 3.1 document of the contract, built at thread start from the same JSON Schemas
 * (http/schemas.ts) that compile the response serializers, plus the route table below and the error
 * catalogue — so the document cannot drift from what the service validates and sends. Also renders
 * the /docs page (plain HTML from the same document, no scripts, nothing fetched from a CDN).
 */
import { schemas } from './schemas.ts'
import { CATALOGUE, type ErrorCode } from '../errors.ts'

type SchemaName = keyof typeof schemas

interface Op {
  readonly method: 'get' | 'post'
  readonly path: string
  readonly summary: string
  readonly description: string
  readonly auth: boolean
  readonly request: SchemaName | null
  /** The success body: a named schema (application/json), or a document of another media type. */
  readonly success: { readonly status: number, readonly schema: SchemaName } | { readonly status: number, readonly document: DocumentBody }
  readonly errors: readonly ErrorCode[]
  readonly query?: readonly { name: string, description: string, schema: Record<string, unknown> }[]
  readonly pathParam?: string
}

interface DocumentBody { readonly mediaType: string, readonly schema: Record<string, unknown>, readonly description: string }

const AUTH_ERRORS: readonly ErrorCode[] = ['unauthorized', 'rate_limit_exceeded', 'unavailable']

export const OPERATIONS: readonly Op[] = [
  { method: 'post', path: '/api/keys/generate', summary: 'Create an organization and its API key', description: 'Public; limited per client IP (KEYGEN_RATE_LIMIT_PER_MINUTE). The key is shown once.', auth: false, request: 'GenerateKeyRequest', success: { status: 201, schema: 'GenerateKeyResponse' }, errors: ['invalid_json', 'missing_field', 'validation_error', 'body_too_large', 'rate_limit_exceeded', 'unavailable'] },
  { method: 'get', path: '/api/keys', summary: 'Describe the organization of this key', description: 'Never returns the key.', auth: true, request: null, success: { status: 200, schema: 'KeyInfoResponse' }, errors: AUTH_ERRORS },
  { method: 'post', path: '/api/keys/rotate', summary: 'Replace the API key', description: 'The old key stops working at once on this node and within a second on others. The new key is shown once.', auth: true, request: null, success: { status: 200, schema: 'RotateKeyResponse' }, errors: AUTH_ERRORS },
  { method: 'post', path: '/api/webhook/config', summary: 'Set the webhook URL', description: 'Absolute http(s), at most 2048 characters, a public address unless ALLOW_PRIVATE_WEBHOOKS. Creates the signing secret on first configuration; pending events become deliverable.', auth: true, request: 'WebhookConfigRequest', success: { status: 200, schema: 'WebhookConfigResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'missing_field', 'invalid_webhook_url', 'body_too_large'] },
  { method: 'post', path: '/api/webhook/secret/rotate', summary: 'Rotate the webhook signing secret', description: 'For 24 hours both secrets sign each delivery.', auth: true, request: null, success: { status: 200, schema: 'SecretRotateResponse' }, errors: AUTH_ERRORS },
  { method: 'post', path: '/api/webhook/replay', summary: 'Re-schedule failed or dead-lettered events', description: 'Up to 10,000 matching events created at or after `since`, oldest first.', auth: true, request: 'ReplayRequest', success: { status: 202, schema: 'ReplayResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'invalid_status', 'invalid_event'] },
  { method: 'post', path: '/api/events', summary: 'Ingest an event', description: 'Answered 201 only after the event is committed to PostgreSQL. Checks: auth → rate limit → JSON and fields → payload size → dedup.', auth: true, request: 'CreateEventRequest', success: { status: 201, schema: 'CreateEventResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'invalid_event', 'payload_too_large', 'body_too_large', 'duplicate_event'] },
  { method: 'post', path: '/api/events/{event_id}/redeliver', summary: 'Start a fresh delivery series for one event', description: 'Any status; attempts keep counting.', auth: true, request: null, success: { status: 202, schema: 'RedeliverResponse' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found', 'no_webhook_configured'], pathParam: 'event_id' },
  {
    method: 'get', path: '/api/inbox', summary: 'List events, newest first', description: 'Without `status`: every event not yet delivered or acknowledged. Cursor paging is stable while events arrive.', auth: true, request: null, success: { status: 200, schema: 'InboxResponse' }, errors: [...AUTH_ERRORS, 'invalid_status', 'invalid_limit', 'invalid_cursor'],
    query: [
      { name: 'status', description: 'pending | failed | dead_letter | delivered', schema: { type: 'string', enum: ['pending', 'failed', 'dead_letter', 'delivered'] } },
      { name: 'limit', description: '1-1000, default 100', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
      { name: 'cursor', description: 'next_cursor of the previous page', schema: { type: 'string' } },
      { name: 'offset', description: 'for older clients, used only without a cursor', schema: { type: 'integer', minimum: 0 } },
    ],
  },
  { method: 'post', path: '/api/ack/{event_id}', summary: 'Acknowledge one event', description: 'Marks it delivered and cancels any pending retry. Idempotent.', auth: true, request: null, success: { status: 200, schema: 'AckResponse' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found'], pathParam: 'event_id' },
  { method: 'post', path: '/api/ack', summary: 'Acknowledge many events', description: 'Up to 1000 ids.', auth: true, request: 'BatchAckRequest', success: { status: 200, schema: 'BatchAckResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'missing_field', 'invalid_event', 'invalid_id', 'body_too_large'] },
  { method: 'get', path: '/health', summary: 'Liveness', description: 'No auth, no rate limit.', auth: false, request: null, success: { status: 200, schema: 'HealthResponse' }, errors: [] },
  { method: 'get', path: '/health/live', summary: 'Liveness', description: 'No auth, no rate limit.', auth: false, request: null, success: { status: 200, schema: 'HealthResponse' }, errors: [] },
  { method: 'get', path: '/health/ready', summary: 'Readiness: the database answers', description: '503 with status not_ready when the database does not answer within a second.', auth: false, request: null, success: { status: 200, schema: 'ReadyResponse' }, errors: [] },
  { method: 'get', path: '/openapi.json', summary: 'This document', description: 'OpenAPI 3.1, built from the schemas the service validates and serializes with. No auth, no rate limit.', auth: false, request: null, success: { status: 200, document: { mediaType: 'application/json', schema: { type: 'object', required: ['openapi', 'info', 'paths'] }, description: 'The OpenAPI 3.1 document' } }, errors: [] },
  { method: 'get', path: '/docs', summary: 'This document as HTML', description: 'A self-contained page (no scripts, nothing fetched from elsewhere). No auth, no rate limit.', auth: false, request: null, success: { status: 200, document: { mediaType: 'text/html', schema: { type: 'string' }, description: 'The API reference page' } }, errors: [] },
]

function errorResponses (codes: readonly ErrorCode[]): Record<string, unknown> {
  const byStatus = new Map<number, ErrorCode[]>()
  for (const c of [...codes, 'not_found', 'method_not_allowed', 'internal_error'] as ErrorCode[]) {
    const st = CATALOGUE[c].status
    const list = byStatus.get(st) ?? []
    if (!list.includes(c)) list.push(c)
    byStatus.set(st, list)
  }
  const out: Record<string, unknown> = {}
  for (const [st, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(st)] = {
      description: list.map(c => `\`${c}\`: ${CATALOGUE[c].doc}`).join(' '),
      content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } },
    }
  }
  return out
}

export function buildOpenApi (version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const op of OPERATIONS) {
    const parameters: unknown[] = []
    if (op.pathParam !== undefined) parameters.push({ name: op.pathParam, in: 'path', required: true, schema: { type: 'string', format: 'uuid' } })
    for (const q of op.query ?? []) parameters.push({ name: q.name, in: 'query', required: false, description: q.description, schema: q.schema })
    const operation: Record<string, unknown> = {
      operationId: `${op.method}${op.path.replace(/[^a-zA-Z]+(.)?/g, (_m, c?: string) => (c ?? '').toUpperCase())}`,
      summary: op.summary,
      description: op.description,
      security: op.auth ? [{ ApiKey: [] }] : [],
      responses: {
        [String(op.success.status)]: 'document' in op.success
          ? { description: op.success.document.description, content: { [op.success.document.mediaType]: { schema: op.success.document.schema } } }
          : { description: 'Success', content: { 'application/json': { schema: { $ref: `#/components/schemas/${op.success.schema}` } } } },
        ...errorResponses(op.errors),
      },
    }
    if (parameters.length > 0) operation.parameters = parameters
    if (op.request !== null) {
      operation.requestBody = { required: true, content: { 'application/json': { schema: { $ref: `#/components/schemas/${op.request}` } } } }
    }
    paths[op.path] = { ...paths[op.path], [op.method]: operation }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Triggers API',
      version,
      description: 'Event ingestion and webhook delivery. Every error uses the envelope `{error, code, ...context}`; clients switch on `code`.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { ApiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } },
      schemas,
    },
    paths,
    'x-error-codes': Object.fromEntries(Object.entries(CATALOGUE).map(([code, spec]) => [code, { status: spec.status, description: spec.doc }])),
  }
}

function esc (s: string): string {
  return s.replace(/[&<>"]/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c] ?? c))
}

/** The /docs page: the same document as readable HTML. */
export function renderDocs (doc: Record<string, unknown>): string {
  const parts: string[] = []
  for (const op of OPERATIONS) {
    parts.push(`<section><h2><span class="m">${op.method.toUpperCase()}</span> ${esc(op.path)}</h2>` +
      `<p><b>${esc(op.summary)}.</b> ${esc(op.description)} ${op.auth ? 'Requires <code>X-API-Key</code>.' : 'No authentication.'}</p>` +
      (op.request !== null ? `<h3>Request body</h3><pre>${esc(JSON.stringify(schemas[op.request], null, 2))}</pre>` : '') +
      `<h3>${op.success.status} response</h3>` + ('document' in op.success
        ? `<p>${esc(op.success.document.description)} (<code>${esc(op.success.document.mediaType)}</code>).</p>`
        : `<pre>${esc(JSON.stringify(schemas[op.success.schema], null, 2))}</pre>`) +
      (op.errors.length > 0 ? `<p>Errors: ${op.errors.map(c => `<code>${c}</code>`).join(', ')}</p>` : '') +
      '</section>')
  }
  const rows = Object.entries(CATALOGUE).map(([c, s]) => `<tr><td><code>${c}</code></td><td>${s.status}</td><td>${esc(s.doc)}</td></tr>`).join('')
  const info = doc.info as { title: string, version: string }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(info.title)} ${esc(info.version)}</title>` +
    '<style>body{font:15px/1.5 system-ui,sans-serif;max-width:920px;margin:2em auto;padding:0 1em;color:#222}' +
    'pre{background:#f5f5f5;padding:.8em;overflow:auto;font-size:13px}.m{background:#333;color:#fff;padding:0 .4em;border-radius:3px}' +
    'table{border-collapse:collapse}td{border:1px solid #ddd;padding:.3em .6em;vertical-align:top}</style></head><body>' +
    `<h1>${esc(info.title)} <small>${esc(info.version)}</small></h1><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>` +
    parts.join('') + `<h2>Error codes</h2><table><tr><td>code</td><td>status</td><td>meaning</td></tr>${rows}</table></body></html>`
}
