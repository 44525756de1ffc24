/**
 * The OpenTelemetry Tracer of one thread (listener or delivery; docs/tracing.md). Loaded only by
 * start.ts, with a dynamic import, when the OTEL_* variables turn traces on: with tracing off no
 * module of this file's imports is ever loaded.
 *
 * Each thread runs its own tracer provider: the configured sampler, a batching span processor and an
 * OTLP/HTTP exporter (protobuf or JSON), flushed by `shutdown` when the thread stops. Nothing is
 * registered globally and no context manager is installed: parents are passed explicitly, as a
 * traceparent string — the client's header for an ingest span, the one stored with the event for a
 * delivery attempt (which may run on another node, after a restart, or hours later). The exporter's
 * failures reach the thread's log through the OpenTelemetry diagnostic logger, at most one line
 * every 30 s.
 */
import { DiagLogLevel, ROOT_CONTEXT, SpanKind, SpanStatusCode, diag, trace, type Context, type Span, type Tracer as OtelTracer } from '@opentelemetry/api'
import {
  AlwaysOffSampler, AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler,
} from '@opentelemetry/sdk-trace-base'
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources'
import {
  ATTR_DB_COLLECTION_NAME, ATTR_DB_OPERATION_NAME, ATTR_DB_SYSTEM_NAME, ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION, ATTR_URL_FULL,
  ATTR_URL_PATH, ATTR_URL_SCHEME, DB_SYSTEM_NAME_VALUE_POSTGRESQL,
} from '@opentelemetry/semantic-conventions'
import type { TracesConfig } from '../config/load.ts'
import type { Logger } from '../log.ts'
import type { ClaimedDelivery } from '../db/queries/claim-deliveries.ts'
import type { AttemptResult } from '../delivery/retry-policy.ts'
import { VERSION } from '../version.ts'
import { formatTraceparent, parseTraceparent } from './traceparent.ts'
import type { AttemptSpan, IngestSpan, Tracer } from './tracer.ts'

const DIAG_EVERY_MS = 30_000
const URL_CACHE_MAX = 10_000

/*
 * Times: ingest and commit spans take performance.now() values for both their start and their end
 * (the SDK turns a number below performance.now() into wall time with one offset per span, so
 * durations are exact and monotonic); attempt spans start at the attempt's Date.now() and end at the
 * SDK's Date.now().
 */

function traceparentOf (span: Span): string {
  const c = span.spanContext()
  return formatTraceparent(c.traceId, c.spanId, c.traceFlags)
}

/** The parent context a traceparent names, or the root (a new trace) when it is absent or invalid. */
function parentContext (header: string | null): Context {
  if (header === null || header === '') return ROOT_CONTEXT
  const p = parseTraceparent(header)
  if (p === null) return ROOT_CONTEXT
  return trace.setSpanContext(ROOT_CONTEXT, { traceId: p.traceId, spanId: p.spanId, traceFlags: p.flags, isRemote: true })
}

class OtelIngestSpan implements IngestSpan {
  readonly traceparent: string
  readonly #span: Span
  readonly #tracer: OtelTracer

  constructor (span: Span, tracer: OtelTracer) {
    this.#span = span
    this.#tracer = tracer
    this.traceparent = traceparentOf(span)
  }

  commit (startedAt: number, endedAt: number, statementEvents: number, requestEvents: number, error: Error | null): void {
    if (!this.#span.isRecording()) return // not sampled: its children would not be either
    const s = this.#tracer.startSpan('commit', {
      kind: SpanKind.CLIENT,
      startTime: startedAt,
      attributes: {
        [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
        [ATTR_DB_OPERATION_NAME]: 'INSERT',
        [ATTR_DB_COLLECTION_NAME]: 'events',
        'triggers.commit.events': statementEvents,
        'triggers.request.events': requestEvents,
      },
    }, trace.setSpan(ROOT_CONTEXT, this.#span))
    if (error !== null) {
      s.setStatus({ code: SpanStatusCode.ERROR, message: error.message })
      s.setAttribute(ATTR_ERROR_TYPE, 'code' in error && typeof error.code === 'string' ? error.code : error.name)
    }
    s.end(endedAt)
  }

  end (status: number, eventId: string | null): void {
    const s = this.#span
    if (s.isRecording()) {
      s.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
      if (eventId !== null) s.setAttribute('triggers.event.id', eventId)
      // Server spans: only 5xx is an error of ours (HTTP semantic conventions); 0 is a client that went away.
      if (status >= 500 || status === 0) {
        s.setStatus({ code: SpanStatusCode.ERROR })
        s.setAttribute(ATTR_ERROR_TYPE, status === 0 ? 'aborted' : String(status))
      }
    }
    s.end(performance.now())
  }
}

class OtelAttemptSpan implements AttemptSpan {
  readonly traceparent: string
  readonly #span: Span

  constructor (span: Span) {
    this.#span = span
    this.traceparent = traceparentOf(span)
  }

  end (r: AttemptResult, outcome: string, next: string): void {
    const s = this.#span
    if (s.isRecording()) {
      s.setAttribute('triggers.delivery.outcome', outcome)
      s.setAttribute('triggers.delivery.next', next)
      if (r.status !== 0) s.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, r.status)
      if (r.kind !== 'success') {
        // The receiver's body stays in the attempt log; the span says only what kind of failure it was.
        const type = r.kind === 'http' ? String(r.status) : outcome
        s.setStatus({ code: SpanStatusCode.ERROR, message: r.kind === 'http' ? 'HTTP ' + type : (r.error ?? outcome) })
        s.setAttribute(ATTR_ERROR_TYPE, type)
      }
    }
    s.end()
  }
}

/** What a span records of a webhook URL: no credentials and no query string (receivers put tokens there). */
class UrlParts {
  readonly full: string
  readonly address: string
  readonly port: number
  constructor (raw: string) {
    let u: URL | null = null
    try { u = new URL(raw) } catch { u = null }
    if (u === null) {
      this.full = ''
      this.address = ''
      this.port = 0
      return
    }
    this.full = u.origin + u.pathname
    this.address = u.hostname
    this.port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port)
  }
}

