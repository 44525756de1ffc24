/** The readiness probe's round trip (GET /health/ready): resolves once the database answered. */
import type { Sql } from '../client.ts'

export async function pingDatabase (sql: Sql): Promise<void> {
  await sql`select 1`
}
