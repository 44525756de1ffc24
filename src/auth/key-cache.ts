/**
 * Per-listener caches of verified and refused keys (no SharedArrayBuffer: each thread has its own,
 * evicted by message on rotation). The positive cache maps the plaintext key to its organization so a
 * known key costs no hashing; it is bounded (AUTH_CACHE_MAX) with a TTL (AUTH_CACHE_TTL_MS) as a last
 * safety net. The negative cache remembers keys whose secret failed Argon2 verification, so a flood of
 * one wrong key costs one hash. Listener threads only.
 *
 * When the primary cannot vouch that it hears every organization change (its LISTEN connection was
 * lost: primary/org-change-watch.ts), it has the caches dropped and held: while held, no key is
 * answered from or stored in the positive cache, so every request is verified against the database.
 * Refused keys stay refused (a wrong or unknown key never becomes valid).
 */
import { LRUCache } from 'lru-cache'
import type { Tier } from './tiers.ts'

/** One shape for every cached organization (STYLE C7). */
export class AuthEntry {
  readonly organizationId: string
  readonly orgNo: number
  readonly tier: Tier
  readonly limit: number
  constructor (organizationId: string, orgNo: number, tier: Tier, limit: number) {
    this.organizationId = organizationId
    this.orgNo = orgNo
    this.tier = tier
    this.limit = limit
  }
}

export class KeyCache {
  readonly #valid: LRUCache<string, AuthEntry>
  readonly #refused: LRUCache<string, true>
  /** Bumped by every eviction; a verification that straddles one does not cache its result. */
  generation = 0
  #held = false

  constructor (max: number, ttlMs: number) {
    this.#valid = new LRUCache({ max, ttl: ttlMs, ttlAutopurge: false, updateAgeOnGet: false })
    this.#refused = new LRUCache({ max: Math.min(max, 10_000), ttl: 10 * 60_000 })
  }

  get (key: string): AuthEntry | undefined { return this.#held ? undefined : this.#valid.get(key) }
  isRefused (key: string): boolean { return this.#refused.has(key) }
  setValid (key: string, entry: AuthEntry, generation: number): void {
    if (generation === this.generation && !this.#held) this.#valid.set(key, entry)
  }

  setRefused (key: string): void { this.#refused.set(key, true) }

  /** Drops every key of one organization (rotation, tier or webhook change). */
  evictOrganization (organizationId: string): number {
    this.generation++
    let n = 0
    for (const [key, entry] of this.#valid.entries()) {
      if (entry.organizationId === organizationId) { this.#valid.delete(key); n++ }
    }
    return n
  }

  /** Drops every verified key; with `hold`, caches nothing until called again without it. */
  dropAll (hold: boolean): void {
    this.generation++
    this.#held = hold
    this.#valid.clear()
  }

  get held (): boolean { return this.#held }

  get size (): number { return this.#valid.size }
}
