/**
 * The shared layout of per-thread metric slots (STYLE C2, C12). Every thread that counts gets its own
 * SharedArrayBuffer of Float64 slots from the primary; only that thread writes it (plain stores, no
 * Atomics needed for a single writer), and the primary's /metrics collectors read and sum every
 * thread's buffer at scrape time. A replacement thread inherits its predecessor's buffer, so counters
 * keep counting across restarts.
 *
 * Offsets are computed once, at module load, from the table below; every thread computes the same
 * ones. Label sets are fixed and small (route, status class, reason, outcome) — never tenant ids or
 * URLs.
 */

export const ROUTES = [
  'keys_generate', 'keys_info', 'keys_rotate', 'webhook_config', 'webhook_secret_rotate', 'webhook_replay',
  'events_create', 'events_batch', 'events_redeliver', 'event_deliveries', 'event_attempts', 'inbox', 'ack', 'ack_batch',
  'endpoints_create', 'endpoints_list', 'endpoints_get', 'endpoints_update', 'endpoints_delete', 'endpoints_secret',
  'endpoints_secret_rotate', 'endpoints_replay', 'endpoint_attempts', 'endpoint_stats', 'attempts_get',
  'health', 'openapi', 'docs', 'unmatched',
] as const
export type RouteName = typeof ROUTES[number]
export const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx'] as const
export const REJECT_REASONS = [
  'unauthorized', 'rate_limit_exceeded', 'invalid_json', 'invalid_event', 'payload_too_large',
  'body_too_large', 'unavailable', 'internal_error',
] as const
export const DELIVERY_OUTCOMES = ['delivered', 'retry_scheduled', 'dead_letter'] as const
/** How one HTTP attempt ended (the attempt log's `outcome`). */
export const ATTEMPT_OUTCOMES = ['success', 'http_error', 'timeout', 'network_error', 'blocked'] as const
export const RATE_SCOPES = ['organization', 'client_ip'] as const

export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] as const
/** Receivers' time: up to a minute, since DELIVERY_TIMEOUT_MS may be set past the 10 s default. */
export const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const

export type MetricType = 'counter' | 'gauge' | 'histogram'

export interface MetricSpec {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  /** One label name and its values, or none. */
  readonly label: { readonly name: string, readonly values: readonly string[] } | null
  /** A second label (crossed with the first), or none. */
  readonly label2: { readonly name: string, readonly values: readonly string[] } | null
  readonly buckets: readonly number[] | null
  /** 'sum' adds threads together; 'max' takes the largest (lag); 'per-thread' keeps one series per thread. */
  readonly across: 'sum' | 'per-thread'
}

function spec (s: Partial<MetricSpec> & Pick<MetricSpec, 'name' | 'help' | 'type'>): MetricSpec {
  return { label: null, label2: null, buckets: null, across: 'sum', ...s }
}

export const METRICS = {
  httpRequests: spec({ name: 'triggers_http_requests_total', help: 'HTTP requests answered, by route and status class.', type: 'counter', label: { name: 'route', values: ROUTES }, label2: { name: 'status_class', values: STATUS_CLASSES } }),
  httpDuration: spec({ name: 'triggers_http_request_duration_seconds', help: 'Time from the request being read to its response being written, by route.', type: 'histogram', label: { name: 'route', values: ROUTES }, buckets: LATENCY_BUCKETS }),
  eventsAccepted: spec({ name: 'triggers_events_accepted_total', help: 'Events durably stored (answered 201).', type: 'counter' }),
  eventsDuplicate: spec({ name: 'triggers_events_duplicate_total', help: 'Events refused as duplicates (409).', type: 'counter' }),
  eventsRejected: spec({ name: 'triggers_events_rejected_total', help: 'Ingest requests refused, by reason (the error code).', type: 'counter', label: { name: 'reason', values: REJECT_REASONS } }),
  rateLimited: spec({ name: 'triggers_rate_limited_requests_total', help: 'Requests refused with 429, by limit scope.', type: 'counter', label: { name: 'scope', values: RATE_SCOPES } }),
  authCacheHits: spec({ name: 'triggers_auth_cache_hits_total', help: 'API keys resolved from a listener cache (no hashing).', type: 'counter' }),
  authCacheMisses: spec({ name: 'triggers_auth_cache_misses_total', help: 'API keys not in the listener cache (looked up, and verified if the lookup part is known).', type: 'counter' }),
  writerBatchSize: spec({ name: 'triggers_writer_batch_size', help: 'Events per write transaction.', type: 'histogram', buckets: BATCH_BUCKETS }),
  writerCommit: spec({ name: 'triggers_writer_commit_duration_seconds', help: 'Duration of one write transaction, begin to commit.', type: 'histogram', buckets: LATENCY_BUCKETS }),
  writerQueue: spec({ name: 'triggers_writer_queue_events', help: 'Events waiting in the writers or in flight.', type: 'gauge' }),
  deliveries: spec({ name: 'triggers_deliveries_total', help: 'Delivery attempts finished, by outcome.', type: 'counter', label: { name: 'outcome', values: DELIVERY_OUTCOMES } }),
  deliveryAttempt: spec({ name: 'triggers_delivery_attempt_duration_seconds', help: 'One delivery attempt, connect to last byte.', type: 'histogram', buckets: LATENCY_BUCKETS }),
  attempts: spec({ name: 'triggers_attempt_duration_seconds', help: 'Delivery attempts by outcome (success, http_error, timeout, network_error, blocked): handing the request to a connection to the last byte or the error; _count is the number of attempts.', type: 'histogram', label: { name: 'outcome', values: ATTEMPT_OUTCOMES }, buckets: ATTEMPT_BUCKETS }),
  deliveryEndToEnd: spec({ name: 'triggers_delivery_end_to_end_seconds', help: 'Event accepted to its successful delivery.', type: 'histogram', buckets: LATENCY_BUCKETS }),
  eventLoopLag: spec({ name: 'triggers_thread_event_loop_lag_seconds', help: 'p99 event-loop delay of each thread over the last interval.', type: 'gauge', across: 'per-thread' }),
  heapUsed: spec({ name: 'triggers_thread_heap_used_bytes', help: 'V8 heap in use by each thread.', type: 'gauge', across: 'per-thread' }),
} as const satisfies Record<string, MetricSpec>

export type MetricKey = keyof typeof METRICS

function seriesCount (s: MetricSpec): number {
  const a = s.label?.values.length ?? 1
  const b = s.label2?.values.length ?? 1
  return a * b
}

/** Slots per series: 1 for counters and gauges; buckets + sum + count for histograms. */
export function slotsPerSeries (s: MetricSpec): number {
  return s.buckets === null ? 1 : s.buckets.length + 2
}

export const OFFSETS: Readonly<Record<MetricKey, number>> = (() => {
  const out: Partial<Record<MetricKey, number>> = {}
  let at = 0
  for (const [k, s] of Object.entries(METRICS) as [MetricKey, MetricSpec][]) {
    out[k] = at
    at += seriesCount(s) * slotsPerSeries(s)
  }
  return out as Record<MetricKey, number>
})()

export const SLOT_COUNT = (Object.entries(METRICS) as [MetricKey, MetricSpec][])
  .reduce((n, [, s]) => n + seriesCount(s) * slotsPerSeries(s), 0)

export function allocateMetrics (): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOT_COUNT * 8)
}

export function routeIndex (r: RouteName): number { return ROUTES.indexOf(r) }
