/**
 * The root pino logger and per-component children (STYLE C12). Each thread builds its own root with
 * its thread name bound once; components take a child with their name. Redaction removes anything
 * that could hold a key, a signing secret or a payload, wherever it appears in a log object.
 */
import { pino, type Logger } from 'pino'
import type { LogLevel } from './config/load.ts'

export type { Logger }

export const REDACT_PATHS = [
  'api_key', '*.api_key', 'apiKey', '*.apiKey', 'key', '*.key',
  'signing_secret', '*.signing_secret', 'secret', '*.secret',
  'payload', '*.payload', 'body', '*.body',
  'headers["x-api-key"]', '*.headers["x-api-key"]',
  'databaseUrl',
  // PostgreSQL errors: `detail` can quote the failing row ("Failing row contains (..., {payload}, ...)"),
  // and postgres.js attaches the bound `parameters` (enumerable in its debug mode).
  'detail', '*.detail', 'parameters', '*.parameters',
]

export function createLogger (level: LogLevel, thread: string): Logger {
  return pino({
    level,
    base: { pid: process.pid, thread },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  })
}
