/**
 * Bounded request-body reading (STYLE C6). uWS neuters each onData ArrayBuffer when the callback
 * returns, so chunks are copied as they arrive; the 1 MiB cap is enforced as bytes accumulate (and up
 * front from Content-Length), answering 413 `body_too_large` and closing the connection without
 * buffering the rest. An aborted upload resolves to null and frees what was buffered.
 * Listener threads only.
 */
import type { Ctx } from './context.ts'
import { ApiError } from '../errors.ts'

export const MAX_BODY_BYTES = 1024 * 1024

/**
 * Reads the whole body. Must be called in the synchronous part of the handler; it installs the abort
 * handler. Never rejects (so a body nobody waits for any more cannot become an unhandled rejection):
 * it resolves to the body, to ApiError('body_too_large') (send it with close=true), or to null when
 * the client went away.
 */
export function readBody (ctx: Ctx, limit = MAX_BODY_BYTES): Promise<Buffer | ApiError | null> {
  if (ctx.contentLength > limit) {
    ctx.res.onAborted(() => { ctx.aborted = true; ctx.finish() })
    return Promise.resolve(new ApiError('body_too_large', undefined, { limit }))
  }
  return new Promise(resolve => {
    let chunks: Buffer[] | null = null
    let first: Buffer | null = null
    let size = 0
    let failed = false
    ctx.res.onData((ab, isLast) => {
      if (failed) return
      const n = ab.byteLength
      size += n
      if (size > limit) {
        failed = true
        first = null
        chunks = null
        resolve(new ApiError('body_too_large', undefined, { limit }))
        return
      }
      if (isLast && first === null) {
        // One-chunk body (the common case): a single copy.
        resolve(Buffer.from(new Uint8Array(ab)))
        return
      }
      const copy = Buffer.from(new Uint8Array(ab))
      if (first === null) first = copy
      else (chunks ??= [first]).push(copy)
      if (isLast) resolve(chunks === null ? first : Buffer.concat(chunks, size))
    })
    ctx.res.onAborted(() => {
      ctx.aborted = true
      ctx.finish()
      if (!failed) { failed = true; first = null; chunks = null; resolve(null) }
    })
  })
}
