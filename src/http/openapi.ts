/**
 * The OpenAPI 3.1 document of the contract, built at thread start from the same JSON Schemas
 * (http/schemas.ts) that compile the response serializers, plus the route table below and the error
 * catalogue — so the document cannot drift from what the service validates and sends. Request and
 * response examples come from http/openapi-examples.ts (one entry per operation; a unit test fails
 * while one is missing). /docs renders this document with Redoc (http/routes/docs.ts).
 */
import { schemas } from './schemas.ts'
import { CATALOGUE, type ErrorCode } from '../errors.ts'
import { ERROR_CONTEXT, EXAMPLES } from './openapi-examples.ts'

type SchemaName = keyof typeof schemas

interface Op {
  readonly method: 'get' | 'post' | 'patch' | 'delete'
  readonly path: string
  readonly summary: string
  readonly description: string
  readonly auth: boolean
  readonly request: SchemaName | null
  /** The success body: a named schema (application/json), or a document of another media type. */
  readonly success: { readonly status: number, readonly schema: SchemaName } | { readonly status: number, readonly document: DocumentBody } | { readonly status: 204, readonly empty: true }
  readonly errors: readonly ErrorCode[]
  readonly query?: readonly { name: string, description: string, schema: Record<string, unknown> }[]
  readonly pathParam?: string
  /** The request body may be left out (redeliver). */
  readonly requestOptional?: boolean
  /** Another answer that is not an error envelope (readiness: 503 with the same schema as its 200). */
  readonly alsoResponds?: { readonly status: number, readonly schema: SchemaName, readonly description: string }
}

interface DocumentBody { readonly mediaType: string, readonly schema: Record<string, unknown>, readonly description: string }

const AUTH_ERRORS: readonly ErrorCode[] = ['unauthorized', 'rate_limit_exceeded', 'unavailable']

