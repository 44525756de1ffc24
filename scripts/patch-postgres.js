#!/usr/bin/env node
// postinstall: repairs a write-scheduler defect in postgres (porsager) 3.4.9, the newest release,
// until upstream ships the fix (porsager/postgres#1168, #1208; analysis in LanternOps/breeze#3225).
//
// connection.js defers small writes behind setImmediate and arms that timer only when
// `nextWriteTimer === null`. Both teardown paths (terminate() and closed()) cancel the immediate but
// leave the variable set and the buffered chunk in place, so a pooled connection whose socket closed
// with a write pending never flushes a write again: every later query on that slot waits out
// CONNECT_TIMEOUT, long after the database is back (test/integration/db-outage.test.ts reproduces it).
// The patch clears both in both teardown paths (the upstream fix). Idempotent.
//
// It never fails silently: whatever it cannot repair it says on one line, and the service refuses to
// start on an unrepaired driver (src/db/driver-repair.ts; a test checks the installed one). As
// postinstall it exits 0 so the rest of the install completes; run by hand (after `npm ci
// --ignore-scripts`), it exits 1 when the driver is left unrepaired.
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

const asPostinstall = process.env.npm_lifecycle_event === 'postinstall'

function giveUp (why) {
  process.stderr.write(`patch-postgres: ${why}; postgres.js is NOT repaired and triggers-api will refuse to start (see scripts/patch-postgres.js)\n`)
  process.exit(asPostinstall ? 0 : 1)
}

const require = createRequire(import.meta.url)
let pkgDir
try {
  // The package's "exports" do not include package.json: walk up from its entry point.
  pkgDir = path.dirname(require.resolve('postgres'))
  while (!existsSync(path.join(pkgDir, 'package.json')) || JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).name !== 'postgres') {
    const up = path.dirname(pkgDir)
    if (up === pkgDir) giveUp('cannot find the postgres package directory')
    pkgDir = up
  }
} catch {
  // Not installed (a partial install, e.g. while npm is still placing packages): nothing to patch.
  process.exit(0)
}
const version = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version
if (version !== '3.4.9') giveUp(`postgres ${version} is not 3.4.9, the version this repair is for (check whether the upstream fix landed, then update src/db/driver-repair.ts or this script)`)

const MARK = '/* triggers-api: nextWriteTimer patch */'
const edits = [
  ['    clearImmediate(nextWriteTimer)\n    if (socket) {', `    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null ${MARK}\n    if (socket) {`],
  ['    clearImmediate(nextWriteTimer)\n    socket.removeListener(\'data\', data)', `    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null ${MARK}\n    socket.removeListener('data', data)`],
]

for (const rel of ['src/connection.js', 'cjs/src/connection.js']) {
  const file = path.join(pkgDir, rel)
  if (!existsSync(file)) continue
  let text = readFileSync(file, 'utf8')
  if (text.includes(MARK)) continue
  for (const [from, to] of edits) {
    if (!text.includes(from)) giveUp(`${rel} does not have the expected code`)
    text = text.replace(from, to)
  }
  writeFileSync(file, text)
}
