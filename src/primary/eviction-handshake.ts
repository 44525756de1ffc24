/**
 * The rotation handshake on one node (primary thread). A listener that rotated a key (or changed
 * what its cache holds for an organization) must not answer before every listener of the node has
 * dropped that organization's keys:
 *
 *   requester ──evict{id, org}──▶ primary ──evict{org, ack}──▶ every listener (requester included)
 *   every listener ──evict-ack{ack}──▶ primary      (once all have acknowledged:)
 *   primary ──evicted{id}──▶ requester, which then answers its HTTP request
 *
 * A listener replaced while an eviction is pending starts with an empty cache, so it no longer owes an
 * acknowledgement (`forget`). Evictions without a waiting requester (other nodes' changes, heard by
 * the rotation watch) are broadcast with ack 0 and not acknowledged.
 */
import type { Supervised } from '../threads/spawn.ts'
import type { PrimaryToListener } from '../threads/protocol.ts'

interface Pending { readonly from: Supervised, readonly id: number, readonly waiting: Set<Supervised> }

export class EvictionHandshake {
  readonly #listeners: readonly Supervised[]
  readonly #pending = new Map<number, Pending>()
  #seq = 0

  constructor (listeners: readonly Supervised[]) { this.#listeners = listeners }

  /** Sends `m` to every listener thread of this node. */
  broadcast (m: PrimaryToListener): void { for (const l of this.#listeners) l.post(m) }

  /** A listener asked (request `id`) for `organizationId` to be evicted everywhere. */
  request (from: Supervised, id: number, organizationId: string): void {
    const ack = ++this.#seq
    this.#pending.set(ack, { from, id, waiting: new Set(this.#listeners) })
    this.broadcast({ v: 1, type: 'evict', organizationId, ack })
  }

  /** Evicts an organization on every listener without waiting for acknowledgements. */
  evict (organizationId: string): void {
    this.broadcast({ v: 1, type: 'evict', organizationId, ack: 0 })
  }

  acknowledged (w: Supervised, ack: number): void {
    const p = this.#pending.get(ack)
    if (p === undefined) return
    p.waiting.delete(w)
    this.#settle(ack, p)
  }

  /** A replaced listener starts with an empty cache: it no longer owes any acknowledgement. */
  forget (w: Supervised): void {
    for (const [ack, p] of this.#pending) { p.waiting.delete(w); this.#settle(ack, p) }
  }

  #settle (ack: number, p: Pending): void {
    if (p.waiting.size > 0) return
    this.#pending.delete(ack)
    p.from.post({ v: 1, type: 'evicted', id: p.id } satisfies PrimaryToListener)
  }
}
