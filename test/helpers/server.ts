/**
 * Starts the real service in-process for a test file: its own database (cloned from the migrated
 * template), real uWS listener threads on an ephemeral port, the real Argon2 pool. `api` sends
 * requests through a dedicated undici Agent with a short keep-alive, so `stop` can close client
 * sockets first and the listener threads finish draining at once.
 */
import { Agent, fetch, type Headers } from 'undici'
import { loadConfig, type Config } from '../../src/config/load.ts'
import { createLogger } from '../../src/log.ts'
import { startService, type RunningService } from '../../src/service.ts'
import { createTestDatabase, type TestDatabase } from './db.ts'

export interface ApiResponse {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** Parsed JSON body (null when the body is not JSON). */
  readonly json: any
}

export interface RequestOptions {
  readonly key?: string
  readonly body?: unknown
  /** Raw body, sent as is (takes precedence over `body`). */
  readonly raw?: string | Buffer
  readonly headers?: Record<string, string>
}

export interface TestService {
  readonly config: Config
  readonly db: TestDatabase
  readonly svc: RunningService
  readonly port: number
  readonly base: string
  api (method: string, path: string, opts?: RequestOptions): Promise<ApiResponse>
  /** Creates an organization through the API and returns its key and id. */
  createOrg (tier?: string, name?: string): Promise<{ key: string, id: string }>
  stop (): Promise<void>
}

export async function startTestService (env: Record<string, string> = {}): Promise<TestService> {
  const db = await createTestDatabase()
  const config = loadConfig({
    DATABASE_URL: db.url,
    PORT: '0',
    HOST: '127.0.0.1',
    THREADS: '2',
    DELIVERY_ENABLED: 'false',
    ALLOW_PRIVATE_WEBHOOKS: 'true',
    METRICS_PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    KEYGEN_RATE_LIMIT_PER_MINUTE: '1000',
    ...env,
  })
  let svc: RunningService
  try {
    svc = await startService(config, createLogger(config.logLevel, 'primary'))
  } catch (err) {
    await db.drop()
    throw err
  }
  const base = `http://127.0.0.1:${svc.port}`
  const agent = new Agent({ keepAliveTimeout: 200, keepAliveMaxTimeout: 200, connections: 64 })
  const api = async (method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse> => {
    const headers: Record<string, string> = { ...opts.headers }
    if (opts.key !== undefined) headers['x-api-key'] = opts.key
    let body: string | Buffer | undefined
    if (opts.raw !== undefined) body = opts.raw
    else if (opts.body !== undefined) { body = JSON.stringify(opts.body); headers['content-type'] ??= 'application/json' }
    const res = await fetch(base + path, { method, headers, body, dispatcher: agent })
    const text = await res.text()
    let json: unknown = null
    try { json = JSON.parse(text) } catch { json = null }
    return { status: res.status, headers: res.headers, text, json }
  }
  let stopped = false
  return {
    config,
    db,
    svc,
    port: svc.port,
    base,
    api,
    async createOrg (tier = 'enterprise', name = 'Test Org') {
      const r = await api('POST', '/api/keys/generate', { body: { organization_name: name, tier } })
      if (r.status !== 201) throw new Error(`key generation failed: ${r.status} ${r.text}`)
      return { key: r.json.api_key, id: r.json.organization_id }
    },
    async stop () {
      if (stopped) return
      stopped = true
      await agent.close()
      await svc.stop()
      await db.drop()
    },
  }
}
