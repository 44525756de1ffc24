/**
 * Request and response examples of the OpenAPI document (http/openapi.ts adds them to each operation),
 * shown on /docs as request and response samples. Pure data module.
 *
 * Adding a route: add its operation to OPERATIONS in http/openapi.ts, then an entry here keyed
 * `"<METHOD> <path>"` exactly as in OPERATIONS — `request` when the operation takes a body (even an
 * optional one), `response` (the success body) unless it answers 204 without one. test/unit/openapi-examples.test.ts fails while an operation has none, and
 * validates every example against its documented schema (undocumented fields refused), so examples
 * cannot drift from the contract. Error responses get one example per error code automatically (the
 * catalogue's message); ERROR_CONTEXT below adds the context fields a code carries.
 */
import type { ErrorCode, ErrorContext } from '../errors.ts'

export interface OperationExamples {
  /** The request body (required when the operation has a request schema). */
  readonly request?: unknown
  /** The success response body (required unless the operation answers 204 without one). */
  readonly response?: unknown
}

const ORG = '0193b1f2-5c4d-7a8e-9f01-23456789abcd'
const EVENT = '0193b1f4-0a1b-7c2d-8e3f-405162738495'
const EVENT_2 = '0193b1f4-0a1b-7c2d-8e3f-4051627384a6'
const ENDPOINT = '0193b1f3-7d6e-7f80-9a1b-2c3d4e5f6071'
const ENDPOINT_2 = '0193b1f5-1e2f-7a3b-8c4d-5e6f708192a3'
const KEY = 'zap_live_Q3vN8r2Kx0bYwLm7TzF4hJ9pDsA6cE1uG5iO_kR-VnWqXyZaBcDeFgH'
const KEY_2 = 'zap_live_M1nB2vC3xZ4lK5jH6gF7dS8aP9oI0uY-tR_eWqQaZsXdCfVgBhNjMkL'
const SECRET = 'whsec_MfKQ9r8GKYqXk6pfJ4TzWJxqHqnoqYJSbgM9M2cY5RQ='
const SECRET_2 = 'whsec_d2VsbC1ub3QtcmVhbGx5LWEtc2VjcmV0LWJ1dC1hLXNhbXBsZQ=='
const CREATED = '2026-11-24T09:15:02.481Z'
const LATER = '2026-11-24T09:16:40.112Z'

const inboxEvent = {
  id: EVENT,
  type: 'order.created',
  payload: { order_id: 42, total: '99.50', currency: 'EUR' },
  dedup_id: 'order-42',
  status: 'pending',
  attempts: 1,
  response_status: 503,
  last_error: 'HTTP 503',
  created_at: CREATED,
  updated_at: LATER,
  acknowledged_at: null,
}

const health = { status: 'ok', timestamp: LATER }

const ATTEMPT_1 = '01a20cd6-53ee-7a10-8c3d-1e2f30415263'
const ATTEMPT_2 = '01a20cd6-c9dc-7b20-9d4e-2f3041526374'
const failedAttempt = {
  id: ATTEMPT_1,
  event_id: EVENT,
  endpoint_id: ENDPOINT,
  attempt_number: 1,
  trigger: 'initial',
  url: 'https://example.com/hooks/triggers',
  started_at: '2026-11-24T09:15:02.510Z',
  duration_ms: 182,
  outcome: 'http_error',
  response_status: 503,
  response_headers: { 'content-type': 'application/json', 'retry-after': '30' },
  response_body: '{"error":"maintenance window"}',
  response_body_truncated: false,
  error: null,
  next_attempt_at: '2026-11-24T09:15:32.692Z',
  response_body_expired: false,
}
const timedOutAttempt = {
  ...failedAttempt,
  id: ATTEMPT_2,
  attempt_number: 2,
  trigger: 'retry',
  started_at: '2026-11-24T09:15:32.700Z',
  duration_ms: 10000,
  outcome: 'timeout',
  response_status: null,
  response_headers: null,
  response_body: null,
  error: 'timeout: no complete response within 10000 ms',
  next_attempt_at: '2026-11-24T09:15:46.702Z',
}

