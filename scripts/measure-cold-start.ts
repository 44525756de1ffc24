/**
 * Cold start of the production command (the Dockerfile's CMD, `node dist/cli.js serve`): from just
 * before spawn() to the first 201 of POST /api/events, against an already migrated database, with a
 * key made beforehand by `node dist/cli.js keygen` that no thread has seen (so the first request pays
 * for an Argon2 verification). Probes: one request at a time on a fresh connection (no keep-alive); a
 * refused connection is retried after 1 ms, an accepted request may take up to 10 s.
 *
 *   node --import tsx scripts/measure-cold-start.ts [--runs=7] [--env=…] [--variant=…] [--nice=-10]
 *
 * (flags and DATABASE_URL: scripts/measure/common.ts). Prints each run — spawn → first accepted
 * connection (≈ listening), → first 201, the CPU time the service (all its threads) had used by then,
 * SIGTERM → exit — then per variant the median, min and max, and the load average before and after.
 * The machine is shared: judge a run by its load; compare variants in one interleaved run.
 */
import net from 'node:net'
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { freePort } from '../src/lib/free-port.ts'
import { cli, cpuMs, enterOwnSession, loadAverage, parseFlags, round1, scratchDatabase, Service, type Variant } from './measure/common.ts'
import { sleep } from '../bench/lib/progress.ts'
import { median } from '../bench/lib/stats.ts'

const flags = parseFlags(process.argv.slice(2), 7)
await enterOwnSession(flags.nice)

/**
 * One POST on a fresh connection, written raw (the service closes it after answering, as asked): the
 * answer's status, or 0 when the connection was refused, reset or timed out.
 */
function post (port: number, key: string, body: string): Promise<number> {
  return new Promise(resolve => {
    const socket = net.connect({ host: '127.0.0.1', port })
    let head = ''
    socket.setTimeout(10_000, () => { socket.destroy() })
    socket.once('connect', () => {
      socket.write(`POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-API-Key: ${key}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    })
    socket.on('data', (d: Buffer) => { if (head.length < 64) head += d.toString('latin1') })
    socket.once('error', () => {})
    socket.once('close', () => { resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)) })
  })
}

interface Run { readonly first201: number, readonly listening: number, readonly cpu: number }

async function once (v: Variant, k: number, url: string, key: string): Promise<Run> {
  const port = await freePort()
  const t0 = performance.now()
  const svc = new Service(v, url, port, await freePort())
  let listening = NaN
  let first201 = NaN
  let cpu = NaN
  const statuses: Record<string, number> = {}
  try {
    for (let n = 0; Number.isNaN(first201); n++) {
      if (!svc.running) throw new Error(`${v.label}: the service exited (${String(svc.exitCode)}):\n${svc.output}`)
      if (performance.now() - t0 > 30_000) throw new Error(`${v.label}: no 201 within 30 s:\n${svc.output}`)
      const sent = performance.now()
      const status = await post(port, key, JSON.stringify({ type: 'cold.start', dedup_id: `cold-${process.pid}-${v.label}-${k}-${n}`, payload: { n } }))
      if (status !== 0 && Number.isNaN(listening)) listening = sent - t0
      if (status === 201) { first201 = performance.now() - t0; cpu = await cpuMs(svc.proc.pid ?? 0); break }
      statuses[status] = (statuses[status] ?? 0) + 1
      if (status === 0) await sleep(1)
    }
  } finally {
    const t = performance.now()
    const code = await svc.stop()
    const stopMs = Math.round(performance.now() - t)
    if (code !== 0) process.stderr.write(`${v.label} run ${k + 1}: exit code ${String(code)}\n${svc.output}\n`)
    const others = Object.entries(statuses).filter(([s]) => s !== '0').map(([s, c]) => `${s}×${c}`).join(' ')
    process.stdout.write(`${v.label} run ${k + 1}: listening ≤ ${round1(listening)} ms, first 201 ${round1(first201)} ms (service CPU ${cpu} ms)` +
      `${others === '' ? '' : ` (answered before it: ${others})`}; SIGTERM → exit ${stopMs} ms; load ${loadAverage()}\n`)
  }
  return { first201, listening, cpu }
}

const db = await scratchDatabase(flags.variants[0]!.root, 'coldstart')
try {
  const made = JSON.parse(cli(flags.variants[0]!.root, { DATABASE_URL: db.url }, 'keygen', '--org', 'cold-start', '--tier', 'enterprise')) as { api_key: string }
  process.stdout.write(`${flags.runs} cold starts per variant (${flags.variants.map(v => `${v.label}: ${v.root} ${JSON.stringify(v.env)}`).join('; ')}); ` +
    `${os.cpus().length} cores, Node ${process.version}, nice ${flags.nice ?? 'unchanged'}; load average before ${loadAverage()}\n`)
  const runs: Run[][] = flags.variants.map(() => [])
  for (let k = 0; k < flags.runs; k++) {
    for (const [i, v] of flags.variants.entries()) runs[i]!.push(await once(v, k, db.url, made.api_key))
  }
  for (const [i, v] of flags.variants.entries()) {
    const t = runs[i]!.map(r => r.first201)
    const c = runs[i]!.map(r => r.cpu)
    process.stdout.write(`${v.label}: first 201 median ${round1(median(t))} ms, min ${round1(Math.min(...t))}, max ${round1(Math.max(...t))} ` +
      `(${t.map(round1).join(', ')}); listening median ${round1(median(runs[i]!.map(r => r.listening)))} ms; ` +
      `service CPU to the first 201 median ${median(c)} ms (${c.join(', ')})\n`)
  }
  process.stdout.write(`load average after ${loadAverage()}\n`)
} finally {
  await db.drop()
}
