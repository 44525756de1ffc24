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
import { BatchRequest } from './batch.ts'

const FULL = new ApiError('unavailable', 'Too many events waiting to be written; retry shortly', null, { retryAfter: 1 })

export function ingest (ctx: Ctx, s: Services, body: Body): void {
  if (body === null || ctx.auth === null) throw new ApiError('invalid_json')
  const input = validateEvent(body, ctx.bodyText)
  if (!s.writer.submit(new PendingEvent<WriterOwner>(ctx.auth.organizationId, input, ctx))) throw FULL
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
    },
    duplicate (ev, originalId) {
      metrics.duplicate()
      const o = ev.owner
      if (o instanceof BatchRequest) { o.duplicate(ev.index, ev.input, originalId); return }
      sendError(o, new ApiError('duplicate_event', undefined, { dedup_id: ev.input.dedupId ?? '', event_id: originalId }))
    },
    failed (ev, err) {
      const o = ev.owner
      if (o instanceof BatchRequest) o.fail(err)
      else sendError(o, err)
    },
    committed: onCommitted,
    batch: onBatch,
  }
}
