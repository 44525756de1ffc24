/**
 * The single-webhook routes, kept as the organization's default endpoint (the contract, docs/api.md
 * "Compatibility with the single webhook URL"): POST /api/webhook/config, POST /api/webhook/secret/rotate,
 * POST /api/events/:event_id/redeliver and POST /api/webhook/replay. The URL rule (absolute http(s), at
 * most 2048 characters, public addresses only unless ALLOW_PRIVATE_WEBHOOKS) lives in webhooks/ssrf.ts
 * and is applied again at connect time. Listener threads only.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import type { Body } from '../pipeline.ts'
import { send } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { ApiError } from '../../errors.ts'
import { isUuid, uuidv7 } from '../../lib/uuid.ts'
import { dbError } from '../../db/errors.ts'
import { findEndpoint, rotateDefaultSecret, upsertDefaultEndpoint } from '../../db/queries/endpoints.ts'
import { redeliverEvent, replayDeliveries } from '../../db/queries/schedule-deliveries.ts'
import { checkWebhookUrl } from '../../webhooks/ssrf.ts'
import { newSigningSecret, SECRET_GRACE_SECONDS } from '../../webhooks/signing.ts'
import { pathId } from '../paging.ts'
import { parseReplayWindow } from './replay-input.ts'

const CONFIGURED = 'Webhook URL configured successfully'

function orgOf (ctx: Ctx): string {
  if (ctx.auth === null) throw new ApiError('unauthorized')
  return ctx.auth.organizationId
}

/** An optional `endpoint_id` body field: a UUID, or 400 invalid_id. */
function endpointIdOf (body: Body): string | null {
  const raw = body?.endpoint_id
  if (raw === undefined || raw === null) return null
  if (typeof raw !== 'string' || !isUuid(raw)) throw new ApiError('invalid_id', 'Invalid endpoint id: must be a UUID', { details: { endpoint_id: 'must be a UUID' } })
  return raw.toLowerCase()
}

export async function configureWebhook (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const org = orgOf(ctx)
  if (body === null) throw new ApiError('invalid_json')
  const raw = body.webhook_url
  if (raw === undefined || raw === null) throw new ApiError('missing_field', 'Missing required field: webhook_url', { field: 'webhook_url' })
  if (typeof raw !== 'string') throw new ApiError('invalid_webhook_url', 'webhook_url must be a string', { details: { webhook_url: 'must be a string' } })
  const checked = await checkWebhookUrl(raw, s.config.allowPrivateWebhooks)
  if (!checked.ok) throw new ApiError('invalid_webhook_url', `Invalid webhook URL: ${checked.reason}`, { details: { webhook_url: checked.reason } })
  let row
  try { row = await upsertDefaultEndpoint(s.sql, org, checked.url, uuidv7(), newSigningSecret()) } catch (err) { throw dbError(err) }
  if (row === null) throw new ApiError('unauthorized')
  s.wakeDelivery()
  send(ctx, 200, serialize.webhookConfig({ message: CONFIGURED, webhook_url: row.url, signing_secret: row.signing_secret, endpoint_id: row.endpoint_id }))
}

export async function rotateSecret (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  let row
  try { row = await rotateDefaultSecret(s.sql, org, newSigningSecret(), SECRET_GRACE_SECONDS) } catch (err) { throw dbError(err) }
  if (row === null) throw new ApiError('unauthorized')
  send(ctx, 200, serialize.secretRotated({
    signing_secret: row.signing_secret,
    previous_secret_expires_at: row.previous_secret_expires_at === null ? null : row.previous_secret_expires_at.toISOString(),
  }))
}

export async function redeliver (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'event')
  const endpointId = endpointIdOf(body)
  let outcome
  try { outcome = await redeliverEvent(s.sql, org, id, endpointId) } catch (err) { throw dbError(err) }
  switch (outcome) {
    case 'not_found': throw new ApiError('not_found', 'Event not found')
    case 'endpoint_not_found': throw new ApiError('not_found', 'Endpoint not found')
    case 'endpoint_disabled': throw new ApiError('endpoint_disabled')
    case 'no_webhook': throw new ApiError('no_webhook_configured')
    case 'ok': break
  }
  s.wakeDelivery()
  send(ctx, 202, serialize.redeliver({ event_id: id, status: 'pending' }))
}

export async function replay (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const org = orgOf(ctx)
  if (body === null) throw new ApiError('invalid_json')
  const status = body.status
  if (status !== 'dead_letter' && status !== 'failed') {
    throw new ApiError('invalid_status', 'status must be dead_letter or failed', { details: { status: 'must be dead_letter or failed' } })
  }
  const w = parseReplayWindow(body, false)
  const endpointId = endpointIdOf(body)
  let n: number
  try {
    if (endpointId !== null) {
      const ep = await findEndpoint(s.sql, org, endpointId)
      if (ep === null) throw new ApiError('not_found', 'Endpoint not found')
      if (ep.status === 'disabled') throw new ApiError('endpoint_disabled')
    }
    n = await replayDeliveries(s.sql, { organizationId: org, status, since: w.since, until: w.until, endpointId })
  } catch (err) { throw dbError(err) }
  if (n > 0) s.wakeDelivery()
  send(ctx, 202, serialize.replay({ scheduled: n }))
}
