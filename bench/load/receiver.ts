/**
 * The webhook receiver of the delivery scenarios (3, 8, 9, 10, 12), a separate process so that its
 * CPU is its own and not the bench's: a plain node:http keep-alive server on RECEIVER_PORTS ports of
 * 127.0.0.1 (8 by default: 8 origins, or 8 paths on the first port for one origin). It answers every
 * request 200 `{"ok":true}` at once and records, per (path, webhook-id), when its headers arrived
 * (epoch milliseconds: performance.timeOrigin + performance.now()). A second arrival of the same
 * (path, webhook-id) is a duplicate (delivery is at-least-once; fan-out sends one event id to several
 * endpoints, each on its own path). Every RECEIVER_VERIFY_EVERY-th request (50) has its body read and
 * its Standard Webhooks signature checked against the secret the bench registered for its path, so
 * the receiver costs about what a plain server costs while signatures are still checked throughout.
 *
 *   node --import tsx bench/load/receiver.ts      (started by the bench with an IPC channel)
 *
 * IPC (bench/lib/ipc.ts): it sends `{type: 'ready', ports}`, then answers `secrets`, `reset`,
 * `stats {prefix}` (counts, duplicates, first and last arrival over the paths starting with prefix),
 * `arrivals {prefix}` (every webhook-id with its arrival time) and `clock` (its current time, to
 * measure the clock offset to the bench). SIGTERM or a lost parent: closes every socket and exits.
 */
import http from 'node:http'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { serveIpc } from '../lib/ipc.ts'

const PORTS = Number(process.env.RECEIVER_PORTS ?? 8)
const VERIFY_EVERY = Number(process.env.RECEIVER_VERIFY_EVERY ?? 50)
const ANSWER = '{"ok":true}'
const HEADERS = { 'content-type': 'application/json', 'content-length': String(ANSWER.length) }

const now = (): number => performance.timeOrigin + performance.now()

class PathStat {
  count = 0
  duplicates = 0
  first = Infinity
  last = 0
}

const secrets = new Map<string, Buffer[]>()
let seen = new Map<string, number>()
let byPath = new Map<string, PathStat>()
let requests = 0
let verified = 0
let badSignatures = 0
let unverifiable = 0
let noId = 0

function verify (path: string, id: string, ts: string | undefined, sig: string | undefined, body: Buffer): void {
  const keys = secrets.get(path)
  if (keys === undefined) { unverifiable++; return }
  if (ts === undefined || sig === undefined) { badSignatures++; return }
  const signed = Buffer.concat([Buffer.from(`${id}.${ts}.`), body])
  const given = sig.split(' ').map(s => s.startsWith('v1,') ? Buffer.from(s.slice(3), 'base64') : Buffer.alloc(0))
  for (const key of keys) {
    const mac = createHmac('sha256', key).update(signed).digest()
    if (given.some(g => g.length === mac.length && timingSafeEqual(g, mac))) { verified++; return }
  }
  badSignatures++
}

function onRequest (req: http.IncomingMessage, res: http.ServerResponse): void {
  const arrived = now()
  requests++
  const path = req.url ?? '/'
  const id = req.headers['webhook-id']
  if (typeof id === 'string') {
    let st = byPath.get(path)
    if (st === undefined) { st = new PathStat(); byPath.set(path, st) }
    const key = path + ' ' + id
    if (seen.has(key)) st.duplicates++
    else {
      seen.set(key, arrived)
      st.count++
      if (arrived < st.first) st.first = arrived
      if (arrived > st.last) st.last = arrived
    }
  } else noId++
  if (typeof id === 'string' && requests % VERIFY_EVERY === 0) {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => { chunks.push(c) })
    req.on('end', () => {
      const ts = req.headers['webhook-timestamp']
      const sig = req.headers['webhook-signature']
      verify(path, id, typeof ts === 'string' ? ts : undefined, typeof sig === 'string' ? sig : undefined, Buffer.concat(chunks))
      res.writeHead(200, HEADERS).end(ANSWER)
    })
    return
  }
  req.resume()
  res.writeHead(200, HEADERS).end(ANSWER)
}

const servers: http.Server[] = []
const ports: number[] = []
for (let i = 0; i < PORTS; i++) {
  const server = http.createServer({ keepAliveTimeout: 30_000 }, onRequest)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { resolve() })
  })
  const a = server.address()
  ports.push(typeof a === 'object' && a !== null ? a.port : 0)
  servers.push(server)
}

function summed (prefix: string): Record<string, number | null> {
  let count = 0
  let duplicates = 0
  let first = Infinity
  let last = 0
  for (const [p, s] of byPath) {
    if (!p.startsWith(prefix)) continue
    count += s.count
    duplicates += s.duplicates
    if (s.first < first) first = s.first
    if (s.last > last) last = s.last
  }
  return { count, duplicates, first: count === 0 ? null : first, last: count === 0 ? null : last }
}

serveIpc({
  secrets: m => {
    for (const [path, whsec] of m.entries as [string, string][]) {
      const key = Buffer.from(whsec.replace(/^whsec_/, ''), 'base64')
      secrets.set(path, [...(secrets.get(path) ?? []), key])
    }
    return {}
  },
  reset: () => {
    seen = new Map()
    byPath = new Map()
    requests = verified = badSignatures = unverifiable = noId = 0
    return {}
  },
  stats: m => ({ ...summed(String(m.prefix ?? '/')), requests, verified, badSignatures, unverifiable, noId }),
  arrivals: m => {
    const prefix = String(m.prefix ?? '/')
    const ids: string[] = []
    const at: number[] = []
    for (const [key, t] of seen) {
      const sp = key.indexOf(' ')
      if (!key.slice(0, sp).startsWith(prefix)) continue
      ids.push(key.slice(sp + 1))
      at.push(t)
    }
    return { ids, at }
  },
  clock: () => ({ now: now() }),
})

function stop (): void {
  let open = servers.length
  for (const s of servers) {
    s.closeAllConnections()
    s.close(() => { if (--open === 0) process.exit(0) })
  }
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
process.once('disconnect', stop)
process.send?.({ type: 'ready', ports, pid: process.pid })
