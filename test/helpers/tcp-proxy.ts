/**
 * A TCP proxy (node:net) in front of PostgreSQL, for tests of the database going away: `cut`
 * destroys every connection and refuses new ones (the port is closed), `restore` listens again on the
 * same port. Either side of a proxied connection ending or failing ends both, as a broken network
 * path would; every socket has an 'error' listener.
 */
import net from 'node:net'

export class TcpProxy {
  readonly #target: { host: string, port: number }
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()
  port = 0

  constructor (target: { host: string, port: number }) {
    this.#target = target
    this.#server = net.createServer(client => {
      const upstream = net.connect(this.#target.port, this.#target.host)
      this.#track(client)
      this.#track(upstream)
      client.pipe(upstream)
      upstream.pipe(client)
      const both = (): void => { client.destroy(); upstream.destroy() }
      client.on('error', both).on('close', both)
      upstream.on('error', both).on('close', both)
    })
  }

  /** A proxy for the database of `url`; `proxied(url)` is the same URL through the proxy once listening. */
  static for (url: string): TcpProxy {
    const u = new URL(url)
    return new TcpProxy({ host: u.hostname, port: Number(u.port === '' ? '5432' : u.port) })
  }

  proxied (url: string): string {
    const u = new URL(url)
    u.hostname = '127.0.0.1'
    u.port = String(this.port)
    // A Unix-socket host (the embedded PostgreSQL's) would bypass the proxy: go over TCP.
    u.searchParams.delete('host')
    return u.toString()
  }

  #track (s: net.Socket): void {
    this.#sockets.add(s)
    s.once('close', () => this.#sockets.delete(s))
  }

  get connections (): number { return this.#sockets.size }

  async listen (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(this.port, '127.0.0.1', () => { this.#server.off('error', reject); resolve() })
    })
    const a = this.#server.address()
    if (a === null || typeof a === 'string') throw new Error('proxy has no TCP address')
    this.port = a.port
  }

  /** Destroys every connection and refuses new ones (the port is closed). */
  async cut (): Promise<void> {
    if (!this.#server.listening) { for (const s of this.#sockets) s.destroy(); return }
    const closed = new Promise<void>(resolve => this.#server.close(() => resolve()))
    for (const s of this.#sockets) s.destroy()
    await closed
  }

  async restore (): Promise<void> { await this.listen() }
}
