/**
 * The receiving side: checks a delivery's Standard Webhooks signature with the `standardwebhooks`
 * package and returns the event. Pass the body exactly as received (a string or the raw bytes, never
 * re-serialized JSON) and the request headers (a fetch Headers, or Node's req.headers).
 *
 *   const event = verifyWebhook(secret, rawBody, req.headers) // throws WebhookVerificationError
 *
 * The service signs with every secret an endpoint has (two for 24 hours after a rotation), so one
 * secret verifies; a receiver rolling its own configuration may pass several and any one that
 * matches is enough. Timestamps more than five minutes from the receiver's clock are refused (the
 * package's replay window). Deliveries are at least once: deduplicate on `event.id` (= webhook-id).
 */
import { Webhook, WebhookVerificationError as StandardWebhooksError } from 'standardwebhooks'
import { TriggersError } from './errors.js'

/** The body of a delivery (the contract, docs/api.md "Webhook delivery"). */
export interface WebhookEvent<P = Record<string, unknown>> {
  /** The event id, also the webhook-id header. */
  readonly id: string
  readonly type: string
  /** The event's payload. */
  readonly data: P
  /** The event's created_at. */
  readonly timestamp: string
}

/** Node's IncomingHttpHeaders, a plain record, or a fetch Headers. */
export type HeaderSource = { get (name: string): string | null } | Readonly<Record<string, string | readonly string[] | undefined>>

export class WebhookVerificationError extends TriggersError {
  constructor (message: string, cause?: unknown) {
    super(message, '', cause === undefined ? undefined : { cause })
    this.name = 'WebhookVerificationError'
  }
}

function header (headers: HeaderSource, name: string): string | undefined {
  if (typeof headers.get === 'function') return (headers as { get (n: string): string | null }).get(name) ?? undefined
  const rec = headers as Readonly<Record<string, string | readonly string[] | undefined>>
  const key = Object.keys(rec).find(k => k.toLowerCase() === name)
  const v = key === undefined ? undefined : rec[key]
  return Array.isArray(v) ? v.join(', ') : v as string | undefined
}

const decoder = new TextDecoder('utf-8', { fatal: true })

/** Verifies one delivery and returns its event; throws WebhookVerificationError when no secret matches or the body is not an event. */
export function verifyWebhook<P = Record<string, unknown>> (secret: string | readonly string[], body: string | Uint8Array, headers: HeaderSource): WebhookEvent<P> {
  const secrets = typeof secret === 'string' ? [secret] : secret
  if (secrets.length === 0) throw new TypeError('verifyWebhook needs at least one whsec_ secret')
  const signed = {
    'webhook-id': header(headers, 'webhook-id'),
    'webhook-timestamp': header(headers, 'webhook-timestamp'),
    'webhook-signature': header(headers, 'webhook-signature'),
  }
  for (const [name, value] of Object.entries(signed)) if (value === undefined || value === '') throw new WebhookVerificationError(`missing ${name} header`)
  let text: string
  try {
    text = typeof body === 'string' ? body : decoder.decode(body)
  } catch (err) {
    throw new WebhookVerificationError('body is not UTF-8', err)
  }
  let payload: unknown
  let lastError: unknown
  for (const s of secrets) {
    try {
      payload = new Webhook(s).verify(text, signed as Record<string, string>)
      lastError = undefined
      break
    } catch (err) {
      // A malformed secret is the caller's mistake, not a bad delivery: say so.
      if (!(err instanceof StandardWebhooksError)) throw new TypeError(`not a usable whsec_ secret: ${err instanceof Error ? err.message : String(err)}`)
      lastError = err
    }
  }
  if (lastError !== undefined) throw new WebhookVerificationError(lastError instanceof Error ? lastError.message : 'no matching signature', lastError)
  const e = payload as Partial<WebhookEvent<P>> | null
  if (typeof e !== 'object' || e === null || typeof e.id !== 'string' || typeof e.type !== 'string' || typeof e.timestamp !== 'string' || typeof e.data !== 'object' || e.data === null) {
    throw new WebhookVerificationError('signed body is not a Triggers API event')
  }
  if (e.id !== signed['webhook-id']) throw new WebhookVerificationError('body id differs from webhook-id')
  return e as WebhookEvent<P>
}
