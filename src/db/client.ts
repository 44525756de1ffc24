/**
 * The only place that calls postgres() (STYLE C11). Each thread makes its own client with a pool
 * sized from config; prepared statements stay on. Timeouts are short so an unreachable database turns
 * into a fast 503 instead of a hang: connecting gives up after `connectTimeoutS`, and idle
 * connections are recycled.
 *
 * Sockets are opened here with TCP_NODELAY: postgres.js uses a plain net.Socket (Nagle on), and its
 * COPY and pipelined writes then wait out delayed ACKs — 88 ms per COPY batch in
 * bench/micro/README.md (2026-11-24). The wire protocol is request/response; Nagle never helps it.
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

/** postgres.js accepts a `socket` factory (connected socket or a promise of one); its types omit it. */
type SocketOption = { socket: (opts: { host: string[], port: number[] }) => Promise<net.Socket> }

function noDelaySocket (timeoutS: number): SocketOption['socket'] {
  return opts => new Promise((resolve, reject) => {
    const s = net.connect({ host: opts.host[0] ?? '127.0.0.1', port: opts.port[0] ?? 5432, noDelay: true })
    const timer = setTimeout(() => {
      s.destroy()
      reject(Object.assign(new Error('connect timeout'), { code: 'CONNECT_TIMEOUT' }))
    }, timeoutS * 1000)
    s.once('connect', () => { clearTimeout(timer); s.off('error', onError); resolve(s) })
    const onError = (err: Error): void => { clearTimeout(timer); reject(err) }
    s.once('error', onError)
  })
}

export function createDb (o: DbOptions): Sql {
  const socketOption: SocketOption = { socket: noDelaySocket(o.connectTimeoutS ?? 3) }
  return postgres(o.url, {
    ...socketOption,
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
