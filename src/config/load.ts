/**
 * Parses the environment through the table in env.ts, validates every value, and returns a deep-frozen
 * Config. All errors are collected and reported together; nothing starts half-configured. Primary thread
 * only: worker threads receive the Config through workerData.
 */
import { availableParallelism } from 'node:os'
import { isIP } from 'node:net'
import { ENV, type EnvVar } from './env.ts'

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
const LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export interface Config {
  readonly port: number
  readonly host: string
  readonly metricsPort: number
  readonly databaseUrl: string | null
  readonly dataDir: string
  readonly threads: number
  readonly deliveryEnabled: boolean
  readonly deliveryRetryDelaysMs: readonly number[]
  readonly deliveryTimeoutMs: number
  readonly deliveryConcurrency: number
  readonly deliveryPerEndpoint: number
  readonly deliveryThreads: number
  readonly maxEndpointsPerOrg: number
  readonly endpointDisableOnGone: boolean
  readonly endpointAutoDisableHours: number
  readonly batchMaxEvents: number
  readonly batchMaxBodyBytes: number
  readonly attemptLog: boolean
  readonly attemptBodyExcerptBytes: number
  readonly attemptRetentionDays: number
  readonly attemptBodyRetentionDays: number
  readonly allowPrivateWebhooks: boolean
  readonly keygenRateLimit: number
  readonly dedupWindowSeconds: number
  readonly retentionDays: number
  readonly shutdownTimeoutMs: number
  readonly logLevel: LogLevel
  readonly corsOrigin: string
  readonly trustProxy: boolean
  readonly dbPoolSize: number
  readonly writerMaxBatch: number
  readonly writerMaxQueue: number
  readonly writerMaxInFlight: number
  readonly authCacheMax: number
  readonly authCacheTtlMs: number
  readonly argon2Threads: number
  readonly threadYoungGenerationMb: number
  readonly otelSdkDisabled: boolean
  readonly otelTracesExporter: 'otlp' | 'none' | null
  readonly otelEndpoint: string | null
  readonly otelTracesEndpoint: string | null
  readonly otelProtocol: OtlpProtocol
  readonly otelTracesProtocol: OtlpProtocol | null
  readonly otelHeaders: Readonly<Record<string, string>> | null
  readonly otelTracesHeaders: Readonly<Record<string, string>> | null
  readonly otelTimeoutMs: number
  readonly otelTracesTimeoutMs: number | null
  readonly otelServiceName: string
  readonly otelResourceAttributes: Readonly<Record<string, string>> | null
  readonly otelTracesSampler: TraceSampler
  readonly otelTracesSamplerArg: number
  readonly otelBspScheduleDelayMs: number
  readonly otelBspMaxQueueSize: number
  readonly otelBspMaxExportBatchSize: number
  /** Traces as the OTEL_* variables above resolve (docs/tracing.md), or null when tracing is off. */
  readonly traces: TracesConfig | null
}

export type OtlpProtocol = 'http/protobuf' | 'http/json'
export type TraceSampler = 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio' | 'always_on' | 'always_off' | 'traceidratio'

/** What a thread's tracer provider is built from (src/tracing/otel.ts). */
export interface TracesConfig {
  /** Where spans are POSTed (OTLP/HTTP). */
  readonly url: string
  readonly protocol: OtlpProtocol
  readonly headers: Readonly<Record<string, string>>
  readonly timeoutMs: number
  readonly serviceName: string
  readonly resourceAttributes: Readonly<Record<string, string>>
  readonly sampler: TraceSampler
  /** The ratio of the traceidratio samplers. */
  readonly samplerRatio: number
  readonly scheduleDelayMs: number
  readonly maxQueueSize: number
  readonly maxExportBatchSize: number
}

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor (problems: readonly string[]) {
    super(problems.join('; '))
    this.name = 'ConfigError'
    this.problems = problems
  }
}

type Parsed = string | number | boolean | readonly number[] | Readonly<Record<string, string>> | null

