/**
 * Creating worker threads and supervising them. A thread that exits unexpectedly (crash, uncaught
 * error) is logged and replaced after a short, growing delay; the process does not die with it. A
 * thread that was asked to stop is not replaced. A thread that announces it is retiring is replaced at
 * once and left to finish on its own.
 *
 * uWS listener threads must never be terminated or exit with sockets open: uWS v20.30 aborts the whole
 * process when a worker's loop closes with its poll handles active. Listeners therefore retire
 * themselves (stop accepting, drain, close) and `stop` waits for them instead of terminating them
 * (`terminate: false`). Primary thread only.
 *
 * Worker files are src/…/x.ts under tsx (tests, development) and the bundles dist/…/x.js when built
 * (npm start); lib/project-root.ts finds them.
 */
import { Worker } from 'node:worker_threads'
import { pathToFileURL } from 'node:url'
import type { Logger } from '../log.ts'
import type { WorkerInit } from './protocol.ts'
import { entryUrl, FROM_SOURCE, projectPath } from '../lib/project-root.ts'

export function workerUrl (relativeToSrc: string): URL {
  return entryUrl(relativeToSrc)
}

const bootstrap = pathToFileURL(projectPath('src', 'threads', 'ts-bootstrap.mjs'))

/**
 * How to start a worker module: compiled .js starts directly; under tsx (.ts), Node 20 workers do not
 * inherit the loader, so they start in ts-bootstrap.mjs with the real entry as the last argv.
 */
export function workerEntry (file: URL): { file: URL, argv: string[] } {
  return FROM_SOURCE ? { file: bootstrap, argv: [file.href] } : { file, argv: [] }
}

export interface SupervisedOptions {
  readonly name: string
  readonly file: URL
  readonly init: () => WorkerInit
  readonly log: Logger
  /** Called with every message the worker posts. */
  readonly onMessage: (w: Supervised, msg: unknown) => void
  /** Called after a replacement thread was started. */
  readonly onRestart?: (w: Supervised) => void
  /** V8 young-generation cap in MB (THREAD_YOUNG_GENERATION_MB); 0 leaves V8's default. */
  readonly youngGenerationMb?: number
}

export class Supervised {
  readonly name: string
  worker: Worker
  stopping = false
  restarts = 0
  readonly #o: SupervisedOptions
  #exited: Promise<number>

  constructor (o: SupervisedOptions) {
    this.name = o.name
    this.#o = o
    this.worker = this.#start()
    this.#exited = this.#watch(this.worker)
  }

  #start (): Worker {
    const entry = workerEntry(this.#o.file)
    const yg = this.#o.youngGenerationMb ?? 0
    const w = new Worker(entry.file, {
      workerData: this.#o.init(),
      name: this.#o.name,
      argv: entry.argv,
      // Each isolate's young generation grows to V8's default cap under load; across the listener and
      // delivery threads that was most of the resident growth at 2,000 req/s (bench/README.md).
      ...(yg > 0 ? { resourceLimits: { maxYoungGenerationSizeMb: yg } } : {}),
    })
    w.on('message', (m: unknown) => { this.#o.onMessage(this, m) })
    w.on('error', (err: Error) => { this.#o.log.error({ err, thread: this.name }, 'thread failed') })
    return w
  }

  #watch (w: Worker): Promise<number> {
    return new Promise(resolve => {
      w.once('exit', code => {
        resolve(code)
        if (this.stopping || w !== this.worker) return
        this.restarts++
        const delay = Math.min(5000, 100 * 2 ** Math.min(this.restarts, 6))
        this.#o.log.error({ thread: this.name, code, restartInMs: delay }, 'thread exited unexpectedly; replacing it')
        const t = setTimeout(() => {
          if (this.stopping) return
          this.worker = this.#start()
          this.#exited = this.#watch(this.worker)
          this.#o.onRestart?.(this)
        }, delay)
        t.unref()
      })
    })
  }

  post (msg: unknown): void { this.worker.postMessage(msg) }

  /** Resolves with the exit code once the current thread has exited. */
  exited (): Promise<number> { return this.#exited }

  /** Starts a replacement now; the current thread is left to finish and its exit is not mourned. */
  replace (): void {
    if (this.stopping) return
    this.restarts++
    this.worker = this.#start()
    this.#exited = this.#watch(this.worker)
    this.#o.onRestart?.(this)
  }

  /**
   * Marks the thread as stopping (no replacement) and waits up to `ms` for it to exit; then terminates
   * it when `terminate` is true. Resolves true if it exited.
   */
  async stop (ms: number, terminate: boolean): Promise<boolean> {
    this.stopping = true
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<false>(resolve => { timer = setTimeout(resolve, ms, false) })
    const exited = await Promise.race([this.#exited.then(() => true as const), timedOut])
    clearTimeout(timer)
    if (!exited && terminate) await this.worker.terminate()
    return exited
  }
}
