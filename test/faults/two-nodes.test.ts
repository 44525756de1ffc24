/**
 * The two-node layout of README "Running several nodes", as real processes on one database: node A
 * serves the API only (DELIVERY_ENABLED=false), node B serves the API and delivers. Clients send to
 * both. Checked:
 *   - events acknowledged by either node are delivered by B (A's commits wake B by NOTIFY);
 *   - B killed with SIGKILL: A keeps acknowledging events (nothing on the ingest path needs B), and
 *     they wait, stored, until a delivering node is back; B restarted delivers every one of them.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createTestDatabase, waitFor } from '../helpers/db.ts'
import { deferrer } from '../helpers/child-service.ts'
import { OK, Receiver } from '../helpers/delivery.ts'
import { Load } from './helpers/load.ts'
import { createOrg, warmNode } from './helpers/org.ts'
import { startServiceProcess } from './helpers/service.ts'

const DELIVERING = { DELIVERY_ENABLED: 'true', DELIVERY_TIMEOUT_MS: '2000', DELIVERY_RETRY_DELAYS_MS: '200,400,800' }

test('an API-only node and a delivering node on one database; the delivering node killed and restarted', { timeout: 150_000 }, async t => {
  const defer = deferrer(t)
  const db = await createTestDatabase()
  defer(() => db.drop())
  const rx = await Receiver.start(() => OK)
  defer(() => rx.close())
  const [a, b] = await Promise.all([
    startServiceProcess(db.url, { DELIVERY_ENABLED: 'false' }),
    startServiceProcess(db.url, DELIVERING),
  ])
  defer(() => a.ensureStopped())
  defer(() => b.ensureStopped(5000))
  const org = await createOrg(a.base, 'Two Nodes Org', rx.url())
  await warmNode(b.base, org.key)
  const seen = (): Set<string> => new Set(rx.seen.map(s => String(s.headers['x-event-id'])))
  const missing = (ids: Iterable<string>): string[] => { const s = seen(); return [...ids].filter(id => !s.has(id)) }

  // Both nodes take events; B delivers all of them.
  const toA = new Load({ base: a.base, key: org.key, workers: 4, batchEvery: 4, batchSize: 5, type: 'via.a' }).start()
  const toB = new Load({ base: b.base, key: org.key, workers: 4, batchEvery: 4, batchSize: 5, type: 'via.b' }).start()
  defer(() => toA.stop())
  defer(() => toB.stop())
  await waitFor(() => toA.accepted.size >= 300 && toB.accepted.size >= 300, 30_000, '300 acknowledged events on each node')
  await Promise.all([toA.stop(), toB.stop()])
  await waitFor(() => missing([...toA.accepted, ...toB.accepted]).length === 0, 60_000, 'every event of both nodes delivered')
  const deliveredByB = seen().size

  // B dies; A keeps acknowledging; nothing is delivered meanwhile.
  b.child.kill('SIGKILL')
  await b.exited
  const alone = new Load({ base: a.base, key: org.key, workers: 4, batchEvery: 4, batchSize: 5, type: 'via.a.alone' }).start()
  defer(() => alone.stop())
  await waitFor(() => alone.accepted.size >= 300, 30_000, '300 acknowledged events on A without a delivering node')
  await alone.stop()
  const waiting = missing(alone.accepted).length

  // A delivering node again: every event acknowledged by A meanwhile is delivered.
  const b2 = await startServiceProcess(db.url, DELIVERING)
  defer(() => b2.ensureStopped())
  await waitFor(() => missing(alone.accepted).length === 0, 60_000, 'every event acknowledged while no node delivered')

  const rows = await db.sql<{ id: string }[]>`select id::text from events where organization_id = ${org.id}`
  const stored = new Set(rows.map(r => r.id))
  const lost = [...toA.accepted, ...toB.accepted, ...alone.accepted].filter(id => !stored.has(id))
  let duplicates = 0
  const counts = new Map<string, number>()
  for (const s of rx.seen) { const id = String(s.headers['x-event-id']); counts.set(id, (counts.get(id) ?? 0) + 1) }
  for (const n of counts.values()) duplicates += n - 1
  t.diagnostic(`A: ${toA.summary()}`)
  t.diagnostic(`B: ${toB.summary()}`)
  t.diagnostic(`A alone: ${alone.summary()}`)
  t.diagnostic(`delivered by B before the kill: ${deliveredByB}; acknowledged by A while no node delivered: ${alone.accepted.size}, of which undelivered before B came back: ${waiting}; lost: ${lost.length}; duplicate deliveries: ${duplicates}`)
  assert.deepEqual(lost, [], 'every acknowledged event is stored')
  assert.deepEqual([...toA.unexpected, ...toB.unexpected, ...alone.unexpected], [])
  assert.deepEqual([...toA.otherFailures(), ...toB.otherFailures(), ...alone.otherFailures()], [], 'every request was answered')
  assert.ok(waiting > 0, 'events acknowledged while no node delivered waited for one')
  const exits = await Promise.all([a.ensureStopped(), b2.ensureStopped()])
  assert.deepEqual(exits.map(e => e.code), [0, 0])
})