const endpoint = {
  id: ENDPOINT_2,
  url: 'https://example.com/hooks/orders',
  description: 'Order events for the fulfilment service',
  event_types: ['order.*'],
  status: 'active',
  disabled_reason: null,
  disabled_at: null,
  rate_limit: { limit: 50, period_seconds: 1 },
  max_concurrency: 8,
  metadata: { team: 'fulfilment' },
  is_default: false,
  created_at: CREATED,
  updated_at: CREATED,
}

const delivery = {
  endpoint_id: ENDPOINT_2,
  status: 'failed',
  attempts: 2,
  response_status: 503,
  last_error: 'HTTP 503',
  next_attempt_at: '2026-11-24T09:15:06.610Z',
  delivered_at: null,
}

export const EXAMPLES: Readonly<Record<string, OperationExamples>> = {
  'POST /api/keys/generate': {
    request: { organization_name: 'Acme', tier: 'pro' },
    response: { api_key: KEY, organization_id: ORG, organization_name: 'Acme', tier: 'pro', rate_limit_per_minute: 1000, created_at: CREATED, message: "Save this API key securely - it won't be shown again" },
  },
  'GET /api/keys': {
    response: { organization_id: ORG, organization_name: 'Acme', tier: 'pro', rate_limit_per_minute: 1000, webhook_url: 'https://example.com/hooks/triggers', endpoints_count: 1, created_at: CREATED, updated_at: LATER },
  },
  'POST /api/keys/rotate': {
    response: { api_key: KEY_2, rotated_at: LATER, message: 'API key rotated successfully - update your applications immediately' },
  },
  'POST /api/webhook/config': {
    request: { webhook_url: 'https://example.com/hooks/triggers' },
    response: { message: 'Webhook URL configured successfully', webhook_url: 'https://example.com/hooks/triggers', signing_secret: SECRET, endpoint_id: ENDPOINT },
  },
  'POST /api/webhook/secret/rotate': {
    response: { signing_secret: SECRET_2, previous_secret_expires_at: '2026-11-25T09:16:40.112Z' },
  },
  'POST /api/webhook/replay': {
    request: { status: 'dead_letter', since: '2026-11-23T00:00:00.000Z' },
    response: { scheduled: 17 },
  },
  'POST /api/events': {
    request: { type: 'order.created', payload: { order_id: 42, total: '99.50', currency: 'EUR' }, dedup_id: 'order-42' },
    response: { id: EVENT, type: 'order.created', dedup_id: 'order-42', status: 'pending', created_at: CREATED },
  },
  'POST /api/events/batch': {
    request: {
      events: [
        { type: 'order.created', payload: { order_id: 43 }, dedup_id: 'order-43' },
        { type: 'order.created', payload: { order_id: 42 }, dedup_id: 'order-42' },
        { type: 'order.created' },
      ],
    },
    response: {
      created: 1,
      duplicates: 1,
      invalid: 1,
      results: [
        { index: 0, status: 'created', id: EVENT_2, type: 'order.created', dedup_id: 'order-43', created_at: LATER },
        { index: 1, status: 'duplicate', dedup_id: 'order-42', event_id: EVENT },
        { index: 2, status: 'invalid', code: 'invalid_event', error: 'Invalid event', details: { payload: 'is required' } },
      ],
    },
  },
  'POST /api/events/{event_id}/redeliver': {
    request: { endpoint_id: ENDPOINT_2 },
    response: { event_id: EVENT, status: 'pending' },
  },
  'GET /api/events/{event_id}/deliveries': {
    response: { event_id: EVENT, deliveries: [delivery, { ...delivery, endpoint_id: ENDPOINT, status: 'delivered', attempts: 1, response_status: 200, last_error: null, next_attempt_at: null, delivered_at: '2026-11-24T09:15:02.530Z' }] },
  },
  'POST /api/endpoints': {
    request: { url: 'https://example.com/hooks/orders', description: 'Order events for the fulfilment service', event_types: ['order.*'], rate_limit: { limit: 50, period_seconds: 1 }, max_concurrency: 8, metadata: { team: 'fulfilment' } },
    response: { ...endpoint, signing_secret: SECRET_2 },
  },
  'GET /api/endpoints': {
    response: { endpoints: [{ ...endpoint, id: ENDPOINT, url: 'https://example.com/hooks/triggers', description: null, event_types: ['*'], rate_limit: null, max_concurrency: null, metadata: {}, is_default: true }, endpoint], limit: 100, next_cursor: null, has_more: false },
  },
  'GET /api/endpoints/{endpoint_id}': {
    response: { ...endpoint, stats: { pending: 12, held: 0, failed: 1, dead_letter: 0, oldest_pending_at: CREATED, throttled_until: null, last_success_at: LATER, last_failure_at: '2026-11-24T09:15:03.204Z', consecutive_failures: 0 } },
  },
  'PATCH /api/endpoints/{endpoint_id}': {
    request: { status: 'paused', description: 'Paused during the warehouse migration' },
    response: { ...endpoint, status: 'paused', description: 'Paused during the warehouse migration', updated_at: LATER },
  },
  'GET /api/endpoints/{endpoint_id}/secret': {
    response: { signing_secret: SECRET_2, previous_secret_expires_at: null },
  },
  'POST /api/endpoints/{endpoint_id}/secret/rotate': {
    response: { signing_secret: SECRET, previous_secret_expires_at: '2026-11-25T09:16:40.112Z' },
  },
  'POST /api/endpoints/{endpoint_id}/replay': {
    request: { status: 'missed', since: '2026-11-24T00:00:00.000Z', until: '2026-11-24T12:00:00.000Z' },
    response: { scheduled: 240 },
  },
  'GET /api/inbox': {
    response: { events: [inboxEvent], limit: 1, next_cursor: 'MTczMjQ0MDEwMjQ4MXwwMTkzYjFmNC0wYTFi', has_more: true },
  },
  'POST /api/ack/{event_id}': {
    response: { event_id: EVENT, status: 'delivered', acknowledged_at: LATER },
  },
  'POST /api/ack': {
    request: { event_ids: [EVENT, EVENT_2] },
    response: { acknowledged: 1, not_found: [EVENT_2] },
  },
  'GET /api/events/{event_id}/attempts': {
    response: { attempts: [failedAttempt, timedOutAttempt], limit: 100, next_cursor: null, has_more: false },
  },
  'GET /api/endpoints/{endpoint_id}/attempts': {
    response: { attempts: [timedOutAttempt], limit: 1, next_cursor: 'MjAyNi0xMS0yNFQwOToxNTozMi43MDBafDAxYTIwY2Q2LWM5ZGMtN2IyMC05ZDRlLTJmMzA0MTUyNjM3NA', has_more: true },
  },
  'GET /api/endpoints/{endpoint_id}/stats': {
    response: { success: 1412, http_error: 37, timeout: 4, network_error: 2, blocked: 0, p50_ms: 84, p95_ms: 412, last_success_at: LATER, last_failure_at: '2026-11-24T09:15:32.700Z' },
  },
  'GET /api/attempts/{attempt_id}': { response: failedAttempt },
  'GET /health': { response: health },
  'GET /health/live': { response: health },
  'GET /health/ready': { response: { status: 'ready', database: 'connected', timestamp: LATER } },
  'GET /openapi.json': {
    response: { openapi: '3.1.0', info: { title: 'Triggers API', version: '0.1.0' }, paths: { '/api/events': { post: { operationId: 'postApiEvents', summary: 'Ingest an event' } } } },
  },
  'GET /docs': { response: '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Triggers API 0.1.0</title>…' },
  'GET /docs/assets/redoc.standalone.js': { response: '/*! For license information please see redoc.standalone.js.LICENSE.txt */…' },
}

/** Context fields that error examples carry, by code (the rest show `{error, code}` only). */
export const ERROR_CONTEXT: Readonly<Partial<Record<ErrorCode, ErrorContext>>> = {
  invalid_event: { details: { type: 'is required', payload: 'must be a JSON object' } },
  missing_field: { field: 'organization_name' },
  validation_error: { details: { tier: 'must be one of free, pro, business, enterprise' } },
  rate_limit_exceeded: { limit: 1000, window: '1 minute', retry_after: 17 },
  body_too_large: { limit: 1048576 },
  payload_too_large: { size: 300021, limit: 262144 },
  duplicate_event: { dedup_id: 'order-42', event_id: EVENT },
  invalid_filter: { details: { outcome: 'must be one of success, http_error, timeout, network_error, blocked' } },
  invalid_batch: { details: { events: 'must hold at least one event' } },
  batch_too_large: { max_events: 500 },
  batch_rejected: { results: [{ index: 0, status: 'invalid', code: 'invalid_event', error: 'Invalid event', details: { type: 'is required' } }] },
}
