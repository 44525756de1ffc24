/**
 * JSON Schemas of every request and response body. The same objects are compiled into the response
 * serializers (SERIALIZERS below → generated/serializers.cjs) and build /openapi.json, so the document
 * cannot drift from what the service sends. Pure data module.
 */
import { TIERS } from '../auth/tiers.ts'

const ts = { type: 'string', format: 'date-time' } as const
const tsOrNull = { type: ['string', 'null'], format: 'date-time' } as const
const uuid = { type: 'string', format: 'uuid' } as const
const STATUSES = ['pending', 'failed', 'dead_letter', 'delivered'] as const
const DELIVERY_STATUSES = ['pending', 'failed', 'dead_letter', 'delivered', 'cancelled'] as const
const ENDPOINT_STATUSES = ['active', 'paused', 'disabled'] as const

/** One delivery of an event (`?include=deliveries`, GET /api/events/:id/deliveries). */
const eventDelivery = {
  type: 'object',
  required: ['endpoint_id', 'status', 'attempts', 'response_status', 'last_error', 'next_attempt_at', 'delivered_at'],
  properties: {
    endpoint_id: uuid,
    status: { type: 'string', enum: [...DELIVERY_STATUSES] },
    attempts: { type: 'integer' },
    response_status: { type: ['integer', 'null'] },
    last_error: { type: ['string', 'null'] },
    next_attempt_at: tsOrNull,
    delivered_at: tsOrNull,
  },
} as const

const rateLimit = {
  type: ['object', 'null'],
  required: ['limit', 'period_seconds'],
  properties: { limit: { type: 'integer', minimum: 1, maximum: 10000 }, period_seconds: { type: 'integer', minimum: 1, maximum: 3600 } },
} as const

const metadata = { type: 'object', additionalProperties: { type: 'string', maxLength: 512 }, maxProperties: 16 } as const
const eventTypes = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 255 }, minItems: 1, maxItems: 100 } as const

const endpointProps = {
  id: uuid,
  url: { type: 'string' },
  description: { type: ['string', 'null'] },
  event_types: { type: 'array', items: { type: 'string' } },
  status: { type: 'string', enum: [...ENDPOINT_STATUSES] },
  disabled_reason: { type: ['string', 'null'], enum: ['manual', 'gone', 'failing', null] },
  disabled_at: tsOrNull,
  rate_limit: rateLimit,
  max_concurrency: { type: ['integer', 'null'] },
  metadata: { type: 'object', additionalProperties: { type: 'string' } },
  is_default: { type: 'boolean' },
  created_at: ts,
  updated_at: ts,
} as const
const endpointRequired = ['id', 'url', 'description', 'event_types', 'status', 'disabled_reason', 'disabled_at', 'rate_limit',
  'max_concurrency', 'metadata', 'is_default', 'created_at', 'updated_at'] as const

const endpointStats = {
  type: 'object',
  required: ['pending', 'held', 'failed', 'dead_letter', 'oldest_pending_at', 'throttled_until', 'last_success_at', 'last_failure_at', 'consecutive_failures'],
  properties: {
    pending: { type: 'integer' },
    held: { type: 'integer', description: 'Pending or failed deliveries waiting for the endpoint itself (paused, disabled, or not yet rescheduled after resuming).' },
    failed: { type: 'integer' },
    dead_letter: { type: 'integer' },
    oldest_pending_at: tsOrNull,
    throttled_until: tsOrNull,
    last_success_at: tsOrNull,
    last_failure_at: tsOrNull,
    consecutive_failures: { type: 'integer' },
  },
} as const

