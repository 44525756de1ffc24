/**
 * What the client throws. Every error the service answers with is a TriggersApiError carrying the
 * envelope's `code` (a discriminated union over the service's catalogue, ERROR_CODES), its HTTP
 * status and its context fields; a response that is not an envelope (a proxy's 502 page) is a
 * TriggersHttpError; no response at all (refused, reset, timed out) is a TriggersConnectionError.
 * All three extend TriggersError. A caller's own AbortSignal aborting surfaces as its AbortError.
 */
import { ERROR_CODES, type ErrorCode, type ErrorContexts, type ErrorEnvelope } from './generated/api.js'

/** The envelope's fields besides `error` and `code`: which appear depends on the code. */
export type ErrorContext = Omit<ErrorEnvelope, 'error' | 'code'>

/** Base class of every error the client throws. */
export class TriggersError extends Error {
  /** `"POST /api/events"`: the operation that failed (empty for errors outside a request). */
  readonly operation: string

  constructor (message: string, operation: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'TriggersError'
    this.operation = operation
  }
}

export interface ResponseFacts {
  readonly status: number
  /** X-Request-ID of the response: quote it when reporting a problem. */
  readonly requestId: string | null
  /** Retry-After of the response in seconds (a date is turned into seconds from now), or null. */
  readonly retryAfter: number | null
}

/** An error envelope `{error, code, ...context}` from the service. Switch on `code`. */
export class TriggersApiError<C extends ErrorCode = ErrorCode> extends TriggersError {
  readonly code: C
  readonly status: number
  /** The envelope's context fields: those ErrorContexts lists for the code are present. */
  readonly context: ErrorContexts[C] & ErrorContext
  readonly requestId: string | null
  readonly retryAfter: number | null
  /** The envelope as received. */
  readonly envelope: ErrorEnvelope

  constructor (envelope: ErrorEnvelope, operation: string, facts: ResponseFacts) {
    super(`${envelope.error} (${envelope.code})`, operation)
    this.name = 'TriggersApiError'
    const { error: _error, code, ...context } = envelope
    this.code = code as C
    this.status = facts.status
    this.context = context as ErrorContexts[C] & ErrorContext
    this.requestId = facts.requestId
    this.retryAfter = facts.retryAfter
    this.envelope = envelope
  }
}

/** TriggersApiError narrowed by its code: `switch (err.code)` narrows `err.context`. */
export type AnyTriggersApiError = { [C in ErrorCode]: TriggersApiError<C> }[ErrorCode]

/**
 * True for a TriggersApiError (of `code`, when given): `if (isApiError(err, 'duplicate_event'))
 * err.context.event_id`. A code the service added after this client was generated is still a
 * TriggersApiError; isKnownCode tells.
 */
export function isApiError (err: unknown): err is AnyTriggersApiError
export function isApiError<C extends ErrorCode> (err: unknown, code: C): err is TriggersApiError<C>
export function isApiError (err: unknown, code?: ErrorCode): boolean {
  return err instanceof TriggersApiError && (code === undefined || err.code === code)
}

export function isKnownCode (code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}

/** A failed response whose body is not an error envelope (e.g. from a proxy in front of the service). */
export class TriggersHttpError extends TriggersError {
  readonly status: number
  readonly requestId: string | null
  readonly retryAfter: number | null
  /** The body as text (at most 4 KiB of it). */
  readonly body: string

  constructor (operation: string, facts: ResponseFacts, body: string) {
    super(`HTTP ${facts.status} from ${operation}`, operation)
    this.name = 'TriggersHttpError'
    this.status = facts.status
    this.requestId = facts.requestId
    this.retryAfter = facts.retryAfter
    this.body = body.slice(0, 4096)
  }
}

/** No response: the connection failed or the attempt timed out. The request may or may not have been processed. */
export class TriggersConnectionError extends TriggersError {
  /** The client's per-attempt timeout ended it. */
  readonly timedOut: boolean

  constructor (operation: string, timedOut: boolean, cause: unknown) {
    const why = timedOut ? 'timed out' : `failed: ${cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause)}`
    super(`${operation} ${why}`, operation, { cause })
    this.name = 'TriggersConnectionError'
    this.timedOut = timedOut
  }
}
