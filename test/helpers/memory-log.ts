/** A real pino logger whose lines are kept in memory, parsed, for tests that assert what was logged. */
import { Writable } from 'node:stream'
import { pino } from 'pino'
import type { Logger } from '../../src/log.ts'

export function memoryLogger (level = 'info'): { log: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    },
  })
  return { log: pino({ level }, stream), lines }
}
