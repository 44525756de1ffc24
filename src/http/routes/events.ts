/**
 * POST /api/events — the ingest route. Validation and the payload-size rule run synchronously; the
 * event then waits in the thread's writer and is answered 201 or 409 only after its batch commits.
 * With tracing on, the request is a server span from its arrival to its answer (docs/tracing.md).
 * Listener threads only.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import type { Body } from '../pipeline.ts'
import { send, sendError } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { validateEvent } from '../../ingest/validate.ts'
import { PendingEvent, type WriterHooks } from '../../ingest/writer.ts'
import { ApiError, coerceError } from '../../errors.ts'
import type { ThreadMetrics } from '../../metrics/counters.ts'
import { tracer, type IngestSpan } from '../../tracing/tracer.ts'
import { BatchRequest } from './batch.ts'

const FULL = new ApiError('unavailable', 'Too many events waiting to be written; retry shortly', null, { retryAfter: 1 })

export function ingest (ctx: Ctx, s: Services, body: Body): void {
  if (body === null || ctx.auth === null) throw new ApiError('invalid_json')
  const org = ctx.auth.organizationId
  const span = tracer.ingest('/api/events', ctx.startedAt, ctx.traceparent, org)
  if (span === null) { submit(ctx, s, body, org, null); return }
  try { submit(ctx, s, body, org, span) } catch (err) { endRefused(span, err); throw err }
}

function submit (ctx: Ctx, s: Services, body: Record<string, unknown>, organizationId: string, span: IngestSpan | null): void {
  const input = validateEvent(body, ctx.bodyText)
  if (!s.writer.submit(new PendingEvent<WriterOwner>(organizationId, input, ctx, 0, span))) throw FULL
}

/** Ends the span of a request refused before its events were queued (the error is answered by the pipeline). */
export function endRefused (span: IngestSpan, err: unknown): void {
  span.end(coerceError(err).status, null)
}

/** Who waits for a written event: a single-event request, or a batch request (one of its items). */
export type WriterOwner = Ctx | BatchRequest

/** The writer's answers to the requests it holds (module-level functions, STYLE C7). */
export function ingestHooks (metrics: ThreadMetrics, onCommitted: (count: number, anyDue: boolean) => void, onBatch: (size: number, ms: number) => void): WriterHooks<WriterOwner> {
  return {
    created (ev, createdAt) {
      metrics.accepted()
      const o = ev.owner
      if (o instanceof BatchRequest) { o.created(ev.index, ev.id, ev.input, createdAt); return }
      send(o, 201, serialize.created({ id: ev.id, type: ev.input.type, dedup_id: ev.input.dedupId, status: 'pending', created_at: createdAt }))
      if (ev.trace !== null) ev.trace.end(o.aborted ? 0 : 201, ev.id)
    },
    duplicate (ev, originalId) {
      metrics.duplicate()
      const o = ev.owner
      if (o instanceof BatchRequest) { o.duplicate(ev.index, ev.input, originalId); return }
      sendError(o, new ApiError('duplicate_event', undefined, { dedup_id: ev.input.dedupId ?? '', event_id: originalId }))
      if (ev.trace !== null) ev.trace.end(o.aborted ? 0 : 409, originalId)
    },
    failed (ev, err) {
      const o = ev.owner
      if (o instanceof BatchRequest) { o.fail(err); return }
      sendError(o, err)
      if (ev.trace !== null) ev.trace.end(o.aborted ? 0 : err.status, null)
    },
    committed: onCommitted,
    batch: onBatch,
  }
}