class OtelTracerImpl implements Tracer {
  readonly on = true
  readonly #provider: BasicTracerProvider
  readonly #tracer: OtelTracer
  readonly #urls = new Map<string, UrlParts>()

  constructor (provider: BasicTracerProvider) {
    this.#provider = provider
    this.#tracer = provider.getTracer('triggers-api', VERSION)
  }

  ingest (route: string, arrivedAt: number, traceparent: string, organizationId: string): IngestSpan {
    const span = this.#tracer.startSpan('POST ' + route, {
      kind: SpanKind.SERVER,
      startTime: arrivedAt,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: 'POST',
        [ATTR_HTTP_ROUTE]: route,
        [ATTR_URL_PATH]: route,
        [ATTR_URL_SCHEME]: 'http',
        'triggers.organization.id': organizationId,
      },
    }, parentContext(traceparent))
    return new OtelIngestSpan(span, this.#tracer)
  }

  attempt (d: ClaimedDelivery, startedAt: number): AttemptSpan {
    let u = this.#urls.get(d.url)
    if (u === undefined) {
      u = new UrlParts(d.url)
      if (this.#urls.size >= URL_CACHE_MAX) this.#urls.clear()
      this.#urls.set(d.url, u)
    }
    const span = this.#tracer.startSpan('delivery attempt', {
      kind: SpanKind.CLIENT,
      startTime: startedAt,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: 'POST',
        [ATTR_URL_FULL]: u.full,
        [ATTR_SERVER_ADDRESS]: u.address,
        [ATTR_SERVER_PORT]: u.port,
        // 0 for the delivery's first attempt; counts across redelivery series, like X-Delivery-Attempt.
        [ATTR_HTTP_REQUEST_RESEND_COUNT]: d.attempts - 1,
        'triggers.delivery.attempt': d.attempts,
        'triggers.delivery.series_attempt': d.seriesAttempt,
        'triggers.delivery.trigger': d.trigger,
        'triggers.endpoint.id': d.endpointId,
        'triggers.event.id': d.eventId,
        'triggers.event.type': d.type,
        'triggers.organization.id': d.organizationId,
      },
    }, parentContext(d.traceparent))
    return new OtelAttemptSpan(span)
  }

  async shutdown (timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | null = null
    const late = new Promise<void>(resolve => { timer = setTimeout(resolve, timeoutMs) })
    try {
      await Promise.race([this.#provider.shutdown(), late])
    } finally {
      if (timer !== null) clearTimeout(timer)
    }
  }
}

function sampler (c: TracesConfig): Sampler {
  switch (c.sampler) {
    case 'always_on': return new AlwaysOnSampler()
    case 'always_off': return new AlwaysOffSampler()
    case 'traceidratio': return new TraceIdRatioBasedSampler(c.samplerRatio)
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() })
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(c.samplerRatio) })
  }
}

/** OpenTelemetry's own warnings and errors (failed exports, dropped spans) as log lines, rate-limited. */
function routeDiagnostics (log: Logger): void {
  let last = -Infinity
  let suppressed = 0
  const warn = (message: string, ...args: unknown[]): void => {
    const now = performance.now()
    if (now - last < DIAG_EVERY_MS) { suppressed++; return }
    last = now
    log.warn({ more: args.length > 0 ? String(args[0]) : undefined, suppressed }, `tracing: ${message}`)
    suppressed = 0
  }
  const quiet = (): void => {}
  diag.setLogger({ error: warn, warn, info: quiet, debug: quiet, verbose: quiet }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true })
}

/** This thread's Tracer for `c`; `thread` names the thread in the resource (thread.name). */
export async function createTracer (c: TracesConfig, thread: string, log: Logger): Promise<Tracer> {
  routeDiagnostics(log)
  const { OTLPTraceExporter } = c.protocol === 'http/json'
    ? await import('@opentelemetry/exporter-trace-otlp-http')
    : await import('@opentelemetry/exporter-trace-otlp-proto')
  const exporter = new OTLPTraceExporter({ url: c.url, headers: { ...c.headers }, timeoutMillis: c.timeoutMs })
  const resource = defaultResource().merge(resourceFromAttributes({
    ...c.resourceAttributes,
    [ATTR_SERVICE_NAME]: c.serviceName,
    [ATTR_SERVICE_VERSION]: VERSION,
    'thread.name': thread,
  }))
  const provider = new BasicTracerProvider({
    resource,
    sampler: sampler(c),
    spanProcessors: [new BatchSpanProcessor(exporter, {
      scheduledDelayMillis: c.scheduleDelayMs,
      maxQueueSize: c.maxQueueSize,
      maxExportBatchSize: c.maxExportBatchSize,
      exportTimeoutMillis: c.timeoutMs,
    })],
  })
  return new OtelTracerImpl(provider)
}
