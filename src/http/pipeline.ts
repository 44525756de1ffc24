/**
 * The request pipeline shared by routes (STYLE C6, C10): snapshot the request, install the abort
 * handler and start reading the body in the synchronous part; then authenticate (synchronous on a
 * cache hit), apply the organization's rate limit, wait for the body, parse it, and hand over to the
 * route. Checks run in the contract's order: 401 → 429 → 400 → 413 → route. Every error a route throws
 * or rejects with becomes the API's envelope. Listener threads only.
 */
import type { HttpRequest, HttpResponse } from './uws.ts'
import { Ctx, clientIp, track } from './context.ts'
import { readBody } from './body.ts'
import { decodeUtf8, parseJsonText } from './json.ts'
import { send, sendError } from './reply.ts'
import { ApiError, coerceError } from '../errors.ts'
import { AuthEntry } from '../auth/key-cache.ts'
import { Decision } from '../rate-limit/limiter.ts'
import type { Services } from './services.ts'
import { routeIndex, type RouteName } from '../metrics/layout.ts'

export type Body = Record<string, unknown> | null
export type RouteFn = (ctx: Ctx, s: Services, body: Body) => void | Promise<void>
export type Handler = (res: HttpResponse, req: HttpRequest) => void

const decision = new Decision()

/** Sends whatever a route threw; 413 body_too_large also closes the connection (the rest is unread). */
export function fail (ctx: Ctx, err: unknown): void {
  const e = coerceError(err)
  sendError(ctx, e, e.code === 'body_too_large')
}

function rateLimitError (d: Decision): ApiError {
  return new ApiError('rate_limit_exceeded', undefined, { limit: d.limit, window: '1 minute', retry_after: d.retryAfter }, { retryAfter: d.retryAfter })
}

function setRateHeaders (ctx: Ctx, d: Decision): void {
  ctx.rateLimit = d.limit
  ctx.rateRemaining = d.remaining
  ctx.rateReset = d.reset
}

function runRoute (ctx: Ctx, s: Services, fn: RouteFn, body: Body): void {
  try {
    const r = fn(ctx, s, body)
    if (r !== undefined) r.then(undefined, (err: unknown) => { fail(ctx, err) })
  } catch (err) {
    fail(ctx, err)
  }
}

/**
 * How a route treats its body: parse it as a JSON object, the same but an empty body counts as `{}`
 * (routes whose body is optional), read and discard it (POST routes that take no fields still drain
 * what a client sends, within the same 1 MiB cap), or none at all (GET). 'text' only decodes it
 * (strict UTF-8) into ctx.bodyText: the route parses it itself (the batch route's own order of checks).
 */
export type BodyMode = 'json' | 'json-optional' | 'text' | 'discard' | 'none'
type BodyPromise = Promise<Buffer | ApiError | null> | null

function withBody (ctx: Ctx, s: Services, fn: RouteFn, bodyP: BodyPromise, mode: BodyMode): void {
  if (bodyP === null) { runRoute(ctx, s, fn, null); return }
  bodyP.then(buf => {
    if (buf === null || ctx.aborted) return
    if (buf instanceof ApiError) { fail(ctx, buf); return }
    if (mode === 'discard' || mode === 'none') { runRoute(ctx, s, fn, null); return }
    if (mode === 'json-optional' && buf.length === 0) { runRoute(ctx, s, fn, {}); return }
    if (mode === 'text') {
      try { ctx.bodyText = decodeUtf8(buf) } catch (err) { fail(ctx, err); return }
      runRoute(ctx, s, fn, null)
      return
    }
    let body: Body
    try {
      ctx.bodyText = decodeUtf8(buf)
      body = parseJsonText(ctx.bodyText)
    } catch (err) { fail(ctx, err); return }
    runRoute(ctx, s, fn, body)
  }, (err: unknown) => { fail(ctx, err) })
}

function authorized (ctx: Ctx, s: Services, entry: AuthEntry, fn: RouteFn, bodyP: BodyPromise, mode: BodyMode, limited: boolean): void {
  if (ctx.aborted) return
  ctx.auth = entry
  if (!limited) {
    // The route charges its tokens itself, later; until then every answer carries the headers as they stand.
    setRateHeaders(ctx, s.limiter.peekOrganization(entry.orgNo, entry.limit, decision))
    withBody(ctx, s, fn, bodyP, mode)
    return
  }
  const d = s.limiter.organization(entry.orgNo, entry.limit, decision)
  if (d instanceof Decision) limitDecided(ctx, s, d, fn, bodyP, mode)
  else d.then(got => { limitDecided(ctx, s, got, fn, bodyP, mode) }, (err: unknown) => { fail(ctx, err) })
}

/** Rate-limit headers, then 429 or the route; a decision that waited on a lease may find the request aborted. */
function limitDecided (ctx: Ctx, s: Services, d: Decision, fn: RouteFn, bodyP: BodyPromise, mode: BodyMode): void {
  if (ctx.aborted) return
  setRateHeaders(ctx, d)
  if (!d.allowed) { fail(ctx, rateLimitError(d)); return }
  withBody(ctx, s, fn, bodyP, mode)
}

export interface AuthedOptions {
  /** Body cap of the route (default 1 MiB). */
  readonly bodyLimit?: number
  /** false: the route applies the organization's rate limit itself (it charges more than one token). */
  readonly rateLimit?: boolean
}

/** A route behind X-API-Key and the organization's rate limit. */
export function authed (s: Services, route: RouteName, fn: RouteFn, mode: BodyMode, param = false, o: AuthedOptions = {}): Handler {
  const r = routeIndex(route)
  const limited = o.rateLimit !== false
  const bodyLimit = o.bodyLimit
  return (res, req) => {
    const ctx = new Ctx(res, req, param, r)
    let bodyP: BodyPromise = null
    if (mode !== 'none') bodyP = readBody(ctx, bodyLimit)
    else track(ctx)
    let auth: AuthEntry | Promise<AuthEntry>
    try {
      auth = s.auth.authenticate(ctx.apiKey)
    } catch (err) {
      fail(ctx, err)
      return
    }
    if (auth instanceof AuthEntry) authorized(ctx, s, auth, fn, bodyP, mode, limited)
    else auth.then(entry => { authorized(ctx, s, entry, fn, bodyP, mode, limited) }, (err: unknown) => { fail(ctx, err) })
  }
}

/** A public route limited per client IP (key generation). */
export function publicLimited (s: Services, route: RouteName, limit: number, fn: RouteFn): Handler {
  const r = routeIndex(route)
  return (res, req) => {
    const ctx = new Ctx(res, req, false, r)
    const bodyP = readBody(ctx)
    const d = s.limiter.clientIp(clientIp(res, req, s.config.trustProxy), limit, decision)
    if (d instanceof Decision) limitDecided(ctx, s, d, fn, bodyP, 'json')
    else d.then(got => { limitDecided(ctx, s, got, fn, bodyP, 'json') }, (err: unknown) => { fail(ctx, err) })
  }
}

/** A public route with no body and no limit (health, docs). */
export function open (s: Services, route: RouteName, fn: RouteFn): Handler {
  const r = routeIndex(route)
  return (res, req) => {
    const ctx = new Ctx(res, req, false, r)
    track(ctx)
    runRoute(ctx, s, fn, null)
  }
}

export { send, setRateHeaders, rateLimitError }
