/**
 * The node-local rate-limit slots (src/rate-limit/shared-window.ts): spending exactly what was leased,
 * all or nothing; a new window starting from zero (also one 256 minutes later, whose tag is the same);
 * a thread with a lagging clock spending in the newer window; lease replies for a past window dropped;
 * the one-lease-per-key flag with its wake-up and stale takeover; the shutdown sweep claiming each
 * unspent token once; a full table; and real worker threads spending from one SharedArrayBuffer, where
 * the count must stay exact.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Worker } from 'node:worker_threads'
import { SharedWindows, allocateWindows } from '../../src/rate-limit/shared-window.ts'
import { workerEntry } from '../../src/threads/spawn.ts'
import { waitFor } from '../helpers/db.ts'

const W = Math.floor(Date.now() / 60_000)

/** A table with `id` entered in window `w` and `granted` tokens leased. */
function leased (id: number, granted: number, w = W, slots = 16): { t: SharedWindows, s: number } {
  const t = new SharedWindows(allocateWindows(slots))
  const s = t.slot(id)
  assert.equal(t.enter(s, w), w)
  assert.equal(t.grant(s, w, granted), granted)
  return { t, s }
}

test('allocateWindows: a power-of-two slot count, 32 bytes a slot', () => {
  assert.equal(allocateWindows(8).byteLength, 8 * 32)
  assert.equal(allocateWindows().byteLength, (1 << 18) * 32)
  assert.throws(() => allocateWindows(1000), RangeError)
})

test('spend: exactly the leased tokens, all or nothing', () => {
  const { t, s } = leased(7, 5)
  assert.equal(t.spend(s, W, 1), 1)
  assert.equal(t.granted, 5)
  assert.equal(t.spend(s, W, 3), 4)
  assert.equal(t.spend(s, W, 2), -1, 'two asked, one left: nothing spent')
  assert.equal(t.used(s, W), 4)
  assert.equal(t.spend(s, W, 1), 5)
  assert.equal(t.spend(s, W, 1), -1)
  assert.equal(t.used(s, W), 5)
  // Another id has a slot of its own, with nothing leased.
  const o = t.slot(8)
  assert.notEqual(o, s)
  assert.equal(t.enter(o, W), W)
  assert.equal(t.spend(o, W, 1), -1)
})

test('a new window starts from zero; lease replies for a past window are dropped', () => {
  const { t, s } = leased(1, 3)
  t.spend(s, W, 2)
  t.landed(s, W, 40, 6, 1234)
  assert.equal(t.enter(s, W + 1), W + 1)
  assert.equal(t.used(s, W + 1), 0)
  assert.equal(t.spend(s, W + 1, 1), -1, 'the old window\'s grant is gone')
  assert.equal(t.others(s, W + 1), 0)
  assert.equal(t.refillBelow(s, W + 1), 0)
  assert.equal(t.registered(s, W + 1), false)
  assert.equal(t.checkedAt(s, W + 1), -1)
  // A reply for W landing now changes nothing.
  assert.equal(t.grant(s, W, 10), -1)
  assert.equal(t.reserve(s, W, 1), -1)
  t.landed(s, W, 5, 5, 5)
  assert.equal(t.registered(s, W + 1), false)
  assert.equal(t.spend(s, W, 1), -1)
  // A window 256 minutes on carries the same tag, and still starts from zero.
  assert.equal(t.grant(s, W + 1, 4), 4)
  assert.equal(t.enter(s, W + 257), W + 257)
  assert.equal(t.spend(s, W + 257, 1), -1)
  assert.equal(t.used(s, W + 257), 0)
})

test('a thread whose clock still reads the previous minute spends in the newer window', () => {
  const { t, s } = leased(3, 5, W + 1)
  assert.equal(t.enter(s, W), W + 1, 'the lagging thread finds the newer window')
  assert.equal(t.spend(s, W + 1, 5), 5)
  assert.equal(t.enter(s, W), W + 1)
  assert.equal(t.spend(s, W + 1, 1), -1, 'and does not reset it')
})

