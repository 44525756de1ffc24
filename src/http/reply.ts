/**
 * Every write to a uWS response goes through here (STYLE C6): corked, never after an abort or a
 * previous end, with the headers every response carries (Content-Type, X-Request-ID, CORS, and the
 * rate-limit trio on authenticated routes). Error bodies use the API's envelope through one
 * precompiled serializer. Listener threads only.
 */
import { serialize } from './serializers.ts'
import { inflight, type Ctx } from './context.ts'
import { ApiError, type ErrorContext } from '../errors.ts'
import { ThreadMetrics } from '../metrics/counters.ts'
import { routeIndex } from '../metrics/layout.ts'

const STATUS_LINES: Record<number, string> = {
  200: '200 OK', 201: '201 Created', 202: '202 Accepted', 204: '204 No Content',
  400: '400 Bad Request', 401: '401 Unauthorized', 404: '404 Not Found', 405: '405 Method Not Allowed',
  409: '409 Conflict', 413: '413 Payload Too Large', 422: '422 Unprocessable Entity',
  429: '429 Too Many Requests', 500: '500 Internal Server Error', 503: '503 Service Unavailable',
}

let corsOrigin = '*'
let metrics = new ThreadMetrics(null)
const EVENTS_ROUTE = routeIndex('events_create')
/** Set once at thread start: CORS_ORIGIN and this thread's metric slots. */
export function configureReply (origin: string, m: ThreadMetrics): void {
  corsOrigin = origin
  metrics = m
}

export const serializeError = serialize.error

export type ErrorHook = (ctx: Ctx, err: ApiError) => void
let onServerError: ErrorHook = () => {}
/** The listener installs its logger here: 5xx are logged with their cause. */
export function setServerErrorHook (hook: ErrorHook): void { onServerError = hook }

function writeCommon (ctx: Ctx, status: number, contentType = 'application/json'): void {
  const res = ctx.res
  res.writeStatus(STATUS_LINES[status] ?? String(status))
  res.writeHeader('Content-Type', contentType)
  res.writeHeader('X-Request-ID', ctx.requestId)
  res.writeHeader('Access-Control-Allow-Origin', corsOrigin)
  res.writeHeader('Access-Control-Expose-Headers', 'X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After')
  if (ctx.rateLimit >= 0) {
    res.writeHeader('X-RateLimit-Limit', String(ctx.rateLimit))
    res.writeHeader('X-RateLimit-Remaining', String(ctx.rateRemaining))
    res.writeHeader('X-RateLimit-Reset', String(ctx.rateReset))
  }
}

/** Sends a JSON body (already serialized). `headers` is a flat [name, value, ...] list. */
export function send (ctx: Ctx, status: number, body: string, headers: readonly string[] | null = null, close = false): void {
  if (ctx.aborted || ctx.done) return
  ctx.finish()
  ctx.status = status
  metrics.request(ctx.route, status, (performance.now() - ctx.startedAt) / 1000)
  // While draining, connections are closed after their response so clients reconnect elsewhere.
  const closeAfter = close || inflight.draining
  // A closing answer while the request body is still arriving lingers (body.ts) instead of resetting.
  const upload = close && ctx.method !== 'head' && ctx.upload !== null && !ctx.upload.complete ? ctx.upload : null
  ctx.res.cork(() => {
    writeCommon(ctx, status)
    if (headers !== null) for (let i = 0; i + 1 < headers.length; i += 2) ctx.res.writeHeader(headers[i]!, headers[i + 1]!)
    if (upload !== null) writeAhead(ctx, body)
    else endWith(ctx, body, closeAfter)
  })
  upload?.linger()
}

/**
 * The end of the head and the whole body, written as the value of the last header. uWS offers no way
 * to finish a response and still close its connection later: `end(body, true)` closes at once (a reset
 * while the client uploads), and after any `end` the response object may no longer be used, not even
 * to close. So the framing is written by hand — Content-Length, the blank line, the body and a
 * trailing CRLF that JSON allows — uWS never ends this response, and body.ts closes the connection
 * once the upload is read. The client has the complete answer at once.
 */
