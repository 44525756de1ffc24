/**
 * The W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/#traceparent-header):
 * `<version>-<trace-id>-<parent-id>-<trace-flags>`, lower-case hex, e.g.
 * `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`. Parsed here without OpenTelemetry, so
 * the code that reads and stores the header costs nothing extra to load. Any thread.
 *
 * Parsing follows the spec's rules for a receiver: version `ff` is invalid; version `00` is exactly 55
 * characters; a later version may carry more fields after a `-`, of which the first four are read;
 * an all-zero trace id or parent id is invalid. An invalid header is ignored (a new trace starts).
 */

export class TraceParent {
  /** 32 lower-case hex digits. */
  readonly traceId: string
  /** 16 lower-case hex digits. */
  readonly spanId: string
  /** The trace-flags byte (bit 0: sampled). */
  readonly flags: number
  constructor (traceId: string, spanId: string, flags: number) {
    this.traceId = traceId
    this.spanId = spanId
    this.flags = flags
  }
}

const HEADER = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/
const ZERO_TRACE = '00000000000000000000000000000000'
const ZERO_SPAN = '0000000000000000'

/** The header's fields, or null when it is absent or invalid. */
export function parseTraceparent (header: string): TraceParent | null {
  if (header.length < 55) return null
  const m = HEADER.exec(header)
  if (m === null) return null
  const version = m[1]!
  if (version === 'ff') return null
  if (version === '00' && header.length !== 55) return null
  const traceId = m[2]!
  const spanId = m[3]!
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null
  return new TraceParent(traceId, spanId, parseInt(m[4]!, 16))
}

/** The version-00 header for a span. */
export function formatTraceparent (traceId: string, spanId: string, flags: number): string {
  return '00-' + traceId + '-' + spanId + '-' + ((flags & 0xff) < 16 ? '0' : '') + (flags & 0xff).toString(16)
}
