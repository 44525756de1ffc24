/**
 * The service process of the fault tests: `triggers-api serve` (test/helpers/child-service.ts) on
 * 127.0.0.1 with two listener threads, metrics off, webhooks to local receivers allowed, and info
 * logs (the helper waits for the `listening` line); `env` adds to or overrides that. Start-up may take
 * up to a minute on a loaded machine (the threads compile TypeScript under tsx).
 */
import { spawnService, type ChildService } from '../../helpers/child-service.ts'
import { freePort } from '../../../src/lib/free-port.ts'

export async function startServiceProcess (databaseUrl: string, env: Record<string, string>): Promise<ChildService> {
  const port = await freePort()
  return await spawnService({
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    METRICS_PORT: '0',
    THREADS: '2',
    ALLOW_PRIVATE_WEBHOOKS: 'true',
    KEYGEN_RATE_LIMIT_PER_MINUTE: '1000',
    LOG_LEVEL: 'info',
    ...env,
  }, { port, readyTimeoutMs: 60_000 })
}
