#!/usr/bin/env node
// postinstall: repairs a write-scheduler defect in postgres (porsager) 3.4.9, until upstream ships
// the fix (porsager/postgres#1168, #1208; analysis in LanternOps/breeze#3225).
//
// connection.js defers small writes behind setImmediate and arms that timer only when
// `nextWriteTimer === null`. Both teardown paths (terminate() and closed()) cancel the immediate but
// leave the variable set and the buffered chunk in place, so a pooled connection whose socket closed
// with a write pending never flushes a write again: every later query on that slot waits out
// CONNECT_TIMEOUT, long after the database is back (test/integration/db-outage.test.ts reproduces it).
// The patch clears both in both teardown paths (the upstream fix). Idempotent; any other version of
// the package is left alone.
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

const require = createRequire(import.meta.url)
let pkgDir
try {
  // The package's "exports" do not include package.json: walk up from its entry point.
  pkgDir = path.dirname(require.resolve('postgres'))
  while (!existsSync(path.join(pkgDir, 'package.json')) || JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).name !== 'postgres') {
    const up = path.dirname(pkgDir)
    if (up === pkgDir) process.exit(0)
    pkgDir = up
  }
} catch {
  process.exit(0) // not installed (e.g. a partial install): nothing to patch
}
const version = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version
if (version !== '3.4.9') {
  process.stderr.write(`patch-postgres: postgres ${version} is not 3.4.9; not patching (check whether the upstream fix landed)\n`)
  process.exit(0)
}

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
    if (!text.includes(from)) {
      process.stderr.write(`patch-postgres: ${rel} does not have the expected code; not patched\n`)
      process.exit(0)
    }
    text = text.replace(from, to)
  }
  writeFileSync(file, text)
}
