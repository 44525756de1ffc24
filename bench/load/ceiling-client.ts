/**
 * The delivery ceiling of scenario 8: what this machine and the receiver can take with no database at
 * all. A separate process that POSTs webhook requests shaped exactly like the service's — the same
 * body (`{"id","type","data":<payload>,"timestamp"}` with the bench's payloads, so the same sizes),
 * the same headers, a Standard Webhooks signature (HMAC-SHA256 of `<id>.<ts>.<body>` with the
 * endpoint's secret) computed per request — to the same receiver URLs the service delivers to, on
 * undici's dispatcher API (a keep-alive Pool per origin, a fixed-shape handler object per request, as
 * src/delivery/dispatch.ts does) with `inFlight` requests in flight per target URL (8 × 16 like the
 * service's 8 endpoints at DELIVERY_PER_ENDPOINT_CONCURRENCY=16). The count is split evenly over the
 * targets; each target keeps its window full until its share is sent.
 *
 *   node --import tsx bench/load/ceiling-client.ts   (started by the bench with an IPC channel)
 *
 * IPC: `{type: 'ready'}`, then `run {targets, count, inFlight, payloads}` answered with the first
 * send and the last answer (epoch ms on its clock), counts and the first error; `clock`.
 * SIGTERM or a lost parent: exits.
 */
import { createHmac, randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Pool } from 'undici'
import { serveIpc } from '../lib/ipc.ts'
import { VERSION } from '../../src/version.ts'

const USER_AGENT = 'triggers-api/' + VERSION
const EVENT_TYPE = 'order.created'
const now = (): number => performance.timeOrigin + performance.now()

interface Target { readonly url: string, readonly secret: string, readonly endpointId: string }

class Run {
  ok = 0
  non2xx = 0
  errors = 0
  firstError: string | null = null
  firstSendAt = 0
  lastDoneAt = 0
  outstanding = 0
  done: () => void = () => {}
}

/** One target URL: its pool, key, path, and how many requests it still has to send. */
class Lane {
  readonly pool: Pool
  readonly path: string
  readonly key: Buffer
  readonly endpointId: string
  left: number
  constructor (pool: Pool, path: string, secret: string, endpointId: string, share: number) {
    this.pool = pool
    this.path = path
    this.key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
    this.endpointId = endpointId
    this.left = share
  }
}

/** The undici handler of one request (legacy callback form, as the service's dispatcher uses). */
class Request {
  readonly lane: Lane
  readonly run: Run
  readonly payloads: readonly string[]
  status = 0
  constructor (lane: Lane, run: Run, payloads: readonly string[]) {
    this.lane = lane
    this.run = run
    this.payloads = payloads
  }

  onConnect (): void {}
  onHeaders (statusCode: number): boolean { this.status = statusCode; return true }
  onData (): boolean { return true }
  onComplete (): void {
    if (this.status >= 200 && this.status < 300) this.run.ok++
    else this.run.non2xx++
    this.next()
  }

  onError (err: Error): void {
    this.run.errors++
    this.run.firstError ??= `${err.name}: ${err.message}`
    this.next()
  }

  next (): void {
    this.run.outstanding--
    this.run.lastDoneAt = now()
    if (this.lane.left > 0) send(this.lane, this.run, this.payloads)
    else if (this.run.outstanding === 0) this.run.done()
  }
}

let seq = 0
function send (lane: Lane, run: Run, payloads: readonly string[]): void {
  lane.left--
  run.outstanding++
  const id = randomUUID()
  const nowMs = Date.now()
  const ts = String(Math.floor(nowMs / 1000))
  const body = '{"id":"' + id + '","type":"' + EVENT_TYPE + '","data":' + payloads[seq++ % payloads.length]! +
    ',"timestamp":"' + new Date(nowMs).toISOString() + '"}'
  const sig = createHmac('sha256', lane.key).update(id + '.' + ts + '.').update(body).digest('base64')
  const headers = [
    'content-type', 'application/json',
    'user-agent', USER_AGENT,
    'x-event-id', id,
    'x-event-type', EVENT_TYPE,
    'x-delivery-attempt', '1',
    'x-endpoint-id', lane.endpointId,
    'webhook-id', id,
    'webhook-timestamp', ts,
    'webhook-signature', 'v1,' + sig,
  ]
  lane.pool.dispatch({ path: lane.path, method: 'POST', headers, body }, new Request(lane, run, payloads))
}

async function run (targets: readonly Target[], count: number, inFlight: number, payloads: readonly string[]): Promise<Record<string, unknown>> {
  const byOrigin = new Map<string, Target[]>()
  for (const t of targets) {
    const o = new URL(t.url).origin
    byOrigin.set(o, [...(byOrigin.get(o) ?? []), t])
  }
  const pools = new Map<string, Pool>()
  for (const [origin, ts] of byOrigin) {
    pools.set(origin, new Pool(origin, { connections: inFlight * ts.length, pipelining: 1, keepAliveTimeout: 4000 }))
  }
  const lanes = targets.map((t, i) => {
    const u = new URL(t.url)
    const share = Math.floor(count / targets.length) + (i < count % targets.length ? 1 : 0)
    return new Lane(pools.get(u.origin)!, u.pathname + u.search, t.secret, t.endpointId, share)
  })
  const r = new Run()
  const finished = new Promise<void>(resolve => { r.done = resolve })
  r.firstSendAt = now()
  for (const lane of lanes) for (let k = 0; k < inFlight && lane.left > 0; k++) send(lane, r, payloads)
  await finished
  await Promise.all([...pools.values()].map(async p => { await p.close() }))
  return { firstSendAt: r.firstSendAt, lastDoneAt: r.lastDoneAt, ok: r.ok, non2xx: r.non2xx, errors: r.errors, firstError: r.firstError }
}

serveIpc({
  run: async m => await run(m.targets as Target[], Number(m.count), Number(m.inFlight), m.payloads as string[]),
  clock: () => ({ now: now() }),
})

const exit = (): void => { process.exit(0) }
process.once('SIGTERM', exit)
process.once('SIGINT', exit)
process.once('disconnect', exit)
process.send?.({ type: 'ready', pid: process.pid })
