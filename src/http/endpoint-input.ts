/**
 * Request bodies of POST and PATCH /api/endpoints (the contract, docs/api.md "The endpoint object"). Errors, in this
 * order: 400 `missing_field` (no url on create) → 422 `invalid_webhook_url` → 422
 * `invalid_event_types` → 422 `validation_error` with one `details` entry per bad field. Unknown
 * fields are ignored. The Zapier REST Hooks shape `{"target_url", "event"}` is accepted on create as
 * `url` + `event_types: [event]` (an explicit `url` / `event_types` wins). Listener threads.
 */
import { ApiError } from '../errors.ts'
import { codePoints } from '../lib/text.ts'
import { checkEventTypes } from '../webhooks/event-types.ts'
import { checkWebhookUrl } from '../webhooks/ssrf.ts'
import type { EndpointPatch, EndpointStatus } from '../db/queries/endpoints.ts'
import type { Body } from './pipeline.ts'

const METADATA_MAX_PAIRS = 16
const METADATA_KEY_MAX = 64
const METADATA_VALUE_MAX = 512

export class EndpointInput {
  readonly url: string
  readonly description: string | null
  readonly eventTypes: string[]
  readonly status: 'active' | 'paused'
  readonly rateLimit: { limit: number, periodSeconds: number } | null
  readonly maxConcurrency: number | null
  readonly metadata: Record<string, string>
  readonly deliverPending: boolean
  constructor (url: string, description: string | null, eventTypes: string[], status: 'active' | 'paused',
    rateLimit: { limit: number, periodSeconds: number } | null, maxConcurrency: number | null, metadata: Record<string, string>, deliverPending: boolean) {
    this.url = url
    this.description = description
    this.eventTypes = eventTypes
    this.status = status
    this.rateLimit = rateLimit
    this.maxConcurrency = maxConcurrency
    this.metadata = metadata
    this.deliverPending = deliverPending
  }
}

function isInt (v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
}

async function checkUrl (raw: unknown, allowPrivate: boolean): Promise<string> {
  if (typeof raw !== 'string') throw new ApiError('invalid_webhook_url', 'url must be a string', { details: { url: 'must be a string' } })
  const checked = await checkWebhookUrl(raw, allowPrivate)
  if (!checked.ok) {
    const reason = checked.reason.replace(/^webhook_url/, 'url')
    throw new ApiError('invalid_webhook_url', `Invalid webhook URL: ${reason}`, { details: { url: reason } })
  }
  return checked.url
}

function eventTypes (raw: unknown): string[] {
  const c = checkEventTypes(raw)
  if (!c.ok) throw new ApiError('invalid_event_types', `Invalid event_types: ${c.reason}`, { details: { event_types: c.reason } })
  return c.patterns
}

function description (raw: unknown, details: Record<string, string>): string | null {
  if (raw === null) return null
  if (typeof raw !== 'string' || (raw.length > 255 && codePoints(raw) > 255)) { details.description = 'must be a string of at most 255 characters, or null'; return null }
  return raw
}

function rateLimit (raw: unknown, details: Record<string, string>): { limit: number, periodSeconds: number } | null {
  if (raw === null) return null
  if (raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) { details.rate_limit = 'must be {"limit": 1-10000, "period_seconds": 1-3600} or null'; return null }
  const r = raw as Record<string, unknown>
  if (!isInt(r.limit, 1, 10_000)) details['rate_limit.limit'] = 'must be an integer from 1 to 10000'
  if (!isInt(r.period_seconds, 1, 3600)) details['rate_limit.period_seconds'] = 'must be an integer from 1 to 3600'
  return isInt(r.limit, 1, 10_000) && isInt(r.period_seconds, 1, 3600) ? { limit: r.limit, periodSeconds: r.period_seconds } : null
}

function maxConcurrency (raw: unknown, details: Record<string, string>): number | null {
  if (raw === null) return null
  if (!isInt(raw, 1, 100)) { details.max_concurrency = 'must be an integer from 1 to 100, or null'; return null }
  return raw
}

