/**
 * Paging shared by the list routes (inbox, endpoints, attempts): `limit` (1–1000, default 100),
 * an opaque `cursor` (the previous page's `next_cursor`: base64url of "<ISO time>|<uuid>" of its last
 * row) and, for older clients, `offset` when no cursor is given. Pure module (listener threads).
 */
import { ApiError } from '../errors.ts'
import { isUuid } from '../lib/uuid.ts'

const INT_RE = /^\d{1,9}$/
const CURSOR_RE = /^[A-Za-z0-9_-]+$/

export interface Keyset { readonly createdAt: Date, readonly id: string }

export function parseLimit (raw: string | null): number {
  if (raw === null) return 100
  const n = INT_RE.test(raw) ? Number(raw) : NaN
  if (!(n >= 1 && n <= 1000)) throw new ApiError('invalid_limit')
  return n
}

export function encodeCursor (createdAt: Date, id: string): string {
  return Buffer.from(`${createdAt.toISOString()}|${id}`).toString('base64url')
}

export function decodeCursor (raw: string): Keyset {
  const bad = new ApiError('invalid_cursor', 'cursor is not a next_cursor returned by this API')
  if (raw.length > 200 || !CURSOR_RE.test(raw)) throw bad
  const text = Buffer.from(raw, 'base64url').toString()
  const sep = text.indexOf('|')
  if (sep < 0) throw bad
  const createdAt = new Date(text.slice(0, sep))
  const id = text.slice(sep + 1)
  if (Number.isNaN(createdAt.getTime()) || !isUuid(id)) throw bad
  return { createdAt, id: id.toLowerCase() }
}

export interface Page { readonly limit: number, readonly after: Keyset | null, readonly offset: number }

/** limit, cursor and offset of a list query string. */
export function parsePage (q: URLSearchParams, allowOffset = true): Page {
  const limit = parseLimit(q.get('limit'))
  const cursorRaw = q.get('cursor')
  const after = cursorRaw === null || cursorRaw === '' ? null : decodeCursor(cursorRaw)
  const offsetRaw = allowOffset ? q.get('offset') : null
  let offset = 0
  if (after === null && offsetRaw !== null) {
    if (!INT_RE.test(offsetRaw)) throw new ApiError('invalid_cursor', 'offset must be a non-negative integer')
    offset = Number(offsetRaw)
  }
  return { limit, after, offset }
}

/** Splits a `limit + 1` row result into the page and its `next_cursor`. */
export function pageOf<T> (rows: T[], limit: number, key: (row: T) => Keyset): { rows: T[], nextCursor: string | null, hasMore: boolean } {
  const hasMore = rows.length > limit
  if (hasMore) rows.pop()
  const last = rows[rows.length - 1]
  const k = hasMore && last !== undefined ? key(last) : null
  return { rows, nextCursor: k === null ? null : encodeCursor(k.createdAt, k.id), hasMore }
}

/** A path id that must be a UUID (400 invalid_id names what it is). */
export function pathId (raw: string, what: string): string {
  if (!isUuid(raw)) throw new ApiError('invalid_id', `Invalid ${what} id: must be a UUID`)
  return raw.toLowerCase()
}
