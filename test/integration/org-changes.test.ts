/**
 * Organization changes between nodes (primary/org-change-watch.ts): LISTEN/NOTIFY on
 * `triggers_org_changes`, and what a node does when it cannot be sure it hears them.
 *
 * 1. Two real service processes on one database. A key rotated on node A is refused on every listener
 *    thread of node B, and B logs that it learned of the change by NOTIFY (the mechanism; the
 *    rotation poll would evict it too, later). `notifyOrganizationChanged` reaches B the same way.
 * 2. One in-process service whose database connections go through a TCP proxy. Cutting the proxy
 *    loses the LISTEN connection: the primary drops every listener's cache and holds it empty, so a
 *    key verified before the cut is no longer answered from a cache (503, the database being gone,
 *    where a cache would have let the request reach its 400). Restored, caching resumes.
 * 3. The LISTEN backend terminated with the database up: postgres.js re-LISTENs at once, and since
 *    notifications in between are lost, the caches are dropped (the next request is a cache miss).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.ts'
import { deferrer, jsonLines, spawnService, type ChildService } from '../helpers/child-service.ts'
import { freshRequest, threadOf, type FreshResponse } from '../helpers/fresh.ts'
import { TcpProxy } from '../helpers/tcp-proxy.ts'
import { memoryLogger } from '../helpers/memory-log.ts'
import { freePort } from '../../src/lib/free-port.ts'
import { loadConfig } from '../../src/config/load.ts'
import { startService, type RunningService } from '../../src/service.ts'
import { notifyOrganizationChanged } from '../../src/db/queries/notify-organization-changes.ts'

const THREADS = 2

/**
 * Sends `send()` (each on a fresh connection, so the kernel spreads them over the listener threads)
 * until every thread has answered `status`; fails on any status outside `allowed`.
 */
async function untilEveryThread (send: () => Promise<FreshResponse>, status: number, allowed: readonly number[], what: string): Promise<void> {
  const seen = new Set<string>()
  await waitFor(async () => {
    const r = await send()
    assert.ok(allowed.includes(r.status), `${what}: unexpected ${r.status} ${r.text}`)
    if (r.status === status) seen.add(threadOf(r.headers))
    return seen.size === THREADS
  }, 30_000, what)
}

function changeLines (svc: ChildService, organizationId: string, via: string): number {
  return jsonLines(svc.stdout()).filter(l => l.msg === 'organization changed' && l.organizationId === organizationId && l.via === via).length
}

describe('two nodes on one database', () => {
  let db: TestDatabase
  let a: ChildService
  let b: ChildService
  let cleanup: Array<() => Promise<unknown>> = []

  before(async () => {
    db = await createTestDatabase()
    cleanup.push(async () => await db.drop())
    const env = (port: number): Record<string, string> => ({
      DATABASE_URL: db.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      METRICS_PORT: '0',
      THREADS: String(THREADS),
      DELIVERY_ENABLED: 'false',
      LOG_LEVEL: 'debug',
      KEYGEN_RATE_LIMIT_PER_MINUTE: '1000',
    })
    const pa = await freePort()
    a = await spawnService(env(pa), { port: pa })
    cleanup.push(async () => await a.ensureStopped())
    const pb = await freePort()
    b = await spawnService(env(pb), { port: pb })
    cleanup.push(async () => await b.ensureStopped())
  })
  after(async () => {
    for (const fn of cleanup.reverse()) await fn()
    cleanup = []
  })

  test('a key rotated on node A is refused on every thread of node B, which heard it by NOTIFY', async t => {
    const gen = await freshRequest(a.base, 'POST', '/api/keys/generate', { body: { organization_name: 'Two Nodes', tier: 'enterprise' } })
    assert.equal(gen.status, 201, gen.text)
    const oldKey: string = gen.json.api_key
    const orgId: string = gen.json.organization_id
    // Both of B's listener threads verify the key and cache it.
    await untilEveryThread(async () => await freshRequest(b.base, 'GET', '/api/keys', { key: oldKey }), 200, [200], 'the key cached on every thread of B')

    const rotated = await freshRequest(a.base, 'POST', '/api/keys/rotate', { key: oldKey })
    assert.equal(rotated.status, 200, rotated.text)
    const t0 = performance.now()
    await untilEveryThread(async () => await freshRequest(b.base, 'GET', '/api/keys', { key: oldKey }), 401, [200, 401], 'the old key refused on every thread of B')
    t.diagnostic(`old key refused on both threads of B ${Math.round(performance.now() - t0)} ms after A answered the rotation`)
    // The mechanism: B evicted on the notification (the one-second poll is only the fallback).
    await waitFor(() => changeLines(b, orgId, 'notify') > 0, 10_000, "B's log of the notification")

    const newKey: string = rotated.json.api_key
    await untilEveryThread(async () => await freshRequest(b.base, 'GET', '/api/keys', { key: newKey }), 200, [200], 'the new key on every thread of B')

    // The function other changes (tier, endpoints) call reaches B the same way.
    const before = changeLines(b, orgId, 'notify')
    await notifyOrganizationChanged(db.sql, orgId)
    await waitFor(() => changeLines(b, orgId, 'notify') > before, 10_000, 'B to hear notifyOrganizationChanged')
  })
})

