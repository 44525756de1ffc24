/**
 * Resident memory of the service under a steady ingest load — bench scenario 4's measurement, on its
 * own: the production command (`node dist/cli.js serve`, all threads in one process) gets
 * POST /api/events at a fixed rate, open loop (bench/load/open-loop.ts), on up to 64 keep-alive
 * connections, with keys made and verified on every listener beforehand; VmRSS of the process is read
 * from /proc every 200 ms during the measured run.
 *
 *   node --import tsx scripts/measure-memory.ts [--rate=2000] [--seconds=20] [--runs=1] [--trace] [--env=…] [--variant=…]
 *
 * (flags and DATABASE_URL: scripts/measure/common.ts). Prints per run the resident set after start-up
 * and warm-up, its maximum and mean during the run (and VmHWM, the peak since start), the anonymous and
 * file-backed parts at the end, what was answered, the latency p50/p99 and the service's CPU time per
 * 1,000 requests (GC settings trade memory for CPU); the load average around it. --trace adds the
 * resident set of every second of the run.
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import os from 'node:os'
import { freePort } from '../src/lib/free-port.ts'
import { OpenLoop } from '../bench/load/open-loop.ts'
import { cpuMs, enterOwnSession, loadAverage, parseFlags, procStatusKb, round1, scratchDatabase, Service, type Variant } from './measure/common.ts'
import { sleep } from '../bench/lib/progress.ts'
import { median } from '../bench/lib/stats.ts'

const flags = parseFlags(process.argv.slice(2), 1)
const RATE = Number(flags.get('rate') ?? 2000)
const SECONDS = Number(flags.get('seconds') ?? 20)
const CONNECTIONS = Number(flags.get('connections') ?? 64)
const ORGS = 8
await enterOwnSession(flags.nice)

function request (port: number, method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number, text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.once('end', () => { resolve({ status: res.statusCode ?? 0, text }) })
      res.once('error', reject)
    })
    req.once('error', reject)
    req.end(body)
  })
}

async function ready (svc: Service, port: number): Promise<void> {
  for (const t0 = Date.now(); Date.now() - t0 < 60_000; await sleep(20)) {
    if (!svc.running) throw new Error(`the service exited (${String(svc.exitCode)}):\n${svc.output}`)
    try { if ((await request(port, 'GET', '/health', {})).status === 200) return } catch {}
  }
  throw new Error(`no /health 200 within 60 s:\n${svc.output}`)
}

/** Enterprise organizations (limits never bind), each key verified on every listener (8 fresh connections each). */
async function keys (port: number, run: string): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < ORGS; i++) {
    const r = await request(port, 'POST', '/api/keys/generate', { 'content-type': 'application/json' }, JSON.stringify({ organization_name: `${run}-${i}`, tier: 'enterprise' }))
    if (r.status !== 201) throw new Error(`POST /api/keys/generate: ${r.status} ${r.text}`)
    out.push((JSON.parse(r.text) as { api_key: string }).api_key)
  }
  await Promise.all(out.flatMap(key => Array.from({ length: 8 }, async () => await request(port, 'GET', '/api/keys', { 'x-api-key': key }))))
  return out
}

const PAYLOADS = Array.from({ length: 64 }, (_, i) => `{"order_id":"ord_${randomBytes(6).toString('hex')}","customer":{"id":"cus_${randomBytes(5).toString('hex')}",` +
  `"email":"u${randomBytes(3).toString('hex')}@ex.com"},"amount":${1000 + i * 137},"currency":"EUR","items":${1 + (i % 9)},"note":"at the door"}`)

interface Run { readonly cpuPerK: number, readonly idleMb: number, readonly maxMb: number, readonly meanMb: number, readonly hwmMb: number, readonly anonMb: number, readonly fileMb: number, readonly line: string }

