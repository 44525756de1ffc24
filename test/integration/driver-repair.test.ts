/**
 * The postgres.js write-timer repair (scripts/patch-postgres.js, src/db/driver-repair.ts) never goes
 * missing silently:
 * - the installed driver has it (this fails after `npm ci --ignore-scripts` or a version bump that
 *   lost it);
 * - the check tells an unrepaired connection.js (3.4.9 as published) and an unknown one from the
 *   repaired one;
 * - `triggers-api serve` on a tree whose postgres.js is unrepaired exits 2 with one line on stderr and
 *   starts nothing (a copy of the project whose node_modules links every package but postgres).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { checkDriverRepair, missingRepair } from '../../src/db/driver-repair.ts'
import { ROOT } from '../helpers/child-service.ts'
import { runCli } from '../helpers/run-cli.ts'

/** connection.js as postgres.js 3.4.9 publishes it: the repaired text without the repair's lines. */
function unrepair (text: string): string {
  return text.replaceAll(/\n {4}chunk = nextWriteTimer = null \/\* triggers-api: nextWriteTimer patch \*\//g, '')
}

test('the installed postgres.js carries the repair', () => {
  const { file, problem } = checkDriverRepair()
  assert.equal(problem, null, `${file}: ${String(problem)} — run npm install or node scripts/patch-postgres.js`)
})

test('the check refuses connection.js as published, and one whose write scheduler it does not know', async () => {
  const repaired = await readFile(checkDriverRepair().file, 'utf8')
  assert.equal(missingRepair(repaired), null)
  const published = unrepair(repaired)
  assert.notEqual(published, repaired, 'the repair lines were found and removed')
  assert.match(missingRepair(published) ?? '', /^line \d+ cancels the pending write without clearing nextWriteTimer$/)
  assert.match(missingRepair('function write () {}') ?? '', /not the one the repair knows \(0 of 3 places\)/)
})

test('serve refuses to start on an unrepaired postgres.js, with one line', async t => {
  const root = await mkdtemp(path.join(tmpdir(), 'triggers-unrepaired-'))
  t.after(async () => { await rm(root, { recursive: true, force: true }) })
  for (const dir of ['src', 'sql', 'generated']) await cp(path.join(ROOT, dir), path.join(root, dir), { recursive: true })
  await cp(path.join(ROOT, 'package.json'), path.join(root, 'package.json'))
  await mkdir(path.join(root, 'node_modules'))
  for (const name of await readdir(path.join(ROOT, 'node_modules'))) {
    if (name !== 'postgres') await symlink(path.join(ROOT, 'node_modules', name), path.join(root, 'node_modules', name))
  }
  // postgres.js as `npm ci --ignore-scripts` leaves it.
  const pg = path.join(root, 'node_modules', 'postgres')
  await cp(path.join(ROOT, 'node_modules', 'postgres'), pg, { recursive: true })
  for (const rel of ['src/connection.js', 'cjs/src/connection.js']) {
    await writeFile(path.join(pg, rel), unrepair(await readFile(path.join(pg, rel), 'utf8')))
  }

  // DATABASE_URL is never reached: the check comes before anything connects or listens.
  const run = await runCli(['serve'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', PORT: '0', METRICS_PORT: '0' }, root)
  const { code, stderr: err, stdout: out } = run
  assert.equal(code, 2, `stderr: ${err}`)
  const lines = err.trimEnd().split('\n')
  assert.equal(lines.length, 1, err)
  assert.match(lines[0]!, /^triggers-api: postgres\.js lacks the write-timer repair \(.*node_modules\/postgres\/src\/connection\.js: line \d+ cancels the pending write without clearing nextWriteTimer\); run `npm install` or `node scripts\/patch-postgres\.js`, then start again$/)
  assert.equal(out, '', 'nothing started')
})
