/**
 * The route table and nothing else (STYLE layout). Every path answers its methods; any other method
 * on a known path is 405 `method_not_allowed` with `Allow`, OPTIONS is the CORS preflight, and any
 * unknown path is 404 `not_found`. Listener threads only.
 */
import { uws, type TemplatedApp } from './uws.ts'
import { Ctx, inflight } from './context.ts'
import { authed, open, publicLimited, fail, type Handler } from './pipeline.ts'
import { sendError, sendPreflight } from './reply.ts'
import { ApiError } from '../errors.ts'
import type { Services } from './services.ts'
import { routeIndex } from '../metrics/layout.ts'
import { ingest } from './routes/events.ts'
import { ingestBatch } from './routes/batch.ts'
import { generateKey, keyInfo, rotate } from './routes/keys.ts'
import { ackMany, ackOne, inbox } from './routes/inbox.ts'
import { configureWebhook, redeliver, replay, rotateSecret } from './routes/webhook.ts'
import {
  createEndpointRoute, deleteEndpointRoute, getEndpointRoute, getEndpointSecretRoute, listEndpointsRoute, patchEndpointRoute,
  replayEndpointRoute, rotateEndpointSecretRoute,
} from './routes/endpoints.ts'
import { eventDeliveries } from './routes/deliveries.ts'
import { endpointAttempts, endpointStatsRoute, eventAttempts, getAttempt } from './routes/attempts.ts'
import { live, ready } from './routes/health.ts'
import { docs, docsAsset, openapi, REDOC_ASSET } from './routes/docs.ts'

type Method = 'get' | 'post' | 'patch' | 'del'
interface Route { readonly path: string, readonly methods: Partial<Record<Method, Handler>> }

export function routes (s: Services, extra: readonly Route[] = []): Route[] {
  return [
    { path: '/api/keys/generate', methods: { post: publicLimited(s, 'keys_generate', s.config.keygenRateLimit, generateKey) } },
    { path: '/api/keys', methods: { get: authed(s, 'keys_info', keyInfo, 'none') } },
    { path: '/api/keys/rotate', methods: { post: authed(s, 'keys_rotate', rotate, 'discard') } },
    { path: '/api/webhook/config', methods: { post: authed(s, 'webhook_config', configureWebhook, 'json') } },
    { path: '/api/webhook/secret/rotate', methods: { post: authed(s, 'webhook_secret_rotate', rotateSecret, 'discard') } },
    { path: '/api/webhook/replay', methods: { post: authed(s, 'webhook_replay', replay, 'json') } },
    { path: '/api/events', methods: { post: authed(s, 'events_create', ingest, 'json') } },
    { path: '/api/events/batch', methods: { post: authed(s, 'events_batch', ingestBatch, 'text', false, { bodyLimit: s.config.batchMaxBodyBytes, rateLimit: false }) } },
    { path: '/api/events/:event_id/redeliver', methods: { post: authed(s, 'events_redeliver', redeliver, 'json-optional', true) } },
    { path: '/api/events/:event_id/deliveries', methods: { get: authed(s, 'event_deliveries', eventDeliveries, 'none', true) } },
    { path: '/api/events/:event_id/attempts', methods: { get: authed(s, 'event_attempts', eventAttempts, 'none', true) } },
    { path: '/api/endpoints', methods: { post: authed(s, 'endpoints_create', createEndpointRoute, 'json'), get: authed(s, 'endpoints_list', listEndpointsRoute, 'none') } },
    {
      path: '/api/endpoints/:endpoint_id',
      methods: {
        get: authed(s, 'endpoints_get', getEndpointRoute, 'none', true),
        patch: authed(s, 'endpoints_update', patchEndpointRoute, 'json', true),
        del: authed(s, 'endpoints_delete', deleteEndpointRoute, 'discard', true),
      },
    },
    { path: '/api/endpoints/:endpoint_id/secret', methods: { get: authed(s, 'endpoints_secret', getEndpointSecretRoute, 'none', true) } },
    { path: '/api/endpoints/:endpoint_id/secret/rotate', methods: { post: authed(s, 'endpoints_secret_rotate', rotateEndpointSecretRoute, 'discard', true) } },
    { path: '/api/endpoints/:endpoint_id/replay', methods: { post: authed(s, 'endpoints_replay', replayEndpointRoute, 'json', true) } },
    { path: '/api/endpoints/:endpoint_id/attempts', methods: { get: authed(s, 'endpoint_attempts', endpointAttempts, 'none', true) } },
    { path: '/api/endpoints/:endpoint_id/stats', methods: { get: authed(s, 'endpoint_stats', endpointStatsRoute, 'none', true) } },
    { path: '/api/attempts/:attempt_id', methods: { get: authed(s, 'attempts_get', getAttempt, 'none', true) } },
    { path: '/api/inbox', methods: { get: authed(s, 'inbox', inbox, 'none') } },
    { path: '/api/ack/:event_id', methods: { post: authed(s, 'ack', ackOne, 'discard', true) } },
    { path: '/api/ack', methods: { post: authed(s, 'ack_batch', ackMany, 'json') } },
    { path: '/health', methods: { get: open(s, 'health', live) } },
    { path: '/health/live', methods: { get: open(s, 'health', live) } },
    { path: '/health/ready', methods: { get: open(s, 'health', ready) } },
    { path: '/openapi.json', methods: { get: open(s, 'openapi', openapi) } },
    { path: '/docs', methods: { get: open(s, 'docs', docs) } },
    { path: REDOC_ASSET, methods: { get: open(s, 'docs', docsAsset) } },
    ...extra,
  ]
}

