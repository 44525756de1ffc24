/**
 * The bench's handle on the webhook receiver process (load/receiver.ts): starts it, registers the
 * endpoints' signing secrets, reads its counts and arrival times over IPC, and converts its clock to
 * the bench's (the offset is measured at start from the fastest of a few IPC round trips).
 */
import { Child } from '../lib/child.ts'
import { clockOffset, IpcClient, type Reply } from '../lib/ipc.ts'
import { epochNow, sleep } from '../lib/progress.ts'

export interface ReceiverStats {
  /** Distinct (path, webhook-id) arrivals on the paths asked about. */
  readonly count: number
  readonly duplicates: number
  /** First and last arrival on those paths, on the bench's clock (epoch ms), or null. */
  readonly first: number | null
  readonly last: number | null
  /** Over every path since the last reset: */
  readonly requests: number
  readonly verified: number
  readonly badSignatures: number
  readonly unverifiable: number
}

interface StatsReply extends Reply { count: number, duplicates: number, first: number | null, last: number | null, requests: number, verified: number, badSignatures: number, unverifiable: number }

export class ReceiverProcess {
  readonly child: Child
  readonly ports: readonly number[]
  readonly #ipc: IpcClient
  /** Receiver clock − bench clock (ms). */
  offsetMs = 0

  private constructor (child: Child, ports: number[]) {
    this.child = child
    this.ports = ports
    this.#ipc = new IpcClient(child)
  }

  static async start (ports = 8): Promise<ReceiverProcess> {
    const child = new Child({ name: 'receiver', args: ['--import', 'tsx', 'bench/load/receiver.ts'], env: { RECEIVER_PORTS: String(ports) }, port: 0, ipc: true })
    try {
      const ready = await child.nextMessage<{ type: 'ready', ports: number[] }>('ready')
      const r = new ReceiverProcess(child, ready.ports)
      r.offsetMs = await clockOffset(r.#ipc, epochNow)
      return r
    } catch (err) {
      await child.stop(5000)
      throw err
    }
  }

  get pid (): number { return this.child.pid }

  url (portIndex: number, path: string): string {
    return `http://127.0.0.1:${this.ports[portIndex]!}${path}`
  }

  async addSecrets (entries: readonly (readonly [string, string])[]): Promise<void> {
    await this.#ipc.request('secrets', { entries })
  }

  async reset (): Promise<void> {
    await this.#ipc.request('reset')
  }

  async stats (prefix: string): Promise<ReceiverStats> {
    const s = await this.#ipc.request<StatsReply>('stats', { prefix })
    return {
      count: s.count,
      duplicates: s.duplicates,
      first: s.first === null ? null : s.first - this.offsetMs,
      last: s.last === null ? null : s.last - this.offsetMs,
      requests: s.requests,
      verified: s.verified,
      badSignatures: s.badSignatures,
      unverifiable: s.unverifiable,
    }
  }

  /** webhook-id → arrival time on the bench's clock (epoch ms), for the paths starting with prefix. */
  async arrivals (prefix: string): Promise<Map<string, number>> {
    const r = await this.#ipc.request<Reply & { ids: string[], at: number[] }>('arrivals', { prefix }, 60_000)
    const out = new Map<string, number>()
    for (let i = 0; i < r.ids.length; i++) out.set(r.ids[i]!, r.at[i]! - this.offsetMs)
    return out
  }

  /** Polls until `count` arrivals on prefix (or the deadline); returns the last stats read. */
  async waitFor (prefix: string, count: number, timeoutMs: number, everyMs = 50): Promise<{ stats: ReceiverStats, timedOut: boolean }> {
    const deadline = epochNow() + timeoutMs
    for (;;) {
      const stats = await this.stats(prefix)
      if (stats.count >= count) return { stats, timedOut: false }
      if (epochNow() > deadline) return { stats, timedOut: true }
      await sleep(everyMs)
    }
  }

  async stop (): Promise<void> {
    await this.child.stop(5000)
  }
}
