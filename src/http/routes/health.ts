/**
 * GET /health, /health/live (the process answers) and /health/ready (the database answers within a
 * second). No auth, no rate limit. Listener threads only.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import { send } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { pingDatabase } from '../../db/queries/ping-database.ts'

export function live (ctx: Ctx): void {
  send(ctx, 200, serialize.health({ status: 'ok', timestamp: new Date().toISOString() }))
}

export async function ready (ctx: Ctx, s: Services): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  // Settles on the first of: the query answers, the query fails, one second passes. Both outcomes
  // of the query are observed here, so a late failure cannot become an unhandled rejection.
  const problem = await new Promise<string | null>(resolve => {
    timer = setTimeout(resolve, 1000, 'database did not answer within 1 s')
    pingDatabase(s.sql).then(() => { resolve(null) }, (err: unknown) => {
      resolve(err instanceof Error ? err.message : 'database unreachable')
    })
  })
  clearTimeout(timer)
  const timestamp = new Date().toISOString()
  if (problem === null) send(ctx, 200, serialize.ready({ status: 'ready', database: 'connected', timestamp }))
  else send(ctx, 503, serialize.ready({ status: 'not_ready', database: 'disconnected', error: problem, timestamp }), ['Retry-After', '1'])
}
