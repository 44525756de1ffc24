/**
 * Graceful shutdown of the real process under load, and the `npm start` path on a fresh machine.
 *
 * 1. `triggers-api serve` (two listener threads) takes a steady stream of POST /api/events from 32
 *    clients, each on its own connection, and gets SIGTERM in the middle of it. The drain must answer
 *    what it already received: exit 0 with every listener drained (no timeout), every 201 a client saw
 *    is a stored row, no 5xx, some 201s arrive after the signal, and requests that failed, failed only
 *    at the connection level (refused, reset, closed before any response bytes).
 * 2. `node scripts/start.js` with DATABASE_URL unset: builds dist/ when stale, starts the embedded
 *    PostgreSQL under DATA_DIR, serves, and on SIGTERM exits 0 with that PostgreSQL gone.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { connect } from 'node:net'
import { once } from 'node:events'
import path from 'node:path'
import { Client, request } from 'undici'
import { createTestDatabase, waitFor } from '../helpers/db.ts'
import { deferrer, jsonLines, spawnService } from '../helpers/child-service.ts'
import { freePort } from '../../src/lib/free-port.ts'

// Failure deadlines, not expectations: the drain is asserted by its log lines (every listener
// drained, no timeout error); these only keep a broken drain from hanging the test.
const SHUTDOWN_TIMEOUT_MS = 60_000
const MARGIN_MS = 30_000
const WORKERS = 32

/** Failures where the request never got a single response byte: the client may safely retry them. */
const CONNECTION_LEVEL = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET'])

