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
}

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor (problems: readonly string[]) {
    super(problems.join('; '))
    this.name = 'ConfigError'
    this.problems = problems
  }
}

type Parsed = string | number | boolean | readonly number[] | null

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
  if (problems.length > 0) throw new ConfigError(problems)
  out.threads ??= Math.max(1, availableParallelism())
  // The contract (docs/api.md "Delivery attempts"): the attempt log never outlives the events it describes.
  out.attemptRetentionDays = Math.min(Number(out.attemptRetentionDays), Number(out.retentionDays))
  return deepFreeze(out as unknown as Config)
}

/** The Config with secrets removed, for the start-up log line. */
export function redactConfig (c: Config): Record<string, unknown> {
  let db: string | null = null
  if (c.databaseUrl !== null) {
    const u = new URL(c.databaseUrl)
    if (u.password !== '') u.password = '***'
    db = u.toString()
  }
  return { ...c, databaseUrl: db }
}

/** Parses a Config that crossed a thread boundary (workerData), checking it has every field. */
export function configFromWorkerData (data: unknown): Config {
  if (data === null || typeof data !== 'object') throw new TypeError('worker config missing')
  for (const key of Object.keys(ENV)) {
    if (!(key in data)) throw new TypeError(`worker config lacks ${key}`)
  }
  return deepFreeze(data as Config)
}
