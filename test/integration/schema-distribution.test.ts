/**
 * The schema stays distributable by organization (docs/scaling.md): read from the live catalog of a
 * migrated database (pg_catalog), every table's primary key and every unique constraint or unique
 * index leads with organization_id, every table has that column, and no foreign key joins rows of
 * two organizations. On Citus that is what lets each table be hash-distributed on organization_id
 * and co-located, so that one organization's statements stay on one shard group. The few tables that
 * are not per organization are listed below, each with its reason; a new table must either follow
 * the rule or be added here with one.
 *
 * The checker itself is tested on a scratch schema with one of each kind of violation.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { createTestDatabase } from '../helpers/db.ts'
import type { Sql } from '../../src/db/client.ts'

const KEY = 'organization_id'

/** Tables that are deliberately not keyed by organization, and why (docs/scaling.md, "Citus"). */
const EXCEPTIONS: Readonly<Record<string, string>> = {
  schema_migrations: 'migration bookkeeping (one row per applied file, written only by `migrate`): stays a local table on the coordinator',
  organizations: 'the organizations themselves, keyed by id (= organization_id elsewhere); a reference table, so key_lookup (authentication finds the organization from the key) and org_no stay unique across the cluster',
  ip_rate_windows: 'the per-client-address limit of POST /api/keys/generate, where there is no organization yet: distributed by ip_key on its own (or a reference table)',
  attempt_partitions_cleared: 'maintenance bookkeeping, one row per attempt-log partition: a reference table',
}

interface Table { name: string, partition_of: string | null, has_key: boolean }
interface UniqueIndex { table: string, name: string, primary: boolean, first: string | null, def: string }
interface ForeignKey { table: string, name: string, references: string, cols: string[], refcols: string[] }

async function tables (sql: Sql, schema: string): Promise<Table[]> {
  return await sql<Table[]>`
    select c.relname as name,
           (select p.relname from pg_inherits h join pg_class p on p.oid = h.inhparent where h.inhrelid = c.oid) as partition_of,
           exists (select 1 from pg_attribute a
                    where a.attrelid = c.oid and a.attname = ${KEY} and not a.attisdropped
                      and a.attnotnull and a.atttypid = 'uuid'::regtype) as has_key
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = ${schema} and c.relkind in ('r', 'p')
     order by c.relname`
}

async function uniqueIndexes (sql: Sql, schema: string): Promise<UniqueIndex[]> {
  return await sql<UniqueIndex[]>`
    select t.relname as table, ic.relname as name, i.indisprimary as primary,
           (select a.attname from pg_attribute a where a.attrelid = i.indrelid and a.attnum = i.indkey[0]) as first,
           pg_get_indexdef(i.indexrelid) as def
      from pg_index i
      join pg_class t on t.oid = i.indrelid
      join pg_class ic on ic.oid = i.indexrelid
      join pg_namespace n on n.oid = t.relnamespace
     where n.nspname = ${schema} and i.indisunique
     order by t.relname, ic.relname`
}

async function foreignKeys (sql: Sql, schema: string): Promise<ForeignKey[]> {
  return await sql<ForeignKey[]>`
    select t.relname as table, c.conname as name, r.relname as references,
           array(select a.attname::text from unnest(c.conkey) with ordinality k(n, o)
                   join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.o) as cols,
           array(select a.attname::text from unnest(c.confkey) with ordinality k(n, o)
                   join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by k.o) as refcols
      from pg_constraint c
      join pg_class t on t.oid = c.conrelid
      join pg_class r on r.oid = c.confrelid
      join pg_namespace n on n.oid = t.relnamespace
     where n.nspname = ${schema} and c.contype = 'f'
     order by t.relname, c.conname`
}

/**
 * A foreign key stays inside one organization when its organization_id column is matched to the
 * referenced row's organization_id — or to organizations.id, the organization itself.
 */
function staysInOrganization (fk: ForeignKey): boolean {
  const i = fk.cols.indexOf(KEY)
  if (i < 0) return false
  const target = fk.refcols[i]
  return target === KEY || (fk.references === 'organizations' && target === 'id')
}

