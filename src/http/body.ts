/**
 * Bounded request-body reading (STYLE C6). uWS neuters each onData ArrayBuffer when the callback
 * returns, so chunks are copied as they arrive; the cap (1 MiB unless a route passes its own) is
 * enforced as bytes accumulate and up front from Content-Length, answering 413 `body_too_large` at
 * once without buffering the rest. An aborted upload resolves to null and frees what was buffered.
 *
 * A 413 is written while the client may still be uploading. Closing the connection right after it
 * would lose it: a socket closed with unread bytes in its receive queue makes the kernel send a reset,
 * and a client still writing its body then sees ECONNRESET/EPIPE instead of the answer. So the answer
 * is written complete but the connection lingers — the rest of the body is read and thrown away —
 * until the body ends, LINGER_MAX_BYTES more were discarded, LINGER_MAX_MS passed, or the client sent
 * nothing for LINGER_IDLE_MS; then it is closed. Listener threads only.
 */
import type { Ctx } from './context.ts'
import { ApiError } from '../errors.ts'

const MiB = 1024 * 1024
export const MAX_BODY_BYTES = MiB

/** The most bytes read and discarded after an early final answer, before the connection is closed. */
export const LINGER_MAX_BYTES = 16 * MiB
/** The longest a connection lingers after an early final answer. */
export const LINGER_MAX_MS = 5000
/** A lingering connection whose client sent nothing for this long is closed (the client is waiting). */
export const LINGER_IDLE_MS = 1000

function tooLarge (limit: number): ApiError {
  // The catalogue's sentence names the default cap; a route with another cap gets its own figure.
  const message = limit === MAX_BODY_BYTES
    ? undefined
    : `Request body exceeds ${limit % MiB === 0 ? `${limit / MiB} MiB` : `${limit} bytes`} limit`
  return new ApiError('body_too_large', message, { limit })
}

/**
 * One request body as it streams in. Within the cap its chunks are copied and kept; past the cap they
 * are only counted. `body` never rejects (so a body nobody waits for any more cannot become an
 * unhandled rejection): it resolves to the body, to ApiError('body_too_large'), or to null when the
 * client went away.
 */
export class Upload {
  readonly body: Promise<Buffer | ApiError | null>
  /** The last byte of the body has arrived. */
  complete = false
  readonly #ctx: Ctx
  readonly #limit: number
  #resolve: (v: Buffer | ApiError | null) => void = () => {}
  #size = 0
  #first: Buffer | null = null
  #chunks: Buffer[] | null = null
  /** Resolved already (too large, or aborted): later chunks are dropped. */
  #settled = false
  #lingering = false
  #discarded = 0
  #lastData = 0
  #deadline = 0
  #timer: ReturnType<typeof setTimeout> | null = null
  #closed = false

  constructor (ctx: Ctx, limit: number) {
    this.#ctx = ctx
    this.#limit = limit
    this.body = new Promise(resolve => { this.#resolve = resolve })
    if (ctx.contentLength > limit) this.#settle(tooLarge(limit))
    ctx.res.onData((ab, isLast) => { this.#onData(ab, isLast) })
    ctx.res.onAborted(() => { this.#onAborted() })
  }

  #settle (v: Buffer | ApiError | null): void {
    this.#settled = true
    this.#first = null
    this.#chunks = null
    this.#resolve(v)
  }

  #onData (ab: ArrayBuffer, isLast: boolean): void {
    if (isLast) this.complete = true
    const n = ab.byteLength
    if (this.#settled) {
      if (!this.#lingering) return
      this.#discarded += n
      this.#lastData = performance.now()
      if (isLast || this.#discarded > LINGER_MAX_BYTES) this.#close()
      return
    }
    this.#size += n
    if (this.#size > this.#limit) { this.#settle(tooLarge(this.#limit)); return }
    if (isLast && this.#first === null) {
      // One-chunk body (the common case): a single copy.
      this.#settled = true
      this.#resolve(Buffer.from(new Uint8Array(ab)))
      return
    }
    const copy = Buffer.from(new Uint8Array(ab))
    if (this.#first === null) this.#first = copy
    else (this.#chunks ??= [this.#first]).push(copy)
    if (isLast) {
      const whole = this.#chunks === null ? this.#first : Buffer.concat(this.#chunks, this.#size)
      this.#settle(whole)
    }
  }

  #onAborted (): void {
    this.#closed = true
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null }
    this.#ctx.aborted = true
    this.#ctx.finish()
    if (!this.#settled) this.#settle(null)
  }

  /**
   * Called by reply.ts right after it wrote a complete final answer (with Connection: close) while the
   * body is still arriving: read and discard the rest within the LINGER_* bounds, then close.
   */
  linger (): void {
    if (this.#closed || this.#lingering) return
    if (this.complete) { this.#close(); return }
    this.#lingering = true
    this.#lastData = performance.now()
    this.#deadline = this.#lastData + LINGER_MAX_MS
    this.#arm(LINGER_IDLE_MS)
  }

  #arm (ms: number): void {
    this.#timer = setTimeout(() => { this.#tick() }, Math.max(1, Math.ceil(ms)))
  }

  #tick (): void {
    this.#timer = null
    if (this.#closed) return
    const now = performance.now()
    const idleLeft = this.#lastData + LINGER_IDLE_MS - now
    const left = Math.min(idleLeft, this.#deadline - now)
    if (left <= 0) this.#close()
    else this.#arm(left)
  }

  #close (): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null }
    // The answer is already in the socket's send buffer; closing sends it, then FIN. The abort handler
    // runs (the request is finished already).
    this.#ctx.res.close()
  }
}

/**
 * Starts reading the body under `limit` bytes. Must be called in the synchronous part of the handler:
 * it installs the data and abort handlers. See Upload.body for what the promise resolves to; send a
 * body_too_large with close=true (reply.ts then lets the connection linger).
 */
export function readBody (ctx: Ctx, limit = MAX_BODY_BYTES): Promise<Buffer | ApiError | null> {
  const upload = new Upload(ctx, limit)
  ctx.upload = upload
  return upload.body
}
