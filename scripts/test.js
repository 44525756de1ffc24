#!/usr/bin/env node
// `npm test`: runs the node:test suites under tsx against a real PostgreSQL. DATABASE_URL is used when
// set (CI has one); otherwise an embedded PostgreSQL is started under .test-data/ for the run and
// stopped afterwards. Extra arguments are passed to `node --test` (e.g. a single file).
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { register } from 'tsx/esm/api'

register()
const { startEmbedded, embeddedPreflight } = await import('../src/db/embedded.ts')
const { checkDriverRepair } = await import('../src/db/driver-repair.ts')

// The service refuses to start on an unrepaired postgres.js, and so does the suite: one line, not
// a run of outage tests hanging on stranded pool slots.
const driver = checkDriverRepair()
if (driver.problem !== null) {
  process.stderr.write(`npm test: postgres.js lacks the write-timer repair (${driver.file}: ${driver.problem}); run \`npm install\` or \`node scripts/patch-postgres.js\`\n`)
  process.exit(1)
}

let embedded = null
if (!process.env.DATABASE_URL) {
  // Scratch data: a cluster of another PostgreSQL major version is made anew (disposable), not refused.
  const problem = await embeddedPreflight('.test-data', null, true)
  if (problem !== null) { process.stderr.write(`npm test: ${problem}\n`); process.exit(1) }
  process.stdout.write('DATABASE_URL is unset: starting an embedded PostgreSQL for the tests\n')
  embedded = await startEmbedded('.test-data', undefined, { disposable: true })
}
const env = { ...process.env, DATABASE_URL: process.env.DATABASE_URL || embedded.url }
// Node 20's --test does not expand globs, so the test files are listed here.
function findTests (dir) {
  const out = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...findTests(p))
    else if (e.name.endsWith('.test.ts')) out.push(p)
  }
  return out.sort()
}
const files = process.argv.slice(2)
const args = ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=120000',
  ...(files.length > 0 ? files : findTests('test'))]
const child = spawn(process.execPath, args, { stdio: 'inherit', env })
const code = await new Promise(resolve => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))))
if (embedded) await embedded.stop()
process.exit(code)