async function once (v: Variant, k: number, url: string): Promise<Run> {
  const port = await freePort()
  const svc = new Service(v, url, port, await freePort())
  const pid = svc.proc.pid ?? 0
  const run = `mem-${process.pid}-${v.label}-${k}`
  try {
    await ready(svc, port)
    const ks = await keys(port, run)
    const load = new OpenLoop(port, CONNECTIONS)
    const make = (prefix: string) => (i: number) => ({
      headers: { 'content-type': 'application/json', 'x-api-key': ks[i % ks.length]! },
      body: `{"type":"order.created","dedup_id":"${run}-${prefix}${i}","payload":${PAYLOADS[i % PAYLOADS.length]!}}`,
    })
    await load.run({ port, path: '/api/events', rate: RATE, durationMs: 2000, make: make('w') })
    const idleMb = (procStatusKb(pid).VmRSS ?? NaN) / 1024
    const samples: number[] = []
    const cpu0 = await cpuMs(pid)
    const timer = setInterval(() => { const s = procStatusKb(pid).VmRSS; if (s !== undefined) samples.push(s / 1024) }, 200)
    const r = await load.run({ port, path: '/api/events', rate: RATE, durationMs: SECONDS * 1000, make: make('m') })
    clearInterval(timer)
    const cpuPerK = (await cpuMs(pid) - cpu0) / (r.answered / 1000)
    await load.close()
    const end = procStatusKb(pid)
    const sorted = Float64Array.from(r.latencies).sort()
    const pct = (p: number): number => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
    const out: Run = {
      cpuPerK,
      idleMb: idleMb,
      maxMb: Math.max(...samples),
      meanMb: samples.reduce((a, b) => a + b, 0) / samples.length,
      hwmMb: (end.VmHWM ?? NaN) / 1024,
      anonMb: (end.RssAnon ?? NaN) / 1024,
      fileMb: (end.RssFile ?? NaN) / 1024,
      line: `${r.ok2xx}/${r.scheduled} answered 2xx (${r.non2xx} other, ${r.errors} errors, ${r.dropped} dropped), p50 ${round1(pct(0.5))} ms, p99 ${round1(pct(0.99))} ms, service CPU ${round1(cpuPerK)} ms per 1,000 requests`,
    }
    if (flags.get('trace') !== undefined) process.stdout.write(`${v.label} run ${k + 1}: RSS each second (MB): ${samples.filter((_, i) => i % 5 === 0).map(Math.round).join(' ')}\n`)
    process.stdout.write(`${v.label} run ${k + 1}: RSS after warm-up ${round1(out.idleMb)} MB; during ${SECONDS} s at ${RATE}/s max ${round1(out.maxMb)} MB, ` +
      `mean ${round1(out.meanMb)} MB; VmHWM ${round1(out.hwmMb)} MB; at the end anon ${round1(out.anonMb)} MB, file ${round1(out.fileMb)} MB; ${out.line}; load ${loadAverage()}\n`)
    return out
  } finally {
    const code = await svc.stop()
    if (code !== 0) process.stderr.write(`${v.label} run ${k + 1}: exit code ${String(code)}\n${svc.output}\n`)
  }
}

const db = await scratchDatabase(flags.variants[0]!.root, 'memory')
try {
  process.stdout.write(`${flags.runs} run(s) per variant at ${RATE} req/s for ${SECONDS} s, ${CONNECTIONS} connections (${flags.variants.map(v => `${v.label}: ${v.root} ${JSON.stringify(v.env)}`).join('; ')}); ` +
    `${os.cpus().length} cores, Node ${process.version}; load average before ${loadAverage()}\n`)
  const runs: Run[][] = flags.variants.map(() => [])
  for (let k = 0; k < flags.runs; k++) {
    for (const [i, v] of flags.variants.entries()) runs[i]!.push(await once(v, k, db.url))
  }
  for (const [i, v] of flags.variants.entries()) {
    const rs = runs[i]!
    process.stdout.write(`${v.label}: max RSS median ${round1(median(rs.map(r => r.maxMb)))} MB (${rs.map(r => round1(r.maxMb)).join(', ')}); ` +
      `mean ${round1(median(rs.map(r => r.meanMb)))} MB; after warm-up ${round1(median(rs.map(r => r.idleMb)))} MB; ` +
      `service CPU ${round1(median(rs.map(r => r.cpuPerK)))} ms per 1,000 requests\n`)
  }
  process.stdout.write(`load average after ${loadAverage()}\n`)
} finally {
  await db.drop()
}