function writeAhead (ctx: Ctx, body: string): void {
  ctx.res.writeHeader('Date', new Date().toUTCString())
  ctx.res.writeHeader('Connection', `close\r\nContent-Length: ${Buffer.byteLength(body) + 2}\r\n\r\n${body}`)
}

/**
 * A response to HEAD carries the headers and never the body (RFC 9110 §9.3.2): uWS does not drop it
 * by itself, and a client on a kept-alive connection would read those bytes as the next response.
 * This uWS build leaves the response open when given a non-zero length (it waits for that many body
 * bytes) and takes an omitted length only with keep-alive; so: no Content-Length, or 0 when closing.
 */
function endWith (ctx: Ctx, body: string | Buffer, close: boolean): void {
  if (ctx.method !== 'head') ctx.res.end(body, close)
  else if (close) ctx.res.endWithoutBody(0, true)
  else ctx.res.endWithoutBody()
}

/** A 200 document that is not an API response (the /docs page and its script). */
export function sendDocument (ctx: Ctx, contentType: string, body: string | Buffer, cacheControl = ''): void {
  if (ctx.aborted || ctx.done) return
  ctx.finish()
  ctx.status = 200
  metrics.request(ctx.route, 200, (performance.now() - ctx.startedAt) / 1000)
  ctx.res.cork(() => {
    writeCommon(ctx, 200, contentType)
    if (cacheControl !== '') ctx.res.writeHeader('Cache-Control', cacheControl)
    endWith(ctx, body, inflight.draining)
  })
}

export function sendError (ctx: Ctx, err: ApiError, close = false, headers: string[] | null = null): void {
  if (err.status >= 500) onServerError(ctx, err)
  if (ctx.route === EVENTS_ROUTE && err.code !== 'duplicate_event') metrics.rejected(err.code)
  if (err.code === 'rate_limit_exceeded') metrics.rateLimited(ctx.auth === null ? 'client_ip' : 'organization')
  const ctxFields: ErrorContext = err.context ?? {}
  const body = serializeError({ error: err.message, code: err.code, ...ctxFields })
  if (err.retryAfter > 0) (headers ??= []).push('Retry-After', String(err.retryAfter))
  send(ctx, err.status, body, headers, close)
}

/** 204 No Content (DELETE): the common headers, no body and no Content-Length (RFC 9110 §8.6). */
export function sendNoContent (ctx: Ctx): void {
  if (ctx.aborted || ctx.done) return
  ctx.finish()
  ctx.status = 204
  metrics.request(ctx.route, 204, (performance.now() - ctx.startedAt) / 1000)
  ctx.res.cork(() => {
    writeCommon(ctx, 204)
    // As in endWith: this uWS build closes only with an explicit length.
    if (inflight.draining) ctx.res.endWithoutBody(0, true)
    else ctx.res.endWithoutBody()
  })
}

/** Preflight: 204 with the CORS allowances, no body. */
export function sendPreflight (ctx: Ctx): void {
  if (ctx.aborted || ctx.done) return
  ctx.finish()
  ctx.status = 204
  metrics.request(ctx.route, 204, (performance.now() - ctx.startedAt) / 1000)
  ctx.res.cork(() => {
    ctx.res.writeStatus('204 No Content')
    ctx.res.writeHeader('X-Request-ID', ctx.requestId)
    ctx.res.writeHeader('Access-Control-Allow-Origin', corsOrigin)
    ctx.res.writeHeader('Access-Control-Allow-Methods', 'GET, HEAD, POST, PATCH, DELETE, OPTIONS')
    ctx.res.writeHeader('Access-Control-Allow-Headers', 'Content-Type, X-API-Key, X-Request-ID')
    ctx.res.writeHeader('Access-Control-Max-Age', '86400')
    // No length argument: a 204 must not carry Content-Length (RFC 9110 §8.6).
    ctx.res.endWithoutBody()
  })
}
