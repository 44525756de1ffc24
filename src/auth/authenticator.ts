/**
 * Resolves X-API-Key to an organization on a listener thread. A cached key answers synchronously
 * (STYLE C10: the result is `AuthEntry | Promise<AuthEntry>`). Otherwise: a malformed key or an
 * unknown lookup part is refused without hashing; a known lookup part is verified with Argon2id in the
 * primary's pool; concurrent misses for one key share one verification. Every refusal is the same
 * 401 `Invalid API key`. Listener threads only.
 */
import type { Sql } from '../db/client.ts'
import { findByKeyLookup } from '../db/queries/organizations.ts'
import { dbError } from '../db/errors.ts'
import { ApiError } from '../errors.ts'
import { isWellFormedKey, keyLookup } from './api-key.ts'
import type { Argon2Client } from './argon2-client.ts'
import { AuthEntry, KeyCache } from './key-cache.ts'
import { TIER_LIMITS } from './tiers.ts'
import type { ThreadMetrics } from '../metrics/counters.ts'

export const MISSING_KEY = new ApiError('unauthorized', 'Missing X-API-Key header')
export const INVALID_KEY = new ApiError('unauthorized', 'Invalid API key')

/** A verification in progress and the cache generation it began in. */
class Verification {
  readonly promise: Promise<AuthEntry>
  readonly generation: number
  constructor (promise: Promise<AuthEntry>, generation: number) {
    this.promise = promise
    this.generation = generation
  }
}

export class Authenticator {
  readonly cache: KeyCache
  readonly #sql: Sql
  readonly #argon2: Argon2Client
  readonly #inflight = new Map<string, Verification>()
  readonly #metrics: ThreadMetrics

  constructor (sql: Sql, argon2: Argon2Client, cache: KeyCache, metrics: ThreadMetrics) {
    this.#sql = sql
    this.#argon2 = argon2
    this.cache = cache
    this.#metrics = metrics
  }

  /** Throws (synchronously) or rejects with an ApiError when the key is missing or invalid. */
  authenticate (key: string): AuthEntry | Promise<AuthEntry> {
    if (key === '') throw MISSING_KEY
    const hit = this.cache.get(key)
    if (hit !== undefined) { this.#metrics.authCache(true); return hit }
    this.#metrics.authCache(false)
    if (!isWellFormedKey(key) || this.cache.isRefused(key)) throw INVALID_KEY
    let v = this.#inflight.get(key)
    // A verification begun before an eviction may have read a row that a rotation has since replaced:
    // a request arriving after the eviction must not take its answer, so it starts its own.
    if (v === undefined || v.generation !== this.cache.generation) {
      const started = new Verification(this.#verify(key), this.cache.generation)
      this.#inflight.set(key, started)
      const clear = (): void => { if (this.#inflight.get(key) === started) this.#inflight.delete(key) }
      // Observed by every caller that awaits the promise; these handlers only clean the map.
      started.promise.then(clear, clear)
      v = started
    }
    return v.promise
  }

  async #verify (key: string): Promise<AuthEntry> {
    const generation = this.cache.generation
    let row
    try {
      row = await findByKeyLookup(this.#sql, keyLookup(key))
    } catch (err) {
      throw dbError(err)
    }
    // Unknown lookup part: remembered like a wrong secret, so a flood of one forged key costs one query.
    if (row === null) { this.cache.setRefused(key); throw INVALID_KEY }
    const ok = await this.#argon2.verify(key, row.key_hash)
    if (!ok) { this.cache.setRefused(key); throw INVALID_KEY }
    const entry = new AuthEntry(row.id, row.org_no, row.tier, TIER_LIMITS[row.tier])
    this.cache.setValid(key, entry, generation)
    return entry
  }
}
