/**
 * Whether the installed postgres.js carries the write-timer repair (scripts/patch-postgres.js; the
 * defect: porsager/postgres#1168, #1208). postgres.js 3.4.9, the newest release, cancels a pending
 * small write on teardown without clearing its handle, so a pool slot whose socket closed with a write
 * pending never writes again, and every later query on it waits out the connect timeout after a
 * database outage. `npm install` repairs it; an install that skipped scripts (`npm ci
 * --ignore-scripts`) or a version bump may not have, and the service must then refuse to start rather
 * than run with pools that an outage can strand (main.ts). Primary thread (start-up) and tests.
 *
 * The check reads the module the service actually loads (the package's ESM entry directory) and asks
 * for the repair's effect, not for our marker: every `clearImmediate(nextWriteTimer)` is followed by
 * `nextWriteTimer = null` within the next line, in at least the three places 3.4.9 has (the flush and
 * both teardown paths). An upstream release that fixes it the same way passes; one that restructures
 * the code fails until someone has looked.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const CANCEL = 'clearImmediate(nextWriteTimer)'
const PLACES = 3

/** null when `connectionJs` (the text of postgres.js's src/connection.js) has the repair; else what is wrong. */
export function missingRepair (connectionJs: string): string | null {
  const lines = connectionJs.split('\n')
  let places = 0
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    const at = line.indexOf(CANCEL)
    if (at < 0) continue
    places++
    const after = line.slice(at + CANCEL.length) + '\n' + (lines[i + 1] ?? '')
    if (!/nextWriteTimer\s*=\s*null/.test(after)) return `line ${i + 1} cancels the pending write without clearing nextWriteTimer`
  }
  if (places < PLACES) return `the write scheduler is not the one the repair knows (${places} of ${PLACES} places)`
  return null
}

/** The postgres.js connection module this process loads, and what is wrong with it (null: repaired). */
export function checkDriverRepair (): { file: string, problem: string | null } {
  const file = fileURLToPath(new URL('./connection.js', import.meta.resolve('postgres')))
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return { file, problem: `cannot read it (${err instanceof Error ? err.message : String(err)})` }
  }
  return { file, problem: missingRepair(text) }
}
