/**
 * Maps PostgreSQL and connection failures to catalogue errors by comparing codes, never messages
 * (STYLE C4). A lost or refused connection is `unavailable` (503 with Retry-After); a constraint the
 * application should have prevented stays an internal error.
 */
import { ApiError } from '../errors.ts'

function codeOf (err: unknown): string | null {
  if (err !== null && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code
  return null
}

export function isUniqueViolation (err: unknown): boolean {
  return codeOf(err) === '23505'
}

// Node socket errors and postgres.js's own connection errors.
const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
])

/** True for failures that mean "the database is not reachable right now". */
export function isConnectionError (err: unknown): boolean {
  const code = codeOf(err)
  if (code === null) return false
  // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now),
  // 53300 (too many connections).
  return CONNECTION_CODES.has(code) || code.startsWith('08') || code === '57P01' || code === '57P02' ||
    code === '57P03' || code === '53300'
}

/** Wraps a database failure as a catalogue error: unreachable → unavailable (503), else internal (500). */
export function dbError (err: unknown): ApiError {
  if (err instanceof ApiError) return err
  if (isConnectionError(err)) return new ApiError('unavailable', 'Database unavailable', null, { cause: err, retryAfter: 1 })
  return new ApiError('internal_error', undefined, null, { cause: err })
}
