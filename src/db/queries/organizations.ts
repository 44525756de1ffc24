/**
 * Organization reads and writes: create (key generation), find by key lookup part or id, rotate the
 * key (the webhook URL and secrets live with endpoints: endpoints.ts). Parameterized tagged templates only.
 */
import type { Sql } from '../client.ts'
import type { Tier } from '../../auth/tiers.ts'

export interface OrganizationRow {
  id: string
  org_no: number
  name: string
  tier: Tier
  /** The default endpoint's URL (the contract, docs/api.md "Compatibility with the single webhook URL"). */
  webhook_url: string | null
  endpoints_count: number
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
    returning id, org_no, name, tier, null::text as webhook_url, 0 as endpoints_count, created_at, updated_at`
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
    select o.id, o.org_no, o.name, o.tier,
           (select url from endpoints where organization_id = o.id and is_default) as webhook_url,
           (select count(*) from endpoints where organization_id = o.id)::int as endpoints_count,
           o.created_at, o.updated_at
      from organizations o where o.id = ${id}`
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
