/**
 * Setting up an organization on a running service over HTTP, as a customer does: a key from
 * POST /api/keys/generate and, optionally, its webhook URL (the default endpoint).
 */
import assert from 'node:assert/strict'
import { request } from 'undici'

async function post (base: string, path: string, body: unknown, key?: string): Promise<any> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (key !== undefined) headers['x-api-key'] = key
  const r = await request(base + path, { method: 'POST', reset: true, headers, body: JSON.stringify(body) })
  const text = await r.body.text()
  assert.ok(r.statusCode === 200 || r.statusCode === 201, `POST ${path}: ${r.statusCode} ${text}`)
  return JSON.parse(text)
}

export interface Org { readonly key: string, readonly id: string }

export async function createOrg (base: string, name: string, webhookUrl?: string): Promise<Org> {
  const g = await post(base, '/api/keys/generate', { organization_name: name, tier: 'enterprise' })
  const org: Org = { key: g.api_key, id: g.organization_id }
  if (webhookUrl !== undefined) await post(base, '/api/webhook/config', { webhook_url: webhookUrl }, org.key)
  return org
}

/**
 * One authenticated request on a node, answered 200: the node has verified the key (its first
 * verification may wait for an Argon2 thread to start) and cached it, as a client's first request would.
 */
export async function warmNode (base: string, key: string): Promise<void> {
  const r = await request(base + '/api/keys', { reset: true, headers: { 'x-api-key': key } })
  const text = await r.body.text()
  assert.equal(r.statusCode, 200, `GET /api/keys: ${r.statusCode} ${text}`)
}
