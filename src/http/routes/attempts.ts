/**
 * The delivery attempt log (the contract, docs/api.md "Delivery attempts"): GET /api/events/:event_id/attempts (oldest
 * first), GET /api/endpoints/:endpoint_id/attempts (newest first, filtered), GET /api/attempts/:attempt_id
 * and GET /api/endpoints/:endpoint_id/stats. Every route is authenticated and counts one request against
 * the tier limit; another organization's event, endpoint or attempt is indistinguishable from an unknown
 * one (404). A deleted endpoint's log stays readable until retention. Listener threads only.
 *
 * Filters are checked before anything is read, all at once: every bad one is named in the `details` of
 * one 400 `invalid_filter`. A filtered page of an endpoint's list examines at most SCAN_MAX attempts
 * (find-attempts.ts): it may then hold fewer than `limit` rows, even none, with `has_more` and a
 * `next_cursor` that continues where it stopped. Times are ISO-8601 with a zone (`Z` or an offset) or a bare date (UTC
 * midnight); a `+` offset that arrived unencoded in the query string (decoded as a space) is taken as `+`.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import { send } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { ApiError } from '../../errors.ts'
import { dbError } from '../../db/errors.ts'
import { isUuid, uuidv7Time } from '../../lib/uuid.ts'
import {
  endpointAttemptStats, endpointKnown, eventCreatedAt, findAttempt, listEndpointAttempts, listEventAttempts,
  type AttemptRow, type EndpointAttemptsPage, type StatusClass,
} from '../../db/queries/find-attempts.ts'
import type { AttemptOutcome } from '../../db/queries/complete-deliveries.ts'
import { encodeCursor, pageOf, parsePage, pathId } from '../paging.ts'

const OUTCOMES: readonly string[] = ['success', 'http_error', 'timeout', 'network_error', 'blocked']
const STATUS_CLASSES: readonly string[] = ['2xx', '3xx', '4xx', '5xx', 'none']
const DAY_MS = 86_400_000
/** The stats window: at most 7 days, by default the last 24 hours. */
const STATS_MAX_MS = 7 * DAY_MS
const STATS_DEFAULT_MS = DAY_MS

/** The API's attempt object. */
export function attemptDoc (r: AttemptRow): Record<string, unknown> {
  return {
    id: r.id,
    event_id: r.event_id,
    endpoint_id: r.endpoint_id,
    attempt_number: r.attempt_number,
    trigger: r.trigger,
    url: r.url,
    started_at: r.started_at.toISOString(),
    duration_ms: r.duration_ms,
    outcome: r.outcome,
    response_status: r.response_status,
    response_headers: r.response_headers,
    response_body: r.response_body,
    response_body_truncated: r.response_body_truncated,
    error: r.error,
    next_attempt_at: r.next_attempt_at === null ? null : r.next_attempt_at.toISOString(),
    response_body_expired: r.response_body_expired,
  }
}

function orgOf (ctx: Ctx): string {
  if (ctx.auth === null) throw new ApiError('unauthorized')
  return ctx.auth.organizationId
}

// ── filters ────────────────────────────────────────────────────────────────────────────────────

const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):?(\d{2})))?$/
const SPACED_OFFSET_RE = / (\d{2}:?\d{2})$/

/** An ISO-8601 time with a zone, or a bare date; null when it is anything else (or no such day). */
export function parseIsoTime (raw: string): Date | null {
  const s = raw.toUpperCase().replace(SPACED_OFFSET_RE, '+$1')
  const m = TIME_RE.exec(s)
  if (m === null) return null
  const y = Number(m[1])
  const mo = Number(m[2])
  const d = Number(m[3])
  if (mo < 1 || mo > 12 || d < 1 || new Date(Date.UTC(y, mo - 1, d)).getUTCDate() !== d) return null
  if (Number(m[4] ?? 0) > 23 || Number(m[5] ?? 0) > 59 || Number(m[6] ?? 0) > 59 || Number(m[7] ?? 0) > 23 || Number(m[8] ?? 0) > 59) return null
  const t = new Date(s)
  return Number.isNaN(t.getTime()) ? null : t
}

/** Collects every bad filter of one request, then throws one invalid_filter naming them all. */
class Filters {
  readonly q: URLSearchParams
  readonly details: Record<string, string> = {}

  constructor (query: string) { this.q = new URLSearchParams(query) }

  /** The parameter's single value, or null when absent; a repeated parameter is refused. */
  one (name: string): string | null {
    const all = this.q.getAll(name)
    if (all.length > 1) { this.details[name] = 'given more than once'; return null }
    return all[0] ?? null
  }

  bad (name: string, why: string): null {
    this.details[name] = why
    return null
  }

  choice (name: string, values: readonly string[]): string | null {
    const v = this.one(name)
    if (v === null || values.includes(v)) return v
    return this.bad(name, `must be one of ${values.join(', ')}`)
  }

  time (name: string): Date | null {
    const v = this.one(name)
    if (v === null) return null
    return parseIsoTime(v) ?? this.bad(name, 'must be an ISO-8601 time with a zone, e.g. 2026-11-24T09:00:00Z')
  }

  uuid (name: string): string | null {
    const v = this.one(name)
    if (v === null) return null
    return isUuid(v) ? v.toLowerCase() : this.bad(name, 'must be a UUID')
  }

