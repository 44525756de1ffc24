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

export interface EnvVar {
  readonly name: string
  readonly type: EnvKind
  readonly default: string | undefined
  readonly doc: string
}

const int = (min: number, max: number): EnvKind => ({ kind: 'int', min, max })
const PORT = int(0, 65535)
const MS = int(1, 86_400_000)

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
  deliveryPerEndpoint: { name: 'DELIVERY_PER_ENDPOINT_CONCURRENCY', type: int(1, 1000), default: '16', doc: 'attempts in flight to one webhook origin' },
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
  threadYoungGenerationMb: { name: 'THREAD_YOUNG_GENERATION_MB', type: int(0, 1024), default: '8', doc: "V8 young generation cap of each worker thread in MB (0: V8's default); trades a little GC time for resident memory" },
  argon2Threads: { name: 'ARGON2_THREADS', type: int(1, 64), default: '1', doc: 'worker threads hashing API keys' },
} as const satisfies Record<string, EnvVar>

export type EnvKey = keyof typeof ENV
