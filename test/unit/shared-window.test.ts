/**
 * The shared-memory rate-limit windows and the Limiter's arithmetic: the limit reached exactly, a new
 * window starting from zero, remaining never negative, the per-thread fallback when the table is full;
 * and real worker threads hammering one SharedArrayBuffer, where the count must stay exact.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Worker } from 'node:worker_threads'
import { HitKind, HitResult, SharedWindows, allocateWindows } from '../../src/rate-limit/shared-window.ts'
import { Decision, Limiter, WINDOW_MS } from '../../src/rate-limit/limiter.ts'
import { workerEntry } from '../../src/threads/spawn.ts'
import { waitFor } from '../helpers/db.ts'

test('allocateWindows: a power-of-two slot count, 12 bytes a slot', () => {
  assert.equal(allocateWindows(8).byteLength, 8 * 12)
  assert.equal(allocateWindows().byteLength, (1 << 18) * 12)
  assert.throws(() => allocateWindows(1000), RangeError)
})

test('hit: allowed up to the limit exactly, then limited; the count never passes the limit', () => {
  const t = new SharedWindows(allocateWindows(16))
  const r = new HitResult()
  for (let i = 1; i <= 3; i++) {
    t.hit(7, 100, 3, r)
    assert.equal(r.kind, HitKind.Allowed)
    assert.equal(r.count, i)
  }
  for (let i = 0; i < 5; i++) {
    t.hit(7, 100, 3, r)
    assert.equal(r.kind, HitKind.Limited)
    assert.equal(r.count, 3)
  }
  assert.equal(t.peek(7, 100), 3)
  // Other ids are counted on their own.
  assert.equal(t.hit(8, 100, 3, r).kind, HitKind.Allowed)
  assert.equal(r.count, 1)
  assert.equal(t.peek(9, 100), 0)
})

test('a new window starts from zero without a reset pass', () => {
  const t = new SharedWindows(allocateWindows(16))
  const r = new HitResult()
  for (let i = 0; i < 3; i++) t.hit(1, 100, 3, r)
  assert.equal(t.hit(1, 100, 3, r).kind, HitKind.Limited)
  assert.equal(t.peek(1, 101), 0)
  assert.equal(t.hit(1, 101, 3, r).kind, HitKind.Allowed)
  assert.equal(r.count, 1)
  assert.equal(t.peek(1, 100), 0, 'the old window is gone')
  assert.equal(t.peek(1, 101), 1)
  // A limit of 1 and a large window number (minutes since the epoch) work too.
  const w = Math.floor(Date.now() / 60_000)
  assert.equal(t.hit(2, w, 1, r).kind, HitKind.Allowed)
  assert.equal(t.hit(2, w, 1, r).kind, HitKind.Limited)
  assert.equal(t.hit(2, w + 1, 1, r).kind, HitKind.Allowed)
})

test('a thread whose clock still reads the previous window does not reset the new one', () => {
  // Each listener thread has its own coarse clock; at a minute boundary one may lag the others.
  const t = new SharedWindows(allocateWindows(16))
  const r = new HitResult()
  for (let i = 0; i < 5; i++) t.hit(3, 201, 5, r)
  assert.equal(t.hit(3, 201, 5, r).kind, HitKind.Limited)
  // The lagging thread's hit counts against what is already there, not against a fresh count.
  assert.equal(t.hit(3, 200, 5, r).kind, HitKind.Limited)
  assert.equal(t.peek(3, 201), 5)
  assert.equal(t.hit(3, 201, 5, r).kind, HitKind.Limited)
})

test('ids at both ends of the 31-bit range, and a full table', () => {
  const t = new SharedWindows(allocateWindows(4))
  const r = new HitResult()
  const top = 2 ** 31 - 1
  for (let i = 1; i <= 3; i++) {
    assert.equal(t.hit(top, 5, 3, r).kind, HitKind.Allowed)
    assert.equal(r.count, i)
  }
  assert.equal(t.hit(top, 5, 3, r).kind, HitKind.Limited, 'the largest id keeps one slot')
  assert.equal(t.hit(0, 5, 3, r).kind, HitKind.Allowed)
  assert.equal(t.hit(1, 5, 3, r).kind, HitKind.Allowed)
  assert.equal(t.hit(2, 5, 3, r).kind, HitKind.Allowed)
  // Four slots, four ids: a fifth has nowhere to go.
  assert.equal(t.hit(3, 5, 3, r).kind, HitKind.Full)
  assert.equal(t.peek(3, 5), 0)
  // Known ids still count.
  assert.equal(t.hit(0, 5, 3, r).kind, HitKind.Allowed)
  assert.equal(r.count, 2)
})

test('Limiter: limit, remaining ≥ 0, reset at the end of the clock minute, Retry-After ≥ 1', () => {
  const l = new Limiter(allocateWindows(16), allocateWindows(16))
  const d = new Decision()
  const before = Date.now()
  for (let i = 1; i <= 5; i++) {
    l.organization(42, 5, d)
    assert.equal(d.allowed, true)
    assert.equal(d.limit, 5)
    assert.equal(d.remaining, 5 - i)
  }
  for (let i = 0; i < 3; i++) {
    l.organization(42, 5, d)
    assert.equal(d.allowed, false)
    assert.equal(d.remaining, 0)
  }
  const windowEnd = (Math.floor(before / WINDOW_MS) + 1) * WINDOW_MS
  // The coarse clock (not ticking in this thread) may read an earlier minute than `before`.
  assert.ok(Math.abs(d.reset - Math.ceil(windowEnd / 1000)) <= 60, `reset ${d.reset}`)
  assert.equal(d.reset % 60, 0)
  assert.ok(d.retryAfter >= 1 && d.retryAfter <= 60, `retryAfter ${d.retryAfter}`)
  // A lower limit for the same organization (a tier change) never reports negative remaining.
  l.organization(42, 2, d)
  assert.equal(d.allowed, false)
  assert.equal(d.remaining, 0)
  // Per-IP limits are a separate table.
  l.clientIp('203.0.113.7', 1, d)
  assert.equal(d.allowed, true)
  assert.equal(d.remaining, 0)
  l.clientIp('203.0.113.7', 1, d)
  assert.equal(d.allowed, false)
  l.clientIp('203.0.113.8', 1, d)
  assert.equal(d.allowed, true)
})

test('Limiter: with the shared table full it still limits, per thread', () => {
  const l = new Limiter(allocateWindows(2), allocateWindows(2))
  const d = new Decision()
  l.organization(1, 10, d)
  l.organization(2, 10, d)
  for (let i = 1; i <= 3; i++) {
    l.organization(3, 3, d)
    assert.equal(d.allowed, true)
    assert.equal(d.remaining, 3 - i)
  }
  l.organization(3, 3, d)
  assert.equal(d.allowed, false)
  assert.equal(d.remaining, 0)
})

interface Run { allowed: Map<number, number>, total: number }

async function hammer (sab: SharedArrayBuffer, workers: number, job: { ids: number[], hits: number, window: number, limit: number }): Promise<Run[]> {
  const gate = new SharedArrayBuffer(8)
  const g = new Int32Array(gate)
  const entry = workerEntry(new URL('../fixtures/window-worker.ts', import.meta.url))
  const threads = Array.from({ length: workers }, () => new Worker(entry.file, { argv: entry.argv, workerData: { sab, gate, ...job } }))
  try {
    const results = threads.map(async w => await new Promise<Run>((resolve, reject) => {
      w.once('message', (m: unknown) => {
        if (!Array.isArray(m)) { reject(new TypeError('bad message from window-worker')); return }
        const allowed = new Map<number, number>()
        let total = 0
        for (const pair of m) {
          if (!Array.isArray(pair) || typeof pair[0] !== 'number' || typeof pair[1] !== 'number') { reject(new TypeError('bad pair')); return }
          allowed.set(pair[0], pair[1])
          total += pair[1]
        }
        resolve({ allowed, total })
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

test('4 threads × 500 hits on one id with limit 1000: exactly 1000 allowed', async () => {
  const sab = allocateWindows(1024)
  const runs = await hammer(sab, 4, { ids: [12345], hits: 500, window: 777, limit: 1000 })
  const total = runs.reduce((n, r) => n + r.total, 0)
  assert.equal(total, 1000)
  assert.equal(new SharedWindows(sab).peek(12345, 777), 1000)
  // Under contention every thread got some (they really ran at once), none more than it asked.
  for (const r of runs) assert.ok(r.total <= 500)
})

test('4 threads claiming the same fresh slots: every id counted once, with limit 1', async () => {
  const sab = allocateWindows(4096)
  const ids = Array.from({ length: 1000 }, (_, i) => i * 7919 % 100_003)
  const runs = await hammer(sab, 4, { ids, hits: 1, window: 3, limit: 1 })
  const t = new SharedWindows(sab)
  for (const id of ids) {
    const n = runs.reduce((s, r) => s + (r.allowed.get(id) ?? 0), 0)
    assert.equal(n, 1, `id ${id} allowed ${n} times`)
    assert.equal(t.peek(id, 3), 1)
  }
})
