/**
 * Retention against a real PostgreSQL (primary/retention.ts): events older than RETENTION_DAYS
 * and expired dedup records are deleted, in batches of 1,000, and nothing else is; RetentionJob runs
 * both, logs one line with the counts, never runs two purges at once, and survives a failing database.
 */
import { after, before, beforeEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.ts'
import { createDb, type Sql } from '../../src/db/client.ts'
import { purgeDedupKeys, purgeEvents, RetentionJob } from '../../src/primary/retention.ts'
import { memoryLogger } from '../helpers/memory-log.ts'

/** Inserts `n` events of `org` created `daysAgo` days ago (fractions allowed); returns their ids. */
async function insertEvents (sql: Sql, org: string, n: number, daysAgo: number): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    insert into events (organization_id, id, type, payload, status, created_at, updated_at)
    select ${org}::uuid, gen_random_uuid(), 'retention.test', '{"n":1}'::json, 'delivered',
           now() - make_interval(secs => ${daysAgo * 86_400}), now() - make_interval(secs => ${daysAgo * 86_400})
      from generate_series(1, ${n})
    returning id::text`
  return rows.map(r => r.id)
}

/** Inserts `n` dedup records of `org` expiring `inSeconds` from now (negative: already expired). */
async function insertDedup (sql: Sql, org: string, n: number, inSeconds: number, prefix: string): Promise<void> {
  await sql`
    insert into dedup_keys (organization_id, dedup_id, event_id, expires_at)
    select ${org}::uuid, ${prefix} || g, gen_random_uuid(), now() + make_interval(secs => ${inSeconds})
      from generate_series(1, ${n}) g`
}

async function count (sql: Sql, table: 'events' | 'dedup_keys'): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ${sql(table)}`
  return row?.n ?? -1
}

describe('retention', () => {
  let db: TestDatabase
  const orgA = randomUUID()
  const orgB = randomUUID()

  before(async () => {
    db = await createTestDatabase()
    await db.sql`
      insert into organizations (id, name, tier, key_lookup, key_hash)
      values (${orgA}, 'Retention A', 'free', 'lookupA', 'x'), (${orgB}, 'Retention B', 'pro', 'lookupB', 'x')`
  })
  after(async () => { await db?.drop() })
  beforeEach(async () => {
    await db.sql`truncate events, dedup_keys`
  })

  test('purgeEvents deletes exactly the events older than the retention, in batches', async () => {
    const old = [...await insertEvents(db.sql, orgA, 2000, 91), ...await insertEvents(db.sql, orgB, 500, 365)]
    const recent = [
      ...await insertEvents(db.sql, orgA, 10, 1),
      ...await insertEvents(db.sql, orgB, 5, 89.9), // just inside the window
      ...await insertEvents(db.sql, orgA, 3, 0),
    ]
    assert.equal(await count(db.sql, 'events'), 2518)

    // One batch at most 1,000 rows.
    assert.equal(await purgeEvents(db.sql, 90, 1), 1000)
    assert.equal(await count(db.sql, 'events'), 1518)
    // The rest, in as many batches as needed.
    assert.equal(await purgeEvents(db.sql, 90), 1500)
    const left = await db.sql<{ id: string }[]>`select id::text from events order by id`
    assert.deepEqual(left.map(r => r.id), [...recent].sort())
    assert.ok(old.every(id => !recent.includes(id)))
    // Nothing more to do.
    assert.equal(await purgeEvents(db.sql, 90), 0)
    // A shorter retention reaches further.
    assert.equal(await purgeEvents(db.sql, 30), 5)
    assert.equal(await count(db.sql, 'events'), 13)
  })

  test('purgeDedupKeys deletes exactly the expired records, in batches', async () => {
    await insertDedup(db.sql, orgA, 1200, -3600, 'expired-a-')
    await insertDedup(db.sql, orgB, 300, -1, 'expired-b-')
    await insertDedup(db.sql, orgA, 7, 3600, 'live-a-')
    await insertDedup(db.sql, orgB, 4, 86_000, 'live-b-')
    assert.equal(await purgeDedupKeys(db.sql, 1), 1000)
    assert.equal(await purgeDedupKeys(db.sql), 500)
    const left = await db.sql<{ dedup_id: string }[]>`select dedup_id from dedup_keys order by dedup_id`
    assert.equal(left.length, 11)
    assert.ok(left.every(r => r.dedup_id.startsWith('live-')), 'only unexpired records remain')
    assert.equal(await purgeDedupKeys(db.sql), 0)
  })

  test('RetentionJob.runOnce purges both, logs one line with the counts, and runs one purge at a time', async () => {
    await insertEvents(db.sql, orgA, 1100, 100)
    const keep = await insertEvents(db.sql, orgA, 4, 2)
    await insertDedup(db.sql, orgA, 1001, -10, 'gone-')
    await insertDedup(db.sql, orgB, 2, 600, 'stays-')
    const { log, lines } = memoryLogger()
    const job = new RetentionJob(db.sql, log, 90)
    const first = job.runOnce()
    const second = job.runOnce()
    assert.equal(first, second, 'a purge already running is joined, not started twice')
    await first
    assert.equal(await count(db.sql, 'events'), 4)
    const left = await db.sql<{ id: string }[]>`select id::text from events order by id`
    assert.deepEqual(left.map(r => r.id), [...keep].sort())
    assert.equal(await count(db.sql, 'dedup_keys'), 2)
    const purged = lines.filter(l => l.msg === 'retention purge')
    assert.equal(purged.length, 1)
    assert.equal(purged[0]!.events, 1100)
    assert.equal(purged[0]!.dedup, 1001)

    // Nothing to purge: no line.
    await job.runOnce()
    assert.equal(lines.filter(l => l.msg === 'retention purge').length, 1)
    await job.stop()
  })

  test('RetentionJob survives a failing database: logs a warning, resolves, and can run again', async () => {
    await insertEvents(db.sql, orgA, 3, 120)
    const broken = createDb({ url: db.url, max: 1, applicationName: 'test-broken' })
    await broken.end()
    const { log, lines } = memoryLogger()
    const failing = new RetentionJob(broken, log, 90)
    await failing.runOnce() // must not reject
    const warn = lines.filter(l => l.msg === 'retention purge failed; retrying next interval')
    assert.equal(warn.length, 1)
    assert.equal(warn[0]!.level, 40)
    assert.equal(await count(db.sql, 'events'), 3, 'nothing was deleted')

    const working = new RetentionJob(db.sql, log, 90)
    await working.runOnce()
    assert.equal(await count(db.sql, 'events'), 0)
  })

  test('start() runs the purge on its interval; stop() ends it', async () => {
    await insertEvents(db.sql, orgB, 5, 95)
    const { log, lines } = memoryLogger()
    const job = new RetentionJob(db.sql, log, 90)
    job.start(20)
    await waitFor(() => lines.some(l => l.msg === 'retention purge'), 10_000, 'the interval purge')
    await job.stop()
    assert.equal(await count(db.sql, 'events'), 0)
  })
})
