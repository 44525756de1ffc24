/**
 * Webhook endpoints (the contract, docs/api.md "Webhook endpoints and subscriptions"): POST/GET /api/endpoints,
 * GET/PATCH/DELETE /api/endpoints/:endpoint_id, its secret and rotation, and replay. Every route is
 * authenticated and counts one request against the tier limit; another organization's endpoint is
 * indistinguishable from an unknown one (404). Listener threads only.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import type { Body } from '../pipeline.ts'
import { send, sendNoContent } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { ApiError } from '../../errors.ts'
import { uuidv7 } from '../../lib/uuid.ts'
import { dbError } from '../../db/errors.ts'
import {
  backfillPending, createEndpoint, deleteEndpoint, endpointStats, findEndpoint, findEndpointSecret, listEndpoints,
  rotateEndpointSecret, updateEndpoint, type EndpointRow, type EndpointStatus, type SecretRow,
} from '../../db/queries/endpoints.ts'
import { replayDeliveries, replayMissed } from '../../db/queries/schedule-deliveries.ts'
import { newSigningSecret, SECRET_GRACE_SECONDS } from '../../webhooks/signing.ts'
import { parseCreate, parsePatch } from '../endpoint-input.ts'
import { pageOf, parsePage, pathId } from '../paging.ts'
import { parseReplayWindow } from './replay-input.ts'

const NOT_FOUND = 'Endpoint not found'
const STATUSES: readonly string[] = ['active', 'paused', 'disabled']

/** The API's endpoint object. */
export function endpointDoc (r: EndpointRow): Record<string, unknown> {
  return {
    id: r.id,
    url: r.url,
    description: r.description,
    event_types: r.event_types,
    status: r.status,
    disabled_reason: r.disabled_reason,
    disabled_at: r.disabled_at === null ? null : r.disabled_at.toISOString(),
    rate_limit: r.rate_limit === null || r.rate_period_seconds === null ? null : { limit: r.rate_limit, period_seconds: r.rate_period_seconds },
    max_concurrency: r.max_concurrency,
    metadata: r.metadata,
    is_default: r.is_default,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  }
}

function secretDoc (r: SecretRow): { signing_secret: string, previous_secret_expires_at: string | null } {
  return { signing_secret: r.signing_secret, previous_secret_expires_at: r.previous_secret_expires_at === null ? null : r.previous_secret_expires_at.toISOString() }
}

function orgOf (ctx: Ctx): string {
  if (ctx.auth === null) throw new ApiError('unauthorized')
  return ctx.auth.organizationId
}

export async function createEndpointRoute (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const org = orgOf(ctx)
  const input = await parseCreate(body, s.config.allowPrivateWebhooks)
  const secret = newSigningSecret()
  let row: EndpointRow | 'limit'
  try {
    row = await createEndpoint(s.sql, {
      organizationId: org, id: uuidv7(), url: input.url, description: input.description, eventTypes: input.eventTypes,
      status: input.status, rateLimit: input.rateLimit?.limit ?? null, ratePeriodSeconds: input.rateLimit?.periodSeconds ?? null,
      maxConcurrency: input.maxConcurrency, metadata: input.metadata, signingSecret: secret, deliverPending: input.deliverPending,
    }, s.config.maxEndpointsPerOrg)
    if (row !== 'limit' && input.deliverPending && (await backfillPending(s.sql, org, row.id)) > 0) s.wakeDelivery()
  } catch (err) { throw dbError(err) }
  if (row === 'limit') {
    throw new ApiError('endpoint_limit_reached', `An organization may have at most ${s.config.maxEndpointsPerOrg} endpoints`, { limit: s.config.maxEndpointsPerOrg })
  }
  send(ctx, 201, serialize.endpointCreated({ ...endpointDoc(row), signing_secret: secret }))
}

