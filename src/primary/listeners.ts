/**
 * Supervision of the HTTP listener threads (THREADS of them, one uWS app each on one port). Start-up:
 * the first listener boots (thread start, imports, app build) while the primary applies the migrations
 * and is told to `listen` only after them; the others boot once it listens; `start` resolves once all
 * of them listen. Then this module answers their messages: Argon2 work (auth/argon2-relay.ts), the
 * rotation handshake (eviction-handshake.ts), delivery wake-ups, drain reports, and a retiring
 * listener's replacement.
 * Listeners are never terminated (see threads/spawn.ts): `stop` asks them to drain and waits.
 * Primary thread only.
 */
import type { Config } from '../config/load.ts'
import type { Logger } from '../log.ts'
import { Supervised, workerUrl } from '../threads/spawn.ts'
import { parseListenerToPrimary, type PrimaryToListener } from '../threads/protocol.ts'
import type { Argon2Pool } from '../auth/argon2-pool.ts'
import { answerArgon2 } from '../auth/argon2-relay.ts'
import { EvictionHandshake } from './eviction-handshake.ts'
import type { ThreadInit } from './thread-init.ts'

export interface ListenerGroupOptions {
  readonly config: Config
  readonly log: Logger
  readonly init: ThreadInit
  /** The concrete port every listener binds (SO_REUSEPORT). */
  readonly port: number
  readonly argon2: Argon2Pool
  /** A listener committed events that are due for delivery. */
  readonly wakeDelivery: () => void
  /**
   * Called once the first listener accepts, before the others boot: what should start as early as
   * possible without competing with the first listener's boot (the delivery threads).
   */
  readonly onFirstListening?: () => void
  /** Tells the other nodes that an organization changed (NOTIFY); part of the rotation handshake. */
  readonly announce: (organizationId: string) => Promise<void>
}

export class ListenerGroup {
  readonly threads: Supervised[] = []
  readonly handshake: EvictionHandshake
  readonly #o: ListenerGroupOptions
  readonly #drained = new Set<Supervised>()
  readonly #onListening = new Map<Supervised, (port: number) => void>()

  constructor (o: ListenerGroupOptions) {
    this.#o = o
    this.handshake = new EvictionHandshake(this.threads, o.announce, o.log)
  }

  /** Listeners that reported 'drained'. */
  get drained (): number { return this.#drained.size }

  /**
   * Starts the first listener now and lets it accept once `migrated` settles without an error; then
   * starts the others, each accepting as soon as it is up; resolves when all listen. On any failure,
   * drains what was started and rejects. One listener boots at a time because booting is CPU work
   * (thread start, module loading): on 2 cores two listeners booting side by side both listened
   * later, and the first 201 came ~15 % later than with the first one alone, which then serves while
   * the others boot (scripts/measure-cold-start.ts, README "Performance"). `onFirstListening` runs
   * between the two.
   */
  async start (migrated: Promise<Error | null>): Promise<void> {
    const { config, log, init } = this.#o
    // Metric slots in listener order, whenever each thread starts.
    const slots = Array.from({ length: config.threads }, (_, i) => init.slot(`http-${i}`, i))
    const waits: Promise<number>[] = []
    const spawn = (i: number): void => {
      const s = new Supervised({
        name: `http-${i}`,
        file: workerUrl('http/thread'),
        init: slots[i]!,
        log,
        onMessage: (w, raw) => { this.#onMessage(w, raw) },
        onRestart: w => { this.handshake.restarted(w) },
        youngGenerationMb: config.threadYoungGenerationMb,
      })
      this.threads.push(s)
      const listened = this.#listened(s, i)
      // Observed below through Promise.all; this handler only keeps an early failure from being unhandled.
      listened.then(undefined, () => {})
      waits.push(listened)
    }
    try {
      spawn(0)
      const failed = await migrated
      if (failed !== null) throw failed
      init.accepting = true
      this.handshake.broadcast({ v: 1, type: 'listen' })
      await waits[0]
      this.#o.onFirstListening?.()
      for (let i = 1; i < config.threads; i++) spawn(i)
      await Promise.all(waits)
    } catch (err) {
      for (const l of this.threads) l.stopping = true
      for (const l of this.threads) { l.post({ v: 1, type: 'drain' } satisfies PrimaryToListener); await l.stop(config.shutdownTimeoutMs, false) }
      throw err
    }
  }

  /** Every listener stops accepting, answers what it received and commits its writer; true if all exited within `ms`. */
  async stop (ms: () => number): Promise<boolean> {
    for (const l of this.threads) { l.stopping = true; l.post({ v: 1, type: 'drain' } satisfies PrimaryToListener) }
    const exited = await Promise.all(this.threads.map(async l => await l.stop(ms(), false)))
    return !exited.includes(false)
  }

  /** Resolves with the listener's port once it listens; rejects if it could not or exited first. */
  #listened (s: Supervised, i: number): Promise<number> {
    const { config, port } = this.#o
    const listening = new Promise<number>(resolve => { this.#onListening.set(s, resolve) })
    const exited = s.exited().then(code => { throw new Error(`listener ${i} exited with code ${code} before listening`) })
    return Promise.race([listening, exited]).then(got => {
      if (got < 0) throw new Error(`listener ${i} could not listen on ${config.host}:${port}`)
      return got
    })
  }

  #onMessage (w: Supervised, raw: unknown): void {
    const { log } = this.#o
    const m = parseListenerToPrimary(raw)
    if (m === null) { log.warn({ thread: w.name }, 'unknown message from listener'); return }
    switch (m.type) {
      case 'listening':
        this.#onListening.get(w)?.(m.port)
        this.#onListening.delete(w)
        break
      case 'argon2':
        answerArgon2(this.#o.argon2, m, r => { w.post(r) }, log)
        break
      case 'evict':
        this.handshake.request(w, m.id, m.organizationId)
        break
      case 'evict-ack':
        this.handshake.acknowledged(w, m.ack)
        break
      case 'committed':
        this.#o.wakeDelivery()
        break
      case 'drained':
        this.#drained.add(w)
        break
      case 'retiring':
        log.error({ thread: w.name }, 'listener failed and is retiring; starting a replacement')
        w.replace()
        break
    }
  }
}
