/**
 * Scenario 5, cold start: the production command (the Dockerfile's CMD, `node dist/cli.js serve`)
 * against the already migrated scratch database, timed from just before spawn() to the first 201 of
 * POST /api/events — listening, authenticating a key no thread has seen (Argon2), one durable write.
 * The key is made beforehand with the product's own `node dist/cli.js keygen`. Probes: one POST at a
 * time on a fresh connection every 5 ms (a refused connection fails at once; an accepted request may
 * take as long as it needs, up to 10 s). Five starts, median; each is then stopped with SIGTERM.
 */
import { spawnSync } from 'node:child_process'
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { freePort } from '../../src/lib/free-port.ts'
import { Child, REPO_ROOT } from '../lib/child.ts'
import { median } from '../lib/stats.ts'
import { progress, sleep } from '../lib/progress.ts'
import { eventBody } from '../load/payload.ts'
import type { Bench } from './context.ts'

export const COLD_STARTS = 5

export interface ColdStartScenario {
  /** Spawn → first 201 of POST /api/events (ms). */
  readonly runsMs: number[]
  readonly medianMs: number
  /** Spawn → when the probe that got that 201 was sent (the listener had just opened; ms). */
  readonly listeningMs: number[]
  /** Statuses other than 201 seen before it (0: connection refused or reset). */
  readonly otherStatuses: Record<string, number>
  readonly stopMs: number[]
}

function post (port: number, key: string, body: string): Promise<number> {
  return new Promise(resolve => {
    const req = http.request({
      host: '127.0.0.1', port, path: '/api/events', method: 'POST', agent: false, timeout: 10_000,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-api-key': key, connection: 'close' },
    }, res => {
      res.resume()
      res.once('end', () => { resolve(res.statusCode ?? 0) })
      res.once('error', () => { resolve(0) })
    })
    req.once('timeout', () => { req.destroy() })
    req.once('error', () => { resolve(0) })
    req.end(body)
  })
}

function keygen (databaseUrl: string, name: string): string {
  const r = spawnSync(process.execPath, ['dist/cli.js', 'keygen', '--org', name, '--tier', 'enterprise'], {
    cwd: REPO_ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
  })
  if (r.status !== 0) throw new Error(`node dist/cli.js keygen failed (${String(r.status)}): ${r.stderr}`)
  const key = (JSON.parse(r.stdout) as { api_key?: unknown }).api_key
  if (typeof key !== 'string') throw new Error(`node dist/cli.js keygen printed no api_key: ${r.stdout}`)
  return key
}

export async function coldStart (b: Bench, serviceEnv: (port: number) => Record<string, string>): Promise<ColdStartScenario> {
  const key = keygen(b.db.url, `${b.runId}-cold-start`)
  const runsMs: number[] = []
  const listeningMs: number[] = []
  const stopMs: number[] = []
  const otherStatuses: Record<string, number> = {}
  for (let k = 0; k < COLD_STARTS; k++) {
    const port = await freePort()
    const child = new Child({ name: `cold-start-${k + 1}`, args: ['dist/cli.js', 'serve'], env: serviceEnv(port), port })
    try {
      for (let n = 0; ; n++) {
        if (!child.running) throw new Error(`cold start ${k + 1}: the service exited (${String(child.exitCode)}):\n${child.output(2000)}`)
        if (performance.now() - child.spawnedAt > 30_000) throw new Error(`cold start ${k + 1}: no 201 within 30 s:\n${child.output(2000)}`)
        const sent = performance.now()
        const status = await post(port, key, eventBody(`${b.runId}-s5-${k}-${n}`, b.payloads[0]!))
        if (status === 201) {
          runsMs.push(Math.round((performance.now() - child.spawnedAt) * 10) / 10)
          listeningMs.push(Math.round((sent - child.spawnedAt) * 10) / 10)
          break
        }
        otherStatuses[status] = (otherStatuses[status] ?? 0) + 1
        const wait = 5 - (performance.now() - sent)
        if (wait > 0) await sleep(wait)
      }
    } finally {
      const t = performance.now()
      const code = await child.stop(20_000)
      stopMs.push(Math.round(performance.now() - t))
      if (code !== 0) progress(`scenario 5: run ${k + 1} exited with ${String(code)}:\n${child.output(2000)}`)
    }
    progress(`scenario 5: start ${k + 1}/${COLD_STARTS}: ${runsMs[runsMs.length - 1] ?? 'n/a'} ms to the first 201 ` +
      `(that request sent at ${listeningMs[listeningMs.length - 1] ?? 'n/a'} ms; SIGTERM to exit: ${stopMs[stopMs.length - 1]} ms)`)
  }
  return { runsMs, medianMs: median(runsMs), listeningMs, otherStatuses, stopMs }
}
