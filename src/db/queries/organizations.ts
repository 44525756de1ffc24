/**
 * Organization reads and writes: create (key generation), find by key lookup part or id, rotate the
 * key, configure the webhook URL, rotate the signing secret. Parameterized tagged templates only.
 */
import type { Sql } from '../client.ts'
import type { Tier } from '../../auth/tiers.ts'

export interface OrganizationRow {
  id: string
  org_no: number
  name: string
  tier: Tier
  webhook_url: string | null
  created_at: Date
  updated_at: Date
}

export interface KeyRow {
  id: string
  org_no: number
  tier: Tier
  key_hash: string
}

export async function insertOrganization (sql: Sql, o: { id: string, name: string, tier: Tier, keyLookup: string, keyHash: string }): Promise<OrganizationRow> {
  const [row] = await sql<OrganizationRow[]>`
    insert into organizations (id, name, tier, key_lookup, key_hash)
    values (${o.id}, ${o.name}, ${o.tier}, ${o.keyLookup}, ${o.keyHash})
    returning id, org_no, name, tier, webhook_url, created_at, updated_at`
  if (row === undefined) throw new Error('insert returned no row')
  return row
}

export async function findByKeyLookup (sql: Sql, lookup: string): Promise<KeyRow | null> {
  const [row] = await sql<KeyRow[]>`
    select id, org_no, tier, key_hash from organizations where key_lookup = ${lookup}`
  return row ?? null
}

export async function findOrganization (sql: Sql, id: string): Promise<OrganizationRow | null> {
  const [row] = await sql<OrganizationRow[]>`
    select id, org_no, name, tier, webhook_url, created_at, updated_at from organizations where id = ${id}`
  return row ?? null
}

export async function rotateKey (sql: Sql, id: string, keyLookup: string, keyHash: string): Promise<Date | null> {
  const [row] = await sql<{ key_rotated_at: Date }[]>`
    update organizations
       set key_lookup = ${keyLookup}, key_hash = ${keyHash}, key_rotated_at = clock_timestamp(), updated_at = clock_timestamp()
     where id = ${id}
    returning key_rotated_at`
  return row?.key_rotated_at ?? null
}

/** Organizations whose key was rotated after `since` (polled by every node to evict caches). */
export async function findRotatedSince (sql: Sql, since: Date): Promise<{ id: string, key_rotated_at: Date }[]> {
  return await sql<{ id: string, key_rotated_at: Date }[]>`
    select id, key_rotated_at from organizations where key_rotated_at > ${since} order by key_rotated_at`
}

/** Sets the webhook URL; creates the signing secret on first configuration and keeps it after. */
export async function setWebhook (sql: Sql, id: string, url: string, newSecret: string): Promise<{ webhook_url: string, signing_secret: string } | null> {
  const [row] = await sql<{ webhook_url: string, signing_secret: string }[]>`
    update organizations
       set webhook_url = ${url}, webhook_updated_at = now(), updated_at = now(),
           signing_secret = coalesce(signing_secret, ${newSecret})
     where id = ${id}
    returning webhook_url, signing_secret`
  return row ?? null
}

/** New signing secret; the old one keeps signing for `graceSeconds` (both appear in webhook-signature). */
export async function rotateSigningSecret (sql: Sql, id: string, newSecret: string, graceSeconds: number): Promise<{ signing_secret: string, previous_secret_expires_at: Date | null } | null> {
  const [row] = await sql<{ signing_secret: string, previous_secret_expires_at: Date | null }[]>`
    update organizations
       set previous_signing_secret = signing_secret,
           previous_secret_expires_at = case when signing_secret is null then null
                                             else now() + make_interval(secs => ${graceSeconds}) end,
           signing_secret = ${newSecret},
           updated_at = now()
     where id = ${id}
    returning signing_secret, previous_secret_expires_at`
  return row ?? null
}