describe('a node that loses its LISTEN connection', () => {
  let db: TestDatabase
  let proxy: TcpProxy
  let svc: RunningService
  let base: string
  let metricsPort: number
  let lines: Array<Record<string, unknown>>
  let key: string

  before(async () => {
    db = await createTestDatabase()
    proxy = TcpProxy.for(db.url)
    await proxy.listen()
    metricsPort = await freePort()
    const config = loadConfig({
      DATABASE_URL: proxy.proxied(db.url),
      PORT: '0',
      HOST: '127.0.0.1',
      THREADS: String(THREADS),
      DELIVERY_ENABLED: 'false',
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      KEYGEN_RATE_LIMIT_PER_MINUTE: '1000',
    })
    const mem = memoryLogger('debug')
    lines = mem.lines
    svc = await startService(config, mem.log)
    base = `http://127.0.0.1:${svc.port}`
    await waitFor(() => lines.some(l => l.msg === 'organization changes LISTEN established'), 15_000, 'the first LISTEN')
    const gen = await freshRequest(base, 'POST', '/api/keys/generate', { body: { organization_name: 'Lost Listen', tier: 'enterprise' } })
    assert.equal(gen.status, 201, gen.text)
    key = gen.json.api_key
  })
  after(async () => {
    await svc?.stop()
    await proxy?.cut()
    await db?.drop()
  })

  // An authenticated request that needs the database only to authenticate: a cached key gets 400.
  const probe = async (): Promise<FreshResponse> => await freshRequest(base, 'POST', '/api/events', { key, body: {} })

  test('cut: the caches are dropped and held (no key answered from them) until LISTEN is back', async t => {
    let cut = false
    deferrer(t)(async () => { if (cut) await proxy.restore() })
    await untilEveryThread(probe, 400, [400], 'the key cached on every thread')
    const lost = (): number => lines.filter(l => l.msg === 'organization changes LISTEN lost; listener caches dropped and held until it is back').length
    const lostBefore = lost()

    await proxy.cut()
    cut = true
    await waitFor(() => lost() > lostBefore, 15_000, 'the primary to notice the lost LISTEN')
    // Held: every thread now needs the database to authenticate, and it is gone.
    await untilEveryThread(probe, 503, [503], 'every thread refusing its cache')

    await proxy.restore()
    cut = false
    await waitFor(() => lines.some(l => l.msg === 'organization changes LISTEN re-established; listener caches dropped' || l.msg === 'organization changes heard again; listener caches dropped and released'), 15_000, 'LISTEN back')
    await untilEveryThread(probe, 400, [400, 503], 'every thread verifying and caching again')
  })

  test('the LISTEN backend terminated: re-LISTENed at once, and the caches are dropped', async () => {
    await untilEveryThread(probe, 400, [400], 'the key cached on every thread')
    const misses = async (): Promise<number> => {
      const r = await request(`http://127.0.0.1:${metricsPort}/metrics`, { reset: true })
      const text = await r.body.text()
      let n = 0
      for (const m of text.matchAll(/^triggers_auth_cache_misses_total(?:\{[^}]*\})? (\S+)$/gm)) n += Number(m[1])
      return n
    }
    // Cached: another request is a hit (tried again only if the watch dropped the caches meanwhile,
    // e.g. a heartbeat late on a busy machine).
    const watchLines = (): number => lines.filter(l => String(l.msg).startsWith('organization changes')).length
    for (let attempt = 0; ; attempt++) {
      const [m0, w0] = [await misses(), watchLines()]
      assert.equal((await probe()).status, 400)
      if (await misses() === m0) break
      assert.ok(watchLines() > w0 && attempt < 5, 'a cached key is a cache hit')
    }

    const reestablished = (): number => lines.filter(l => l.msg === 'organization changes LISTEN re-established; listener caches dropped').length
    const before = reestablished()
    const killed = await db.sql<{ ok: boolean }[]>`
      select pg_terminate_backend(pid) as ok from pg_stat_activity
       where datname = current_database() and application_name = 'triggers-primary' and query ilike 'listen %'`
    assert.equal(killed.length, 1, 'exactly one LISTEN connection')
    await waitFor(() => reestablished() > before, 15_000, 'the re-LISTEN')

    const m1 = await misses()
    assert.equal((await probe()).status, 400)
    assert.equal(await misses(), m1 + 1, 'the cached key was dropped: a miss')
  })
})
