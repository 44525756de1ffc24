/**
 * The only table of environment variable names (STYLE C3). Each row names the variable, how it is
 * parsed, its default and what it means; `load.ts` reads `process.env` through this table and nowhere
 * else reads the environment. Runs on the primary thread only; threads receive the frozen Config.
 */

export type EnvKind =
  | { kind: 'int'; min: number; max: number }
  | { kind: 'bool' }
  | { kind: 'string' }
  | { kind: 'optional-string' }
  | { kind: 'url' }
  | { kind: 'delays' }
  | { kind: 'level' }
  | { kind: 'host' }
  | { kind: 'choice'; values: readonly string[] }
  | { kind: 'http-url' }
  | { kind: 'key-values' }
  | { kind: 'ratio' }

export interface EnvVar {
  readonly name: string
  readonly type: EnvKind
  readonly default: string | undefined
  readonly doc: string
}

const int = (min: number, max: number): EnvKind => ({ kind: 'int', min, max })
const PORT = int(0, 65535)
const MS = int(1, 86_400_000)
const OTLP_PROTOCOL: EnvKind = { kind: 'choice', values: ['http/protobuf', 'http/json'] }

export const ENV = {
  port: { name: 'PORT', type: PORT, default: '8080', doc: 'the API listener port' },
  host: { name: 'HOST', type: { kind: 'host' }, default: '0.0.0.0', doc: 'the API listener address' },
  metricsPort: { name: 'METRICS_PORT', type: PORT, default: '9090', doc: 'Prometheus /metrics port (0 turns it off)' },
  databaseUrl: { name: 'DATABASE_URL', type: { kind: 'url' }, default: undefined, doc: 'PostgreSQL to use; unset means an embedded PostgreSQL kept under DATA_DIR' },
  dataDir: { name: 'DATA_DIR', type: { kind: 'string' }, default: './.data', doc: 'where the embedded PostgreSQL keeps its files' },
  threads: { name: 'THREADS', type: int(1, 256), default: undefined, doc: 'HTTP listener threads (default: available cores)' },
  deliveryEnabled: { name: 'DELIVERY_ENABLED', type: { kind: 'bool' }, default: 'true', doc: 'false makes an API-only node' },
  deliveryRetryDelaysMs: { name: 'DELIVERY_RETRY_DELAYS_MS', type: { kind: 'delays' }, default: '1000,2000,4000,8000,16000', doc: 'delays before each retry; their count is the number of retries' },
  deliveryTimeoutMs: { name: 'DELIVERY_TIMEOUT_MS', type: MS, default: '10000', doc: 'one delivery attempt, connect to last byte' },
  deliveryConcurrency: { name: 'DELIVERY_CONCURRENCY', type: int(1, 10_000), default: '256', doc: 'delivery attempts in flight on this node' },
  deliveryPerEndpoint: { name: 'DELIVERY_PER_ENDPOINT_CONCURRENCY', type: int(1, 100), default: '16', doc: 'default in-flight attempts per endpoint (an endpoint\'s max_concurrency overrides it), across all nodes' },
  deliveryThreads: { name: 'DELIVERY_THREADS', type: int(1, 64), default: '1', doc: 'delivery threads on this node (each claims its own share of the due work)' },
  maxEndpointsPerOrg: { name: 'MAX_ENDPOINTS_PER_ORG', type: int(1, 10_000), default: '20', doc: 'endpoints per organization' },
  endpointDisableOnGone: { name: 'ENDPOINT_DISABLE_ON_GONE', type: { kind: 'bool' }, default: 'true', doc: 'a 410 Gone disables the endpoint (else it only dead-letters that delivery)' },
  endpointAutoDisableHours: { name: 'ENDPOINT_AUTO_DISABLE_HOURS', type: int(0, 8760), default: '0', doc: 'disable an endpoint after this many hours of only failures, with at least 10 attempts (0: off)' },
  batchMaxEvents: { name: 'BATCH_MAX_EVENTS', type: int(1, 10_000), default: '500', doc: 'items per POST /api/events/batch (also capped by the tier\'s per-minute limit)' },
  batchMaxBodyBytes: { name: 'BATCH_MAX_BODY_BYTES', type: int(1024, 64 * 1024 * 1024), default: '4194304', doc: 'body cap on POST /api/events/batch' },
  attemptLog: { name: 'ATTEMPT_LOG', type: { kind: 'bool' }, default: 'true', doc: 'record every delivery attempt (false: only the delivery state; for measuring what the log costs)' },
  attemptBodyExcerptBytes: { name: 'ATTEMPT_BODY_EXCERPT_BYTES', type: int(0, 65_536), default: '2048', doc: 'response bytes kept per attempt' },
  attemptRetentionDays: { name: 'ATTEMPT_RETENTION_DAYS', type: int(1, 36_500), default: '30', doc: 'attempt log retention (never past RETENTION_DAYS)' },
  attemptBodyRetentionDays: { name: 'ATTEMPT_BODY_RETENTION_DAYS', type: int(0, 36_500), default: '7', doc: 'response excerpts and headers in the attempt log' },
  allowPrivateWebhooks: { name: 'ALLOW_PRIVATE_WEBHOOKS', type: { kind: 'bool' }, default: 'false', doc: 'allow loopback/private webhook targets (development, tests)' },
  keygenRateLimit: { name: 'KEYGEN_RATE_LIMIT_PER_MINUTE', type: int(1, 1_000_000), default: '10', doc: 'per client IP, on POST /api/keys/generate' },
  dedupWindowSeconds: { name: 'DEDUP_WINDOW_SECONDS', type: int(1, 31_536_000), default: '86400', doc: 'the deduplication window' },
  retentionDays: { name: 'RETENTION_DAYS', type: int(1, 36_500), default: '90', doc: 'events older than this are purged' },
  shutdownTimeoutMs: { name: 'SHUTDOWN_TIMEOUT_MS', type: MS, default: '30000', doc: 'SIGTERM drain limit' },
  logLevel: { name: 'LOG_LEVEL', type: { kind: 'level' }, default: 'info', doc: 'pino level' },
  corsOrigin: { name: 'CORS_ORIGIN', type: { kind: 'string' }, default: '*', doc: 'Access-Control-Allow-Origin value' },
  trustProxy: { name: 'TRUST_PROXY', type: { kind: 'bool' }, default: 'false', doc: 'take the client IP from X-Forwarded-For (behind a trusted proxy only)' },
  dbPoolSize: { name: 'DB_POOL_SIZE', type: int(1, 100), default: '4', doc: 'PostgreSQL connections per listener thread' },
  writerMaxBatch: { name: 'WRITER_MAX_BATCH', type: int(1, 10_000), default: '512', doc: 'most events in one write transaction' },
  writerMaxInFlight: { name: 'WRITER_MAX_IN_FLIGHT', type: int(1, 64), default: '2', doc: 'write statements in flight per listener thread (at most DB_POOL_SIZE - 1)' },
  writerMaxQueue: { name: 'WRITER_MAX_QUEUE', type: int(1, 1_000_000), default: '8192', doc: 'events waiting per listener thread before new ones get 503' },
  authCacheMax: { name: 'AUTH_CACHE_MAX', type: int(1, 10_000_000), default: '10000', doc: 'verified keys kept per listener thread' },
  authCacheTtlMs: { name: 'AUTH_CACHE_TTL_MS', type: MS, default: '300000', doc: 'how long a verified key is trusted without re-checking' },
  threadYoungGenerationMb: { name: 'THREAD_YOUNG_GENERATION_MB', type: int(0, 1024), default: '6', doc: "V8 young generation cap of each worker thread in MB (0: V8's default); trades a little GC time for resident memory" },
  argon2Threads: { name: 'ARGON2_THREADS', type: int(1, 64), default: '1', doc: 'worker threads hashing API keys' },
  // OpenTelemetry traces (docs/tracing.md): the standard OTEL_* names, read here like every other variable.
  otelSdkDisabled: { name: 'OTEL_SDK_DISABLED', type: { kind: 'bool' }, default: 'false', doc: 'true turns tracing off whatever the other OTEL_* variables say' },
  otelTracesExporter: { name: 'OTEL_TRACES_EXPORTER', type: { kind: 'choice', values: ['otlp', 'none'] }, default: undefined, doc: 'otlp turns traces on, none off (unset: on only when an OTLP endpoint is set)' },
  otelEndpoint: { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', type: { kind: 'http-url' }, default: undefined, doc: 'OTLP/HTTP base URL; traces go to <base>/v1/traces (unset: http://localhost:4318)' },
  otelTracesEndpoint: { name: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', type: { kind: 'http-url' }, default: undefined, doc: 'the full OTLP/HTTP URL for traces (overrides OTEL_EXPORTER_OTLP_ENDPOINT)' },
  otelProtocol: { name: 'OTEL_EXPORTER_OTLP_PROTOCOL', type: OTLP_PROTOCOL, default: 'http/protobuf', doc: 'OTLP encoding: http/protobuf or http/json (grpc is not supported)' },
  otelTracesProtocol: { name: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', type: OTLP_PROTOCOL, default: undefined, doc: 'OTLP encoding for traces (overrides OTEL_EXPORTER_OTLP_PROTOCOL)' },
  otelHeaders: { name: 'OTEL_EXPORTER_OTLP_HEADERS', type: { kind: 'key-values' }, default: undefined, doc: 'headers of every export request, key=value pairs separated by commas (values percent-decoded; kept out of logs)' },
  otelTracesHeaders: { name: 'OTEL_EXPORTER_OTLP_TRACES_HEADERS', type: { kind: 'key-values' }, default: undefined, doc: 'headers of trace export requests, added to OTEL_EXPORTER_OTLP_HEADERS (same name: this one wins)' },
  otelTimeoutMs: { name: 'OTEL_EXPORTER_OTLP_TIMEOUT', type: MS, default: '10000', doc: 'one export request, in ms' },
  otelTracesTimeoutMs: { name: 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', type: MS, default: undefined, doc: 'one trace export request, in ms (overrides OTEL_EXPORTER_OTLP_TIMEOUT)' },
  otelServiceName: { name: 'OTEL_SERVICE_NAME', type: { kind: 'string' }, default: 'triggers-api', doc: 'service.name of every span' },
  otelResourceAttributes: { name: 'OTEL_RESOURCE_ATTRIBUTES', type: { kind: 'key-values' }, default: undefined, doc: 'more resource attributes, key=value pairs separated by commas (OTEL_SERVICE_NAME wins for service.name)' },
  otelTracesSampler: {
    name: 'OTEL_TRACES_SAMPLER',
    type: { kind: 'choice', values: ['parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio', 'always_on', 'always_off', 'traceidratio'] },
    default: 'parentbased_always_on',
    doc: 'which traces are recorded; parentbased_* follow an incoming traceparent\'s sampled flag',
  },
  otelTracesSamplerArg: { name: 'OTEL_TRACES_SAMPLER_ARG', type: { kind: 'ratio' }, default: '1', doc: 'the ratio of the traceidratio samplers, 0 to 1' },
  otelBspScheduleDelayMs: { name: 'OTEL_BSP_SCHEDULE_DELAY', type: MS, default: '5000', doc: 'most time a finished span waits before it is exported, in ms' },
  otelBspMaxQueueSize: { name: 'OTEL_BSP_MAX_QUEUE_SIZE', type: int(1, 1_000_000), default: '2048', doc: 'finished spans buffered per thread; past it new ones are dropped' },
  otelBspMaxExportBatchSize: { name: 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', type: int(1, 1_000_000), default: '512', doc: 'most spans in one export request (at most OTEL_BSP_MAX_QUEUE_SIZE)' },
} as const satisfies Record<string, EnvVar>

export type EnvKey = keyof typeof ENV