function metadata (raw: unknown, details: Record<string, string>): Record<string, string> {
  if (raw === null) return {}
  if (typeof raw !== 'object' || Array.isArray(raw) || raw === undefined) { details.metadata = 'must be an object of string values'; return {} }
  const entries = Object.entries(raw as Record<string, unknown>)
  if (entries.length > METADATA_MAX_PAIRS) { details.metadata = `must hold at most ${METADATA_MAX_PAIRS} pairs`; return {} }
  const out: Record<string, string> = {}
  for (const [k, v] of entries) {
    if (k.length === 0 || codePoints(k) > METADATA_KEY_MAX) { details.metadata = `keys must be 1-${METADATA_KEY_MAX} characters`; return {} }
    if (typeof v !== 'string' || codePoints(v) > METADATA_VALUE_MAX) { details.metadata = `values must be strings of at most ${METADATA_VALUE_MAX} characters`; return {} }
    out[k] = v
  }
  return out
}

function status (raw: unknown, allowed: readonly EndpointStatus[], details: Record<string, string>): EndpointStatus | null {
  if (typeof raw === 'string' && (allowed as readonly string[]).includes(raw)) return raw as EndpointStatus
  details.status = `must be one of ${allowed.join(', ')}`
  return null
}

function validation (details: Record<string, string>): void {
  if (Object.keys(details).length > 0) throw new ApiError('validation_error', undefined, { details })
}

/** POST /api/endpoints. */
export async function parseCreate (body: Body, allowPrivate: boolean): Promise<EndpointInput> {
  if (body === null) throw new ApiError('invalid_json')
  const rawUrl = body.url ?? body.target_url
  if (rawUrl === undefined || rawUrl === null) throw new ApiError('missing_field', 'Missing required field: url', { field: 'url' })
  const url = await checkUrl(rawUrl, allowPrivate)
  let types: string[] = ['*']
  if (body.event_types !== undefined) types = eventTypes(body.event_types)
  else if (body.event !== undefined) types = eventTypes([body.event])
  const details: Record<string, string> = {}
  const d = body.description === undefined ? null : description(body.description, details)
  const st = body.status === undefined ? 'active' : status(body.status, ['active', 'paused'], details)
  const rl = body.rate_limit === undefined ? null : rateLimit(body.rate_limit, details)
  const mc = body.max_concurrency === undefined ? null : maxConcurrency(body.max_concurrency, details)
  const md = body.metadata === undefined ? {} : metadata(body.metadata, details)
  if (body.deliver_pending !== undefined && typeof body.deliver_pending !== 'boolean') details.deliver_pending = 'must be a boolean'
  validation(details)
  return new EndpointInput(url, d, types, st === 'paused' ? 'paused' : 'active', rl, mc, md, body.deliver_pending === true)
}

/** PATCH /api/endpoints/:id: only the fields present; `null` clears a nullable one. */
export async function parsePatch (body: Body, allowPrivate: boolean): Promise<EndpointPatch> {
  if (body === null) throw new ApiError('invalid_json')
  const p: EndpointPatch = {}
  if (body.url !== undefined) p.url = await checkUrl(body.url, allowPrivate)
  if (body.event_types !== undefined) p.eventTypes = eventTypes(body.event_types)
  const details: Record<string, string> = {}
  if (body.description !== undefined) p.description = description(body.description, details)
  if (body.status !== undefined) { const s = status(body.status, ['active', 'paused', 'disabled'], details); if (s !== null) p.status = s }
  if (body.rate_limit !== undefined) p.rateLimit = rateLimit(body.rate_limit, details)
  if (body.max_concurrency !== undefined) p.maxConcurrency = maxConcurrency(body.max_concurrency, details)
  if (body.metadata !== undefined) p.metadata = metadata(body.metadata, details)
  validation(details)
  return p
}
