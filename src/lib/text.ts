/** Text helpers shared by the request validators. Pure module. */

/** Characters as PostgreSQL's char_length counts them: code points (an emoji is one). */
export function codePoints (s: string): number {
  let n = 0
  for (const _ of s) n++
  return n
}
