/**
 * The primary side of the Argon2 relay: a listener's `argon2` message is run on the primary's pool
 * (argon2-pool.ts) and answered with an `argon2-result` carrying the same id; a failure travels back
 * as a WireError. The listener side is argon2-client.ts. Primary thread only.
 */
import type { Logger } from '../log.ts'
import { toWire } from '../errors.ts'
import type { ListenerToPrimary, PrimaryToListener } from '../threads/protocol.ts'
import type { Argon2Pool } from './argon2-pool.ts'

export type Argon2Request = ListenerToPrimary & { type: 'argon2' }

export function answerArgon2 (pool: Argon2Pool, m: Argon2Request, reply: (r: PrimaryToListener) => void, log: Logger): void {
  const p = m.op === 'hash' ? pool.hash(m.input) : pool.verify(m.input, m.hash)
  p.then(value => { reply({ v: 1, type: 'argon2-result', id: m.id, ok: true, value }) },
    (err: unknown) => {
      log.error({ err }, 'argon2 task failed')
      reply({ v: 1, type: 'argon2-result', id: m.id, ok: false, error: toWire(err) })
    })
}
