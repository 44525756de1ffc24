/**
 * Organization changes between nodes, by PostgreSQL LISTEN/NOTIFY on one channel,
 * `triggers_org_changes`, whose payload is the organization id. Every node's primary listens
 * (primary/org-change-watch.ts) and, on a notification, drops that organization's keys from its
 * listeners' caches (and its other per-organization caches), so a change made on one node reaches
 * every node within a second.
 *
 * Who notifies: whoever commits a change to what a node may cache about an organization — its key
 * (rotation), its tier, its endpoints. Call `notifyOrganizationChanged(sql, organizationId)`, best
 * inside the transaction that makes the change (PostgreSQL delivers a NOTIFY only when, and only if,
 * that transaction commits), or right after it commits. A change made through a listener's
 * `evictEverywhere` (http/services.ts) is notified by the primary as part of the eviction handshake
 * (primary/eviction-handshake.ts), so a route that already calls it needs nothing more. Notifying
 * twice is harmless: it only evicts twice.
 *
 * The heartbeat helpers let a primary prove its LISTEN connection still delivers: it notifies a
 * channel of its own and expects to hear it back.
 */
import type { Sql, TransactionSql } from '../client.ts'

export const ORG_CHANGES_CHANNEL = 'triggers_org_changes'

/** NOTIFY every node that `organizationId` changed (delivered on commit when `sql` is a transaction). */
export async function notifyOrganizationChanged (sql: Sql | TransactionSql, organizationId: string): Promise<void> {
  await notify(sql, ORG_CHANGES_CHANNEL, organizationId)
}

async function notify (sql: Sql | TransactionSql, channel: string, payload: string): Promise<void> {
  await sql`select pg_notify(${channel}, ${payload})`
}

export interface Listening { unlisten (): Promise<void> }

/**
 * LISTEN on `channel` on the client's dedicated listen connection. postgres.js re-issues the LISTEN
 * whenever that connection closes and calls `onListen` after each success (the first included); the
 * returned promise may reject (the database unreachable at first) while the retries go on.
 */
export async function listenChannel (sql: Sql, channel: string, onNotify: (payload: string) => void, onListen: () => void): Promise<Listening> {
  return await sql.listen(channel, onNotify, onListen)
}

export async function sendHeartbeat (sql: Sql, channel: string, payload: string): Promise<void> {
  await notify(sql, channel, payload)
}