function errCode (err: unknown): string {
  if (err !== null && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

test('SIGTERM under load: drains in-flight requests, loses no acknowledged event, exits 0', async t => {
  const defer = deferrer(t)
  const db = await createTestDatabase()
  defer(() => db.drop())
  const port = await freePort()
  const svc = await spawnService({
    DATABASE_URL: db.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    METRICS_PORT: '0',
    THREADS: '2',
    DELIVERY_ENABLED: 'false',
    LOG_LEVEL: 'info',
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
  }, { port })
  defer(() => svc.ensureStopped())

  const gen = await request(svc.base + '/api/keys/generate', {
    method: 'POST',
    reset: true,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ organization_name: 'Shutdown Org', tier: 'enterprise' }),
  })
  assert.equal(gen.statusCode, 201)
  const org = await gen.body.json() as { api_key: string, organization_id: string }

  const accepted = new Map<string, string>() // event id → dedup id
  let acceptedAfterSignal = 0
  let sigtermAt = -1
  const statuses = new Map<number, number>()
  const failures = new Map<string, number>()
  const failuresBeforeSignal: string[] = []
  const midResponse: string[] = []
  let stopAll = false

  const worker = async (w: number): Promise<void> => {
    // One connection per worker; the server answers with Connection: close while draining and the
    // client then reconnects (to whichever listener still accepts, if any).
    const client = new Client(svc.base, { pipelining: 1, connect: { timeout: 5000 } })
    try {
      for (let n = 0; !stopAll; n++) {
        const dedupId = `w${w}-${n}-${randomBytes(4).toString('hex')}`
        let res
        try {
          res = await client.request({
            path: '/api/events',
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-api-key': org.api_key },
            body: JSON.stringify({ type: 'shutdown.load', payload: { w, n }, dedup_id: dedupId }),
          })
        } catch (err) {
          const code = errCode(err)
          failures.set(code, (failures.get(code) ?? 0) + 1)
          if (sigtermAt < 0) failuresBeforeSignal.push(code)
          if (sigtermAt >= 0) return // the service is going away: this worker is done
          continue
        }
        const receivedAt = performance.now()
        let text: string
        try {
          text = await res.body.text()
        } catch (err) {
          midResponse.push(`${res.statusCode} ${errCode(err)}`)
          continue
        }
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
        if (res.statusCode === 201) {
          const body = JSON.parse(text) as { id: string, dedup_id: string }
          assert.equal(body.dedup_id, dedupId)
          accepted.set(body.id, dedupId)
          if (sigtermAt >= 0 && receivedAt > sigtermAt) acceptedAfterSignal++
        }
      }
    } finally {
      await client.destroy()
    }
  }

  const load = Promise.all(Array.from({ length: WORKERS }, async (_, w) => await worker(w)))
  await waitFor(() => accepted.size >= 200 || failuresBeforeSignal.length > 0, 30_000, '200 accepted events under load')
  assert.deepEqual(failuresBeforeSignal, [], 'no failures before the signal')
  const acceptedBeforeSignal = accepted.size
  sigtermAt = performance.now()
  svc.child.kill('SIGTERM')
  const exit = await Promise.race([
    svc.exited,
    new Promise<null>(resolve => { setTimeout(resolve, SHUTDOWN_TIMEOUT_MS + MARGIN_MS, null).unref() }),
  ])
  stopAll = true
  await load
  assert.ok(exit !== null, `the service exits within ${SHUTDOWN_TIMEOUT_MS + MARGIN_MS} ms of SIGTERM`)
  const drainMs = Math.round(exit.at - sigtermAt)

  t.diagnostic(`accepted before SIGTERM: ${acceptedBeforeSignal}, answered 201 after SIGTERM: ${acceptedAfterSignal}, total 201: ${accepted.size}`)
  t.diagnostic(`SIGTERM to exit: ${drainMs} ms`)
  t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`)
  t.diagnostic(`connection-level failures: ${JSON.stringify(Object.fromEntries(failures))}`)

  assert.equal(exit.code, 0, `exit code (signal ${String(exit.signal)})\nstdout:\n${svc.stdout()}\nstderr:\n${svc.stderr().slice(0, 2000)}`)
  assert.deepEqual(midResponse, [], 'no response was cut off after it started')
  for (const [status, n] of statuses) assert.ok(status === 201, `unexpected status ${status} (${n}x)`)
  for (const code of failures.keys()) assert.ok(CONNECTION_LEVEL.has(code), `failure ${code} is connection-level`)
  assert.ok(acceptedAfterSignal >= 1, 'the drain answered in-flight requests after SIGTERM')

  // Every 201 is a stored row with the dedup id the client sent.
  const rows = await db.sql<{ id: string, dedup_id: string }[]>`
    select id::text, dedup_id from events where organization_id = ${org.organization_id}`
  const stored = new Map(rows.map(r => [r.id, r.dedup_id]))
  const missing = [...accepted].filter(([id, dedup]) => stored.get(id) !== dedup)
  assert.deepEqual(missing, [], 'every acknowledged event is stored')
  // Stored but never acknowledged: the client lost the connection after the server had committed.
  t.diagnostic(`stored rows: ${rows.length}, stored without a 201 seen: ${rows.length - accepted.size}`)
  assert.ok(rows.length - accepted.size <= WORKERS, 'at most one unacknowledged row per client')

  // The log tells the same story: every line JSON, the drain reported, no timeout.
  const logs = jsonLines(svc.stdout())
  const shuttingDown = logs.find(l => l.msg === 'shutting down')
  assert.ok(shuttingDown !== undefined && shuttingDown.signal === 'SIGTERM')
  assert.equal(shuttingDown.starting, false, 'the signal came after start-up (the load ran against the started service)')
  const stopped = logs.find(l => l.msg === 'stopped')
  assert.ok(stopped !== undefined, 'the stopped line was logged')
  assert.equal(stopped.drained, 2, 'both listener threads reported drained')
  assert.equal(logs.filter(l => typeof l.level === 'number' && l.level >= 50).length, 0, `no error lines:\n${svc.stdout()}`)
  assert.equal(svc.stderr(), '')
})

test('SIGTERM during start-up: the service finishes starting, then stops in order and exits 0', async t => {
  const defer = deferrer(t)
  const db = await createTestDatabase()
  defer(() => db.drop())
  const port = await freePort()
  // Four listener threads take a while to start under tsx; the first answers /health long before.
  const svc = await spawnService({
    DATABASE_URL: db.url, PORT: String(port), HOST: '127.0.0.1', METRICS_PORT: '0', THREADS: '4',
    DELIVERY_ENABLED: 'true', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
  }, { port, waitForStarted: false })
  defer(() => svc.ensureStopped())
  const startedBeforeSignal = svc.stdout().includes('"msg":"listening"')
  svc.child.kill('SIGTERM')
  const exit = await svc.exited
  assert.equal(exit.code, 0, `exit code (signal ${String(exit.signal)})\nstdout:\n${svc.stdout()}\nstderr:\n${svc.stderr().slice(0, 2000)}`)
  assert.equal(startedBeforeSignal, false, 'the signal arrived before start-up completed')
  const logs = jsonLines(svc.stdout())
  const i = logs.findIndex(l => l.msg === 'shutting down')
  assert.ok(i >= 0)
  assert.equal(logs[i]!.starting, true)
  assert.ok(logs.findIndex(l => l.msg === 'listening') > i, 'start-up completed after the signal')
  const stopped = logs.find(l => l.msg === 'stopped')
  assert.ok(stopped !== undefined)
  assert.equal(stopped.drained, 4, 'every listener drained')
  assert.equal(svc.stderr(), '')
})

test('a request on an idle keep-alive connection after the drain released the database is refused at the connection level', async t => {
  const defer = deferrer(t)
  const db = await createTestDatabase()
  defer(() => db.drop())
  const port = await freePort()
  const svc = await spawnService({
    DATABASE_URL: db.url, PORT: String(port), HOST: '127.0.0.1', METRICS_PORT: '0', THREADS: '2',
    DELIVERY_ENABLED: 'false', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
  }, { port })
  defer(() => svc.ensureStopped())

  // One raw keep-alive connection: a first request answered, then idle. Refused means closed with no
  // response bytes, by FIN or by reset (ECONNRESET, or EPIPE on the write): both are kept, not thrown.
  const sock = connect(port, '127.0.0.1')
  let sockError: string | null = null
  sock.on('error', (err: NodeJS.ErrnoException) => { sockError = err.code ?? err.message })
  defer(() => { sock.destroy() })
  sock.setNoDelay(true)
  await once(sock, 'connect')
  let received = ''
  sock.setEncoding('utf8').on('data', (d: string) => { received += d })
  const closed = new Promise<void>(resolve => { sock.once('close', () => { resolve() }) })
  sock.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitFor(() => /\r\n\r\n\{"status":"ok"[^}]*\}/.test(received), 30_000, 'the first response')
  assert.match(received, /^HTTP\/1\.1 200 /)
  assert.doesNotMatch(received, /connection: close/i, 'the first response keeps the connection open')
  received = ''

  svc.child.kill('SIGTERM')
  // Each listener logs when its drain is over (and it releases its database client).
  await waitFor(() => jsonLines(svc.stdout()).filter(l => typeof l.msg === 'string' && l.msg.startsWith('drained')).length === 2,
    60_000, 'both listeners to finish draining')
  // The drain may already have closed the idle connection too (App.close()); then the write fails.
  if (!sock.destroyed) sock.write('GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n')
  await closed
  assert.equal(received, '', 'no response bytes: the connection was closed instead of answered from a released pool')
  assert.ok(sockError === null || CONNECTION_LEVEL.has(sockError), `closed at the connection level, not ${String(sockError)}`)
  const exit = await svc.exited
  assert.equal(exit.code, 0, `exit code (signal ${String(exit.signal)})\nstderr:\n${svc.stderr().slice(0, 2000)}`)
  assert.equal(svc.stderr(), '')
})

/** Processes whose command line mentions `needle` (read from /proc; nothing is signalled). */
async function processesMentioning (needle: string): Promise<number[]> {
  const pids: number[] = []
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue
    let cmd: string
    try { cmd = (await readFile(`/proc/${e}/cmdline`, 'utf8')).replaceAll('\0', ' ') } catch { continue } // exited meanwhile
    if (cmd.includes(needle)) pids.push(Number(e))
  }
  return pids
}

test('npm start on a fresh machine: builds, starts the embedded PostgreSQL, serves, stops cleanly', { timeout: 120_000 }, async t => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'triggers-start-'))
  // As root the embedded PostgreSQL runs as the postgres OS user, which must reach DATA_DIR.
  await chmod(dataDir, 0o755)
  const port = await freePort()
  const metricsPort = await freePort()
  const env: Record<string, string> = { DATA_DIR: dataDir, PORT: String(port), METRICS_PORT: String(metricsPort), HOST: '127.0.0.1', LOG_LEVEL: 'info' }
  const defer = deferrer(t)
  defer(async () => {
    // Only if a failure left it behind: the PostgreSQL this test started (its unique DATA_DIR is in
    // its command line) is stopped by pid, then the directory is removed.
    for (const pid of await processesMentioning(dataDir)) {
      try { process.kill(pid, 'SIGTERM') } catch { /* already gone */ }
    }
    await rm(dataDir, { recursive: true, force: true })
  })
  const svc = await spawnService(env, { port, args: ['scripts/start.js'], readyTimeoutMs: 90_000 })
  defer(() => svc.ensureStopped())
  assert.equal('DATABASE_URL' in env, false)

  const health = await request(svc.base + '/health', { reset: true })
  assert.equal(health.statusCode, 200)
  assert.equal((await health.body.json() as { status: string }).status, 'ok')
  const ready = await request(svc.base + '/health/ready', { reset: true })
  assert.equal(ready.statusCode, 200)
  assert.equal((await ready.body.json() as { database: string }).database, 'connected')
  const gen = await request(svc.base + '/api/keys/generate', {
    method: 'POST',
    reset: true,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ organization_name: 'Fresh Machine' }),
  })
  assert.equal(gen.statusCode, 201)
  const key = (await gen.body.json() as { api_key: string }).api_key
  const ev = await request(svc.base + '/api/events', {
    method: 'POST',
    reset: true,
    headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify({ type: 'fresh.start', payload: {} }),
  })
  assert.equal(ev.statusCode, 201)
  await ev.body.dump()
  const metrics = await request(`http://127.0.0.1:${metricsPort}/metrics`, { reset: true })
  assert.equal(metrics.statusCode, 200)
  assert.match(await metrics.body.text(), /^triggers_events_accepted_total 1$/m)

  // The embedded PostgreSQL runs from DATA_DIR, and the service runs compiled JavaScript.
  assert.ok((await processesMentioning(dataDir)).length >= 1, 'a PostgreSQL process uses DATA_DIR')
  const logs = jsonLines(svc.stdout())
  assert.ok(logs.some(l => l.msg === 'DATABASE_URL is unset: starting the embedded PostgreSQL'))
  assert.ok(logs.some(l => l.msg === 'listening' && l.embedded === true))

  const sigtermAt = performance.now()
  svc.child.kill('SIGTERM')
  const exit = await svc.exited
  t.diagnostic(`npm start: SIGTERM to exit ${Math.round(exit.at - sigtermAt)} ms`)
  assert.equal(exit.code, 0, `exit code (signal ${String(exit.signal)})\nstderr:\n${svc.stderr()}`)
  // PostgreSQL's backends may outlive the postmaster's exit by a moment.
  await waitFor(async () => (await processesMentioning(dataDir)).length === 0, 10_000, 'no process using DATA_DIR')
  assert.ok(jsonLines(svc.stdout()).some(l => l.msg === 'stopped'))
})
