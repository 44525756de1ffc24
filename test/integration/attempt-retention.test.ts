/**
 * Retention of the attempt log and of deliveries (primary/retention.ts, db/queries/attempt-partitions.ts)
 * against a real PostgreSQL and the real service: excerpts and headers read as expired past
 * ATTEMPT_BODY_RETENTION_DAYS whether or not the retention pass has cleared them yet, the pass clears
 * them in the database, drops whole daily partitions past ATTEMPT_RETENTION_DAYS, makes partitions
 * ahead, gives up (and comes back) when the log's lock is held instead of stalling its writers, and the
 * events purge takes the events' deliveries with them. Rows are aged by moving started_at / created_at
 * back with SQL; nothing waits on the clock.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestService, type TestService } from '../helpers/server.ts'
import { waitFor } from '../helpers/db.ts'
import { Receiver } from '../helpers/delivery.ts'
import { memoryLogger } from '../helpers/memory-log.ts'
import { maintainAttemptLog, purgeEventsAndDeliveries, RetentionJob } from '../../src/primary/retention.ts'
import { uuidv7, uuidv7At } from '../../src/lib/uuid.ts'
import type { Sql } from '../../src/db/client.ts'

const DAY = 86_400_000
const POLICY = { retentionDays: 30, bodyRetentionDays: 7 }

type Attempt = Record<string, any>

/** How many UTC days before today `ms` falls. */
function daysBefore (ms: number): number {
  const day = (t: number): number => Math.floor(t / DAY)
  return day(Date.now()) - day(ms)
}

/** The daily partition `daysAgo` days before today (UTC), created if missing; returns its name. */
async function partition (sql: Sql, daysAgo: number): Promise<string> {
  const today = new Date()
  today.setUTCHours(0, 0, 0, 0)
  const from = new Date(today.getTime() - daysAgo * DAY)
  const to = new Date(from.getTime() + DAY)
  const name = 'delivery_attempts_p' + from.toISOString().slice(0, 10).replaceAll('-', '')
  await sql.unsafe(`create table if not exists ${name} partition of delivery_attempts for values from ('${from.toISOString()}') to ('${to.toISOString()}')`)
  return name
}

async function exists (sql: Sql, name: string): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`select to_regclass(${name}) is not null as ok`
  return row?.ok === true
}

/** One attempt row made with SQL, started at `at`. */
async function insertAttempt (sql: Sql, org: string, at: Date): Promise<string> {
  const id = uuidv7At(at.getTime())
  await sql`
    insert into delivery_attempts (organization_id, id, event_id, endpoint_id, attempt_number, trigger, url, event_type, started_at,
                                   duration_ms, outcome, response_status, response_headers, response_body)
    values (${org}, ${id}, ${uuidv7()}, ${uuidv7()}, 1, 'initial', 'http://example.com/', 'retention.test', ${at}, 5, 'success', 200,
            '{"content-type":"text/plain"}'::jsonb, 'ok')`
  return id
}