/**
 * `key=value` pairs separated by commas, values percent-decoded (the OTEL_*_HEADERS and
 * OTEL_RESOURCE_ATTRIBUTES format); blanks around keys and values are dropped, and so are empty entries.
 */
function parseKeyValues (v: EnvVar, raw: string): Readonly<Record<string, string>> | Error {
  const out: Record<string, string> = {}
  for (const part of raw.split(',')) {
    if (part.trim() === '') continue
    const eq = part.indexOf('=')
    const key = eq < 0 ? '' : part.slice(0, eq).trim()
    if (key === '') return new Error(`${v.name} must be key=value pairs separated by commas, got an entry without a key`)
    let value: string
    try { value = decodeURIComponent(part.slice(eq + 1).trim()) } catch { return new Error(`${v.name} has a badly percent-encoded value for ${key}`) }
    out[key] = value
  }
  return out
}

function parseOne (v: EnvVar, raw: string): Parsed | Error {
  const t = v.type
  switch (t.kind) {
    case 'int': {
      if (!/^\d+$/.test(raw)) return new Error(`${v.name} must be a whole number, got "${raw}"`)
      const n = Number(raw)
      if (n < t.min || n > t.max) return new Error(`${v.name} must be between ${t.min} and ${t.max}, got ${n}`)
      return n
    }
    case 'bool': {
      const s = raw.toLowerCase()
      if (s === 'true' || s === '1' || s === 'yes') return true
      if (s === 'false' || s === '0' || s === 'no') return false
      return new Error(`${v.name} must be true or false, got "${raw}"`)
    }
    case 'delays': {
      if (raw.trim() === '') return []
      const out: number[] = []
      for (const part of raw.split(',')) {
        const p = part.trim()
        if (!/^\d+$/.test(p)) return new Error(`${v.name} must be a comma-separated list of non-negative milliseconds, got "${raw}"`)
        const n = Number(p)
        if (n > 86_400_000) return new Error(`${v.name} delays must be at most 86400000 ms, got ${n}`)
        out.push(n)
      }
      if (out.length > 50) return new Error(`${v.name} may list at most 50 delays`)
      return out
    }
    case 'url': {
      let u: URL
      try { u = new URL(raw) } catch { return new Error(`${v.name} is not a valid URL`) }
      if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') return new Error(`${v.name} must be a postgres:// URL`)
      return raw
    }
    case 'level':
      return LEVELS.includes(raw) ? raw : new Error(`${v.name} must be one of ${LEVELS.join(', ')}, got "${raw}"`)
    case 'host':
      return raw === 'localhost' || isIP(raw) !== 0 ? raw : new Error(`${v.name} must be an IP address or localhost, got "${raw}"`)
    case 'string':
      return raw === '' ? new Error(`${v.name} must not be empty`) : raw
    case 'optional-string':
      return raw === '' ? null : raw
    case 'choice':
      if (t.values.includes(raw)) return raw
      if (raw === 'grpc') return new Error(`${v.name}: grpc is not supported; use http/protobuf or http/json (the same collector takes both on port 4318)`)
      return new Error(`${v.name} must be one of ${t.values.join(', ')}, got "${raw}"`)
    case 'http-url': {
      let u: URL
      try { u = new URL(raw) } catch { return new Error(`${v.name} is not a valid URL`) }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return new Error(`${v.name} must be an http:// or https:// URL`)
      return raw
    }
    case 'key-values':
      return parseKeyValues(v, raw)
    case 'ratio': {
      if (!/^(\d+(\.\d*)?|\.\d+)$/.test(raw)) return new Error(`${v.name} must be a number from 0 to 1, got "${raw}"`)
      const n = Number(raw)
      return n <= 1 ? n : new Error(`${v.name} must be a number from 0 to 1, got ${n}`)
    }
  }
}

/**
 * Traces are on when OTEL_TRACES_EXPORTER=otlp, or when it is unset and an OTLP endpoint is named;
 * OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none keeps them off (docs/tracing.md).
 */