export async function listEndpointsRoute (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  const q = new URLSearchParams(ctx.query)
  const st = q.get('status')
  if (st !== null && !STATUSES.includes(st)) {
    throw new ApiError('invalid_status', 'status must be one of active, paused, disabled', { details: { status: `unknown status "${st.slice(0, 50)}"` } })
  }
  const page = parsePage(q)
  let rows: EndpointRow[]
  try {
    rows = await listEndpoints(s.sql, { organizationId: org, status: st as EndpointStatus | null, limit: page.limit, after: page.after, offset: page.offset })
  } catch (err) { throw dbError(err) }
  const p = pageOf(rows, page.limit, r => ({ createdAt: r.created_at, id: r.id }))
  send(ctx, 200, serialize.endpointList({ endpoints: p.rows.map(endpointDoc), limit: page.limit, next_cursor: p.nextCursor, has_more: p.hasMore }))
}

export async function getEndpointRoute (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'endpoint')
  let row, stats
  try {
    [row, stats] = await Promise.all([findEndpoint(s.sql, org, id), endpointStats(s.sql, org, id)])
  } catch (err) { throw dbError(err) }
  if (row === null || stats === null) throw new ApiError('not_found', NOT_FOUND)
  send(ctx, 200, serialize.endpointDetail({
    ...endpointDoc(row),
    stats: {
      pending: stats.pending,
      held: stats.held,
      failed: stats.failed,
      dead_letter: stats.dead_letter,
      oldest_pending_at: stats.oldest_pending_at?.toISOString() ?? null,
      throttled_until: stats.throttled_until?.toISOString() ?? null,
      last_success_at: stats.last_success_at?.toISOString() ?? null,
      last_failure_at: stats.last_failure_at?.toISOString() ?? null,
      consecutive_failures: stats.consecutive_failures,
    },
  }))
}

export async function patchEndpointRoute (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'endpoint')
  const patch = await parsePatch(body, s.config.allowPrivateWebhooks)
  let row: EndpointRow | null
  try { row = await updateEndpoint(s.sql, org, id, patch) } catch (err) { throw dbError(err) }
  if (row === null) throw new ApiError('not_found', NOT_FOUND)
  if (patch.status === 'active') s.wakeDelivery()
  send(ctx, 200, serialize.endpoint(endpointDoc(row)))
}

export async function deleteEndpointRoute (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'endpoint')
  let gone: boolean
  try { gone = await deleteEndpoint(s.sql, org, id) } catch (err) { throw dbError(err) }
  if (!gone) throw new ApiError('not_found', NOT_FOUND)
  sendNoContent(ctx)
}

export async function getEndpointSecretRoute (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'endpoint')
  let row: SecretRow | null
  try { row = await findEndpointSecret(s.sql, org, id) } catch (err) { throw dbError(err) }
  if (row === null) throw new ApiError('not_found', NOT_FOUND)
  send(ctx, 200, serialize.secretRotated(secretDoc(row)))
}

export async function rotateEndpointSecretRoute (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'endpoint')
  let row: SecretRow | null
  try { row = await rotateEndpointSecret(s.sql, org, id, newSigningSecret(), SECRET_GRACE_SECONDS) } catch (err) { throw dbError(err) }
  if (row === null) throw new ApiError('not_found', NOT_FOUND)
  send(ctx, 200, serialize.secretRotated(secretDoc(row)))
}

/** POST /api/endpoints/:id/replay: `dead_letter` | `failed` re-schedule deliveries; `missed` creates them. */
export async function replayEndpointRoute (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'endpoint')
  if (body === null) throw new ApiError('invalid_json')
  const status = body.status
  if (status !== 'dead_letter' && status !== 'failed' && status !== 'missed') {
    throw new ApiError('invalid_status', 'status must be dead_letter, failed or missed', { details: { status: 'must be dead_letter, failed or missed' } })
  }
  const w = parseReplayWindow(body, status === 'missed')
  let n: number
  try {
    const ep = await findEndpoint(s.sql, org, id)
    if (ep === null) throw new ApiError('not_found', NOT_FOUND)
    if (ep.status === 'disabled') throw new ApiError('endpoint_disabled')
    n = status === 'missed'
      ? await replayMissed(s.sql, org, id, w.since ?? new Date(0), w.until)
      : await replayDeliveries(s.sql, { organizationId: org, status, since: w.since, until: w.until, endpointId: id })
  } catch (err) { throw dbError(err) }
  if (n > 0) s.wakeDelivery()
  send(ctx, 202, serialize.replay({ scheduled: n }))
}