/** One delivery attempt (the contract, docs/api.md "Delivery attempts"). */
const attempt = {
  type: 'object',
  required: ['id', 'event_id', 'endpoint_id', 'attempt_number', 'trigger', 'url', 'started_at', 'duration_ms', 'outcome', 'response_status',
    'response_headers', 'response_body', 'response_body_truncated', 'error', 'next_attempt_at', 'response_body_expired'],
  properties: {
    id: uuid,
    event_id: uuid,
    endpoint_id: uuid,
    attempt_number: { type: 'integer', description: 'The X-Delivery-Attempt sent; counts across retry series.' },
    trigger: { type: 'string', enum: ['initial', 'retry', 'redeliver', 'replay'] },
    url: { type: 'string', description: 'The URL attempted.' },
    started_at: ts,
    duration_ms: { type: 'integer', description: 'From handing the signed request to the connection to the last byte read, or the error.' },
    outcome: { type: 'string', enum: ['success', 'http_error', 'timeout', 'network_error', 'blocked'] },
    response_status: { type: ['integer', 'null'] },
    response_headers: {
      type: ['object', 'null'],
      description: 'Only these four headers are kept. Null once expired.',
      properties: { 'content-type': { type: 'string' }, 'content-length': { type: 'string' }, 'retry-after': { type: 'string' }, location: { type: 'string' } },
      additionalProperties: false,
    },
    response_body: { type: ['string', 'null'], description: 'The first ATTEMPT_BODY_EXCERPT_BYTES of the response as UTF-8. Null without a response, and once expired.' },
    response_body_truncated: { type: 'boolean' },
    error: { type: ['string', 'null'], description: 'What went wrong when no response arrived (timeout, network_error, blocked), or why a 3xx failed.' },
    next_attempt_at: { ...tsOrNull, description: 'When the retry this attempt scheduled is due; null when it scheduled none.' },
    response_body_expired: { type: 'boolean', description: 'True once started_at is older than ATTEMPT_BODY_RETENTION_DAYS: response_body and response_headers read null.' },
  },
} as const

const inboxEvent = {
  type: 'object',
  required: ['id', 'type', 'payload', 'dedup_id', 'status', 'attempts', 'response_status', 'last_error', 'created_at', 'updated_at', 'acknowledged_at'],
  properties: {
    id: uuid,
    type: { type: 'string' },
    payload: { type: 'object', additionalProperties: true },
    dedup_id: { type: ['string', 'null'] },
    status: { type: 'string', enum: [...STATUSES] },
    attempts: { type: 'integer' },
    response_status: { type: ['integer', 'null'] },
    last_error: { type: ['string', 'null'] },
    created_at: ts,
    updated_at: ts,
    acknowledged_at: tsOrNull,
    deliveries: { type: 'array', items: eventDelivery, description: 'With `?include=deliveries` only: one entry per endpoint the event was fanned out to.' },
  },
} as const

