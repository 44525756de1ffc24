/**
 * POST /api/events — the ingest route. Validation and the payload-size rule run synchronously; the
 * event then waits in the thread's writer and is answered 201 or 409 only after its batch commits.
 * Listener threads only.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import type { Body } from '../pipeline.ts'
import { send, sendError } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { validateEvent } from '../../ingest/validate.ts'
import { PendingEvent, type WriterHooks } from '../../ingest/writer.ts'
import { ApiError } from '../../errors.ts'
import type { ThreadMetrics } from '../../metrics/counters.ts'

const FULL = new ApiError('unavailable', 'Too many events waiting to be written; retry shortly', null, { retryAfter: 1 })

export function ingest (ctx: Ctx, s: Services, body: Body): void {
  if (body === null || ctx.auth === null) throw new ApiError('invalid_json')
  const input = validateEvent(body, ctx.bodyText)
  if (!s.writer.submit(new PendingEvent(ctx.auth.organizationId, input, ctx))) throw FULL
}

/** The writer's answers to the requests it holds (module-level functions, STYLE C7). */
export function ingestHooks (metrics: ThreadMetrics, onCommitted: (count: number, anyDue: boolean) => void, onBatch: (size: number, ms: number) => void): WriterHooks<Ctx> {
  return {
    created (ev, createdAt) {
      metrics.accepted()
      send(ev.owner, 201, serialize.created({ id: ev.id, type: ev.input.type, dedup_id: ev.input.dedupId, status: 'pending', created_at: createdAt }))
    },
    duplicate (ev, originalId) {
      metrics.duplicate()
      sendError(ev.owner, new ApiError('duplicate_event', undefined, { dedup_id: ev.input.dedupId ?? '', event_id: originalId }))
    },
    failed (ev, err) { sendError(ev.owner, err) },
    committed: onCommitted,
    batch: onBatch,
  }
}
