/**
 * `kill -9` of the real service process under load. The service (`triggers-api serve`, two listener
 * threads, a delivery thread) takes POST /api/events and POST /api/events/batch from 16 clients and
 * delivers to a real local receiver; it is SIGKILLed in the middle of that — no drain, no flush, leases
 * left behind. Then:
 *   - every event a client saw acknowledged (a 201, or a `created` item of a 200 batch) is a stored
 *     row with its delivery: 0 lost;
 *   - a new process on the same database delivers every stored event to the receiver at least once
 *     (attempts the killed process had in flight come back when their leases expire); duplicates are
 *     counted and printed, not failed on (delivery is at-least-once; receivers dedupe on webhook-id).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createTestDatabase, waitFor } from '../helpers/db.ts'
import { deferrer } from '../helpers/child-service.ts'
import { OK, Receiver } from '../helpers/delivery.ts'
import { Load } from './helpers/load.ts'
import { createOrg } from './helpers/org.ts'
import { MemoryWatch, mb } from './helpers/memory.ts'
import { startServiceProcess } from './helpers/service.ts'

const DELIVERY_TIMEOUT_MS = 2000

const ENV = {
  DELIVERY_ENABLED: 'true',
  // A lost attempt's lease is DELIVERY_TIMEOUT_MS + 10 s: it becomes due again that long after the kill.
  DELIVERY_TIMEOUT_MS: String(DELIVERY_TIMEOUT_MS),
  DELIVERY_RETRY_DELAYS_MS: '200,400,800,1600',
}

test('kill -9 under load: every acknowledged event is stored, and delivered after a restart', { timeout: 150_000 }, async t => {
  const defer = deferrer(t)
  const db = await createTestDatabase()
  defer(() => db.drop())
  const rx = await Receiver.start(() => OK)
  defer(() => rx.close())

  const first = await startServiceProcess(db.url, ENV)
  defer(() => first.ensureStopped(5000))
  const memory = new MemoryWatch(first.pid)
  defer(() => { memory.stop() })
  const org = await createOrg(first.base, 'Kill Org', rx.url())

  const load = new Load({ base: first.base, key: org.key, workers: 16, batchEvery: 5, batchSize: 10 }).start()
  defer(() => load.stop())
  await waitFor(() => load.accepted.size >= 2000 && rx.seen.length >= 200, 60_000, '2,000 acknowledged events and 200 deliveries')
  const peakMb = memory.sample()?.peakMb ?? 0
  first.child.kill('SIGKILL')
  const exit = await first.exited
  await load.stop()
  memory.stop()
  assert.equal(exit.signal, 'SIGKILL')
  const seenBeforeKill = rx.seen.length

  // Every acknowledgement is a stored row, with its delivery to the endpoint.
  const rows = await db.sql<{ id: string, deliveries: number }[]>`
    select e.id::text, (select count(*)::int from deliveries d where d.organization_id = e.organization_id and d.event_id = e.id) as deliveries
      from events e where e.organization_id = ${org.id}`
  const stored = new Map(rows.map(r => [r.id, r.deliveries]))
  const lost = [...load.accepted].filter(id => !stored.has(id))
  const withoutDelivery = [...stored].filter(([, n]) => n !== 1).map(([id]) => id)
  t.diagnostic(`at the kill: ${load.summary()}`)
  t.diagnostic(`stored ${stored.size} events for ${load.accepted.size} acknowledged (${stored.size - load.accepted.size} stored without an answer the client saw); lost: ${lost.length}`)
  t.diagnostic(`peak RSS of the killed process: ${mb(peakMb)}`)
  assert.deepEqual(lost, [], 'every acknowledged event is stored')
  assert.deepEqual(withoutDelivery, [], 'every stored event has its delivery')
  assert.deepEqual(load.unexpected, [])
  assert.deepEqual(load.otherFailures(), [], 'failures other than a lost connection')

  // A new process on the same database delivers everything stored, including what was in flight.
  const restartedAt = performance.now()
  const restartedAtMs = Date.now()
  const second = await startServiceProcess(db.url, ENV)
  defer(() => second.ensureStopped())
  const seenIds = (): Map<string, number> => {
    const m = new Map<string, number>()
    for (const s of rx.seen) { const id = String(s.headers['x-event-id']); m.set(id, (m.get(id) ?? 0) + 1) }
    return m
  }
  await waitFor(() => {
    const seen = seenIds()
    for (const id of stored.keys()) if (!seen.has(id)) return false
    return true
  }, 90_000, 'every stored event to reach the receiver')
  const allDeliveredMs = performance.now() - restartedAt
  await waitFor(async () => {
    const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where organization_id = ${org.id} and status <> 'delivered'`
    return r?.n === 0
  }, 30_000, 'every delivery to be recorded as delivered')

  const seen = seenIds()
  const firstAfter = rx.seen.slice(seenBeforeKill).find(s => s.at >= restartedAtMs)
  const undelivered = [...load.accepted].filter(id => !seen.has(id))
  let duplicates = 0
  for (const n of seen.values()) duplicates += n - 1
  t.diagnostic(`deliveries before the kill: ${seenBeforeKill}; after the restart: the first ${firstAfter === undefined ? '-' : firstAfter.at - restartedAtMs} ms, ` +
    `every stored event within ${Math.round(allDeliveredMs)} ms of starting the new process (the killed process's leases expire DELIVERY_TIMEOUT_MS + 10 s after it claimed them)`)
  t.diagnostic(`events lost: ${undelivered.length}; receiver requests ${rx.seen.length} for ${seen.size} events: ${duplicates} duplicates (at-least-once)`)
  assert.deepEqual(undelivered, [], 'every acknowledged event is delivered')

  const stop = await second.ensureStopped()
  assert.equal(stop.code, 0, second.stderr().slice(0, 2000))
})
