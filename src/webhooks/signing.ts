/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/, "Signature scheme"). A secret is
 * `whsec_` + base64 of 32 random bytes; the HMAC-SHA256 key is those decoded bytes, and the signed
 * content is `<msg id>.<unix seconds>.<body>`. Each secret yields one `v1,<base64>` entry; entries are
 * space-separated, so during a rotation both the new and the previous secret sign every delivery and
 * receivers holding either one verify.
 *
 * Runs on the delivery thread (signing) and on listener threads (new secrets). Decoded keys are cached
 * per secret string in a small bounded map, so a delivery does not base64-decode its keys every time.
 */
import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto'

const PREFIX = 'whsec_'
/** How long the previous signing secret keeps signing after a rotation (the contract, docs/api.md: 24 hours). */
export const SECRET_GRACE_SECONDS = 24 * 60 * 60
const KEY_CACHE_MAX = 1024
const keyCache = new Map<string, Buffer>()
/** The same keys imported once as KeyObjects: createHmac then skips importing raw bytes on every signature. */
const keyObjects = new Map<string, KeyObject>()

/** A new signing secret: `whsec_` + base64 of 32 CSPRNG bytes. */
export function newSigningSecret (): string {
  return PREFIX + randomBytes(32).toString('base64')
}

/** The HMAC key of a secret: the bytes after `whsec_`, base64-decoded (a bare base64 secret is accepted too). */
export function signingKey (secret: string): Buffer {
  let key = keyCache.get(secret)
  if (key !== undefined) return key
  key = Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, 'base64')
  // Bounded: drop the oldest entry (Map keeps insertion order). Secrets change rarely, so this is
  // effectively a cache of the active organizations' keys.
  if (keyCache.size >= KEY_CACHE_MAX) {
    const oldest = keyCache.keys().next()
    if (oldest.done !== true) keyCache.delete(oldest.value)
  }
  keyCache.set(secret, key)
  return key
}

function hmacKey (secret: string): KeyObject {
  let k = keyObjects.get(secret)
  if (k === undefined) {
    if (keyObjects.size >= KEY_CACHE_MAX) keyObjects.clear()
    k = createSecretKey(signingKey(secret))
    keyObjects.set(secret, k)
  }
  return k
}

/**
 * The `webhook-signature` header value: one `v1,<sig>` per secret, space-separated, in the order given
 * (current secret first). An empty list gives an empty string (the caller omits the header).
 */
export function signatureHeader (secrets: readonly string[], msgId: string, timestampS: number, body: string): string {
  let out = ''
  const prefix = msgId + '.' + String(timestampS) + '.'
  for (const secret of secrets) {
    const sig = createHmac('sha256', hmacKey(secret)).update(prefix).update(body).digest('base64')
    out += (out === '' ? 'v1,' : ' v1,') + sig
  }
  return out
}
