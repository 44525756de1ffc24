/**
 * Upgrading a version-2 database (sql/0003_endpoints.sql, docs/api.md "Compatibility with the single webhook
 * URL"): a database built with only the old migrations, filled with SQL as the old service left it,
 * then migrated in full. Every configured webhook_url becomes the organization's default endpoint with
 * the same secret (and its running 24-hour overlap) and every event a delivery carrying its state; a
 * real delivery thread then sends to a real receiver, which sees no change: the same webhook-id, attempt
 * numbers continuing from the old ones, both secrets signing, verified with standardwebhooks.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Sql } from '../../src/db/client.ts'
import { migrate } from '../../src/db/migrate.ts'
import { upsertDefaultEndpoint } from '../../src/db/queries/endpoints.ts'
import { newSigningSecret } from '../../src/webhooks/signing.ts'
import { uuidv7 } from '../../src/lib/uuid.ts'
import { createTestDatabase, waitFor, type TestDatabase } from '../helpers/db.ts'
import { DeliveryThread, deliveryConfig, OK, Receiver, verify } from '../helpers/delivery.ts'

const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url))
const OLD_MIGRATIONS = ['0001_init.sql', '0002_retention.sql']

interface OldEvent { id: string, status: string, attempts: number, seriesAttempt: number, nextAttemptAt: Date | null, deliveredAt: Date | null, acknowledgedAt: Date | null }

let db: TestDatabase
const secret = newSigningSecret()
const previous = newSigningSecret()
const noUrlSecret = newSigningSecret()
let previousExpires: Date
const org = uuidv7()
const lonelyOrg = uuidv7()
let rx: Receiver
const ev: Record<string, OldEvent> = {}
let lonelyEvents: string[] = []

async function oldOrg (sql: Sql, id: string, url: string | null, s: { secret: string, previous: string | null, expires: Date | null }): Promise<void> {
  await sql`
    insert into organizations (id, name, tier, key_lookup, key_hash, webhook_url, webhook_updated_at, signing_secret,
                               previous_signing_secret, previous_secret_expires_at, created_at, updated_at)
    values (${id}, ${'old ' + id}, 'pro', ${'lookup_' + id}, 'not-a-hash', ${url}, ${url === null ? null : new Date(Date.now() - 3600_000)},
            ${s.secret}, ${s.previous}, ${s.expires}, now() - interval '2 days', now())`
}

async function oldEvent (sql: Sql, orgId: string, name: string, e: Omit<OldEvent, 'id'>, ageMs: number): Promise<string> {
  const id = uuidv7()
  const created = new Date(Date.now() - ageMs)
  await sql`
    insert into events (organization_id, id, type, payload, status, attempts, response_status, last_error, next_attempt_at,
                        series_attempt, created_at, updated_at, acknowledged_at, delivered_at)
    values (${orgId}, ${id}, ${'old.' + name}, (${JSON.stringify({ name, n: [1, 'é'] })}::text)::json, ${e.status}, ${e.attempts},
            ${e.attempts > 0 ? (e.status === 'delivered' ? 200 : 500) : null}, ${e.status === 'failed' || e.status === 'dead_letter' ? 'HTTP 500' : null},
            ${e.nextAttemptAt}, ${e.seriesAttempt}, ${created}, ${created}, ${e.acknowledgedAt}, ${e.deliveredAt})`
  ev[name] = { id, ...e }
  return id
}

before(async () => {
  db = await createTestDatabase(false)
  const dir = await mkdtemp(path.join(tmpdir(), 'triggers-old-sql-'))
  try {
    for (const f of OLD_MIGRATIONS) await copyFile(path.join(SQL_DIR, f), path.join(dir, f))
    assert.deepEqual(await migrate(db.sql, dir), [1, 2])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  rx = await Receiver.start(() => OK)
  previousExpires = new Date(Date.now() + 20 * 3600_000)
  await oldOrg(db.sql, org, rx.url('/old?k=v'), { secret, previous, expires: previousExpires })
  await oldOrg(db.sql, lonelyOrg, null, { secret: noUrlSecret, previous: null, expires: null })
  const past = new Date(Date.now() - 5000)
  await oldEvent(db.sql, org, 'pending', { status: 'pending', attempts: 0, seriesAttempt: 0, nextAttemptAt: past, deliveredAt: null, acknowledgedAt: null }, 60_000)
  await oldEvent(db.sql, org, 'failed', { status: 'failed', attempts: 2, seriesAttempt: 2, nextAttemptAt: past, deliveredAt: null, acknowledgedAt: null }, 50_000)
  await oldEvent(db.sql, org, 'later', { status: 'failed', attempts: 1, seriesAttempt: 1, nextAttemptAt: new Date(Date.now() + 3600_000), deliveredAt: null, acknowledgedAt: null }, 45_000)
  await oldEvent(db.sql, org, 'dead', { status: 'dead_letter', attempts: 6, seriesAttempt: 6, nextAttemptAt: null, deliveredAt: null, acknowledgedAt: null }, 40_000)
  await oldEvent(db.sql, org, 'delivered', { status: 'delivered', attempts: 1, seriesAttempt: 1, nextAttemptAt: null, deliveredAt: new Date(Date.now() - 30_000), acknowledgedAt: null }, 30_000)
  await oldEvent(db.sql, org, 'acked', { status: 'delivered', attempts: 1, seriesAttempt: 1, nextAttemptAt: null, deliveredAt: null, acknowledgedAt: new Date(Date.now() - 20_000) }, 20_000)
  lonelyEvents = [
    await oldEvent(db.sql, lonelyOrg, 'lonely1', { status: 'pending', attempts: 0, seriesAttempt: 0, nextAttemptAt: null, deliveredAt: null, acknowledgedAt: null }, 15_000),
    await oldEvent(db.sql, lonelyOrg, 'lonely2', { status: 'pending', attempts: 0, seriesAttempt: 0, nextAttemptAt: null, deliveredAt: null, acknowledgedAt: null }, 10_000),
  ]
  const applied = await migrate(db.sql)
  assert.ok(applied.includes(3) && !applied.includes(1) && !applied.includes(2), `applied ${applied.join(',')}`)
})

after(async () => {
  await rx?.close()
  await db?.drop()
})

describe('upgrade of a version-2 database', () => {
  test('the webhook URL is now the default endpoint, with the same secrets and overlap', async () => {
    const eps = await db.sql<{ organization_id: string, id: string, url: string, event_types: string[], status: string, is_default: boolean,
      signing_secret: string, previous_signing_secret: string | null, previous_secret_expires_at: Date | null }[]>`
      select organization_id, id, url, event_types, status, is_default, signing_secret, previous_signing_secret, previous_secret_expires_at
        from endpoints`
    assert.equal(eps.length, 1, 'one endpoint: only the organization with a URL has one')
    const ep = eps[0]!
    assert.equal(ep.organization_id, org)
    assert.equal(ep.url, rx.url('/old?k=v'))
    assert.deepEqual(ep.event_types, ['*'])
    assert.equal(ep.status, 'active')
    assert.equal(ep.is_default, true)
    assert.equal(ep.signing_secret, secret)
    assert.equal(ep.previous_signing_secret, previous)
    assert.equal(ep.previous_secret_expires_at?.getTime(), previousExpires.getTime())
    const orgs = await db.sql<{ id: string, signing_secret: string | null }[]>`select id, signing_secret from organizations order by id`
    assert.deepEqual(new Map(orgs.map(o => [o.id, o.signing_secret])), new Map([[org, null], [lonelyOrg, noUrlSecret]]),
      'the default endpoint holds the secret now; an organization without a URL keeps its own')
    const cols = await db.sql<{ table_name: string, column_name: string }[]>`
      select table_name, column_name from information_schema.columns
       where table_schema = 'public' and (table_name, column_name) in (('organizations', 'webhook_url'), ('events', 'next_attempt_at'), ('events', 'series_attempt'))`
    assert.equal(cols.length, 0, 'the old scheduling columns are gone')
  })

  test('every event of that organization has a delivery carrying its state', async () => {
    const [ep] = await db.sql<{ id: string }[]>`select id from endpoints where organization_id = ${org}`
    const ds = await db.sql<{ event_id: string, endpoint_id: string, status: string, attempts: number, series_attempt: number, trigger: string,
      next_attempt_at: Date | null, delivered_at: Date | null, response_status: number | null }[]>`
      select event_id, endpoint_id, status, attempts, series_attempt, trigger, next_attempt_at, delivered_at, response_status
        from deliveries where organization_id = ${org}`
    const by = new Map(ds.map(d => [d.event_id, d]))
    assert.equal(ds.length, 6)
    for (const d of ds) { assert.equal(d.endpoint_id, ep?.id); assert.equal(d.trigger, 'initial') }
    const row = (name: string) => by.get(ev[name]!.id)!
    assert.deepEqual([row('pending').status, row('pending').attempts, row('pending').series_attempt], ['pending', 0, 0])
    assert.ok(row('pending').next_attempt_at !== null)
    assert.deepEqual([row('failed').status, row('failed').attempts, row('failed').series_attempt], ['failed', 2, 2])
    assert.equal(row('failed').next_attempt_at?.getTime(), ev.failed!.nextAttemptAt!.getTime(), 'the retry keeps its schedule')
    assert.equal(row('failed').response_status, 500)
    assert.deepEqual([row('later').status, row('later').attempts], ['failed', 1])
    assert.equal(row('later').next_attempt_at?.getTime(), ev.later!.nextAttemptAt!.getTime())
    assert.deepEqual([row('dead').status, row('dead').attempts, row('dead').next_attempt_at], ['dead_letter', 6, null])
    assert.deepEqual([row('delivered').status, row('delivered').attempts, row('delivered').next_attempt_at], ['delivered', 1, null])
    assert.equal(row('delivered').delivered_at?.getTime(), ev.delivered!.deliveredAt!.getTime())
    assert.deepEqual([row('acked').status, row('acked').next_attempt_at], ['cancelled', null], 'an acknowledged event: its delivery was cancelled')
    const [none] = await db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where organization_id = ${lonelyOrg}`
    assert.equal(none?.n, 0)
    // The events' own summaries did not move.
    const events = await db.sql<{ id: string, status: string, attempts: number }[]>`select id, status, attempts from events`
    for (const e of events) {
      const old = Object.values(ev).find(o => o.id === e.id)!
      assert.deepEqual([e.status, e.attempts], [old.status, old.attempts])
    }
  })

  test('a real delivery thread: receivers see the same webhook-id, attempt numbers continue, both secrets sign', async () => {
    const thread = await DeliveryThread.start(db, deliveryConfig(db))
    try {
      await waitFor(() => rx.seen.length >= 2, 10_000, 'the two due deliveries')
      const delivered = await waitFor(async () => {
        const rows = await db.sql<{ event_id: string, status: string, attempts: number }[]>`
          select event_id, status, attempts from deliveries where event_id in (${ev.pending!.id}, ${ev.failed!.id}) and status = 'delivered'`
        return rows.length === 2 ? rows : null
      }, 10_000, 'both to be delivered')
      assert.deepEqual(new Map(delivered.map(d => [d.event_id, d.attempts])), new Map([[ev.pending!.id, 1], [ev.failed!.id, 3]]))
      // Nothing else is due now (the rest is finished, cancelled or scheduled an hour ahead), so
      // nothing else can be sent: every send starts from a due row.
      await waitFor(async () => {
        const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from deliveries where next_attempt_at <= now() or leased_until is not null`
        return r?.n === 0
      }, 10_000, 'no due or leased delivery left')
      assert.equal(rx.seen.length, 2, 'dead_letter, delivered, acknowledged and later-scheduled events were not sent')
      const [evs] = [await db.sql<{ id: string, created_at: Date, type: string }[]>`select id, created_at, type from events`]
      const created = new Map(evs.map(e => [e.id, e]))
      const attemptOf = new Map([[ev.pending!.id, '1'], [ev.failed!.id, '3']])
      for (const s of rx.seen) {
        const id = String(s.headers['webhook-id'])
        assert.ok(attemptOf.has(id), `sent ${id}`)
        assert.equal(s.path, '/old?k=v')
        assert.equal(s.headers['x-event-id'], id)
        assert.equal(s.headers['x-delivery-attempt'], attemptOf.get(id))
        const e = created.get(id)!
        const body = { id, type: e.type, data: { name: e.type.slice(4), n: [1, 'é'] }, timestamp: e.created_at.toISOString() }
        assert.equal(String(s.headers['webhook-signature']).split(' ').length, 2, 'both secrets sign during the overlap')
        assert.deepEqual(verify(secret, s), body)
        assert.deepEqual(verify(previous, s), body)
      }
      const status = await db.sql<{ id: string, status: string, attempts: number }[]>`select id, status, attempts from events where id in (${ev.pending!.id}, ${ev.failed!.id})`
      for (const e of status) assert.equal(e.status, 'delivered')
      // The organization without a URL: its events stay pending, with no delivery.
      const lonely = await db.sql<{ status: string, n: number }[]>`
        select e.status, (select count(*) from deliveries d where d.event_id = e.id)::int as n from events e where e.organization_id = ${lonelyOrg}`
      assert.deepEqual(lonely.map(r => [r.status, r.n]), [['pending', 0], ['pending', 0]])

      // Configuring its first URL after the upgrade: the default endpoint takes over its secret and its
      // pending events become deliverable.
      const rx2 = await Receiver.start(() => OK)
      try {
        const made = await upsertDefaultEndpoint(db.sql, lonelyOrg, rx2.url(), uuidv7(), newSigningSecret())
        assert.equal(made?.signing_secret, noUrlSecret)
        thread.wake()
        await waitFor(() => rx2.seen.length === 2, 10_000, 'the parked events to be delivered')
        assert.deepEqual(new Set(rx2.seen.map(s => s.headers['webhook-id'])), new Set(lonelyEvents))
        for (const s of rx2.seen) {
          assert.equal(s.headers['x-delivery-attempt'], '1')
          assert.doesNotThrow(() => verify(noUrlSecret, s))
        }
      } finally {
        await rx2.close()
      }
    } finally {
      await thread.stop()
    }
  })
})
