/**
 * Set-up calls to the service's API: organizations (POST /api/keys/generate), warming their keys on
 * every listener thread, endpoints (create, PATCH, DELETE) and batch ingest for queueing events. No
 * keep-alive: an idle connection would hold up the service's drain at stop.
 */
import http from 'node:http'
import { eventBody } from '../load/payload.ts'

export interface HttpAnswer { status: number, body: unknown }

export function call (port: number, method: string, urlPath: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const data = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, method, path: urlPath, agent: false, timeout: 30_000,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), connection: 'close', ...headers },
    }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => { chunks.push(c) })
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`${method} ${urlPath} timed out`)) })
    req.on('error', reject)
    req.end(data)
  })
}

/** Calls that must succeed: throws with the answer otherwise. */
export async function expect (status: number, what: string, p: Promise<HttpAnswer>): Promise<Record<string, unknown>> {
  const r = await p
  if (r.status !== status) throw new Error(`${what} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 500)}`)
  return r.body as Record<string, unknown>
}

/** Runs `jobs` with at most `parallel` at a time. */
export async function inParallel (jobs: readonly (() => Promise<void>)[], parallel: number): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => { while (next < jobs.length) await jobs[next++]!() }
  await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, worker))
}

export interface Org { readonly key: string, readonly id: string }

export async function createOrgs (port: number, count: number, namePrefix: string): Promise<Org[]> {
  const orgs: Org[] = new Array<Org>(count)
  await inParallel(Array.from({ length: count }, (_, i) => async () => {
    const b = await expect(201, 'POST /api/keys/generate', call(port, 'POST', '/api/keys/generate', { organization_name: `${namePrefix}-${i}`, tier: 'enterprise' }))
    if (typeof b.api_key !== 'string' || typeof b.organization_id !== 'string') throw new Error(`POST /api/keys/generate: ${JSON.stringify(b)}`)
    orgs[i] = { key: b.api_key, id: b.organization_id }
  }), 4)
  return orgs
}

/**
 * Warms every key's entry in the listener threads' key caches (the first use of a key on a thread is
 * an Argon2 verification): 8 requests per key, each on a fresh connection, so SO_REUSEPORT spreads them
 * over the threads (with 2 threads, both see the key with probability 1 - 2/2^8). GET /api/keys, so
 * no event is stored (it would be delivered where the organization has endpoints).
 */
export async function warmKeys (port: number, orgs: readonly Org[]): Promise<void> {
  const jobs: (() => Promise<void>)[] = []
  for (const [k, o] of orgs.entries()) {
    for (let j = 0; j < 8; j++) {
      jobs.push(async () => { await expect(200, `warming key ${k}: GET /api/keys`, call(port, 'GET', '/api/keys', undefined, { 'x-api-key': o.key })) })
    }
  }
  await inParallel(jobs, 16)
}

/** The request maker of the open-loop generator: POST /api/events, keys and payloads rotated. */
export function eventRequests (orgs: readonly Org[], payloads: readonly string[], prefix: string): (i: number) => { headers: Record<string, string>, body: string } {
  return i => ({
    headers: { 'content-type': 'application/json', 'x-api-key': orgs[i % orgs.length]!.key },
    body: eventBody(`${prefix}${i}`, payloads[i % payloads.length]!),
  })
}

export interface Endpoint {
  readonly org: Org
  readonly id: string
  readonly url: string
  /** The URL's path: the receiver counts arrivals per path. */
  readonly path: string
  readonly secret: string
}

export async function createEndpoint (port: number, org: Org, url: string, status: 'active' | 'paused'): Promise<Endpoint> {
  const b = await expect(201, 'POST /api/endpoints', call(port, 'POST', '/api/endpoints', { url, event_types: ['*'], status }, { 'x-api-key': org.key }))
  if (typeof b.id !== 'string' || typeof b.signing_secret !== 'string') throw new Error(`POST /api/endpoints: ${JSON.stringify(b)}`)
  return { org, id: b.id, url, path: new URL(url).pathname, secret: b.signing_secret }
}

export async function patchEndpoint (port: number, e: Endpoint, patch: Record<string, unknown>): Promise<void> {
  await expect(200, `PATCH /api/endpoints/${e.id}`, call(port, 'PATCH', `/api/endpoints/${e.id}`, patch, { 'x-api-key': e.org.key }))
}

export async function deleteEndpoint (port: number, e: Endpoint): Promise<void> {
  await expect(204, `DELETE /api/endpoints/${e.id}`, call(port, 'DELETE', `/api/endpoints/${e.id}`, undefined, { 'x-api-key': e.org.key }))
}

/** POST /api/events/batch; returns the number of events created (throws unless 200 and all created). */
export async function postBatch (port: number, org: Org, body: string, expected: number): Promise<number> {
  const b = await expect(200, 'POST /api/events/batch', call(port, 'POST', '/api/events/batch', body, { 'x-api-key': org.key }))
  if (b.created !== expected) throw new Error(`POST /api/events/batch created ${String(b.created)} of ${expected}: ${JSON.stringify(b).slice(0, 300)}`)
  return expected
}