describe('attempt log and delivery retention', () => {
  let s: TestService
  let receiver: Receiver
  let key: string
  let orgId: string

  before(async () => {
    s = await startTestService({ THREADS: '1', DELIVERY_ENABLED: 'true', DELIVERY_RETRY_DELAYS_MS: '20,40', DELIVERY_TIMEOUT_MS: '2000' })
    await s.db.sql`select 1` // postgres.js learns array types on its first connection
    receiver = await Receiver.start(() => ({ status: 500, headers: { 'retry-after': '0' }, body: '{"error":"still down"}' }))
    const org = await s.createOrg('enterprise', 'Retention Org')
    key = org.key
    orgId = org.id
  })
  after(async () => {
    await receiver?.close()
    await s?.stop()
  })

  test('excerpts and headers expire at read time, then the pass clears them without changing what the API shows', async () => {
    const ep = await s.api('POST', '/api/endpoints', { key, body: { url: receiver.url() } })
    assert.equal(ep.status, 201, ep.text)
    const ev = await s.api('POST', '/api/events', { key, body: { type: 'expiry.test', payload: {} } })
    assert.equal(ev.status, 201, ev.text)
    const eventId: string = ev.json.id
    await waitFor(async () => {
      const [d] = await s.db.sql<{ status: string }[]>`select status from deliveries where event_id = ${eventId}`
      return d?.status === 'dead_letter'
    }, 20_000, 'the delivery to dead-letter')
    const fresh = (await s.api('GET', `/api/events/${eventId}/attempts`, { key })).json.attempts as Attempt[]
    assert.equal(fresh.length, 3)
    for (const a of fresh) {
      assert.equal(a.response_body, '{"error":"still down"}')
      assert.equal(a.response_headers['retry-after'], '0')
      assert.equal(a.response_body_expired, false)
    }

    // Age the event by 9 days, its first attempt by 8 and the second by 6 (ids keep their started_at, as
    // the write path makes them).
    await s.db.sql`update events set created_at = created_at - interval '9 days' where id = ${eventId}`
    await s.db.sql`update deliveries set created_at = created_at - interval '9 days' where event_id = ${eventId}`
    const aged: Array<{ id: string, days: number }> = [{ id: fresh[0]!.id, days: 8 }, { id: fresh[1]!.id, days: 6 }]
    const newIds: string[] = []
    for (const a of aged) {
      const startedAt = Date.parse(fresh.find(f => f.id === a.id)!.started_at) - a.days * DAY
      await partition(s.db.sql, daysBefore(startedAt))
      const id = uuidv7At(startedAt)
      await s.db.sql`update delivery_attempts set started_at = ${new Date(startedAt)}, id = ${id} where organization_id = ${orgId} and id = ${a.id}`
      newIds.push(id)
    }
    const [old8, old6] = newIds as [string, string]
    const read = async (): Promise<Attempt[]> => (await s.api('GET', `/api/events/${eventId}/attempts`, { key })).json.attempts
    const expiredView = await read()
    assert.deepEqual(expiredView.map(a => a.id), [old8, old6, fresh[2]!.id], 'still oldest first')
    const [e8, e6, e0] = expiredView as [Attempt, Attempt, Attempt]
    assert.deepEqual([e8.response_body, e8.response_headers, e8.response_body_expired], [null, null, true])
    assert.equal(e8.response_status, 500, 'the rest of the attempt stays')
    assert.equal(e8.outcome, 'http_error')
    assert.deepEqual([e6.response_body, e6.response_body_expired], ['{"error":"still down"}', false])
    assert.equal(e0.response_body_expired, false)
    // Not cleared yet: the database still holds the excerpt; the API already hides it.
    const [raw8] = await s.db.sql<{ response_body: string | null }[]>`select response_body from delivery_attempts where id = ${old8}`
    assert.equal(raw8?.response_body, '{"error":"still down"}')
    const byId = await s.api('GET', `/api/attempts/${old8}`, { key })
    assert.equal(byId.status, 200, byId.text)
    assert.deepEqual(byId.json, e8)

    const pass = await maintainAttemptLog(s.db.sql, POLICY)
    assert.ok(pass.cleared >= 1, 'the 8-day-old excerpt was cleared')
    const rawRows = await s.db.sql<{ id: string, response_body: string | null, response_headers: unknown }[]>`
      select id, response_body, response_headers from delivery_attempts where event_id = ${eventId}`
    const raw = new Map(rawRows.map(r => [r.id, r]))
    assert.deepEqual([raw.get(old8)?.response_body, raw.get(old8)?.response_headers], [null, null])
    assert.equal(raw.get(old6)?.response_body, '{"error":"still down"}')
    assert.equal(raw.get(fresh[2]!.id)?.response_body, '{"error":"still down"}')
    assert.deepEqual(await read(), expiredView, 'cleared rows read exactly as expired ones did')
    const name = await partition(s.db.sql, daysBefore(Date.parse(e8.started_at)))
    const [done] = await s.db.sql<{ n: number }[]>`select count(*)::int as n from attempt_partitions_cleared where name = ${name}`
    assert.equal(done?.n, 1, 'the partition is remembered as cleared')
    assert.equal((await maintainAttemptLog(s.db.sql, POLICY)).cleared, 0, 'nothing left to clear')
  })

  test('the pass drops whole partitions past ATTEMPT_RETENTION_DAYS, keeps younger ones, and makes a week ahead', async () => {
    const gone45 = await partition(s.db.sql, 45)
    const gone31 = await partition(s.db.sql, 31)
    const kept29 = await partition(s.db.sql, 29)
    await insertAttempt(s.db.sql, orgId, new Date(Date.now() - 45 * DAY))
    await insertAttempt(s.db.sql, orgId, new Date(Date.now() - 31 * DAY))
    const young = await insertAttempt(s.db.sql, orgId, new Date(Date.now() - 29 * DAY))
    const ahead = await partition(s.db.sql, -7)
    await s.db.sql.unsafe(`drop table ${ahead}`)

    const { log, lines } = memoryLogger()
    const job = new RetentionJob(s.db.sql, log, 90, POLICY)
    await job.runOnce()
    assert.deepEqual([await exists(s.db.sql, gone45), await exists(s.db.sql, gone31), await exists(s.db.sql, kept29)], [false, false, true])
    assert.equal(await exists(s.db.sql, ahead), true, 'the partition a week ahead is back')
    const line = lines.find(l => l.msg === 'attempt log retention')
    assert.ok(line !== undefined, JSON.stringify(lines))
    assert.ok((line.dropped as string[]).includes(gone45) && (line.dropped as string[]).includes(gone31))
    assert.ok((line.created as number) >= 1)
    const [row] = await s.db.sql<{ response_body: string | null }[]>`select response_body from delivery_attempts where id = ${young}`
    assert.equal(row?.response_body, null, 'a 29-day-old excerpt is cleared, its row kept')
    await job.stop()
  })

  test('a held lock on the log: the drop gives up within its lock timeout, writers go on, the next pass drops it', async () => {
    const busy = await partition(s.db.sql, 40)
    const holder = await s.db.sql.reserve()
    try {
      await holder`begin`
      await holder`select count(*) from delivery_attempts` // ACCESS SHARE on the parent until commit
      let passDone = false
      const pass = maintainAttemptLog(s.db.sql, POLICY).finally(() => { passDone = true })
      // Writers keep writing while the drop waits for its lock (each waits at most the lock timeout).
      let written = 0
      while (!passDone) {
        await insertAttempt(s.db.sql, orgId, new Date())
        written++
      }
      const r = await pass
      assert.ok(written >= 1)
      assert.ok(r.busy.includes(busy), JSON.stringify(r))
      assert.ok(!r.dropped.includes(busy))
      assert.equal(await exists(s.db.sql, busy), true)
    } finally {
      await holder`commit`
      holder.release()
    }
    const again = await maintainAttemptLog(s.db.sql, POLICY)
    assert.ok(again.dropped.includes(busy), JSON.stringify(again))
    assert.equal(await exists(s.db.sql, busy), false)
  })

  test('the events purge takes their deliveries too, with one cutoff, and old orphaned deliveries', async () => {
    const sql = s.db.sql
    const [ep] = await sql<{ id: string }[]>`select id from endpoints where organization_id = ${orgId} limit 1`
    assert.ok(ep !== undefined)
    const mk = async (daysAgo: number): Promise<string> => {
      const id = uuidv7()
      const at = new Date(Date.now() - daysAgo * DAY)
      await sql`insert into events (organization_id, id, type, payload, status, created_at, updated_at)
                values (${orgId}, ${id}, 'purge.test', '{}'::json, 'dead_letter', ${at}, ${at})`
      await sql`insert into deliveries (organization_id, event_id, endpoint_id, status, created_at, updated_at)
                values (${orgId}, ${id}, ${ep.id}, 'dead_letter', ${at}, ${at})`
      return id
    }
    const old = [await mk(91), await mk(120)]
    const recent = [await mk(89), await mk(1)]
    // A delivery whose event an earlier purge already removed.
    const orphan = uuidv7()
    await sql`insert into deliveries (organization_id, event_id, endpoint_id, status, created_at, updated_at)
              values (${orgId}, ${orphan}, ${ep.id}, 'dead_letter', now() - interval '100 days', now())`
    const r = await purgeEventsAndDeliveries(sql, 90)
    assert.deepEqual(r, { events: 2, deliveries: 3 })
    const ids = [...old, ...recent, orphan]
    const evs = await sql<{ id: string }[]>`select id from events where id = any(${sql.array(ids)}::uuid[])`
    const dels = await sql<{ event_id: string }[]>`select event_id from deliveries where event_id = any(${sql.array(ids)}::uuid[])`
    assert.deepEqual(evs.map(e => e.id).sort(), [...recent].sort())
    assert.deepEqual(dels.map(d => d.event_id).sort(), [...recent].sort())
    assert.deepEqual(await purgeEventsAndDeliveries(sql, 90), { events: 0, deliveries: 0 })
  })
})
