/**
 * What the listeners' key caches may hold, on one node (primary thread).
 *
 * The rotation handshake: a listener that rotated a key (or changed anything its cache holds for an
 * organization) must not answer before every listener of the node has dropped that organization's
 * keys, and the other nodes have been told:
 *
 *   requester ──evict{id, org}──▶ primary ──evict{org, ack}──▶ every listener (requester included)
 *                                 primary ──NOTIFY triggers_org_changes, org──▶ every node's primary
 *   every listener ──evict-ack{ack}──▶ primary      (once all have acknowledged and the NOTIFY settled:)
 *   primary ──evicted{id}──▶ requester, which then answers its HTTP request
 *
 * A NOTIFY that fails is logged and does not hold the answer back: the other nodes' rotation poll
 * (rotation-watch.ts) still evicts a rotated key. A listener replaced while an eviction is pending
 * starts with an empty cache, so it no longer owes an acknowledgement. Evictions without a waiting
 * requester (other nodes' changes) are broadcast with ack 0 and not acknowledged.
 *
 * Dropping everything: when the node may have missed changes (org-change-watch.ts), every cache is
 * dropped, and with `hold` kept empty until released; a listener started meanwhile is told too.
 */
import type { Logger } from '../log.ts'
import type { Supervised } from '../threads/spawn.ts'
import type { PrimaryToListener } from '../threads/protocol.ts'

interface Pending { readonly from: Supervised, readonly id: number, readonly waiting: Set<Supervised>, announced: boolean }

export class EvictionHandshake {
  readonly #listeners: readonly Supervised[]
  readonly #announce: (organizationId: string) => Promise<void>
  readonly #log: Logger
  readonly #pending = new Map<number, Pending>()
  #seq = 0
  #held = false

  /** `announce` tells the other nodes (NOTIFY); it is awaited before the requester hears 'evicted'. */
  constructor (listeners: readonly Supervised[], announce: (organizationId: string) => Promise<void>, log: Logger) {
    this.#listeners = listeners
    this.#announce = announce
    this.#log = log
  }

  /** Sends `m` to every listener thread of this node. */
  broadcast (m: PrimaryToListener): void { for (const l of this.#listeners) l.post(m) }

  /** A listener asked (request `id`) for `organizationId` to be evicted everywhere. */
  request (from: Supervised, id: number, organizationId: string): void {
    const ack = ++this.#seq
    const p: Pending = { from, id, waiting: new Set(this.#listeners), announced: false }
    this.#pending.set(ack, p)
    this.broadcast({ v: 1, type: 'evict', organizationId, ack })
    const announced = (): void => { p.announced = true; this.#settle(ack, p) }
    this.#announce(organizationId).then(announced, (err: unknown) => {
      this.#log.warn({ err, organizationId }, 'organization change NOTIFY failed; other nodes rely on their rotation poll')
      announced()
    })
  }

  /** Evicts an organization on every listener of this node without waiting for acknowledgements. */
  evict (organizationId: string): void {
    this.broadcast({ v: 1, type: 'evict', organizationId, ack: 0 })
  }

  /** Drops every listener's cached keys; with `hold`, they cache nothing until `dropAll(false)`. */
  dropAll (hold: boolean): void {
    this.#held = hold
    this.broadcast({ v: 1, type: 'drop-caches', hold })
  }

  acknowledged (w: Supervised, ack: number): void {
    const p = this.#pending.get(ack)
    if (p === undefined) return
    p.waiting.delete(w)
    this.#settle(ack, p)
  }

  /** A replacement listener starts with an empty cache: it owes no acknowledgement, and must hold if the others do. */
  restarted (w: Supervised): void {
    if (this.#held) w.post({ v: 1, type: 'drop-caches', hold: true } satisfies PrimaryToListener)
    for (const [ack, p] of this.#pending) { p.waiting.delete(w); this.#settle(ack, p) }
  }

  #settle (ack: number, p: Pending): void {
    if (p.waiting.size > 0 || !p.announced || !this.#pending.has(ack)) return
    this.#pending.delete(ack)
    p.from.post({ v: 1, type: 'evicted', id: p.id } satisfies PrimaryToListener)
  }
}
