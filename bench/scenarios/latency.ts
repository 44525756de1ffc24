/**
 * Scenario 2 (latency at 2,000 req/s, open loop), 4 (resident memory during it) and 6 (the same load
 * plus 200 req/s of forged keys).
 */
import { OpenLoop } from '../load/open-loop.ts'
import { eventBody, forgedKey } from '../load/payload.ts'
import { readHwm, readRss } from '../lib/child.ts'
import { describeLoad, type RunLoad } from '../lib/meter.ts'
import { latencyRun, type LatencyRun } from '../lib/latency.ts'
import { fmt, progress } from '../lib/progress.ts'
import { eventRequests, type Org } from '../lib/api.ts'
import { meter, type Bench, type Target } from './context.ts'

export const LATENCY_RATE = 2_000
export const STORM_RATE = 200
export const OPEN_LOOP_CONNECTIONS = 64
const RSS_EVERY_MS = 200

export interface MemoryScenario { readonly maxMb: number, readonly meanMb: number, readonly samples: number, readonly hwmMb: number | null }

class RssSampler {
  readonly samples: number[] = []
  #timer: NodeJS.Timeout | null = null
  constructor (readonly pid: number) {}
  start (): void {
    this.#timer = setInterval(() => {
      void readRss(this.pid).then(b => { if (b !== null) this.samples.push(b) })
    }, RSS_EVERY_MS)
  }

  stop (): { maxMb: number, meanMb: number, samples: number } {
    if (this.#timer !== null) clearInterval(this.#timer)
    const mb = this.samples.map(b => b / 2 ** 20)
    return {
      maxMb: Math.round(Math.max(...mb) * 10) / 10,
      meanMb: Math.round((mb.reduce((a, b) => a + b, 0) / Math.max(1, mb.length)) * 10) / 10,
      samples: mb.length,
    }
  }
}

export type LatencyScenario = LatencyRun & { readonly load: RunLoad }

export async function fixedRate (b: Bench, label: string, server: Target, orgs: readonly Org[], rss: boolean):
Promise<{ run: LatencyScenario, memory: MemoryScenario | null }> {
  const loop = new OpenLoop(server.port, OPEN_LOOP_CONNECTIONS)
  try {
    progress(`scenario 2 · ${label}: warm-up ${b.D.latencyWarmMs / 1000} s at ${fmt(LATENCY_RATE)} req/s`)
    await loop.run({ port: server.port, path: '/api/events', rate: LATENCY_RATE, durationMs: b.D.latencyWarmMs, make: eventRequests(orgs, b.payloads, `${b.runId}-w2-${label}-`) })
    progress(`scenario 2 · ${label}: measuring ${b.D.latencyMs / 1000} s at ${fmt(LATENCY_RATE)} req/s (open loop)${rss ? ', sampling RSS' : ''}`)
    const sampler = rss ? new RssSampler(server.pid) : null
    const m = await meter(b, { server: server.pid })
    sampler?.start()
    const r = await loop.run({ port: server.port, path: '/api/events', rate: LATENCY_RATE, durationMs: b.D.latencyMs, make: eventRequests(orgs, b.payloads, `${b.runId}-s2-${label}-`) })
    const mem = sampler?.stop() ?? null
    const load = await m.stop()
    const hwm = rss ? await readHwm(server.pid) : null
    const run = { ...latencyRun(r), load }
    progress(`scenario 2 · ${label}: p50 ${run.latencyMs.p50} ms, p99 ${run.latencyMs.p99} ms, max ${run.latencyMs.max} ms; ` +
      `${fmt(run.ok2xx)} 2xx, ${run.non2xx} non-2xx, ${run.errors} errors${mem === null ? '' : `; RSS max ${mem.maxMb} MB`}`)
    progress(`  p99 by second (ms): ${run.p99BySecond.join(' ')}`)
    progress(`  ${describeLoad(load)}`)
    return { run, memory: mem === null ? null : { ...mem, hwmMb: hwm === null ? null : Math.round(hwm / 2 ** 20 * 10) / 10 } }
  } finally {
    await loop.close()
  }
}

export interface StormScenario { readonly valid: LatencyRun, readonly storm: LatencyRun, readonly load: RunLoad }

export async function authMissStorm (b: Bench, server: Target, orgs: readonly Org[]): Promise<StormScenario> {
  const valid = new OpenLoop(server.port, OPEN_LOOP_CONNECTIONS)
  const storm = new OpenLoop(server.port, 16)
  try {
    progress(`scenario 6: warm-up ${b.D.latencyWarmMs / 1000} s`)
    await valid.run({ port: server.port, path: '/api/events', rate: LATENCY_RATE, durationMs: b.D.latencyWarmMs, make: eventRequests(orgs, b.payloads, `${b.runId}-w6-`) })
    progress(`scenario 6: measuring ${b.D.latencyMs / 1000} s: ${fmt(LATENCY_RATE)} req/s valid + ${STORM_RATE} req/s forged keys`)
    const forged = (): { headers: Record<string, string>, body: string } => ({
      headers: { 'content-type': 'application/json', 'x-api-key': forgedKey() },
      body: eventBody(`${b.runId}-forged`, b.payloads[0]!),
    })
    const m = await meter(b, { server: server.pid })
    const [v, s] = await Promise.all([
      valid.run({ port: server.port, path: '/api/events', rate: LATENCY_RATE, durationMs: b.D.latencyMs, make: eventRequests(orgs, b.payloads, `${b.runId}-s6-`) }),
      storm.run({ port: server.port, path: '/api/events', rate: STORM_RATE, durationMs: b.D.latencyMs, make: forged }),
    ])
    const out = { valid: latencyRun(v), storm: latencyRun(s), load: await m.stop() }
    progress(`scenario 6: valid p99 ${out.valid.latencyMs.p99} ms (${out.valid.non2xx} non-2xx); forged: ${JSON.stringify(out.storm.status)}, p99 ${out.storm.latencyMs.p99} ms`)
    progress(`  ${describeLoad(out.load)}`)
    return out
  } finally {
    await Promise.all([valid.close(), storm.close()])
  }
}
