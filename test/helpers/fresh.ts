/**
 * Requests over a fresh TCP connection each (node:http with `agent: false`, so `Connection: close`):
 * the kernel's SO_REUSEPORT hashing then spreads them over every listener thread, which tests of
 * cross-thread behaviour (key eviction, shared rate limits) need. Also: which thread answered (from a
 * generated X-Request-ID) and a wait that keeps a burst inside one clock-minute rate-limit window.
 */
import { request, type IncomingHttpHeaders } from 'node:http'
import { waitFor } from './db.ts'

export interface FreshResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly text: string
  /** Parsed JSON body (null when the body is not JSON). */
  readonly json: any
}

export interface FreshOptions {
  readonly key?: string
  readonly body?: unknown
  readonly headers?: Record<string, string>
}

/** One request on its own connection, closed after the response. */
export function freshRequest (base: string, method: string, path: string, opts: FreshOptions = {}): Promise<FreshResponse> {
  const headers: Record<string, string> = { ...opts.headers }
  if (opts.key !== undefined) headers['x-api-key'] = opts.key
  let body: string | undefined
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body)
    headers['content-type'] ??= 'application/json'
    headers['content-length'] = String(Buffer.byteLength(body))
  }
  return new Promise((resolve, reject) => {
    const req = request(base + path, { method, headers, agent: false }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => { chunks.push(c) })
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown = null
        try { json = JSON.parse(text) } catch { json = null }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** `n` requests at once, each on its own connection. */
export async function freshBurst (n: number, base: string, method: string, path: string, opts: FreshOptions = {}): Promise<FreshResponse[]> {
  return await Promise.all(Array.from({ length: n }, async () => await freshRequest(base, method, path, opts)))
}

/**
 * The listener thread that answered, read from a generated X-Request-ID ("<thread prefix>-<counter>").
 * Only meaningful when the client sent no X-Request-ID of its own.
 */
export function threadOf (headers: IncomingHttpHeaders): string {
  const id = headers['x-request-id']
  if (typeof id !== 'string' || !/^[0-9a-f]{12}-[0-9a-f]{8}$/.test(id)) throw new Error(`not a generated request id: ${String(id)}`)
  return id.slice(0, 12)
}

/**
 * Rate-limit windows are clock minutes. When less than `marginMs` of the current minute is left, waits
 * (a condition on the clock, not a fixed sleep) until the next minute is at least 100 ms old, so a burst
 * that follows lands in one window.
 */
export async function untilFreshWindow (marginMs = 5000): Promise<void> {
  const into = Date.now() % 60_000
  if (into < 60_000 - marginMs && into >= 100) return
  const nextMinute = Date.now() - into + (into >= 100 ? 60_000 : 0)
  await waitFor(() => Date.now() >= nextMinute + 100, 65_000, 'the next rate-limit window')
}