/** Every violation of the rule in `schema`, one line each; tables in `exceptions` are skipped. */
async function violations (sql: Sql, schema: string, exceptions: Readonly<Record<string, string>>): Promise<string[]> {
  const out: string[] = []
  const all = await tables(sql, schema)
  // A partition follows its parent: it is excepted with it, and its keys mirror the parent's.
  const excepted = (t: string): boolean => {
    const table = all.find(x => x.name === t)
    return t in exceptions || (table?.partition_of != null && table.partition_of in exceptions)
  }
  const indexes = await uniqueIndexes(sql, schema)
  for (const t of all) {
    if (excepted(t.name)) continue
    if (!t.has_key) out.push(`${t.name}: no ${KEY} uuid NOT NULL column`)
    if (!indexes.some(i => i.table === t.name && i.primary)) out.push(`${t.name}: no primary key`)
  }
  for (const i of indexes) {
    if (excepted(i.table) || i.first === KEY) continue
    out.push(`${i.table}: ${i.primary ? 'primary key' : 'unique index'} ${i.name} does not lead with ${KEY}: ${i.def}`)
  }
  for (const fk of await foreignKeys(sql, schema)) {
    if (!staysInOrganization(fk)) out.push(`${fk.table}: foreign key ${fk.name} (${fk.cols.join(', ')}) → ${fk.references} (${fk.refcols.join(', ')}) crosses organizations`)
  }
  return out
}

const db = await createTestDatabase()
after(async () => { await db.drop() })

test('every per-organization table is keyed by organization_id, and no foreign key crosses organizations', async t => {
  const found = await violations(db.sql, 'public', EXCEPTIONS)
  assert.deepEqual(found, [])
  const names = new Set((await tables(db.sql, 'public')).map(x => x.name))
  // The exceptions stay honest: each names a table that exists.
  for (const name of Object.keys(EXCEPTIONS)) assert.ok(names.has(name), `exception for ${name}, which is not in the schema`)
  const keyed = [...names].filter(n => !(n in EXCEPTIONS) && !/_p\d{8}$/.test(n))
  t.diagnostic(`keyed by ${KEY}: ${keyed.join(', ')}; exceptions: ${Object.keys(EXCEPTIONS).join(', ')}`)
  for (const must of ['events', 'deliveries', 'endpoints', 'dedup_keys', 'delivery_attempts', 'org_rate_windows']) {
    assert.ok(keyed.includes(must), `${must} is keyed by ${KEY}`)
  }
})

test('the checker finds each kind of violation (a scratch schema)', async t => {
  await db.sql.unsafe('create schema dist_check')
  t.after(async () => { await db.sql.unsafe('drop schema dist_check cascade') })
  await db.sql.unsafe(`
    create table dist_check.organizations (id uuid primary key, name text unique);
    create table dist_check.good (organization_id uuid not null, id uuid not null, primary key (organization_id, id));
    create table dist_check.bad_pk (organization_id uuid not null, id uuid not null, primary key (id, organization_id));
    create table dist_check.bad_unique (organization_id uuid not null, id uuid not null, code text,
                                        primary key (organization_id, id), unique (code, organization_id));
    create table dist_check.no_key (id uuid primary key);
    create table dist_check.no_pk (organization_id uuid not null, id uuid);
    create table dist_check.refs (organization_id uuid not null, id uuid not null, good_id uuid, other_org uuid,
                                  primary key (organization_id, id),
                                  foreign key (organization_id) references dist_check.organizations (id),
                                  foreign key (organization_id, good_id) references dist_check.good (organization_id, id),
                                  foreign key (other_org, good_id) references dist_check.good (organization_id, id),
                                  foreign key (good_id) references dist_check.no_key (id));
    create unique index bad_expression on dist_check.good ((lower(id::text)));`)
  const found = await violations(db.sql, 'dist_check', { organizations: 'the organizations themselves' })
  for (const line of found) t.diagnostic(line)
  assert.equal(found.length, 8, found.join('\n'))
  assert.ok(found.some(l => l.startsWith('bad_pk: primary key bad_pk_pkey does not lead')))
  assert.ok(found.some(l => l.startsWith('bad_unique: unique index') && l.includes('does not lead')))
  assert.ok(found.some(l => l.startsWith('good: unique index bad_expression does not lead')))
  assert.ok(found.includes('no_key: no organization_id uuid NOT NULL column'))
  assert.ok(found.some(l => l.startsWith('no_key: primary key no_key_pkey does not lead')))
  assert.ok(found.includes('no_pk: no primary key'))
  assert.ok(found.some(l => l.startsWith('refs: foreign key') && l.includes('(other_org, good_id)') && l.endsWith('crosses organizations')))
  assert.ok(found.some(l => l.startsWith('refs: foreign key') && l.includes('(good_id) → no_key (id)')))
})
