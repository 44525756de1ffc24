/**
 * Request JSON decoding shared by every route with a body: strict UTF-8 (invalid bytes are
 * `invalid_json`, never replaced), JSON.parse, object-only, and the storability rules of the contract (docs/api.md "General") —
 * nesting at most 128 levels and no string or key holding U+0000 or a lone surrogate (PostgreSQL cannot
 * store them) → `invalid_event` with `details`. The common body pays for two cheap scans of the text
 * instead of a walk of the parsed value: no "\u" escape means no NUL or lone surrogate is possible
 * (raw control characters and ill-formed UTF-8 are already rejected), and fewer than 129 brackets
 * means the depth cannot exceed 128. Pure module.
 */
import { ApiError } from '../errors.ts'

export const MAX_DEPTH = 128
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

function badJson (): ApiError { return new ApiError('invalid_json') }

function countBrackets (s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 123 || c === 91) n++
  }
  return n
}

function tooDeep (v: unknown, depth: number): boolean {
  if (v === null || typeof v !== 'object') return false
  if (depth > MAX_DEPTH) return true
  if (Array.isArray(v)) {
    for (const x of v) if (tooDeep(x, depth + 1)) return true
  } else {
    for (const k in v) if (tooDeep((v as Record<string, unknown>)[k], depth + 1)) return true
  }
  return false
}

function badString (s: string): boolean {
  return s.includes('\u0000') || !s.isWellFormed()
}

/** The path of the first string or key PostgreSQL could not store, or null. */
function findBadString (v: unknown, path: string): string | null {
  if (typeof v === 'string') return badString(v) ? path : null
  if (v === null || typeof v !== 'object') return null
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = findBadString(v[i], `${path}[${i}]`)
      if (p !== null) return p
    }
    return null
  }
  for (const k in v) {
    if (badString(k)) return path
    const p = findBadString((v as Record<string, unknown>)[k], path === '' ? k : `${path}.${k}`)
    if (p !== null) return p
  }
  return null
}

/** Decodes and parses a request body that must be a JSON object. */
export function parseJsonObject (body: Buffer): Record<string, unknown> {
  return parseJsonText(decodeUtf8(body))
}

/** Strict UTF-8 decoding of a request body (invalid bytes are `invalid_json`). */
export function decodeUtf8 (body: Buffer): string {
  try { return decoder.decode(body) } catch { throw badJson() }
}

/** Parses decoded body text that must be a JSON object, with the storability rules above. */
export function parseJsonText (text: string): Record<string, unknown> {
  const v = parseJsonObjectOnly(text)
  checkStorable(v, text)
  return v
}

/** Parses decoded body text that must be a JSON object, without the storability rules. */
export function parseJsonObjectOnly (text: string): Record<string, unknown> {
  let v: unknown
  try { v = JSON.parse(text) } catch { throw badJson() }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw badJson()
  return v as Record<string, unknown>
}

/**
 * The storability rules for one document (a body, or one item of a batch): nested at most 128 levels,
 * no string or key holding U+0000 or a lone surrogate. `text` is the document's JSON text (scanned
 * first, so the common document pays no walk). Throws `invalid_event` with `details`.
 */
export function checkStorable (v: unknown, text: string): void {
  if (countBrackets(text) > MAX_DEPTH && tooDeep(v, 1)) {
    throw new ApiError('invalid_event', undefined, { details: { body: `JSON is nested deeper than ${MAX_DEPTH} levels` } })
  }
  if (text.includes('\\u')) {
    const p = findBadString(v, '')
    if (p !== null) {
      const field = p === '' ? 'body' : (p.split(/[.[]/)[0] ?? 'body')
      throw new ApiError('invalid_event', undefined, { details: { [field]: `contains \\u0000 or a lone surrogate${p === field ? '' : ` (at ${p})`}, which cannot be stored` } })
    }
  }
}
