/**
 * The payload exactly as the client wrote it, minus insignificant whitespace. JSON.parse followed by
 * JSON.stringify would change stored data: integers beyond 2^53 lose digits (12345678901234567890
 * becomes 12345678901234567000), 1.0 becomes 1, integer-like keys move to the front and duplicate keys
 * collapse. So the writer stores the raw text of the `payload` (or `data`) member, found by a scan of
 * the request body that JSON.parse has already validated — which is why the scanner can assume
 * well-formed JSON and stays a few lines long. Pure module.
 */

function isWs (c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9
}

function skipWs (s: string, i: number): number {
  while (i < s.length && isWs(s.charCodeAt(i))) i++
  return i
}

/** `i` at an opening quote; returns the index after the closing quote. */
function endOfString (s: string, i: number): number {
  i++
  for (;;) {
    const c = s.charCodeAt(i)
    if (c === 34) return i + 1
    i += c === 92 ? 2 : 1
  }
}

/** `i` at the first character of a value; returns the index after it. */
function endOfValue (s: string, i: number): number {
  const c = s.charCodeAt(i)
  if (c === 34) return endOfString(s, i)
  if (c !== 123 && c !== 91) {
    while (i < s.length) {
      const d = s.charCodeAt(i)
      if (d === 44 || d === 125 || d === 93 || isWs(d)) break
      i++
    }
    return i
  }
  let depth = 0
  for (;;) {
    const d = s.charCodeAt(i)
    if (d === 34) { i = endOfString(s, i); continue }
    if (d === 123 || d === 91) depth++
    else if (d === 125 || d === 93) { depth--; if (depth === 0) return i + 1 }
    i++
  }
}

/** `raw` without whitespace outside strings. */
export function compact (raw: string): string {
  let hasWs = false
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i)
    if (c === 34) { i = endOfString(raw, i) - 1; continue }
    if (isWs(c)) { hasWs = true; break }
  }
  if (!hasWs) return raw
  let out = ''
  let from = 0
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i)
    if (c === 34) { i = endOfString(raw, i) - 1; continue }
    if (isWs(c)) { out += raw.slice(from, i); from = i + 1 }
  }
  return out + raw.slice(from)
}

/**
 * The raw text of the last top-level member named `name` (JSON.parse also keeps the last), or null
 * when there is none. `text` must be a valid JSON object.
 */
export function rawMemberText (text: string, name: string): string | null {
  let i = skipWs(text, 0)
  if (text.charCodeAt(i) !== 123) return null
  i = skipWs(text, i + 1)
  let found: string | null = null
  while (i < text.length && text.charCodeAt(i) !== 125) {
    const keyEnd = endOfString(text, i)
    const rawKey = text.slice(i + 1, keyEnd - 1)
    const key = rawKey.includes('\\') ? JSON.parse(text.slice(i, keyEnd)) as string : rawKey
    i = skipWs(text, keyEnd) + 1 // past ':'
    i = skipWs(text, i)
    const valueEnd = endOfValue(text, i)
    if (key === name) found = text.slice(i, valueEnd)
    i = skipWs(text, valueEnd)
    if (text.charCodeAt(i) === 44) i = skipWs(text, i + 1)
  }
  return found
}

/** The compact raw text of the last top-level member named `name`, or null (see rawMemberText). */
export function rawMember (text: string, name: string): string | null {
  const found = rawMemberText(text, name)
  return found === null ? null : compact(found)
}

/** The raw text of each element of a JSON array (`text` must be a valid JSON array). */
export function rawElements (text: string): string[] {
  const out: string[] = []
  let i = skipWs(text, 0)
  if (text.charCodeAt(i) !== 91) return out
  i = skipWs(text, i + 1)
  while (i < text.length && text.charCodeAt(i) !== 93) {
    const end = endOfValue(text, i)
    out.push(text.slice(i, end))
    i = skipWs(text, end)
    if (text.charCodeAt(i) === 44) i = skipWs(text, i + 1)
  }
  return out
}