test('reserve: a lease\'s own tokens are taken before its grant becomes spendable', () => {
  const { t, s } = leased(4, 2)
  t.spend(s, W, 2)
  // A lease of 5 for a request needing 1: reserve first, then grant.
  assert.equal(t.reserve(s, W, 1), 3)
  assert.equal(t.spend(s, W, 1), -1, 'USED passed GRANTED for an instant: others wait')
  assert.equal(t.grant(s, W, 5), 7)
  assert.equal(t.spend(s, W, 4), 7)
  assert.equal(t.spend(s, W, 1), -1)
  // spendUpTo takes what there is, and reserve(-k) gives it back.
  t.grant(s, W, 3)
  assert.equal(t.spendUpTo(s, W, 5), 3)
  assert.equal(t.spendUpTo(s, W, 5), 0)
  assert.equal(t.reserve(s, W, -3), 7)
  assert.equal(t.spend(s, W, 3), 10)
})

test('lease replies: others, refill mark, registration, when', () => {
  const { t, s } = leased(5, 10)
  assert.equal(t.registered(s, W), false)
  assert.equal(t.checkedAt(s, W), -1)
  t.landed(s, W, 30, 4, 2500)
  assert.equal(t.others(s, W), 30)
  assert.equal(t.refillBelow(s, W), 4)
  assert.equal(t.registered(s, W), true)
  assert.equal(t.checkedAt(s, W), 2500)
  t.stopRefill(s, W)
  assert.equal(t.refillBelow(s, W), 0)
  assert.equal(t.others(s, W), 30)
})

test('one lease per key at a time: try, release and wake, stale takeover', async () => {
  const { t, s } = leased(6, 0)
  assert.equal(t.leaseReleased(s, 1000), null, 'nothing in flight')
  const now = 1_700_000_000_000
  const stamp = t.tryLease(s, now, 10_000)
  assert.ok(stamp > 0)
  assert.equal(t.tryLease(s, now + 5, 10_000), 0, 'held')
  assert.equal(t.tryLease(s, now - 8, 10_000), 0, 'held, for a thread whose coarse clock lags a tick too')
  const woken = t.leaseReleased(s, 60_000)
  assert.ok(woken !== null)
  t.release(s, 12345) // not the holder's stamp: no effect
  assert.equal(t.tryLease(s, now + 6, 10_000), 0)
  t.release(s, stamp)
  assert.equal(await woken, 'ok')
  const again = t.tryLease(s, now + 7, 10_000)
  assert.ok(again > 0)
  // The holder died: its stamp goes stale and another thread takes over.
  assert.equal(t.tryLease(s, now + 9_000, 10_000), 0)
  const taken = t.tryLease(s, now + 10_007, 10_000)
  assert.ok(taken > 0 && taken !== again)
  t.release(s, again) // the late release of the dead holder does not free the new one's lease
  assert.equal(t.tryLease(s, now + 10_008, 10_000), 0)
})

test('sweep: each unspent token and registration is claimed once, past windows are skipped', () => {
  const t = new SharedWindows(allocateWindows(16))
  const a = t.slot(10)
  t.enter(a, W)
  t.grant(a, W, 8)
  t.spend(a, W, 3)
  t.landed(a, W, 0, 0, 1)
  const b = t.slot(11)
  t.enter(b, W - 1)
  t.grant(b, W - 1, 5)
  const c = t.slot(12)
  t.enter(c, W)
  t.grant(c, W, 2)
  t.spend(c, W, 2)
  t.landed(c, W, 0, 0, 1)
  const swept = t.sweep(W).sort((x, y) => x.id - y.id)
  assert.deepEqual(swept, [{ id: 10, window: W, tokens: 5, holder: 1 }, { id: 12, window: W, tokens: 0, holder: 1 }])
  assert.equal(t.spend(a, W, 1), -1, 'swept tokens are gone from the node')
  assert.deepEqual(t.sweep(W), [])
})

