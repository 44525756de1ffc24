/**
 * Request/answer over a child process's IPC channel, for the helper processes (the webhook receiver
 * and the delivery-ceiling client): the bench sends `{cmd, seq, ...}`, the child answers
 * `{type: 'reply', seq, ...}`. A child announces itself with `{type: 'ready', ...}` once it can serve.
 */
import type { Child } from './child.ts'

export interface Reply { readonly type: 'reply', readonly seq: number, readonly error?: string }

/** The bench's side: one pending promise per sequence number. */
export class IpcClient {
  readonly #child: Child
  readonly #pending = new Map<number, { resolve: (m: Reply) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  #seq = 0

  constructor (child: Child) {
    this.#child = child
    child.proc.on('message', (m: unknown) => {
      const r = m as Reply
      if (typeof r !== 'object' || r === null || r.type !== 'reply') return
      const p = this.#pending.get(r.seq)
      if (p === undefined) return
      this.#pending.delete(r.seq)
      clearTimeout(p.timer)
      if (r.error !== undefined) p.reject(new Error(`${child.name}: ${r.error}`))
      else p.resolve(r)
    })
    child.proc.once('exit', () => {
      for (const p of this.#pending.values()) { clearTimeout(p.timer); p.reject(new Error(`${child.name} exited (${String(child.exitCode)}):\n${child.output(2000)}`)) }
      this.#pending.clear()
    })
  }

  request<T extends Reply> (cmd: string, body: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    const seq = ++this.#seq
    return new Promise<T>((resolve, reject) => {
      if (!this.#child.running) { reject(new Error(`${this.#child.name} is not running`)); return }
      const timer = setTimeout(() => {
        this.#pending.delete(seq)
        reject(new Error(`${this.#child.name} did not answer "${cmd}" within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(seq, { resolve: resolve as (m: Reply) => void, reject, timer })
      this.#child.proc.send({ ...body, cmd, seq })
    })
  }
}

type Handler = (m: Record<string, unknown>) => Promise<Record<string, unknown>> | Record<string, unknown>

/** The child's side: answers each `{cmd, seq}` with its handler's result (or the error's message). */
export function serveIpc (handlers: Record<string, Handler>): void {
  process.on('message', (m: { cmd?: string, seq?: number } & Record<string, unknown>) => {
    const seq = m.seq ?? 0
    const h = m.cmd === undefined ? undefined : handlers[m.cmd]
    const answer = (body: Record<string, unknown>): void => { process.send?.({ ...body, type: 'reply', seq }) }
    if (h === undefined) { answer({ error: `unknown command ${String(m.cmd)}` }); return }
    Promise.resolve().then(() => h(m)).then(answer, (err: unknown) => { answer({ error: err instanceof Error ? err.message : String(err) }) })
  })
}

/**
 * The child's clock minus the bench's (ms), both epoch milliseconds: from the fastest of a few
 * `clock` round trips (the child answers `{now}`), assuming the answer was read halfway through.
 */
export async function clockOffset (ipc: IpcClient, now: () => number): Promise<number> {
  let best = Infinity
  let offset = 0
  for (let i = 0; i < 9; i++) {
    const t0 = now()
    const r = await ipc.request<Reply & { now: number }>('clock')
    const t1 = now()
    if (t1 - t0 < best) { best = t1 - t0; offset = r.now - (t0 + t1) / 2 }
  }
  return offset
}
