/** The bench's handle on the delivery-ceiling client process (load/ceiling-client.ts). */
import { Child } from '../lib/child.ts'
import { clockOffset, IpcClient, type Reply } from '../lib/ipc.ts'
import { epochNow } from '../lib/progress.ts'

export interface CeilingTarget { readonly url: string, readonly secret: string, readonly endpointId: string }

export interface CeilingSend {
  /** First request handed to undici, last answer read: on the bench's clock (epoch ms). */
  readonly firstSendAt: number
  readonly lastDoneAt: number
  readonly ok: number
  readonly non2xx: number
  readonly errors: number
  readonly firstError: string | null
}

export class CeilingClient {
  readonly child: Child
  readonly #ipc: IpcClient
  #offsetMs = 0

  private constructor (child: Child) {
    this.child = child
    this.#ipc = new IpcClient(child)
  }

  static async start (): Promise<CeilingClient> {
    const child = new Child({ name: 'ceiling-client', args: ['--import', 'tsx', 'bench/load/ceiling-client.ts'], env: {}, port: 0, ipc: true })
    try {
      await child.nextMessage('ready')
      const c = new CeilingClient(child)
      c.#offsetMs = await clockOffset(c.#ipc, epochNow)
      return c
    } catch (err) {
      await child.stop(5000)
      throw err
    }
  }

  get pid (): number { return this.child.pid }

  async run (targets: readonly CeilingTarget[], count: number, inFlight: number, payloads: readonly string[]): Promise<CeilingSend> {
    const r = await this.#ipc.request<Reply & CeilingSend>('run', { targets, count, inFlight, payloads }, 300_000)
    return {
      firstSendAt: r.firstSendAt - this.#offsetMs,
      lastDoneAt: r.lastDoneAt - this.#offsetMs,
      ok: r.ok,
      non2xx: r.non2xx,
      errors: r.errors,
      firstError: r.firstError,
    }
  }

  async stop (): Promise<void> {
    await this.child.stop(5000)
  }
}
