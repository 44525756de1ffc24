/**
 * Overload: more events than the database takes. The service process (two listener threads,
 * WRITER_MAX_QUEUE=16) takes events and batches from 64 clients while its writes cannot complete: a
 * transaction of the test holds a lock on `events` that every insert waits for (a database that has
 * stopped keeping up; reads, authentication and rate-limit leases still work). Checked:
 *   - past the bounded writer queue every further event is answered 503 `unavailable` with
 *     Retry-After without waiting for the database: 5,000 such answers arrive while no write can
 *     complete (how long a refusal takes is printed, not asserted: speed belongs to the bench);
 *   - no more events wait than the bound: at most THREADS × WRITER_MAX_QUEUE events of requests sent
 *     during the stall are acknowledged later;
 *   - resident memory stays bounded while thousands of requests are refused;
 *   - when the lock goes, the queued events commit (201) and every acknowledged event is stored.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createTestDatabase, waitFor } from '../helpers/db.ts'
import { deferrer } from '../helpers/child-service.ts'
import { Load } from './helpers/load.ts'
import { createOrg } from './helpers/org.ts'
import { MemoryWatch, mb, resident } from './helpers/memory.ts'
import { startServiceProcess } from './helpers/service.ts'

const THREADS = 2
const WRITER_MAX_QUEUE = 16
/** Resident memory may grow this much over its level before the stall while requests are refused. */
const STALL_GROWTH_MB = 64

test('past WRITER_MAX_QUEUE: quick 503s with bounded memory, and the queue commits when the database catches up', { timeout: 120_000 }, async t => {
  const defer = deferrer(t)
  const db = await createTestDatabase()
  defer(() => db.drop())
  const svc = await startServiceProcess(db.url, { THREADS: String(THREADS), DELIVERY_ENABLED: 'false', WRITER_MAX_QUEUE: String(WRITER_MAX_QUEUE) })
  defer(() => svc.ensureStopped())
  const memory = new MemoryWatch(svc.pid)
  defer(() => { memory.stop() })
  const org = await createOrg(svc.base, 'Overload Org')

  // Warm up (keys cached, rate-limit slices leased) with writes that complete.
  const warm = new Load({ base: svc.base, key: org.key, workers: 16 }).start()
  await waitFor(() => warm.accepted.size >= 300, 30_000, '300 acknowledged events while warming up')
  await warm.stop()
  const baseMb = memory.sample()?.rssMb ?? 0
  memory.mark()

  // The database stops completing writes.
  let unlock!: () => void
  const released = new Promise<void>(resolve => { unlock = resolve })
  const holder = db.sql.begin(async tx => {
    await tx`lock table events in exclusive mode`
    await released
  })
  defer(() => { unlock(); return holder })
  await waitFor(async () => {
    const [r] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from pg_locks where relation = 'events'::regclass and mode = 'ExclusiveLock' and granted`
    return r?.n === 1
  }, 10_000, 'the lock on events')

  const load = new Load({ base: svc.base, key: org.key, workers: 64, batchEvery: 8, batchSize: 4 }).start()
  defer(() => load.stop())
  await waitFor(() => load.count(503) >= 5000, 60_000, '5,000 answers of 503 while writes stall')
  const stall = { s503: load.count(503), acked: load.accepted.size, slowest503: load.slowest.get(503) ?? 0, waiting: load.waiting }
  const stallMaxMb = memory.mark()

  // Taken before the release: a request sent while the lock's transaction commits may already be
  // queued and answered at once, and must not count as one that waited through the stall.
  const unlockedAt = performance.now()
  unlock()
  await holder
  await waitFor(() => load.firstAckAfter(unlockedAt) !== null && load.accepted.size >= 500, 30_000, '500 acknowledged events after the stall')
  await load.stop()
  const heldThenAcked = load.ackedSentBefore(unlockedAt)
  const { peakMb } = resident(svc.pid)

  t.diagnostic(`stall: ${stall.s503} answers of 503 (slowest ${Math.round(stall.slowest503)} ms), ${stall.acked} acknowledged during it, ${stall.waiting} of 64 clients waiting at its end`)
  t.diagnostic(`events of requests sent during the stall and acknowledged after it: ${heldThenAcked} (bound THREADS × WRITER_MAX_QUEUE = ${THREADS * WRITER_MAX_QUEUE})`)
  t.diagnostic(`RSS: ${mb(baseMb)} before the stall, max ${mb(stallMaxMb)} during it, peak (VmHWM) ${mb(peakMb)}`)
  t.diagnostic(load.summary())

  assert.equal(stall.acked, 0, 'nothing is acknowledged while writes cannot commit')
  assert.deepEqual(load.unexpected, [], 'every answer is 201, a 200 batch, or 503 unavailable with Retry-After')
  assert.deepEqual(load.otherFailures(), [], 'no request hung or failed at the connection level')
  assert.ok(heldThenAcked <= THREADS * WRITER_MAX_QUEUE, `${heldThenAcked} events waited through the stall`)
  assert.ok(stallMaxMb < baseMb + STALL_GROWTH_MB, `RSS grew from ${mb(baseMb)} to ${mb(stallMaxMb)} during the stall`)

  const rows = await db.sql<{ id: string }[]>`select id::text from events where organization_id = ${org.id}`
  const stored = new Set(rows.map(r => r.id))
  const lost = [...load.accepted].filter(id => !stored.has(id))
  t.diagnostic(`stored ${stored.size} events for ${load.accepted.size + warm.accepted.size} acknowledged; lost: ${lost.length}`)
  assert.deepEqual(lost, [], 'every acknowledged event is stored')
  const exit = await svc.ensureStopped()
  assert.equal(exit.code, 0, svc.stderr().slice(0, 2000))
})