test('ids at both ends of the 31-bit range, and a full table', () => {
  const t = new SharedWindows(allocateWindows(4))
  const top = 2 ** 31 - 1
  const s = t.slot(top)
  assert.equal(t.slot(top), s)
  t.enter(s, W)
  t.grant(s, W, 3)
  t.landed(s, W, 0, 0, 0)
  assert.equal(t.spend(s, W, 3), 3)
  assert.deepEqual(t.sweep(W).map(u => u.id), [top])
  for (const id of [0, 1, 2]) assert.ok(t.slot(id) >= 0)
  // Four slots, four ids: a fifth has nowhere to go; known ids keep theirs.
  assert.equal(t.slot(3), -1)
  assert.equal(t.slot(0), t.slot(0))
})

async function hammer (sab: SharedArrayBuffer, workers: number, job: { ids: number[], hits: number, window: number }): Promise<Array<Map<number, number>>> {
  const gate = new SharedArrayBuffer(8)
  const g = new Int32Array(gate)
  const entry = workerEntry(new URL('../fixtures/window-worker.ts', import.meta.url))
  const threads = Array.from({ length: workers }, () => new Worker(entry.file, { argv: entry.argv, workerData: { sab, gate, ...job } }))
  try {
    const results = threads.map(async w => await new Promise<Map<number, number>>((resolve, reject) => {
      w.once('message', (m: unknown) => {
        if (!Array.isArray(m)) { reject(new TypeError('bad message from window-worker')); return }
        const spent = new Map<number, number>()
        for (const pair of m) {
          if (!Array.isArray(pair) || typeof pair[0] !== 'number' || typeof pair[1] !== 'number') { reject(new TypeError('bad pair')); return }
          spent.set(pair[0], pair[1])
        }
        resolve(spent)
      })
      w.once('error', reject)
      w.once('exit', code => { reject(new Error(`window-worker exited with ${code} before answering`)) })
    }))
    // Open the gate only when every worker is ready, so they really run at the same time.
    await waitFor(() => Atomics.load(g, 0) === workers, 20_000, 'workers ready')
    Atomics.store(g, 1, 1)
    Atomics.notify(g, 1)
    return await Promise.all(results)
  } finally {
    await Promise.all(threads.map(async w => await w.terminate()))
  }
}

test('4 threads × 500 spends of one key with 1000 leased: exactly 1000 spent', async () => {
  const sab = allocateWindows(1024)
  const t = new SharedWindows(sab)
  const s = t.slot(12345)
  t.enter(s, 777)
  t.grant(s, 777, 1000)
  const runs = await hammer(sab, 4, { ids: [12345], hits: 500, window: 777 })
  const total = runs.reduce((n, r) => n + (r.get(12345) ?? 0), 0)
  assert.equal(total, 1000)
  assert.equal(t.used(s, 777), 1000)
  for (const r of runs) assert.ok((r.get(12345) ?? 0) <= 500)
})

test('4 threads claiming the same fresh slots: every id spent once', async () => {
  const sab = allocateWindows(4096)
  const t = new SharedWindows(sab)
  const ids = Array.from({ length: 1000 }, (_, i) => i * 7919 % 100_003)
  // One token each in window 3; the workers race to find the slots and spend it.
  for (const id of ids) { const s = t.slot(id); t.enter(s, 3); t.grant(s, 3, 1) }
  const runs = await hammer(sab, 4, { ids, hits: 1, window: 3 })
  for (const id of ids) {
    const n = runs.reduce((sum, r) => sum + (r.get(id) ?? 0), 0)
    assert.equal(n, 1, `id ${id} spent ${n} times`)
    assert.equal(t.used(t.slot(id), 3), 1)
  }
})

test('4 threads entering a new window at once: the reset races, and no old token is spent', async () => {
  const sab = allocateWindows(4096)
  const t = new SharedWindows(sab)
  const ids = Array.from({ length: 1000 }, (_, i) => i * 31 + 5)
  for (const id of ids) { const s = t.slot(id); t.enter(s, 3); t.grant(s, 3, 2) }
  const runs = await hammer(sab, 4, { ids, hits: 2, window: 4 })
  assert.equal(runs.reduce((sum, r) => sum + [...r.values()].reduce((a, b) => a + b, 0), 0), 0)
  for (const id of ids) assert.equal(t.enter(t.slot(id), 4), 4)
})
