/**
 * The ingest writer's batch insert: one statement (so one implicit transaction) for the events, their
 * dedup records and their fan-out deliveries, plus one read for the ids of duplicates when there are any. See bench/micro/README.md for
 * the measurement that chose a multi-row `unnest` insert over COPY: COPY cannot express the dedup
 * claim (`on conflict ... where expired`) in the same statement, and at the batch sizes the writer
 * reaches the unnest statement costs about the same.
 *
 * Dedup is atomic in PostgreSQL: the (organization_id, dedup_id) primary key of dedup_keys decides
 * between concurrent batches; an expired record is taken over in place. Duplicates inside one batch
 * never reach SQL (the batcher resolves them first: `on conflict` cannot touch a row twice).
 *
 * Each event's traceparent (docs/tracing.md) is a sixth `unnest` array only while tracing is on; with
 * tracing off the input is the five arrays and a constant NULL column, so a node has one statement
 * text for its whole run and sends nothing more when off (bench/micro/tracing-off.bench.ts).
 */
import type { Sql } from '../client.ts'

export interface EventBatch {
  readonly organizationIds: string[]
  readonly ids: string[]
  readonly types: string[]
  readonly payloads: string[]
  /** null where the event has no dedup_id. */
  readonly dedupIds: (string | null)[]
  /** The ingest span's traceparent of each event (null where there is none), or null when tracing is off. */
  readonly traceparents: (string | null)[] | null
}

export interface BatchResult {
  /** Ids of the events stored. */
  readonly inserted: Set<string>
  /** Whether any stored event got a delivery that is due now (an active endpoint matched it). */
  readonly anyDue: boolean
  /** organization_id + '\n' + dedup_id → the original event's id, for requests that were duplicates. */
  readonly duplicates: Map<string, string>
}

export function dedupKey (organizationId: string, dedupId: string): string {
  return organizationId + '\n' + dedupId
}

export async function insertEvents (sql: Sql, b: EventBatch, createdAt: Date, dedupWindowSeconds: number): Promise<BatchResult> {
  const expiresAt = new Date(createdAt.getTime() + dedupWindowSeconds * 1000)
  // One statement is one implicit transaction: atomic and durable when it returns (synchronous_commit
  // stays on), without the BEGIN and COMMIT round trips of an explicit transaction.
  // The payloads travel as one JSON array of their raw texts: a join, where a text[] parameter would
  // escape every quote of every payload on the way out and unescape it again in PostgreSQL. Its
  // elements line up with the arrays' (ROWS FROM zips them); `json` keeps each payload's text as is.
  // Sent as text: a json parameter would go through the driver's JSON.stringify.
  const payloads = '[' + b.payloads.join(',') + ']'
  const input = b.traceparents === null
    ? sql`select *, null::text as traceparent
            from rows from (unnest(${b.organizationIds}::uuid[]), unnest(${b.ids}::uuid[]), unnest(${b.types}::text[]),
                            json_array_elements(${payloads}::text::json), unnest(${b.dedupIds}::text[]))
              as t(organization_id, id, type, payload, dedup_id)`
    : sql`select *
            from rows from (unnest(${b.organizationIds}::uuid[]), unnest(${b.ids}::uuid[]), unnest(${b.types}::text[]),
                            json_array_elements(${payloads}::text::json), unnest(${b.dedupIds}::text[]), unnest(${b.traceparents}::text[]))
              as t(organization_id, id, type, payload, dedup_id, traceparent)`
  const rows = await sql<{ id: string, due: boolean }[]>`
    with input as (${input}), claimed as (
      insert into dedup_keys (organization_id, dedup_id, event_id, expires_at)
      select organization_id, dedup_id, id, ${expiresAt}::timestamptz from input where dedup_id is not null
      on conflict (organization_id, dedup_id) do update
        set event_id = excluded.event_id, expires_at = excluded.expires_at
        where dedup_keys.expires_at <= ${createdAt}::timestamptz
      returning event_id
    ), stored as (
      insert into events (organization_id, id, type, payload, dedup_id, status, created_at, updated_at, traceparent)
      select i.organization_id, i.id, i.type, i.payload, i.dedup_id, 'pending',
             ${createdAt}::timestamptz, ${createdAt}::timestamptz, i.traceparent
        from input i
       where i.dedup_id is null or i.id in (select event_id from claimed)
      returning organization_id, id, type
    ), fanned as (
      -- Fan-out (the contract, docs/api.md "Fan-out rules" 1-2): one delivery per matching active or paused endpoint,
      -- due now, or held (NULL) while the endpoint is paused. Read in this statement's snapshot, so an
      -- endpoint change applies to every event stored after it committed, on every node.
      insert into deliveries (organization_id, event_id, endpoint_id, next_attempt_at, created_at, updated_at)
      select s.organization_id, s.id, ep.id, case when ep.status = 'active' then ${createdAt}::timestamptz end,
             ${createdAt}::timestamptz, ${createdAt}::timestamptz
        from stored s
        join endpoints ep on ep.organization_id = s.organization_id
       where ep.status in ('active', 'paused') and triggers_type_matches(ep.event_types, s.type)
      returning event_id, next_attempt_at is not null as due
    )
    select s.id, coalesce(bool_or(f.due), false) as due
      from stored s left join fanned f on f.event_id = s.id
     group by s.id`
  const inserted = new Set<string>()
  let anyDue = false
  for (const r of rows) { inserted.add(r.id); if (r.due) anyDue = true }
  const duplicates = new Map<string, string>()
  if (inserted.size < b.ids.length) {
    const orgs: string[] = []
    const dedups: string[] = []
    for (let i = 0; i < b.ids.length; i++) {
      const d = b.dedupIds[i]
      if (d != null && !inserted.has(b.ids[i]!)) { orgs.push(b.organizationIds[i]!); dedups.push(d) }
    }
    if (orgs.length > 0) {
      // A new statement sees batches that committed while ours waited on their dedup rows.
      const found = await sql<{ organization_id: string, dedup_id: string, event_id: string }[]>`
        select k.organization_id, k.dedup_id, k.event_id
          from dedup_keys k
          join unnest(${orgs}::uuid[], ${dedups}::text[]) as t(o, d) on k.organization_id = t.o and k.dedup_id = t.d`
      for (const f of found) duplicates.set(dedupKey(f.organization_id, f.dedup_id), f.event_id)
    }
  }
  return { inserted, anyDue, duplicates }
}
