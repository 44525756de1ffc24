/**
 * Event-type filters of endpoints (the contract, docs/api.md "The endpoint object"). A pattern is `"*"` (every event), an
 * exact type (1–255 characters, no `*`), or a prefix wildcard `"<prefix>.*"` that matches every type
 * starting with `"<prefix>."` and longer than it (`a.*` matches `a.b` and `a.b.c`, not `a`).
 * Case-sensitive. A filter holds 1–100 patterns; duplicates are removed, order kept.
 *
 * Matching at ingest happens in PostgreSQL (sql/0003_endpoints.sql `triggers_type_matches`), in the
 * statement that stores the event; `matchesType` is the same rule for code that matches outside SQL.
 * Both are tested against one table of cases. Pure module, imported by listener threads.
 */
import { codePoints } from '../lib/text.ts'

export const MAX_PATTERNS = 100
export const MAX_PATTERN_LENGTH = 255

export type PatternCheck = { ok: true, patterns: string[] } | { ok: false, reason: string }

/** Why `p` is not a valid pattern, or null. */
function patternProblem (p: unknown): string | null {
  if (typeof p !== 'string') return 'every pattern must be a string'
  if (p.length === 0) return 'a pattern must not be empty'
  if (p.length > MAX_PATTERN_LENGTH && codePoints(p) > MAX_PATTERN_LENGTH) return `a pattern must be at most ${MAX_PATTERN_LENGTH} characters`
  if (p === '*') return null
  const star = p.indexOf('*')
  if (star === -1) return null
  // The only other place a `*` may appear is a trailing ".*" after a non-empty prefix without `*`.
  if (star === p.length - 1 && p.length >= 3 && p.charCodeAt(p.length - 2) === 46) return null
  return `"${p.slice(0, 60)}": "*" is allowed only alone or as a trailing ".*" after a prefix`
}

/** Validates an `event_types` value; on success the patterns without duplicates, in order. */
export function checkEventTypes (raw: unknown): PatternCheck {
  if (!Array.isArray(raw)) return { ok: false, reason: 'must be an array of 1 to 100 patterns' }
  if (raw.length === 0) return { ok: false, reason: 'must hold at least one pattern' }
  const seen = new Set<string>()
  const out: string[] = []
  for (const p of raw) {
    const problem = patternProblem(p)
    if (problem !== null) return { ok: false, reason: problem }
    const s = p as string
    if (!seen.has(s)) { seen.add(s); out.push(s) }
  }
  if (out.length > MAX_PATTERNS) return { ok: false, reason: `must hold at most ${MAX_PATTERNS} patterns` }
  return { ok: true, patterns: out }
}

/** Does any of `patterns` match `type`? (The rule of `triggers_type_matches`.) */
export function matchesType (patterns: readonly string[], type: string): boolean {
  for (const p of patterns) {
    if (p === '*' || p === type) return true
    if (p.endsWith('.*')) {
      const prefix = p.slice(0, -1) // "<prefix>."
      if (type.length > prefix.length && type.startsWith(prefix)) return true
    }
  }
  return false
}
