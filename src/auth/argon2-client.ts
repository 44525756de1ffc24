/**
 * The listener side of Argon2: requests travel to the primary's pool as `argon2` messages and come
 * back as `argon2-result`. Listener threads only.
 */
import type { MessagePort } from 'node:worker_threads'
import { fromWire } from '../errors.ts'
import type { ListenerToPrimary } from '../threads/protocol.ts'

interface Waiter { resolve (v: string | boolean): void, reject (e: Error): void }

export class Argon2Client {
  readonly #port: MessagePort
  readonly #waiting = new Map<number, Waiter>()
  #next = 1

  constructor (port: MessagePort) { this.#port = port }

  #call (msg: ListenerToPrimary & { type: 'argon2' }): Promise<string | boolean> {
    return new Promise((resolve, reject) => {
      this.#waiting.set(msg.id, { resolve, reject })
      this.#port.postMessage(msg)
    })
  }

  hash (input: string): Promise<string> {
    const id = this.#next++
    return this.#call({ v: 1, type: 'argon2', id, op: 'hash', input }).then(v => {
      if (typeof v !== 'string') throw new TypeError('argon2 hash returned no string')
      return v
    })
  }

  verify (input: string, hash: string): Promise<boolean> {
    const id = this.#next++
    return this.#call({ v: 1, type: 'argon2', id, op: 'verify', input, hash }).then(v => v === true)
  }

  /** Called by the thread's message dispatcher for `argon2-result`. */
  settle (id: number, ok: boolean, value: string | boolean | null, error: { code: string, message: string } | null): void {
    const w = this.#waiting.get(id)
    if (w === undefined) return
    this.#waiting.delete(id)
    if (ok && value !== null) w.resolve(value)
    else w.reject(fromWire(error ?? { code: 'internal_error', message: 'argon2 failed' }))
  }
}
