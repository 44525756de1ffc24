/**
 * The only place that calls postgres() (STYLE C11). Each thread makes its own client with a pool
 * sized from config; prepared statements stay on. Timeouts are short so an unreachable database turns
 * into a fast 503 instead of a hang: connecting gives up after `connectTimeoutS`, and idle
 * connections are recycled; reconnect back-off is capped so queued queries fail fast too.
 *
 * Sockets are opened here with TCP_NODELAY: postgres.js uses a plain net.Socket (Nagle on), and its
 * COPY and pipelined writes then wait out delayed ACKs — 88 ms per COPY batch in
 * bench/micro/README.md (2026-11-24). The wire protocol is request/response; Nagle never helps it.
 *
 * A Unix-domain socket is used when DATABASE_URL names one, as libpq does: a host that is a directory
 * (`?host=/var/run/postgresql`, or the percent-encoded `postgres://user@%2Fvar%2Frun%2Fpostgresql/db`);
 * the socket is `<dir>/.s.PGSQL.<port>`. On one machine it costs the listeners less per statement than
 * loopback TCP (no TCP/IP stack, no Nagle, no checksums); the embedded PostgreSQL listens on one in
 * its data directory (db/embedded.ts).
 */
import postgres from 'postgres'
import net from 'node:net'

export type Sql = postgres.Sql<Record<string, never>>
export type TransactionSql = postgres.TransactionSql<Record<string, never>>

export interface DbOptions {
  readonly url: string
  readonly max: number
  readonly applicationName: string
  readonly connectTimeoutS?: number
}

/**
 * postgres.js accepts a `socket` factory (a socket or a promise of one); its types omit it. The
 * factory hands back the socket at once, still connecting: postgres.js then sees the connect error
 * and the close on its own listeners, applies its connect_timeout, and returns the pool slot to
 * "closed" so the next query reconnects. A factory that waits for 'connect' and rejects instead
 * leaves the slot in postgres.js's "connecting" queue for good (no socket, so no close event): every
 * query queued on it hangs, even after the database is back (test/integration/db-outage.test.ts).
 * Connect errors always arrive from libuv callbacks, after postgres.js has attached its listeners.
 */
type SocketOption = { socket: (opts: { host: string[], port: number[] }) => net.Socket }

function noDelaySocket (opts: { host: string[], port: number[] }): net.Socket {
  return net.connect({ host: opts.host[0] ?? '127.0.0.1', port: opts.port[0] ?? 5432, noDelay: true })
}

/** The socket directory a DATABASE_URL names, or null for TCP. */
export function socketDirectory (url: string): string | null {
  let u: URL
  try { u = new URL(url) } catch { return null }
  const q = u.searchParams.get('host')
  if (q !== null && q.startsWith('/')) return q
  const h = decodeURIComponent(u.hostname)
  return h.startsWith('/') ? h : null
}

function unixSocket (path: string): SocketOption {
  return { socket: () => net.connect({ path }) }
}

export function createDb (o: DbOptions): Sql {
  const dir = socketDirectory(o.url)
  const u = new URL(o.url)
  const port = Number(u.port || 5432)
  const socketOption: SocketOption = dir === null ? { socket: noDelaySocket } : unixSocket(`${dir}/.s.PGSQL.${port}`)
  // postgres.js would send an unknown query parameter such as `host` to the server as a setting.
  u.searchParams.delete('host')
  return postgres(u.toString(), {
    ...socketOption,
    max: o.max,
    prepare: true,
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    connect_timeout: o.connectTimeoutS ?? 3,
    // After failed connects postgres.js delays the next one by up to 20 s (3^retries / 100 s), and
    // a query queued on that connection waits it out: during an outage under load a request then
    // hangs for seconds instead of getting its quick 503. Capped at 0.5 s (jittered), an outage
    // costs each pool a few refused connects per second (test/integration/db-outage.test.ts).
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.02 * 2 ** retries, 0.5),
    onnotice: () => {},
    connection: { application_name: o.applicationName },
    // Columns come back as strings except these, parsed by postgres.js as usual.
    types: {},
  }) as unknown as Sql
}
