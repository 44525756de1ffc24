/**
 * Baseline (b) of scenario 7: the ingest service a typical Node developer would write. Fastify 5 with
 * its built-in JSON body parser, node-postgres (`pg`) with a Pool of 10, one process, one thread, and
 * for every request ONE `INSERT INTO events ... RETURNING` into the same schema as the service
 * (autocommit, so each request is its own durable commit; fsync and synchronous_commit stay on).
 * Minimal validation (type: non-empty string, payload: object, dedup_id: optional string); no
 * authentication, deduplication or rate limiting: it writes every event for one fixed organization id.
 *
 *   DATABASE_URL=postgres://... PORT=8082 node --import tsx bench/baseline/fastify-pg.ts
 */
import Fastify from 'fastify'
import pg from 'pg'

const port = Number(process.env.PORT ?? 8082)
const databaseUrl = process.env.DATABASE_URL
if (databaseUrl === undefined) throw new Error('DATABASE_URL is required')
const ORG_ID = '00000000-0000-4000-8000-00000000fa57'

const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 })
const app = Fastify({ logger: false })

interface EventBody { type?: unknown, payload?: unknown, dedup_id?: unknown }

app.post('/api/events', async (request, reply) => {
  const body = request.body as EventBody | null
  if (body === null || typeof body !== 'object') return await reply.code(400).send({ error: 'Body must be a JSON object' })
  const { type, payload } = body
  const dedupId = body.dedup_id ?? null
  if (typeof type !== 'string' || type.length === 0 || type.length > 255) return await reply.code(400).send({ error: 'type is required' })
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return await reply.code(400).send({ error: 'payload must be an object' })
  if (dedupId !== null && typeof dedupId !== 'string') return await reply.code(400).send({ error: 'dedup_id must be a string' })
  const { rows } = await pool.query<{ id: string, created_at: Date }>(
    `INSERT INTO events (organization_id, id, type, payload, dedup_id, status, created_at, updated_at)
     VALUES ($1, gen_random_uuid(), $2, $3, $4, 'pending', now(), now())
     RETURNING id, created_at`,
    [ORG_ID, type, JSON.stringify(payload), dedupId])
  const row = rows[0]!
  return await reply.code(201).send({ id: row.id, type, dedup_id: dedupId, status: 'pending', created_at: row.created_at.toISOString() })
})

app.get('/health', async () => ({ status: 'ok' }))

await app.listen({ host: '127.0.0.1', port })

const stop = (): void => {
  app.close().then(async () => { await pool.end() }).then(() => { process.exit(0) }, () => { process.exit(1) })
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