  text (name: string, max: number): string | null {
    const v = this.one(name)
    if (v === null) return null
    return v.length >= 1 && v.length <= max ? v : this.bad(name, `must be 1 to ${max} characters`)
  }

  /** Throws when anything was bad. */
  check (): void {
    const names = Object.keys(this.details)
    if (names.length > 0) throw new ApiError('invalid_filter', `Invalid filter: ${names.join(', ')}`, { details: this.details })
  }
}

// ── routes ─────────────────────────────────────────────────────────────────────────────────────

/** GET /api/events/:event_id/attempts?endpoint_id=&limit=&cursor= — oldest first. */
export async function eventAttempts (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'event')
  const f = new Filters(ctx.query)
  const endpointId = f.uuid('endpoint_id')
  f.check()
  const page = parsePage(f.q, false)
  let rows: AttemptRow[]
  try {
    const createdAt = await eventCreatedAt(s.sql, org, id)
    if (createdAt === null) throw new ApiError('not_found', 'Event not found')
    rows = await listEventAttempts(s.sql, {
      organizationId: org, eventId: id, endpointId, limit: page.limit, after: page.after, bodyRetentionDays: s.config.attemptBodyRetentionDays,
    }, createdAt)
  } catch (err) { throw dbError(err) }
  const p = pageOf(rows, page.limit, r => ({ createdAt: r.started_at, id: r.id }))
  send(ctx, 200, serialize.attemptList({ attempts: p.rows.map(attemptDoc), limit: page.limit, next_cursor: p.nextCursor, has_more: p.hasMore }))
}

/** GET /api/endpoints/:endpoint_id/attempts?outcome=&status_class=&event_type=&since=&until=&limit=&cursor= — newest first. */
export async function endpointAttempts (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'endpoint')
  const f = new Filters(ctx.query)
  const outcome = f.choice('outcome', OUTCOMES) as AttemptOutcome | null
  const statusClass = f.choice('status_class', STATUS_CLASSES) as StatusClass | null
  const eventType = f.text('event_type', 255)
  const since = f.time('since')
  const until = f.time('until')
  if (since !== null && until !== null && since.getTime() >= until.getTime()) f.bad('until', 'must be later than since')
  f.check()
  const page = parsePage(f.q, false)
  let found: EndpointAttemptsPage
  try {
    let known: boolean
    [known, found] = await Promise.all([
      endpointKnown(s.sql, org, id),
      listEndpointAttempts(s.sql, {
        organizationId: org, endpointId: id, outcome, statusClass, eventType, since, until,
        limit: page.limit, after: page.after, bodyRetentionDays: s.config.attemptBodyRetentionDays,
      }),
    ])
    if (!known) throw new ApiError('not_found', 'Endpoint not found')
  } catch (err) { throw dbError(err) }
  const p = pageOf(found.rows, page.limit, r => ({ createdAt: r.started_at, id: r.id }))
  // A filtered page that stopped examining early (SCAN_MAX) goes on where it stopped.
  const end = p.hasMore || found.scanEnd === null ? null : found.scanEnd
  send(ctx, 200, serialize.attemptList({
    attempts: p.rows.map(attemptDoc),
    limit: page.limit,
    next_cursor: end === null ? p.nextCursor : encodeCursor(end.createdAt, end.id),
    has_more: p.hasMore || end !== null,
  }))
}

/** GET /api/attempts/:attempt_id */
export async function getAttempt (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'attempt')
  let row: AttemptRow | null
  try { row = await findAttempt(s.sql, org, id, uuidv7Time(id), s.config.attemptBodyRetentionDays) } catch (err) { throw dbError(err) }
  if (row === null) throw new ApiError('not_found', 'Attempt not found')
  send(ctx, 200, serialize.attempt(attemptDoc(row)))
}

/** GET /api/endpoints/:endpoint_id/stats?since=&until= — a window of at most 7 days, by default the last 24 hours. */
export async function endpointStatsRoute (ctx: Ctx, s: Services): Promise<void> {
  const org = orgOf(ctx)
  const id = pathId(ctx.param, 'endpoint')
  const f = new Filters(ctx.query)
  const sinceRaw = f.time('since')
  const untilRaw = f.time('until')
  f.check()
  // Without until: up to now. Without since: the 24 hours before until.
  const until = untilRaw ?? new Date()
  const since = sinceRaw ?? new Date(until.getTime() - STATS_DEFAULT_MS)
  if (since.getTime() >= until.getTime()) f.bad('until', 'must be later than since')
  else if (until.getTime() - since.getTime() > STATS_MAX_MS) f.bad(untilRaw === null ? 'since' : 'until', 'the window may span at most 7 days')
  f.check()
  let known: boolean
  let stats
  try {
    [known, stats] = await Promise.all([endpointKnown(s.sql, org, id), endpointAttemptStats(s.sql, org, id, since, until)])
  } catch (err) { throw dbError(err) }
  if (!known) throw new ApiError('not_found', 'Endpoint not found')
  send(ctx, 200, serialize.attemptStats({
    success: stats.success,
    http_error: stats.http_error,
    timeout: stats.timeout,
    network_error: stats.network_error,
    blocked: stats.blocked,
    p50_ms: stats.p50_ms,
    p95_ms: stats.p95_ms,
    last_success_at: stats.last_success_at?.toISOString() ?? null,
    last_failure_at: stats.last_failure_at?.toISOString() ?? null,
  }))
}
