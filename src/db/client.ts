/**
 * The only place that calls postgres() (STYLE C11). Each thread makes its own client with a pool
 * sized from config; prepared statements stay on. Timeouts are short so an unreachable database turns
 * into a fast 503 instead of a hang: connecting gives up after `connectTimeoutS`, and idle
 * connections are recycled.
 */
import postgres from 'postgres'

export type Sql = postgres.Sql<Record<string, never>>
export type TransactionSql = postgres.TransactionSql<Record<string, never>>

export interface DbOptions {
  readonly url: string
  readonly max: number
  readonly applicationName: string
  readonly connectTimeoutS?: number
}

export function createDb (o: DbOptions): Sql {
  return postgres(o.url, {
    max: o.max,
    prepare: true,
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    connect_timeout: o.connectTimeoutS ?? 3,
    onnotice: () => {},
    connection: { application_name: o.applicationName },
    // Columns come back as strings except these, parsed by postgres.js as usual.
    types: {},
  }) as unknown as Sql
}