export const schemas = {
  ErrorEnvelope: {
    type: 'object',
    required: ['error', 'code'],
    properties: {
      error: { type: 'string', description: 'A sentence for people.' },
      code: { type: 'string', description: 'A stable snake_case code for programs.' },
      field: { type: 'string' },
      details: { type: 'object', additionalProperties: { type: 'string' } },
      size: { type: 'integer' },
      limit: { type: 'integer' },
      window: { type: 'string' },
      retry_after: { type: 'integer' },
      dedup_id: { type: 'string' },
      event_id: uuid,
      max_events: { type: 'integer', description: 'batch_too_large: the most events a batch may hold.' },
      results: { type: 'array', items: { type: 'object', additionalProperties: true }, description: 'batch_rejected: one result per item.' },
    },
  },
  GenerateKeyRequest: {
    type: 'object',
    properties: {
      organization_name: { type: 'string', minLength: 1, maxLength: 255 },
      org_name: { type: 'string', minLength: 1, maxLength: 255, description: 'Alias of organization_name.' },
      tier: { type: 'string', enum: [...TIERS], default: 'free' },
    },
  },
  GenerateKeyResponse: {
    type: 'object',
    required: ['api_key', 'organization_id', 'organization_name', 'tier', 'rate_limit_per_minute', 'created_at', 'message'],
    properties: {
      api_key: { type: 'string' },
      organization_id: uuid,
      organization_name: { type: 'string' },
      tier: { type: 'string', enum: [...TIERS] },
      rate_limit_per_minute: { type: 'integer' },
      created_at: ts,
      message: { type: 'string' },
    },
  },
  KeyInfoResponse: {
    type: 'object',
    required: ['organization_id', 'organization_name', 'tier', 'rate_limit_per_minute', 'webhook_url', 'endpoints_count', 'created_at', 'updated_at'],
    properties: {
      organization_id: uuid,
      organization_name: { type: 'string' },
      tier: { type: 'string', enum: [...TIERS] },
      rate_limit_per_minute: { type: 'integer' },
      webhook_url: { type: ['string', 'null'], description: 'The default endpoint\'s URL.' },
      endpoints_count: { type: 'integer' },
      created_at: ts,
      updated_at: ts,
    },
  },
  RotateKeyResponse: {
    type: 'object',
    required: ['api_key', 'rotated_at', 'message'],
    properties: { api_key: { type: 'string' }, rotated_at: ts, message: { type: 'string' } },
  },
  WebhookConfigRequest: {
    type: 'object',
    required: ['webhook_url'],
    properties: { webhook_url: { type: 'string', maxLength: 2048, format: 'uri' } },
  },
  WebhookConfigResponse: {
    type: 'object',
    required: ['message', 'webhook_url', 'signing_secret', 'endpoint_id'],
    properties: { message: { type: 'string' }, webhook_url: { type: 'string' }, signing_secret: { type: 'string' }, endpoint_id: uuid },
  },
  SecretRotateResponse: {
    type: 'object',
    required: ['signing_secret', 'previous_secret_expires_at'],
    properties: { signing_secret: { type: 'string' }, previous_secret_expires_at: tsOrNull },
  },
  CreateEventRequest: {
    type: 'object',
    required: ['type'],
    properties: {
      type: { type: 'string', minLength: 1, maxLength: 255 },
      payload: { type: 'object', additionalProperties: true, description: 'Required (the older name `data` is accepted when `payload` is absent). At most 262144 bytes as compact JSON.' },
      data: { type: 'object', additionalProperties: true, description: 'Deprecated alias of payload.' },
      dedup_id: { type: 'string', minLength: 1, maxLength: 255 },
    },
  },
  CreateEventResponse: {
    type: 'object',
    required: ['id', 'type', 'dedup_id', 'status', 'created_at'],
    properties: {
      id: uuid,
      type: { type: 'string' },
      dedup_id: { type: ['string', 'null'] },
      status: { type: 'string', enum: ['pending'] },
      created_at: ts,
    },
  },
  InboxResponse: {
    type: 'object',
    required: ['events', 'limit', 'next_cursor', 'has_more'],
    properties: {
      events: { type: 'array', items: inboxEvent },
      limit: { type: 'integer' },
      next_cursor: { type: ['string', 'null'] },
      has_more: { type: 'boolean' },
    },
  },
  AckResponse: {
    type: 'object',
    required: ['event_id', 'status', 'acknowledged_at'],
    properties: { event_id: uuid, status: { type: 'string', enum: ['delivered'] }, acknowledged_at: ts },
  },
  BatchAckRequest: {
    type: 'object',
    required: ['event_ids'],
    properties: { event_ids: { type: 'array', items: uuid, minItems: 1, maxItems: 1000 } },
  },
  BatchAckResponse: {
    type: 'object',
    required: ['acknowledged', 'not_found'],
    properties: { acknowledged: { type: 'integer' }, not_found: { type: 'array', items: { type: 'string' } } },
  },
  RedeliverRequest: {
    type: 'object',
    properties: { endpoint_id: { ...uuid, description: 'Redeliver to this endpoint only (even if its filter does not match). Optional: the body may be empty.' } },
  },
  RedeliverResponse: {
    type: 'object',
    required: ['event_id', 'status'],
    properties: { event_id: uuid, status: { type: 'string', enum: ['pending'] } },
  },
  ReplayRequest: {
    type: 'object',
    required: ['status'],
    properties: { status: { type: 'string', enum: ['dead_letter', 'failed'] }, since: ts, until: { ...ts, description: 'Exclusive; optional.' }, endpoint_id: { ...uuid, description: 'Only deliveries to this endpoint.' } },
  },
  Endpoint: { type: 'object', required: [...endpointRequired], properties: endpointProps },
  EndpointCreated: {
    type: 'object',
    required: [...endpointRequired, 'signing_secret'],
    properties: { ...endpointProps, signing_secret: { type: 'string', description: 'The endpoint\'s own whsec_ secret.' } },
  },
  EndpointDetail: { type: 'object', required: [...endpointRequired, 'stats'], properties: { ...endpointProps, stats: endpointStats } },
  EndpointList: {
    type: 'object',
    required: ['endpoints', 'limit', 'next_cursor', 'has_more'],
    properties: {
      endpoints: { type: 'array', items: { type: 'object', required: [...endpointRequired], properties: endpointProps } },
      limit: { type: 'integer' },
      next_cursor: { type: ['string', 'null'] },
      has_more: { type: 'boolean' },
    },
  },
  CreateEndpointRequest: {
    type: 'object',
    properties: {
      url: { type: 'string', maxLength: 2048, format: 'uri', description: 'Required (or `target_url`).' },
      target_url: { type: 'string', description: 'REST Hooks alias of url.' },
      event: { type: 'string', description: 'REST Hooks: one event type, as event_types [event].' },
      description: { type: ['string', 'null'], maxLength: 255 },
      event_types: { ...eventTypes, default: ['*'] },
      status: { type: 'string', enum: ['active', 'paused'], default: 'active' },
      rate_limit: rateLimit,
      max_concurrency: { type: ['integer', 'null'], minimum: 1, maximum: 100 },
      metadata,
      deliver_pending: { type: 'boolean', default: false },
    },
  },
  PatchEndpointRequest: {
    type: 'object',
    properties: {
      url: { type: 'string', maxLength: 2048, format: 'uri' },
      description: { type: ['string', 'null'], maxLength: 255 },
      event_types: eventTypes,
      status: { type: 'string', enum: [...ENDPOINT_STATUSES] },
      rate_limit: rateLimit,
      max_concurrency: { type: ['integer', 'null'], minimum: 1, maximum: 100 },
      metadata: { ...metadata, type: ['object', 'null'] },
    },
  },
  EndpointReplayRequest: {
    type: 'object',
    required: ['status'],
    properties: { status: { type: 'string', enum: ['dead_letter', 'failed', 'missed'] }, since: { ...ts, description: 'Required for missed.' }, until: ts },
  },
  BatchRequest: {
    type: 'object',
    required: ['events'],
    properties: {
      events: { type: 'array', minItems: 1, maxItems: 500, items: { $ref: '#/components/schemas/CreateEventRequest' }, description: '1 to BATCH_MAX_EVENTS items (default 500), and never more than the tier allows per minute.' },
      atomic: { type: 'boolean', default: false, description: 'true: any invalid item rejects the whole batch (422 batch_rejected, nothing stored).' },
    },
  },
  BatchResponse: {
    type: 'object',
    required: ['created', 'duplicates', 'invalid', 'results'],
    properties: {
      created: { type: 'integer' },
      duplicates: { type: 'integer' },
      invalid: { type: 'integer' },
      results: {
        type: 'array',
        description: 'One per item, in request order.',
        items: {
          oneOf: [
            { type: 'object', required: ['index', 'status', 'id', 'type', 'dedup_id', 'created_at'], properties: { index: { type: 'integer' }, status: { const: 'created' }, id: uuid, type: { type: 'string' }, dedup_id: { type: ['string', 'null'] }, created_at: ts } },
            { type: 'object', required: ['index', 'status', 'dedup_id', 'event_id'], properties: { index: { type: 'integer' }, status: { const: 'duplicate' }, dedup_id: { type: 'string' }, event_id: { ...uuid, description: 'The original event.' } } },
            { type: 'object', required: ['index', 'status', 'code', 'error'], properties: { index: { type: 'integer' }, status: { const: 'invalid' }, code: { type: 'string' }, error: { type: 'string' }, details: { type: 'object', additionalProperties: { type: 'string' } }, size: { type: 'integer' }, limit: { type: 'integer' } } },
          ],
        },
      },
    },
  },
  EventDeliveries: {
    type: 'object',
    required: ['event_id', 'deliveries'],
    properties: { event_id: uuid, deliveries: { type: 'array', items: eventDelivery } },
  },
  Attempt: attempt,
  AttemptList: {
    type: 'object',
    required: ['attempts', 'limit', 'next_cursor', 'has_more'],
    properties: {
      attempts: { type: 'array', items: attempt },
      limit: { type: 'integer' },
      next_cursor: { type: ['string', 'null'] },
      has_more: { type: 'boolean' },
    },
  },
  EndpointAttemptStats: {
    type: 'object',
    required: ['success', 'http_error', 'timeout', 'network_error', 'blocked', 'p50_ms', 'p95_ms', 'last_success_at', 'last_failure_at'],
    properties: {
      success: { type: 'integer' },
      http_error: { type: 'integer' },
      timeout: { type: 'integer' },
      network_error: { type: 'integer' },
      blocked: { type: 'integer' },
      p50_ms: { type: ['integer', 'null'], description: 'Median duration_ms of the attempts in the window (null: none).' },
      p95_ms: { type: ['integer', 'null'] },
      last_success_at: tsOrNull,
      last_failure_at: tsOrNull,
    },
  },
  ReplayResponse: {
    type: 'object',
    required: ['scheduled'],
    properties: { scheduled: { type: 'integer' } },
  },
  HealthResponse: {
    type: 'object',
    required: ['status', 'timestamp'],
    properties: { status: { type: 'string' }, timestamp: ts },
  },
  ReadyResponse: {
    type: 'object',
    required: ['status', 'database'],
    properties: { status: { type: 'string', enum: ['ready', 'not_ready'] }, database: { type: 'string', enum: ['connected', 'disconnected'] }, error: { type: 'string' }, timestamp: ts },
  },
} as const

