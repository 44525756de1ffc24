/**
 * loadConfig: the defaults of the configuration table in docs/api.md, every variable of that table parsed, bad values
 * refused with a ConfigError naming the variable (all problems reported together, on one line), and a
 * deep-frozen result. Pure: loadConfig reads the object it is given, never process.env here.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { availableParallelism } from 'node:os'
import { ConfigError, configFromWorkerData, loadConfig, redactConfig, type Config } from '../../src/config/load.ts'
import { ENV } from '../../src/config/env.ts'

function problemsOf (env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env)
  } catch (err) {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`)
    assert.equal(err.name, 'ConfigError')
    assert.doesNotMatch(err.message, /\n/, 'the message is one line')
    for (const p of err.problems) assert.ok(err.message.includes(p))
    return err.problems
  }
  assert.fail(`accepted ${JSON.stringify(env)}`)
}

test('defaults (docs/api.md configuration table)', () => {
  const c = loadConfig({})
  assert.equal(c.port, 8080)
  assert.equal(c.host, '0.0.0.0')
  assert.equal(c.metricsPort, 9090)
  assert.equal(c.databaseUrl, null)
  assert.equal(c.dataDir, './.data')
  assert.equal(c.threads, Math.max(1, availableParallelism()))
  assert.equal(c.deliveryEnabled, true)
  assert.deepEqual(c.deliveryRetryDelaysMs, [1000, 2000, 4000, 8000, 16000])
  assert.equal(c.deliveryTimeoutMs, 10_000)
  assert.equal(c.allowPrivateWebhooks, false)
  assert.equal(c.keygenRateLimit, 10)
  assert.equal(c.dedupWindowSeconds, 86_400)
  assert.equal(c.retentionDays, 90)
  assert.equal(c.shutdownTimeoutMs, 30_000)
  assert.equal(c.logLevel, 'info')
  assert.equal(c.corsOrigin, '*')
})

test('every variable of the docs/api.md configuration table is parsed into its field', () => {
  const cases: [string, string, keyof Config, unknown][] = [
    ['PORT', '3000', 'port', 3000],
    ['PORT', '0', 'port', 0],
    ['HOST', '127.0.0.1', 'host', '127.0.0.1'],
    ['HOST', '::', 'host', '::'],
    ['HOST', 'localhost', 'host', 'localhost'],
    ['METRICS_PORT', '0', 'metricsPort', 0],
    ['METRICS_PORT', '9191', 'metricsPort', 9191],
    ['DATABASE_URL', 'postgres://u:p@db.example:5433/app', 'databaseUrl', 'postgres://u:p@db.example:5433/app'],
    ['DATABASE_URL', 'postgresql://localhost/app?sslmode=require', 'databaseUrl', 'postgresql://localhost/app?sslmode=require'],
    ['DATA_DIR', '/var/lib/triggers', 'dataDir', '/var/lib/triggers'],
    ['THREADS', '3', 'threads', 3],
    ['DELIVERY_ENABLED', 'false', 'deliveryEnabled', false],
    ['DELIVERY_ENABLED', 'TRUE', 'deliveryEnabled', true],
    ['DELIVERY_ENABLED', '0', 'deliveryEnabled', false],
    ['DELIVERY_ENABLED', 'yes', 'deliveryEnabled', true],
    ['DELIVERY_RETRY_DELAYS_MS', '10, 20,30', 'deliveryRetryDelaysMs', [10, 20, 30]],
    ['DELIVERY_RETRY_DELAYS_MS', '0', 'deliveryRetryDelaysMs', [0]],
    ['DELIVERY_RETRY_DELAYS_MS', '', 'deliveryRetryDelaysMs', []],
    ['DELIVERY_TIMEOUT_MS', '2500', 'deliveryTimeoutMs', 2500],
    ['ALLOW_PRIVATE_WEBHOOKS', 'true', 'allowPrivateWebhooks', true],
    ['KEYGEN_RATE_LIMIT_PER_MINUTE', '1000', 'keygenRateLimit', 1000],
    ['DEDUP_WINDOW_SECONDS', '1', 'dedupWindowSeconds', 1],
    ['RETENTION_DAYS', '7', 'retentionDays', 7],
    ['SHUTDOWN_TIMEOUT_MS', '5000', 'shutdownTimeoutMs', 5000],
    ['LOG_LEVEL', 'debug', 'logLevel', 'debug'],
    ['LOG_LEVEL', 'silent', 'logLevel', 'silent'],
  ]
  for (const [name, raw, key, expected] of cases) {
    assert.deepEqual(loadConfig({ [name]: raw })[key], expected, `${name}=${raw}`)
  }
})

test('every variable in the table has a default that parses, and a doc line', () => {
  for (const v of Object.values(ENV)) {
    assert.match(v.name, /^[A-Z][A-Z0-9_]*$/)
    assert.ok(v.doc.length > 0, v.name)
    if (v.default !== undefined) loadConfig({ [v.name]: v.default })
  }
})

test('bad values throw a ConfigError naming the variable', () => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '-1' }, 'PORT'],
    [{ PORT: '65536' }, 'PORT'],
    [{ PORT: '80.5' }, 'PORT'],
    [{ PORT: '0x50' }, 'PORT'],
    [{ METRICS_PORT: '1e3' }, 'METRICS_PORT'],
    [{ THREADS: '0' }, 'THREADS'],
    [{ THREADS: 'many' }, 'THREADS'],
    [{ HOST: 'example.com' }, 'HOST'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'http://db.example/app' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'postgres//missing-colon' }, 'DATABASE_URL'],
    [{ DATA_DIR: '' }, 'DATA_DIR'],
    [{ DELIVERY_ENABLED: 'maybe' }, 'DELIVERY_ENABLED'],
    [{ DELIVERY_RETRY_DELAYS_MS: '1000,-5' }, 'DELIVERY_RETRY_DELAYS_MS'],
    [{ DELIVERY_RETRY_DELAYS_MS: '1000,,2000' }, 'DELIVERY_RETRY_DELAYS_MS'],
    [{ DELIVERY_RETRY_DELAYS_MS: '1s,2s' }, 'DELIVERY_RETRY_DELAYS_MS'],
    [{ DELIVERY_RETRY_DELAYS_MS: '86400001' }, 'DELIVERY_RETRY_DELAYS_MS'],
    [{ DELIVERY_RETRY_DELAYS_MS: Array.from({ length: 51 }, () => '1').join(',') }, 'DELIVERY_RETRY_DELAYS_MS'],
    [{ DELIVERY_TIMEOUT_MS: '0' }, 'DELIVERY_TIMEOUT_MS'],
    [{ ALLOW_PRIVATE_WEBHOOKS: 'on' }, 'ALLOW_PRIVATE_WEBHOOKS'],
    [{ KEYGEN_RATE_LIMIT_PER_MINUTE: '0' }, 'KEYGEN_RATE_LIMIT_PER_MINUTE'],
    [{ DEDUP_WINDOW_SECONDS: '1.5' }, 'DEDUP_WINDOW_SECONDS'],
    [{ DEDUP_WINDOW_SECONDS: '0' }, 'DEDUP_WINDOW_SECONDS'],
    [{ RETENTION_DAYS: 'NaN' }, 'RETENTION_DAYS'],
    [{ SHUTDOWN_TIMEOUT_MS: ' 5000' }, 'SHUTDOWN_TIMEOUT_MS'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ LOG_LEVEL: 'INFO' }, 'LOG_LEVEL'],
  ]
  for (const [env, name] of cases) {
    const problems = problemsOf(env)
    assert.equal(problems.length, 1, `${JSON.stringify(env)}: ${problems.join('; ')}`)
    assert.ok(problems[0]!.startsWith(name + ' '), `${JSON.stringify(env)}: "${problems[0]}" does not name ${name}`)
  }
})

test('several problems are reported together, each naming its variable', () => {
  const problems = problemsOf({ PORT: 'x', LOG_LEVEL: 'loud', DATABASE_URL: 'nope', DELIVERY_RETRY_DELAYS_MS: '-1', THREADS: '3' })
  const named = problems.map(p => p.split(' ')[0]).sort()
  assert.deepEqual(named, ['DATABASE_URL', 'DELIVERY_RETRY_DELAYS_MS', 'LOG_LEVEL', 'PORT'])
})

test('the result is deep-frozen', () => {
  const c = loadConfig({ DELIVERY_RETRY_DELAYS_MS: '1,2' })
  assert.ok(Object.isFrozen(c))
  assert.ok(Object.isFrozen(c.deliveryRetryDelaysMs))
  assert.equal(Reflect.set(c, 'port', 1), false)
  assert.equal(Reflect.set(c.deliveryRetryDelaysMs, 0, 99), false)
  assert.throws(() => { Reflect.apply(Array.prototype.push, c.deliveryRetryDelaysMs, [3]) }, TypeError)
  assert.equal(c.port, 8080)
  assert.deepEqual(c.deliveryRetryDelaysMs, [1, 2])
})

test('redactConfig hides the database password; configFromWorkerData checks every field', () => {
  const c = loadConfig({ DATABASE_URL: 'postgres://app:s3cret@db.example/app' })
  const r = redactConfig(c)
  assert.doesNotMatch(JSON.stringify(r), /s3cret/)
  assert.match(String(r.databaseUrl), /app:\*\*\*@db\.example/)
  const copy = configFromWorkerData(structuredClone(c))
  assert.deepEqual(copy, c)
  assert.ok(Object.isFrozen(copy))
  const partial: Record<string, unknown> = { ...c }
  delete partial.dedupWindowSeconds
  assert.throws(() => configFromWorkerData(partial), /dedupWindowSeconds/)
  assert.throws(() => configFromWorkerData(null), TypeError)
})
