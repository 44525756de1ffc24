/**
 * The per-request snapshot (STYLE C6, C7). uWS's HttpRequest is only valid during the synchronous part
 * of the handler, so everything a route needs from it is copied here at once; the object has one shape,
 * every field set in the constructor. `aborted` is set by the onAborted handler that `track` installs
 * before any async step; `done` once a response was written. Listener threads only.
 */
import type { HttpRequest, HttpResponse } from './uws.ts'
import { randomBytes } from 'node:crypto'
import type { AuthEntry } from '../auth/key-cache.ts'
import type { Upload } from './body.ts'
import { tracer } from '../tracing/tracer.ts'

const ID_RE = /^[\x21-\x7e]{1,200}$/
const idPrefix = randomBytes(6).toString('hex')
let idCounter = 0

/**
 * Requests received and not yet answered or aborted on this thread (graceful drain waits for 0);
 * `lastStart` is when the latest request arrived (performance.now()), so the drain can wait for a
 * quiet moment; `closed` is set once the drain has released the database: any request after that is
 * refused at the connection level (app.ts).
 */
export const inflight = { count: 0, draining: false, closed: false, lastStart: 0 }

function newRequestId (): string {
  idCounter = (idCounter + 1) >>> 0
  return idPrefix + '-' + idCounter.toString(16).padStart(8, '0')
}

export class Ctx {
  readonly res: HttpResponse
  readonly method: string
  readonly url: string
  readonly query: string
  readonly requestId: string
  /** The X-API-Key header, '' when absent. */
  readonly apiKey: string
  readonly hasApiKey: boolean
  /** Content-Length, or -1 when absent (chunked) or unparsable. */
  readonly contentLength: number
  /** The first route parameter (e.g. :event_id), '' when the route has none. */
  readonly param: string
  aborted: boolean
  done: boolean
  /** Set once authenticated; read by reply to add the rate-limit headers. */
  auth: AuthEntry | null
  rateLimit: number
  rateRemaining: number
  rateReset: number
  status: number
  /** The decoded JSON body text ('' until read; routes that store raw JSON use it). */
  bodyText: string
  /** The request body being read (body.ts), null when the route reads none. */
  upload: Upload | null
  /** Index into metrics/layout.ts ROUTES. */
  readonly route: number
  readonly startedAt: number
  /** The W3C traceparent header; read only while tracing is on ('' otherwise: docs/tracing.md). */
  readonly traceparent: string

  constructor (res: HttpResponse, req: HttpRequest, hasParam: boolean, route: number) {
    this.res = res
    this.route = route
    this.bodyText = ''
    this.upload = null
    this.startedAt = performance.now()
    this.method = req.getMethod()
    this.url = req.getUrl()
    this.query = req.getQuery() ?? ''
    const rid = req.getHeader('x-request-id')
    this.requestId = rid !== '' && ID_RE.test(rid) ? rid : newRequestId()
    const key = req.getHeader('x-api-key')
    this.apiKey = key
    // uWS reports an absent header and an empty one alike; an empty key is "missing".
    this.hasApiKey = key !== ''
    const cl = req.getHeader('content-length')
    this.contentLength = cl === '' ? -1 : (/^\d{1,15}$/.test(cl) ? Number(cl) : -1)
    this.param = hasParam ? req.getParameter(0) : ''
    this.traceparent = tracer.on ? req.getHeader('traceparent') : ''
    this.aborted = false
    this.done = false
    this.auth = null
    this.rateLimit = -1
    this.rateRemaining = 0
    this.rateReset = 0
    this.status = 0
    inflight.count++
    inflight.lastStart = this.startedAt
  }

  /** Marks the request finished (answered or aborted); idempotent. */
  finish (): void {
    if (!this.done) { this.done = true; inflight.count-- }
  }
}

/**
 * The client's address, for the per-IP limit of key generation only (so other requests never pay for
 * decoding it). Call in the synchronous part of the handler: it reads a header.
 */
export function clientIp (res: HttpResponse, req: HttpRequest, trustProxy: boolean): string {
  if (trustProxy) {
    const xff = req.getHeader('x-forwarded-for')
    const first = xff === '' ? '' : (xff.split(',')[0] ?? '').trim()
    if (first !== '') return first
  }
  return Buffer.from(res.getRemoteAddressAsText()).toString()
}

/** Installs the abort handler; call in the synchronous part of every handler that goes async. */
export function track (ctx: Ctx): void {
  ctx.res.onAborted(() => { ctx.aborted = true; ctx.finish() })
}