type SchemaName = keyof typeof schemas

/** `schema` without one property: for documents whose raw-JSON field is spliced in separately. */
function without (schema: { properties: Record<string, unknown>, required: readonly string[] }, prop: string): Record<string, unknown> {
  const properties = { ...schema.properties }
  delete properties[prop]
  return { ...schema, properties, required: schema.required.filter(r => r !== prop) }
}

const named = (name: SchemaName): Record<string, unknown> => schemas[name]

/**
 * Every response serializer, by name → the schema it serializes. scripts/gen-serializers.ts compiles
 * these with fast-json-stringify's standalone mode into generated/serializers.cjs (committed; a unit
 * test fails when it is stale), so listener threads neither load fast-json-stringify and ajv nor
 * compile at start-up: that took ~60 ms of each listener's start and a few MB of its heap.
 */
export const SERIALIZERS = {
  error: named('ErrorEnvelope'),
  created: named('CreateEventResponse'),
  generated: named('GenerateKeyResponse'),
  keyInfo: named('KeyInfoResponse'),
  rotated: named('RotateKeyResponse'),
  webhookConfig: named('WebhookConfigResponse'),
  secretRotated: named('SecretRotateResponse'),
  inboxEventMeta: without(inboxEvent, 'payload'),
  inboxTail: without(schemas.InboxResponse, 'events'),
  ack: named('AckResponse'),
  batchAck: named('BatchAckResponse'),
  redeliver: named('RedeliverResponse'),
  endpoint: named('Endpoint'),
  endpointCreated: named('EndpointCreated'),
  endpointDetail: named('EndpointDetail'),
  endpointList: named('EndpointList'),
  eventDeliveries: named('EventDeliveries'),
  attempt: named('Attempt'),
  attemptList: named('AttemptList'),
  attemptStats: named('EndpointAttemptStats'),
  replay: named('ReplayResponse'),
  health: named('HealthResponse'),
  ready: named('ReadyResponse'),
} as const

export type SerializerName = keyof typeof SERIALIZERS