export const OPERATIONS: readonly Op[] = [
  { method: 'post', path: '/api/keys/generate', summary: 'Create an organization and its API key', description: 'Public; limited per client IP (KEYGEN_RATE_LIMIT_PER_MINUTE). The key is shown once.', auth: false, request: 'GenerateKeyRequest', success: { status: 201, schema: 'GenerateKeyResponse' }, errors: ['invalid_json', 'missing_field', 'validation_error', 'body_too_large', 'rate_limit_exceeded', 'unavailable', 'invalid_event'] },
  { method: 'get', path: '/api/keys', summary: 'Describe the organization of this key', description: 'Never returns the key.', auth: true, request: null, success: { status: 200, schema: 'KeyInfoResponse' }, errors: AUTH_ERRORS },
  { method: 'post', path: '/api/keys/rotate', summary: 'Replace the API key', description: 'The old key stops working at once on this node and within a second on others. The new key is shown once.', auth: true, request: null, success: { status: 200, schema: 'RotateKeyResponse' }, errors: AUTH_ERRORS },
  { method: 'post', path: '/api/webhook/config', summary: 'Set the webhook URL', description: 'Absolute http(s), at most 2048 characters, a public address unless ALLOW_PRIVATE_WEBHOOKS. Creates the signing secret on first configuration; pending events become deliverable.', auth: true, request: 'WebhookConfigRequest', success: { status: 200, schema: 'WebhookConfigResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'missing_field', 'invalid_webhook_url', 'body_too_large', 'invalid_event'] },
  { method: 'post', path: '/api/webhook/secret/rotate', summary: 'Rotate the webhook signing secret', description: 'For 24 hours both secrets sign each delivery.', auth: true, request: null, success: { status: 200, schema: 'SecretRotateResponse' }, errors: AUTH_ERRORS },
  { method: 'post', path: '/api/webhook/replay', summary: 'Re-schedule failed or dead-lettered deliveries', description: 'Up to 10,000 matching deliveries (of every endpoint that is not disabled, or of `endpoint_id`) whose event was created at or after `since`, oldest first. Counts are deliveries.', auth: true, request: 'ReplayRequest', success: { status: 202, schema: 'ReplayResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'invalid_status', 'invalid_event', 'invalid_id', 'not_found', 'endpoint_disabled', 'body_too_large'] },
  { method: 'post', path: '/api/events', summary: 'Ingest an event', description: 'Answered 201 only after the event is committed to PostgreSQL. Checks: auth → rate limit → JSON and fields → payload size → dedup.', auth: true, request: 'CreateEventRequest', success: { status: 201, schema: 'CreateEventResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'invalid_event', 'payload_too_large', 'body_too_large', 'duplicate_event'] },
  { method: 'post', path: '/api/events/batch', summary: 'Ingest up to 500 events in one request', description: 'Answered 200 only after commit, with one result per item in request order (created, duplicate, invalid). Checks: auth → body size (BATCH_MAX_BODY_BYTES, 4 MiB) → JSON → shape → count → rate limit (one token per item, all or nothing) → each item by the rules of POST /api/events → dedup (within the batch, then the window) → one transaction with every created event and its deliveries. With `atomic`, an invalid item rejects the batch (422 batch_rejected, nothing stored).', auth: true, request: 'BatchRequest', success: { status: 200, schema: 'BatchResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'invalid_batch', 'batch_too_large', 'batch_rejected', 'body_too_large'] },
  { method: 'post', path: '/api/events/{event_id}/redeliver', summary: 'Start a fresh delivery series for one event', description: 'Any status; attempts keep counting. Without a body every delivery of the event gets a fresh schedule (an event with none is matched against the current endpoints); with `endpoint_id`, that endpoint only, even if its filter does not match.', auth: true, request: 'RedeliverRequest', requestOptional: true, success: { status: 202, schema: 'RedeliverResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'invalid_id', 'not_found', 'no_webhook_configured', 'endpoint_disabled', 'invalid_event', 'body_too_large'], pathParam: 'event_id' },
  { method: 'get', path: '/api/events/{event_id}/deliveries', summary: 'The deliveries of one event', description: 'One per endpoint the event was fanned out to (no paging).', auth: true, request: null, success: { status: 200, schema: 'EventDeliveries' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found'], pathParam: 'event_id' },
  {
    method: 'get', path: '/api/events/{event_id}/attempts', summary: 'The attempt log of one event, oldest first', description: 'Every HTTP attempt to deliver the event, to every endpoint (or to `endpoint_id`). Response excerpts and headers read null with `response_body_expired` once older than ATTEMPT_BODY_RETENTION_DAYS; attempts are kept ATTEMPT_RETENTION_DAYS. Paging, `limit` and cursor as for /api/inbox.', auth: true, request: null, success: { status: 200, schema: 'AttemptList' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found', 'invalid_filter', 'invalid_limit', 'invalid_cursor'], pathParam: 'event_id',
    query: [
      { name: 'endpoint_id', description: 'only the attempts to this endpoint', schema: { type: 'string', format: 'uuid' } },
      { name: 'limit', description: '1-1000, default 100', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
      { name: 'cursor', description: 'next_cursor of the previous page', schema: { type: 'string' } },
    ],
  },
  { method: 'post', path: '/api/endpoints', summary: 'Create a webhook endpoint', description: 'Its own signing secret is returned once here (and by GET …/secret). Every later event whose type matches `event_types` is delivered to it. `deliver_pending` gives the organization\'s pending matching events a delivery too. The REST Hooks shape `{"target_url", "event"}` is accepted.', auth: true, request: 'CreateEndpointRequest', success: { status: 201, schema: 'EndpointCreated' }, errors: [...AUTH_ERRORS, 'invalid_json', 'missing_field', 'invalid_webhook_url', 'invalid_event_types', 'validation_error', 'endpoint_limit_reached', 'body_too_large', 'invalid_event'] },
  {
    method: 'get', path: '/api/endpoints', summary: 'List endpoints, oldest first', description: 'Paging, `limit` and cursor as for /api/inbox.', auth: true, request: null, success: { status: 200, schema: 'EndpointList' }, errors: [...AUTH_ERRORS, 'invalid_status', 'invalid_limit', 'invalid_cursor'],
    query: [
      { name: 'status', description: 'active | paused | disabled', schema: { type: 'string', enum: ['active', 'paused', 'disabled'] } },
      { name: 'limit', description: '1-1000, default 100', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
      { name: 'cursor', description: 'next_cursor of the previous page', schema: { type: 'string' } },
    ],
  },
  { method: 'get', path: '/api/endpoints/{endpoint_id}', summary: 'One endpoint with its backlog and health', description: '`stats` counts its deliveries by status and tells when it last succeeded or failed.', auth: true, request: null, success: { status: 200, schema: 'EndpointDetail' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found'], pathParam: 'endpoint_id' },
  { method: 'patch', path: '/api/endpoints/{endpoint_id}', summary: 'Change an endpoint', description: 'Any of url, description, event_types, status, rate_limit, max_concurrency, metadata (null clears a nullable one). A new url applies to every attempt not yet in flight; new event_types to events ingested after the change. Back to active, held deliveries drain oldest first.', auth: true, request: 'PatchEndpointRequest', success: { status: 200, schema: 'Endpoint' }, errors: [...AUTH_ERRORS, 'invalid_json', 'invalid_id', 'not_found', 'invalid_webhook_url', 'invalid_event_types', 'validation_error', 'body_too_large', 'invalid_event'], pathParam: 'endpoint_id' },
  { method: 'delete', path: '/api/endpoints/{endpoint_id}', summary: 'Delete an endpoint', description: 'Its pending and failed deliveries become cancelled; its attempt log stays until retention. Deleting the default endpoint clears webhook_url.', auth: true, request: null, success: { status: 204, empty: true }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found', 'body_too_large'], pathParam: 'endpoint_id' },
  { method: 'get', path: '/api/endpoints/{endpoint_id}/secret', summary: "The endpoint's signing secret", description: 'And when the previous one stops signing (null when none does).', auth: true, request: null, success: { status: 200, schema: 'SecretRotateResponse' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found'], pathParam: 'endpoint_id' },
  { method: 'post', path: '/api/endpoints/{endpoint_id}/secret/rotate', summary: "Rotate the endpoint's signing secret", description: 'For 24 hours both secrets sign each delivery.', auth: true, request: null, success: { status: 200, schema: 'SecretRotateResponse' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found', 'body_too_large'], pathParam: 'endpoint_id' },
  { method: 'post', path: '/api/endpoints/{endpoint_id}/replay', summary: 'Replay what an endpoint failed or missed', description: '`dead_letter` | `failed`: fresh schedules for its deliveries of events created in [since, until). `missed` (needs since): deliveries for the events in [since, until) that match its current filter and have none to it. At most 10,000 a call, oldest first.', auth: true, request: 'EndpointReplayRequest', success: { status: 202, schema: 'ReplayResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'invalid_id', 'not_found', 'invalid_status', 'invalid_event', 'endpoint_disabled', 'body_too_large'], pathParam: 'endpoint_id' },
  {
    method: 'get', path: '/api/endpoints/{endpoint_id}/attempts', summary: 'The attempt log of one endpoint, newest first', description: 'Filtered by outcome, status class, event type and a time window; every bad filter is named in the `details` of one 400 invalid_filter. A deleted endpoint\'s log stays readable until retention. Paging, `limit` and cursor as for /api/inbox.', auth: true, request: null, success: { status: 200, schema: 'AttemptList' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found', 'invalid_filter', 'invalid_limit', 'invalid_cursor'], pathParam: 'endpoint_id',
    query: [
      { name: 'outcome', description: 'success | http_error | timeout | network_error | blocked', schema: { type: 'string', enum: ['success', 'http_error', 'timeout', 'network_error', 'blocked'] } },
      { name: 'status_class', description: '2xx | 3xx | 4xx | 5xx | none (no response)', schema: { type: 'string', enum: ['2xx', '3xx', '4xx', '5xx', 'none'] } },
      { name: 'event_type', description: 'the exact event type', schema: { type: 'string', minLength: 1, maxLength: 255 } },
      { name: 'since', description: 'started at or after (ISO-8601 with a zone)', schema: { type: 'string', format: 'date-time' } },
      { name: 'until', description: 'started before (ISO-8601 with a zone)', schema: { type: 'string', format: 'date-time' } },
      { name: 'limit', description: '1-1000, default 100', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
      { name: 'cursor', description: 'next_cursor of the previous page', schema: { type: 'string' } },
    ],
  },
  {
    method: 'get', path: '/api/endpoints/{endpoint_id}/stats', summary: 'Attempt outcomes and latency of one endpoint', description: 'Over [since, until): at most 7 days, by default the last 24 hours. Counts by outcome, p50 and p95 of duration_ms, the latest success and failure; nulls when there were no attempts.', auth: true, request: null, success: { status: 200, schema: 'EndpointAttemptStats' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found', 'invalid_filter'], pathParam: 'endpoint_id',
    query: [
      { name: 'since', description: 'window start (ISO-8601 with a zone); default until minus 24 hours', schema: { type: 'string', format: 'date-time' } },
      { name: 'until', description: 'window end, exclusive; default now', schema: { type: 'string', format: 'date-time' } },
    ],
  },
  { method: 'get', path: '/api/attempts/{attempt_id}', summary: 'One delivery attempt', description: 'As in the attempt lists.', auth: true, request: null, success: { status: 200, schema: 'Attempt' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found'], pathParam: 'attempt_id' },
  {
    method: 'get', path: '/api/inbox', summary: 'List events, newest first', description: 'Without `status`: every event not yet delivered or acknowledged. Cursor paging is stable while events arrive.', auth: true, request: null, success: { status: 200, schema: 'InboxResponse' }, errors: [...AUTH_ERRORS, 'invalid_status', 'invalid_limit', 'invalid_cursor', 'invalid_filter'],
    query: [
      { name: 'status', description: 'pending | failed | dead_letter | delivered', schema: { type: 'string', enum: ['pending', 'failed', 'dead_letter', 'delivered'] } },
      { name: 'limit', description: '1-1000, default 100', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
      { name: 'cursor', description: 'next_cursor of the previous page', schema: { type: 'string' } },
      { name: 'offset', description: 'for older clients, used only without a cursor', schema: { type: 'integer', minimum: 0 } },
      { name: 'include', description: '`deliveries` adds each event\'s deliveries', schema: { type: 'string', enum: ['deliveries'] } },
    ],
  },
  { method: 'post', path: '/api/ack/{event_id}', summary: 'Acknowledge one event', description: 'Marks it delivered and cancels any pending retry. Idempotent.', auth: true, request: null, success: { status: 200, schema: 'AckResponse' }, errors: [...AUTH_ERRORS, 'invalid_id', 'not_found', 'body_too_large'], pathParam: 'event_id' },
  { method: 'post', path: '/api/ack', summary: 'Acknowledge many events', description: 'Up to 1000 ids.', auth: true, request: 'BatchAckRequest', success: { status: 200, schema: 'BatchAckResponse' }, errors: [...AUTH_ERRORS, 'invalid_json', 'missing_field', 'invalid_event', 'invalid_id', 'body_too_large'] },
  { method: 'get', path: '/health', summary: 'Liveness', description: 'No auth, no rate limit.', auth: false, request: null, success: { status: 200, schema: 'HealthResponse' }, errors: [] },
  { method: 'get', path: '/health/live', summary: 'Liveness', description: 'No auth, no rate limit.', auth: false, request: null, success: { status: 200, schema: 'HealthResponse' }, errors: [] },
  { method: 'get', path: '/health/ready', summary: 'Readiness: the database answers', description: '503 with status not_ready when the database does not answer within a second.', auth: false, request: null, success: { status: 200, schema: 'ReadyResponse' }, errors: [], alsoResponds: { status: 503, schema: 'ReadyResponse', description: 'Not ready: the database did not answer within a second (status not_ready, database disconnected).' } },
  { method: 'get', path: '/openapi.json', summary: 'This document', description: 'OpenAPI 3.1, built from the schemas the service validates and serializes with. No auth, no rate limit.', auth: false, request: null, success: { status: 200, document: { mediaType: 'application/json', schema: { type: 'object', required: ['openapi', 'info', 'paths'] }, description: 'The OpenAPI 3.1 document' } }, errors: [] },
  { method: 'get', path: '/docs', summary: 'This document as HTML', description: 'The API reference page (Redoc), rendered in the browser from /openapi.json with a script this service serves; nothing is fetched from elsewhere. No auth, no rate limit.', auth: false, request: null, success: { status: 200, document: { mediaType: 'text/html', schema: { type: 'string' }, description: 'The API reference page' } }, errors: [] },
  { method: 'get', path: '/docs/assets/redoc.standalone.js', summary: 'The script of the /docs page', description: 'Redoc\'s standalone bundle from the redoc npm package, held in memory. Cached for a year (the page links it with a content hash). No auth, no rate limit.', auth: false, request: null, success: { status: 200, document: { mediaType: 'text/javascript', schema: { type: 'string' }, description: 'JavaScript' } }, errors: [] },
]

/** Error codes every operation can answer with, besides its own. */
const ALWAYS: readonly ErrorCode[] = ['not_found', 'method_not_allowed', 'internal_error']

function errorResponses (codes: readonly ErrorCode[]): Record<string, unknown> {
  const byStatus = new Map<number, ErrorCode[]>()
  for (const c of [...codes, ...ALWAYS]) {
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
        [String(op.success.status)]: 'empty' in op.success
          ? { description: 'No content' }
          : 'document' in op.success
            ? { description: op.success.document.description, content: { [op.success.document.mediaType]: { schema: op.success.document.schema } } }
            : { description: 'Success', content: { 'application/json': { schema: { $ref: `#/components/schemas/${op.success.schema}` } } } },
        ...errorResponses(op.errors),
        ...(op.alsoResponds === undefined
          ? {}
          : { [String(op.alsoResponds.status)]: { description: op.alsoResponds.description, content: { 'application/json': { schema: { $ref: `#/components/schemas/${op.alsoResponds.schema}` } } } } }),
      },
    }
    if (parameters.length > 0) operation.parameters = parameters
    if (op.request !== null) {
      operation.requestBody = { required: op.requestOptional !== true, content: { 'application/json': { schema: { $ref: `#/components/schemas/${op.request}` } } } }
    }
    addExamples(operation, op)
    paths[op.path] = { ...paths[op.path], [op.method]: operation }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Triggers API',
      version,
      description: 'Event ingestion and webhook delivery. Every error uses the envelope `{error, code, ...context}`; clients switch on `code`.\n\n' + errorTable(),
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

/** `"POST /api/events"`: the key of an operation in http/openapi-examples.ts. */
export function operationKey (op: Op): string {
  return `${op.method.toUpperCase()} ${op.path}`
}

/** The operations that lack a required example: `"<key>: request"` or `"<key>: response"`. */
export function missingExamples (): string[] {
  const missing: string[] = []
  for (const op of OPERATIONS) {
    const ex = EXAMPLES[operationKey(op)]
    if (op.request !== null && ex?.request === undefined) missing.push(`${operationKey(op)}: request`)
    if (!('empty' in op.success) && ex?.response === undefined) missing.push(`${operationKey(op)}: response`)
  }
  return missing
}

type Json = Record<string, any>

/**
 * Puts the operation's examples into its request body and success response, and one example per
 * error code (the catalogue's message plus ERROR_CONTEXT) into each error response.
 */
function addExamples (operation: Json, op: Op): void {
  const ex = EXAMPLES[operationKey(op)]
  const body = operation.requestBody?.content?.['application/json']
  if (body !== undefined && ex?.request !== undefined) body.example = ex.request
  const success = operation.responses[String(op.success.status)]?.content
  if (success !== undefined && ex !== undefined) for (const media of Object.values(success) as Json[]) media.example = ex.response
  for (const code of [...op.errors, ...ALWAYS]) {
    const media = operation.responses[String(CATALOGUE[code].status)]?.content?.['application/json']
    if (media === undefined) continue
    media.examples ??= {}
    media.examples[code] = { summary: code, value: { error: CATALOGUE[code].message, code, ...ERROR_CONTEXT[code] } }
  }
}

/** Every error code as a Markdown table, for the document's description. */
function errorTable (): string {
  const rows = Object.entries(CATALOGUE).map(([code, spec]) => `| \`${code}\` | ${spec.status} | ${spec.doc.replace(/\|/g, '\\|')} |`)
  return ['## Error codes', '', '| code | status | meaning |', '| --- | --- | --- |', ...rows].join('\n')
}