function resolveTraces (c: Record<string, Parsed>): TracesConfig | null {
  const exporter = c.otelTracesExporter
  const endpoint = c.otelEndpoint as string | null
  const tracesEndpoint = c.otelTracesEndpoint as string | null
  if (c.otelSdkDisabled === true || exporter === 'none') return null
  if (exporter !== 'otlp' && endpoint === null && tracesEndpoint === null) return null
  const url = tracesEndpoint ?? (endpoint === null ? 'http://localhost:4318/v1/traces' : (endpoint.endsWith('/') ? endpoint : endpoint + '/') + 'v1/traces')
  return {
    url,
    protocol: (c.otelTracesProtocol ?? c.otelProtocol) as OtlpProtocol,
    headers: { ...c.otelHeaders as Record<string, string> | null, ...c.otelTracesHeaders as Record<string, string> | null },
    timeoutMs: Number(c.otelTracesTimeoutMs ?? c.otelTimeoutMs),
    serviceName: String(c.otelServiceName),
    resourceAttributes: { ...c.otelResourceAttributes as Record<string, string> | null },
    sampler: c.otelTracesSampler as TraceSampler,
    samplerRatio: Number(c.otelTracesSamplerArg),
    scheduleDelayMs: Number(c.otelBspScheduleDelayMs),
    maxQueueSize: Number(c.otelBspMaxQueueSize),
    maxExportBatchSize: Number(c.otelBspMaxExportBatchSize),
  }
}

function deepFreeze<T> (o: T): T {
  if (o !== null && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}

/** Reads the environment (or `env` in tests), validates it completely, returns a frozen Config. */
export function loadConfig (env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const problems: string[] = []
  const out: Record<string, Parsed> = {}
  for (const [key, v] of Object.entries(ENV) as [string, EnvVar][]) {
    const raw = env[v.name] ?? v.default
    if (raw === undefined) { out[key] = null; continue }
    const parsed = parseOne(v, raw)
    if (parsed instanceof Error) problems.push(parsed.message)
    else out[key] = parsed
  }
  if (problems.length === 0 && Number(out.otelBspMaxExportBatchSize) > Number(out.otelBspMaxQueueSize)) {
    problems.push(`OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be at most OTEL_BSP_MAX_QUEUE_SIZE (${String(out.otelBspMaxQueueSize)}), got ${String(out.otelBspMaxExportBatchSize)}`)
  }
  if (problems.length > 0) throw new ConfigError(problems)
  out.threads ??= Math.max(1, availableParallelism())
  // The contract (docs/api.md "Delivery attempts"): the attempt log never outlives the events it describes.
  out.attemptRetentionDays = Math.min(Number(out.attemptRetentionDays), Number(out.retentionDays))
  const config = out as unknown as Record<string, unknown>
  config.traces = resolveTraces(out)
  return deepFreeze(config as unknown as Config)
}

/** Header values (OTLP credentials) as '***'. */
function redactValues (h: Readonly<Record<string, string>> | null): Record<string, string> | null {
  if (h === null) return null
  const out: Record<string, string> = {}
  for (const k of Object.keys(h)) out[k] = '***'
  return out
}

/** The Config with secrets removed, for the start-up log line. */
export function redactConfig (c: Config): Record<string, unknown> {
  let db: string | null = null
  if (c.databaseUrl !== null) {
    const u = new URL(c.databaseUrl)
    if (u.password !== '') u.password = '***'
    db = u.toString()
  }
  return {
    ...c,
    databaseUrl: db,
    otelHeaders: redactValues(c.otelHeaders),
    otelTracesHeaders: redactValues(c.otelTracesHeaders),
    traces: c.traces === null ? null : { ...c.traces, headers: redactValues(c.traces.headers) },
  }
}

/** Parses a Config that crossed a thread boundary (workerData), checking it has every field. */
export function configFromWorkerData (data: unknown): Config {
  if (data === null || typeof data !== 'object') throw new TypeError('worker config missing')
  for (const key of Object.keys(ENV)) {
    if (!(key in data)) throw new TypeError(`worker config lacks ${key}`)
  }
  return deepFreeze(data as Config)
}