const UNMATCHED = routeIndex('unmatched')

/**
 * After a drain has released this thread's database (context.ts `inflight.closed`), a request that
 * still arrives on an idle keep-alive connection is refused at the connection level: closed with no
 * response bytes, which clients treat as safe to retry, instead of a 5xx from a released pool.
 */
function refuseWhenClosed (h: Handler): Handler {
  return (res, req) => {
    if (inflight.closed) { res.close(); return }
    h(res, req)
  }
}

function otherMethod (s: Services, allow: string): Handler {
  const notAllowed = new ApiError('method_not_allowed')
  return (res, req) => {
    const ctx = new Ctx(res, req, false, UNMATCHED)
    if (ctx.method === 'options') { sendPreflight(ctx); return }
    sendError(ctx, notAllowed, false, ['Allow', allow])
  }
}

/** The HTTP name of a uWS route method (uWS names DELETE `del`). */
function httpMethod (m: string): string {
  return m === 'del' ? 'DELETE' : m.toUpperCase()
}

/**
 * Registers every route of the table. Every GET route answers HEAD too, with the same handler (RFC
 * 9110 §9.3.2): reply.ts writes the same status and headers and leaves the body out. It is done here,
 * for each GET entry, so routes added to the table get it by themselves.
 */
export function buildApp (s: Services, extra: readonly Route[] = []): TemplatedApp {
  const app = uws.App()
  for (const r of routes(s, extra)) {
    const allow: string[] = []
    for (const [method, handler] of Object.entries(r.methods) as [Method, Handler][]) {
      const h = refuseWhenClosed(handler)
      app[method](r.path, h)
      allow.push(httpMethod(method))
      if (method === 'get') { app.head(r.path, h); allow.push('HEAD') }
    }
    allow.push('OPTIONS')
    app.any(r.path, refuseWhenClosed(otherMethod(s, allow.join(', '))))
  }
  const notFound = new ApiError('not_found')
  app.any('/*', refuseWhenClosed((res, req) => {
    const ctx = new Ctx(res, req, false, UNMATCHED)
    fail(ctx, notFound)
  }))
  return app
}
