/**
 * What the service's code sees of tracing (docs/tracing.md): a Tracer per thread, chosen once when the
 * thread starts (STYLE C8). With tracing off it is NOOP_TRACER, whose methods return null and which
 * never loads OpenTelemetry; hot code pays one call or one null check. With tracing on it is the
 * OpenTelemetry implementation in otel.ts, loaded by start.ts with a dynamic import.
 *
 *   listener: POST /api/events ─┬─ commit            (one per request, the statement it shared)
 *             (server span)     └─ traceparent ──▶ events.traceparent ──▶ claim ──▶ delivery attempt
 *                                                                                 (client span) ──▶ receiver
 *
 * `tracer` is this thread's Tracer for code that has no handle of its own (the request snapshot in
 * http/context.ts and the ingest routes); threads set it once with installTracer before they serve.
 * Module state is per thread (every worker imports its own copy), which is what a per-thread
 * tracer provider needs.
 */
import type { ClaimedDelivery } from '../db/queries/claim-deliveries.ts'
import type { AttemptResult } from '../delivery/retry-policy.ts'

/** The server span of one ingest request (a single event or a batch). */
export interface IngestSpan {
  /** This span's W3C traceparent: stored with the request's events, the parent of their delivery attempts. */
  readonly traceparent: string
  /**
   * The statement holding this request's events ended at `endedAt` (performance.now() ms, like
   * `startedAt`): a child span `commit` of that interval, with the statement's and this request's
   * event counts, and the error when it failed.
   */
  commit (startedAt: number, endedAt: number, statementEvents: number, requestEvents: number, error: Error | null): void
  /** The response went out with `status`; `eventId` is the created (or original) event of a single-event request. */
  end (status: number, eventId: string | null): void
}

/** The client span of one delivery attempt. */
export interface AttemptSpan {
  /** Sent as the webhook request's `traceparent` header. */
  readonly traceparent: string
  /**
   * The attempt ended with `r`; `outcome` is the attempt log's (success, http_error, …) and `next` what
   * becomes of the delivery (delivered, failed, dead_letter, or released when cut short by a shutdown).
   */
  end (r: AttemptResult, outcome: string, next: string): void
}

export interface Tracer {
  /** False for NOOP_TRACER: read once at construction by code that decides what to build (STYLE C8). */
  readonly on: boolean
  /**
   * Starts the server span of an ingest request that arrived at `arrivedAt` (performance.now() ms),
   * continuing the client's trace when `traceparent` (the request header, '' when absent) is valid.
   */
  ingest (route: string, arrivedAt: number, traceparent: string, organizationId: string): IngestSpan | null
  /** Starts the span of one delivery attempt, a child of the event's ingest span when `d.traceparent` is set. */
  attempt (d: ClaimedDelivery, startedAt: number): AttemptSpan | null
  /** Exports what is buffered and stops; resolves within `timeoutMs` whatever the collector does. */
  shutdown (timeoutMs: number): Promise<void>
}

class NoopTracer implements Tracer {
  readonly on = false
  ingest (): IngestSpan | null { return null }
  attempt (): AttemptSpan | null { return null }
  shutdown (): Promise<void> { return Promise.resolve() }
}

export const NOOP_TRACER: Tracer = new NoopTracer()

/** This thread's tracer (NOOP_TRACER until installTracer). */
export let tracer: Tracer = NOOP_TRACER

export function installTracer (t: Tracer): void {
  tracer = t
}
