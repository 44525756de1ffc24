/**
 * Request bodies for every load scenario: `{"type","dedup_id","payload"}` with a ~150-byte payload
 * (an order: ids, an e-mail, an amount; one in eight with escaped quotes and backslashes) and a
 * `dedup_id` unique to the request. The payloads are drawn once per run (64 variants, rotated), so the
 * load generator does no random-number work per request.
 */
import { randomBytes } from 'node:crypto'

export const EVENT_TYPE = 'order.created'
export const PAYLOAD_VARIANTS = 64

function hex (n: number): string {
  return randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n)
}

function makePayload (i: number): string {
  const note = i % 8 === 7 ? 'gift \\"wrap\\" C:\\\\tmp' : 'at the door'
  return `{"order_id":"ord_${hex(12)}","customer":{"id":"cus_${hex(10)}","email":"u${hex(6)}@ex.com"},` +
    `"amount":${1000 + ((i * 7919) % 90_000)},"currency":"EUR","items":${1 + (i % 9)},"note":"${note}"}`
}

export function makePayloads (n = PAYLOAD_VARIANTS): string[] {
  return Array.from({ length: n }, (_, i) => makePayload(i))
}

export function eventBody (dedupId: string, payload: string): string {
  return `{"type":"${EVENT_TYPE}","dedup_id":"${dedupId}","payload":${payload}}`
}

/** A well-formed key (`zap_live_` + 55 URL-safe characters) whose lookup part matches no organization. */
export function forgedKey (): string {
  return 'zap_live_' + randomBytes(42).toString('base64url').slice(0, 55)
}

export function meanBytes (xs: readonly string[]): number {
  return xs.reduce((a, s) => a + Buffer.byteLength(s), 0) / Math.max(1, xs.length)
}

/** A batch body `{"events":[…]}` of `count` events whose dedup_ids are `<prefix><k>`. */
export function batchBody (prefix: string, payloads: readonly string[], count: number, first = 0): string {
  const items: string[] = []
  for (let k = 0; k < count; k++) items.push(eventBody(`${prefix}${first + k}`, payloads[(first + k) % payloads.length]!))
  return `{"events":[${items.join(',')}]}`
}
