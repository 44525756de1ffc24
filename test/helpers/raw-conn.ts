/**
 * A raw HTTP/1.1 client connection (node:net, no HTTP client in the way) for tests that need to control
 * every byte: it writes what it is given (with backpressure), parses one Content-Length-framed
 * response, and reports how the connection ended (FIN or an error such as a reset).
 */
import net from 'node:net'
import { once } from 'node:events'

export interface RawResponse {
  readonly status: number
  readonly headers: Map<string, string>
  readonly body: string
  readonly json: any
}

/** A client connection that parses one HTTP/1.1 response (Content-Length framed) from raw bytes. */
export class RawConn {
  readonly sock: net.Socket
  /** Body bytes written so far. */
  sent = 0
  #buf = Buffer.alloc(0)
  #closed = false
  readonly response: Promise<RawResponse>
  readonly closed: Promise<void>

  /** The server ended the connection with FIN (not a reset). */
  ended = false
  /** The error the socket saw, if any (EPIPE/ECONNRESET when the server reset it). */
  error: string | null = null

  constructor (svc: { port: number }) {
    this.sock = net.connect(svc.port, '127.0.0.1')
    this.sock.on('end', () => { this.ended = true })
    this.sock.on('error', (err: NodeJS.ErrnoException) => { this.error = err.code ?? err.message })
    this.closed = new Promise(resolve => { this.sock.once('close', () => { this.#closed = true; resolve() }) })
    this.response = new Promise((resolve, reject) => {
      const onData = (d: Buffer): void => {
        this.#buf = Buffer.concat([this.#buf, d])
        const end = this.#buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const lines = this.#buf.subarray(0, end).toString('latin1').split('\r\n')
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0] ?? '')?.[1])
        const headers = new Map<string, string>()
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':')
          headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim())
        }
        const len = Number(headers.get('content-length') ?? '0')
        if (this.#buf.length < end + 4 + len) return
        this.sock.off('data', onData)
        const body = this.#buf.subarray(end + 4, end + 4 + len).toString('utf8')
        let json: unknown = null
        try { json = JSON.parse(body) } catch { json = null }
        resolve({ status, headers, body, json })
      }
      this.sock.on('data', onData)
      this.sock.once('close', () => { reject(new Error(`connection closed before a response (${this.#buf.length} bytes read)`)) })
    })
    // A test that expects no response (aborts) must not leave an unhandled rejection behind.
    this.response.then(undefined, () => {})
  }

  get isClosed (): boolean { return this.#closed }

  async connected (): Promise<void> {
    if (!this.sock.connecting) return
    await once(this.sock, 'connect')
  }

  /** Writes and waits for the socket to accept more (backpressure), unless it closed. */
  async write (data: string | Buffer, body = true): Promise<void> {
    if (this.#closed || this.sock.destroyed) return
    if (body) this.sent += Buffer.byteLength(data)
    if (!this.sock.write(data)) {
      // Not events.once: it rejects on 'error', and a write after the server closed is expected here.
      await new Promise<void>(resolve => {
        const done = (): void => { this.sock.off('drain', done); this.sock.off('close', done); resolve() }
        this.sock.on('drain', done)
        this.sock.on('close', done)
      })
    }
  }

  destroy (): void { this.sock.destroy() }
}

/** Writes `total` bytes of filler in 64 KiB pieces, stopping early if the connection closes. */
export async function blast (c: RawConn, total: number): Promise<void> {
  const piece = Buffer.alloc(64 * 1024, 0x20)
  for (let left = total; left > 0 && !c.isClosed && !c.sock.destroyed; left -= piece.length) {
    await c.write(left >= piece.length ? piece : piece.subarray(0, left))
  }
}
