/**
 * What route handlers of one listener thread share: config, the thread's database client, auth,
 * limiter, writer, the channel to the primary, and the logger. Built once by http/thread.ts.
 */
import type { Config } from '../config/load.ts'
import type { Sql } from '../db/client.ts'
import type { Authenticator } from '../auth/authenticator.ts'
import type { Argon2Client } from '../auth/argon2-client.ts'
import type { Limiter } from '../rate-limit/limiter.ts'
import type { Writer } from '../ingest/writer.ts'
import type { WriterOwner } from './routes/events.ts'
import type { Logger } from '../log.ts'

export interface Services {
  readonly config: Config
  readonly sql: Sql
  readonly auth: Authenticator
  readonly argon2: Argon2Client
  readonly limiter: Limiter
  readonly writer: Writer<WriterOwner>
  readonly log: Logger
  /** Evicts an organization's cached keys on every listener of this node; resolves when all did. */
  evictEverywhere (organizationId: string): Promise<void>
  /** Tells the delivery thread (through the primary) that work became due. */
  wakeDelivery (): void
}
