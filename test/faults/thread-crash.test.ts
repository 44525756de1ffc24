/**
 * Threads that die are replaced and the work goes on, on the real service started in-process (real
 * listener threads, a real delivery thread, a real local receiver). The faults are made from the
 * outside, with no hook in the service:
 *   - the delivery thread is killed with `worker.terminate()` while attempts are in flight (what an
 *     uncaught error or a fatal V8 error does to it: the thread ends at once, results unwritten,
 *     leases held). The supervisor starts a new one; every event is delivered, the interrupted
 *     attempts again once their leases expire (duplicates counted, not failed on).
 *   - a listener thread ends while clients are sending (it is told to drain on its own, so it stops
 *     accepting, answers what it has and exits: a uWS listener must never be terminated, see
 *     src/threads/spawn.ts). The supervisor starts a replacement that serves on the same port; no
 *     client gets an error answer, every acknowledged event is stored.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestService } from '../helpers/server.ts'
import { waitFor } from '../helpers/db.ts'
import { OK, Receiver, type Reply } from '../helpers/delivery.ts'
import { freshRequest, threadOf } from '../helpers/fresh.ts'
import type { PrimaryToListener } from '../../src/threads/protocol.ts'
import { Load } from './helpers/load.ts'

const DELIVERY_TIMEOUT_MS = 1000

let hold: Promise<void> | null = null
const rx = await Receiver.start(async (): Promise<Reply> => {
  if (hold !== null) await hold
  return OK
})
const svc = await startTestService({
  THREADS: '2',
  DELIVERY_ENABLED: 'true',
  // An interrupted attempt's lease is DELIVERY_TIMEOUT_MS + 10 s.
  DELIVERY_TIMEOUT_MS: String(DELIVERY_TIMEOUT_MS),
  DELIVERY_RETRY_DELAYS_MS: '100,200,400',
})
after(async () => {
  await rx.close()
  await svc.stop()
})

async function orgWithWebhook (name: string): Promise<{ key: string, id: string }> {
  const org = await svc.createOrg('enterprise', name)
  const r = await svc.api('POST', '/api/webhook/config', { key: org.key, body: { webhook_url: rx.url() } })
  assert.equal(r.status, 200, r.text)
  return org
}

async function sendEvents (key: string, n: number, type: string): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const r = await svc.api('POST', '/api/events', { key, body: { type, payload: { i } } })
    assert.equal(r.status, 201, r.text)
    ids.push(r.json.id)
  }
  return ids
}

function seenCounts (): Map<string, number> {
  const m = new Map<string, number>()
  for (const s of rx.seen) { const id = String(s.headers['x-event-id']); m.set(id, (m.get(id) ?? 0) + 1) }
  return m
}

async function allDelivered (orgId: string, ids: readonly string[], timeoutMs: number, what: string): Promise<void> {
  await waitFor(() => { const seen = seenCounts(); return ids.every(id => seen.has(id)) }, timeoutMs, what)
  await waitFor(async () => {
    const rows = await svc.db.sql<{ id: string }[]>`
      select event_id::text as id from deliveries where organization_id = ${orgId} and status = 'delivered'`
    const delivered = new Set(rows.map(r => r.id))
    return ids.every(id => delivered.has(id))
  }, timeoutMs, `${what}: recorded as delivered`)
}

test('a delivery thread killed with attempts in flight is replaced, and every event is delivered', { timeout: 60_000 }, async t => {
  const delivery = svc.svc.delivery
  assert.ok(delivery !== null)
  const org = await orgWithWebhook('Delivery Crash Org')
  const before = await sendEvents(org.key, 10, 'crash.before')
  await allDelivered(org.id, before, 15_000, 'deliveries before the crash')

  let release!: () => void
  hold = new Promise(resolve => { release = resolve })
  const inFlight = await sendEvents(org.key, 10, 'crash.in_flight')
  await waitFor(() => rx.inFlight >= 5, 15_000, 'attempts in flight at the receiver')
  const dead = delivery.worker
  const restartsBefore = delivery.restarts
  const killedAt = performance.now()
  await dead.terminate()
  await waitFor(() => delivery.worker !== dead, 10_000, 'a replacement delivery thread')
  const replacedMs = performance.now() - killedAt
  hold = null
  release()

  const after = await sendEvents(org.key, 10, 'crash.after')
  await allDelivered(org.id, after, 15_000, 'events sent after the crash')
  const afterMs = performance.now() - killedAt
  // The interrupted attempts come back when their leases expire.
  await allDelivered(org.id, inFlight, DELIVERY_TIMEOUT_MS + 30_000, 'the attempts the crash interrupted')
  const allMs = performance.now() - killedAt

  const seen = seenCounts()
  let duplicates = 0
  for (const id of [...before, ...inFlight, ...after]) duplicates += (seen.get(id) ?? 0) - 1
  t.diagnostic(`replacement started ${Math.round(replacedMs)} ms after the kill; new events delivered by ${Math.round(afterMs)} ms; ` +
    `interrupted ones by ${Math.round(allMs)} ms (lease ${DELIVERY_TIMEOUT_MS} + 10,000 ms); ${duplicates} duplicate deliveries`)
  assert.equal(delivery.restarts, restartsBefore + 1)
})

test('a listener thread that ends under load is replaced; clients see no error answer and nothing is lost', { timeout: 60_000 }, async t => {
  const org = await svc.createOrg('enterprise', 'Listener Crash Org')
  const prefixes = new Set<string>()
  await waitFor(async () => {
    const r = await freshRequest(svc.base, 'GET', '/api/keys', { key: org.key })
    assert.equal(r.status, 200)
    prefixes.add(threadOf(r.headers))
    return prefixes.size === 2
  }, 10_000, 'answers from both listener threads')

  const load = new Load({ base: svc.base, key: org.key, workers: 4, batchEvery: 4, batchSize: 5 }).start()
  await waitFor(() => load.accepted.size >= 100, 15_000, '100 acknowledged events')
  const listener = svc.svc.listeners[0]!
  const ended = listener.worker
  listener.post({ v: 1, type: 'drain' } satisfies PrimaryToListener)
  await waitFor(() => listener.worker !== ended, 15_000, 'a replacement listener thread')
  const atReplacement = load.accepted.size
  // The replacement answers on the same port: a request id prefix not seen before appears.
  await waitFor(async () => {
    const r = await freshRequest(svc.base, 'GET', '/api/keys', { key: org.key })
    assert.equal(r.status, 200)
    return !prefixes.has(threadOf(r.headers))
  }, 15_000, 'an answer from the replacement thread')
  await waitFor(() => load.accepted.size >= atReplacement + 100, 15_000, '100 more acknowledged events')
  await load.stop()

  const rows = await svc.db.sql<{ id: string }[]>`select id::text from events where organization_id = ${org.id}`
  const stored = new Set(rows.map(r => r.id))
  const lost = [...load.accepted].filter(id => !stored.has(id))
  t.diagnostic(`${load.summary()}; restarts of the listener slot: ${listener.restarts}; lost: ${lost.length}`)
  assert.deepEqual(load.unexpected, [], 'every answer is a 201 or a 200 batch')
  assert.deepEqual([...load.statuses.keys()].filter(s => s !== 201 && s !== 200), [])
  assert.deepEqual(load.otherFailures(), [], 'failures other than a closed connection')
  assert.deepEqual(lost, [], 'every acknowledged event is stored')
  assert.equal(listener.restarts, 1)
})
