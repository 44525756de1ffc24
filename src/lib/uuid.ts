/**
 * UUIDv7 ids (RFC 9562 §5.7) for events: time-ordered, so inserts land at the right edge of the
 * primary-key index. Monotonic within a thread: a 12-bit counter in rand_a (method 1 of §6.2) orders
 * ids made in the same millisecond; randomness comes from a pooled crypto buffer refilled 4 KiB at a
 * time. Also the UUID syntax check used on every id the API receives.
 */
import { randomFillSync } from 'node:crypto'

const HEX: string[] = []
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, '0'))

const pool = Buffer.allocUnsafe(4096)
let poolPos = pool.length
let lastMs = 0
let seq = 0

function randomBytes8 (): number {
  if (poolPos + 8 > pool.length) { randomFillSync(pool); poolPos = 0 }
  const p = poolPos
  poolPos += 8
  return p
}

/** A new lowercase UUIDv7 string. */
export function uuidv7 (): string {
  let ms = Date.now()
  if (ms > lastMs) { lastMs = ms; seq = 0 } else {
    seq++
    if (seq > 0xfff) { lastMs++; seq = 0 }
    ms = lastMs
  }
  const p = randomBytes8()
  const hi = Math.floor(ms / 0x10000)
  const lo = ms % 0x10000
  const b = pool
  return (
    HEX[(hi >>> 24) & 0xff]! + HEX[(hi >>> 16) & 0xff]! + HEX[(hi >>> 8) & 0xff]! + HEX[hi & 0xff]! + '-' +
    HEX[(lo >>> 8) & 0xff]! + HEX[lo & 0xff]! + '-' +
    HEX[0x70 | (seq >>> 8)]! + HEX[seq & 0xff]! + '-' +
    HEX[0x80 | (b[p]! & 0x3f)]! + HEX[b[p + 1]!]! + '-' +
    HEX[b[p + 2]!]! + HEX[b[p + 3]!]! + HEX[b[p + 4]!]! + HEX[b[p + 5]!]! + HEX[b[p + 6]!]! + HEX[b[p + 7]!]!
  )
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** True when `s` is a UUID in the canonical 8-4-4-4-12 form (any case). */
export function isUuid (s: string): boolean {
  return s.length === 36 && UUID_RE.test(s)
}

/**
 * A UUIDv7 whose time part is `ms` (ms since the epoch) and the rest random: for records that carry
 * the time they describe (an attempt's start), so the id alone says where to look for the record.
 */
export function uuidv7At (ms: number): string {
  const p = randomBytes8()
  const q = randomBytes8()
  const b = pool
  const hi = Math.floor(ms / 0x10000)
  const lo = ms % 0x10000
  return (
    HEX[(hi >>> 24) & 0xff]! + HEX[(hi >>> 16) & 0xff]! + HEX[(hi >>> 8) & 0xff]! + HEX[hi & 0xff]! + '-' +
    HEX[(lo >>> 8) & 0xff]! + HEX[lo & 0xff]! + '-' +
    HEX[0x70 | (b[q]! & 0x0f)]! + HEX[b[q + 1]!]! + '-' +
    HEX[0x80 | (b[p]! & 0x3f)]! + HEX[b[p + 1]!]! + '-' +
    HEX[b[p + 2]!]! + HEX[b[p + 3]!]! + HEX[b[p + 4]!]! + HEX[b[p + 5]!]! + HEX[b[p + 6]!]! + HEX[b[p + 7]!]!
  )
}

/** The millisecond time part of a UUIDv7 (or of any UUID read as one). */
export function uuidv7Time (id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
}
