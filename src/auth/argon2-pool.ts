/**
 * The Argon2 pool (piscina), owned by the primary thread, which serves listeners' requests arriving
 * as `argon2` messages. Coalesces work: concurrent identical verifications share one hash, and a
 * failed verification is remembered for ten minutes, so a flood of one wrong key across all threads
 * costs one Argon2 computation.
 */
import { Piscina } from 'piscina'
import { LRUCache } from 'lru-cache'
import { fileURLToPath } from 'node:url'
import type { Argon2Task } from './argon2-worker.ts'
import { workerEntry, workerUrl } from '../threads/spawn.ts'

export class Argon2Pool {
  readonly #pool: Piscina
  readonly #inflight = new Map<string, Promise<string | boolean>>()
  readonly #failed = new LRUCache<string, true>({ max: 10_000, ttl: 10 * 60_000 })

  constructor (threads: number) {
    const entry = workerEntry(workerUrl('auth/argon2-worker'))
    this.#pool = new Piscina({
      filename: fileURLToPath(entry.file),
      argv: entry.argv,
      // No idle hashing thread: a key is hashed or verified once per organization per listener cache
      // lifetime, so the thread starts on demand (≈50 ms; `warm` starts one ahead of a burst, and the
      // service one at boot) and leaves after 2 s idle. That keeps ~7 MB out of the resident set.
      minThreads: 0,
      maxThreads: threads,
      // Bounded queue: past it, run() rejects and the listener answers 503.
      maxQueue: 4096,
      // Leave soon after a burst: argon2 holds 19 MiB per hash while it runs. (5 s kept the thread of a
      // key-verification burst into the first seconds of a steady load after it: max RSS 151 MB at
      // 2,000 req/s against a mean of 139 MB, scripts/measure-memory.ts.)
      idleTimeout: 2_000,
    })
  }

  hash (input: string): Promise<string> {
    const task: Argon2Task = { op: 'hash', input, hash: '' }
    return this.#pool.run(task).then(v => {
      if (typeof v !== 'string') throw new TypeError('argon2 hash returned no string')
      return v
    })
  }

  verify (input: string, hash: string): Promise<boolean> {
    const k = hash + '\n' + input
    if (this.#failed.has(k)) return Promise.resolve(false)
    let p = this.#inflight.get(k)
    if (p === undefined) {
      const task: Argon2Task = { op: 'verify', input, hash }
      p = this.#pool.run(task).then((v: unknown) => {
        this.#inflight.delete(k)
        if (v !== true) this.#failed.set(k, true)
        return v === true
      }, (err: unknown) => {
        this.#inflight.delete(k)
        throw err
      })
      this.#inflight.set(k, p)
    }
    return p.then(v => v === true)
  }

  /**
   * Starts a pool thread now (it stays for the idle timeout) when a burst of verifications is coming:
   * after the listeners' key caches were dropped and released again (a database outage, a lost
   * notification connection), every key is verified anew, and a cold thread start under load took
   * seconds (test/faults/postgres-stopped.test.ts). Failures are ignored: the next real task starts one.
   */
  warm (): void {
    const task: Argon2Task = { op: 'warm', input: '', hash: '' }
    // Observed here: a warm-up that fails changes nothing (the next verification starts a thread).
    this.#pool.run(task).then(undefined, () => {})
  }

  /** Tasks waiting for a pool thread (a /metrics gauge). */
  get queueSize (): number { return this.#pool.queueSize }

  close (): Promise<void> { return this.#pool.destroy() }
}
