/**
 * The local webhook receiver of scenario 3: a node:http server on 127.0.0.1 (keep-alive) that answers
 * every POST with 200 and records, per `webhook-id`, when the request's headers arrived
 * (performance.now(), the same clock the sender uses for its 201s). It also checks each Standard
 * Webhooks signature against the organization's secret and counts duplicates (delivery is
 * at-least-once) and bad signatures.
 */
import http from 'node:http'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { performance } from 'node:perf_hooks'

export class Receiver {
  readonly arrivals = new Map<string, number>()
  duplicates = 0
  badSignatures = 0
  requests = 0
  /** Signing keys (decoded whsec_ secrets) by organization id: set before events are sent. */
  readonly secrets: Buffer[] = []
  readonly #server: http.Server
  #port = 0

  constructor () {
    this.#server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
      const arrived = performance.now()
      this.requests++
      const id = req.headers['webhook-id']
      const ts = req.headers['webhook-timestamp']
      const sig = req.headers['webhook-signature']
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => { chunks.push(c) })
      req.on('end', () => {
        if (typeof id === 'string') {
          if (this.arrivals.has(id)) this.duplicates++
          else this.arrivals.set(id, arrived)
          if (typeof ts !== 'string' || typeof sig !== 'string' || !this.#verify(id, ts, Buffer.concat(chunks), sig)) this.badSignatures++
        }
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' })
        res.end('{"ok":true}')
      })
    })
  }

  #verify (id: string, ts: string, body: Buffer, header: string): boolean {
    const signed = Buffer.concat([Buffer.from(`${id}.${ts}.`), body])
    const given = header.split(' ').map(s => s.startsWith('v1,') ? Buffer.from(s.slice(3), 'base64') : Buffer.alloc(0))
    for (const key of this.secrets) {
      const mac = createHmac('sha256', key).update(signed).digest()
      if (given.some(g => g.length === mac.length && timingSafeEqual(g, mac))) return true
    }
    return false
  }

  addSecret (whsec: string): void {
    this.secrets.push(Buffer.from(whsec.replace(/^whsec_/, ''), 'base64'))
  }

  listen (): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(0, '127.0.0.1', () => {
        const a = this.#server.address()
        this.#port = typeof a === 'object' && a !== null ? a.port : 0
        resolve(this.#port)
      })
    })
  }

  get port (): number { return this.#port }

  close (): Promise<void> {
    return new Promise(resolve => {
      this.#server.closeAllConnections()
      this.#server.close(() => { resolve() })
    })
  }
}
