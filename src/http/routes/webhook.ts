/**
 * Webhook configuration and redelivery: POST /api/webhook/config, POST /api/webhook/secret/rotate,
 * POST /api/events/:event_id/redeliver and POST /api/webhook/replay. The URL rule (absolute http(s),
 * at most 2048 characters, public addresses only unless ALLOW_PRIVATE_WEBHOOKS) lives in
 * delivery/ssrf.ts and is applied again at connect time. Listener threads only.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import type { Body } from '../pipeline.ts'
import { send } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { ApiError } from '../../errors.ts'
import { isUuid } from '../../lib/uuid.ts'
import { dbError } from '../../db/errors.ts'
import { rotateSigningSecret, setWebhook } from '../../db/queries/organizations.ts'
import { redeliverEvent, releaseParkedEvents, replayEvents } from '../../db/queries/schedule-deliveries.ts'
import { checkWebhookUrl } from '../../delivery/ssrf.ts'
import { newSigningSecret } from '../../delivery/signing.ts'

/** How long the previous signing secret keeps signing after a rotation. */
export const SECRET_GRACE_SECONDS = 24 * 60 * 60
const CONFIGURED = 'Webhook URL configured successfully'

export async function configureWebhook (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const auth = ctx.auth
  if (auth === null || body === null) throw new ApiError('unauthorized')
  const raw = body.webhook_url
  if (raw === undefined || raw === null) throw new ApiError('missing_field', 'Missing required field: webhook_url', { field: 'webhook_url' })
  if (typeof raw !== 'string') throw new ApiError('invalid_webhook_url', 'webhook_url must be a string', { details: { webhook_url: 'must be a string' } })
  const checked = await checkWebhookUrl(raw, s.config.allowPrivateWebhooks)
  if (!checked.ok) throw new ApiError('invalid_webhook_url', `Invalid webhook URL: ${checked.reason}`, { details: { webhook_url: checked.reason } })
  let row
  try {
    row = await setWebhook(s.sql, auth.organizationId, checked.url, newSigningSecret())
    if (row === null) throw new ApiError('unauthorized')
    await releaseParkedEvents(s.sql, auth.organizationId)
  } catch (err) { throw dbError(err) }
  s.wakeDelivery()
  send(ctx, 200, serialize.webhookConfig({ message: CONFIGURED, webhook_url: row.webhook_url, signing_secret: row.signing_secret }))
}

export async function rotateSecret (ctx: Ctx, s: Services): Promise<void> {
  const auth = ctx.auth
  if (auth === null) throw new ApiError('unauthorized')
  let row
  try { row = await rotateSigningSecret(s.sql, auth.organizationId, newSigningSecret(), SECRET_GRACE_SECONDS) } catch (err) { throw dbError(err) }
  if (row === null) throw new ApiError('unauthorized')
  send(ctx, 200, serialize.secretRotated({
    signing_secret: row.signing_secret,
    previous_secret_expires_at: row.previous_secret_expires_at === null ? null : row.previous_secret_expires_at.toISOString(),
  }))
}

export async function redeliver (ctx: Ctx, s: Services): Promise<void> {
  const auth = ctx.auth
  if (auth === null) throw new ApiError('unauthorized')
  if (!isUuid(ctx.param)) throw new ApiError('invalid_id')
  const id = ctx.param.toLowerCase()
  let outcome
  try { outcome = await redeliverEvent(s.sql, auth.organizationId, id) } catch (err) { throw dbError(err) }
  if (outcome === 'not_found') throw new ApiError('not_found', 'Event not found')
  if (outcome === 'no_webhook') throw new ApiError('no_webhook_configured')
  s.wakeDelivery()
  send(ctx, 202, serialize.redeliver({ event_id: id, status: 'pending' }))
}

export async function replay (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const auth = ctx.auth
  if (auth === null || body === null) throw new ApiError('unauthorized')
  const status = body.status
  if (status !== 'dead_letter' && status !== 'failed') {
    throw new ApiError('invalid_status', 'status must be dead_letter or failed', { details: { status: 'must be dead_letter or failed' } })
  }
  let since: Date | null = null
  if (body.since !== undefined && body.since !== null) {
    const t = typeof body.since === 'string' ? new Date(body.since) : new Date(NaN)
    if (Number.isNaN(t.getTime())) throw new ApiError('invalid_event', 'since must be an ISO-8601 time', { details: { since: 'must be an ISO-8601 time' } })
    since = t
  }
  let n: number
  try { n = await replayEvents(s.sql, auth.organizationId, status, since) } catch (err) { throw dbError(err) }
  if (n > 0) s.wakeDelivery()
  send(ctx, 202, serialize.replay({ scheduled: n }))
}
