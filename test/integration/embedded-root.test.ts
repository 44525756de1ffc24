/**
 * The embedded PostgreSQL started as root from a private directory (src/db/embedded.ts). As root the
 * cluster runs as the OS user postgres, which cannot enter a mode-700 directory: instead of initdb's
 * raw EACCES, start-up stops with one line naming the directory in the way and what to do. Runs only
 * as root (elsewhere there is nothing to check).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { embeddedPreflight } from '../../src/db/embedded.ts'
import { runCli } from '../helpers/run-cli.ts'

const asRoot = process.getuid?.() === 0

async function privateDir (t: { after: (fn: () => Promise<void>) => void }, mode: number): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'triggers-private-'))
  t.after(async () => { await rm(dir, { recursive: true, force: true }) })
  await chmod(dir, mode)
  return dir
}

const LINE = /^running as root, the embedded PostgreSQL runs as the OS user postgres, which cannot enter (\S+) \(mode 0700\) to reach DATA_DIR (\S+): set DATA_DIR to a directory that user can reach \(e\.g\. \/var\/lib\/triggers-api\), run as a non-root user, or set DATABASE_URL$/

test('a DATA_DIR under a mode-700 directory: the preflight names it and what to do', { skip: !asRoot && 'only as root' }, async t => {
  const dir = await privateDir(t, 0o700)
  const m = LINE.exec(await embeddedPreflight(path.join(dir, 'app', '.data')) ?? '')
  assert.ok(m !== null)
  assert.equal(m[1], dir)
  assert.equal(m[2], path.join(dir, 'app', '.data'))
  // Without a setting that moves the data (npm test), it says to move the project instead.
  assert.match(await embeddedPreflight(path.join(dir, '.test-data'), null) ?? '', /to reach its data directory .*: put the project where that user can reach it, run as a non-root user, or set DATABASE_URL$/)
  // Reachable: nothing to say.
  const open = await privateDir(t, 0o755)
  assert.equal(await embeddedPreflight(path.join(open, '.data')), null)
})

for (const [command, exitCode] of [['serve', 2], ['migrate', 1]] as const) {
  test(`${command} with DATA_DIR under a mode-700 directory stops with one line and creates nothing`, { skip: !asRoot && 'only as root' }, async t => {
    const dir = await privateDir(t, 0o700)
    const dataDir = path.join(dir, '.data')
    // serve checks before it starts anything; migrate (and keygen) meet the same check in startEmbedded.
    const run = await runCli([command], { DATA_DIR: dataDir, PORT: '0', METRICS_PORT: '0' })
    assert.equal(run.code, exitCode, run.stderr)
    const lines = run.stderr.trimEnd().split('\n')
    assert.equal(lines.length, 1, run.stderr)
    assert.ok(lines[0]!.startsWith('triggers-api: '), lines[0])
    assert.match(lines[0]!.slice('triggers-api: '.length), LINE)
    assert.equal(run.stdout, '', 'nothing started')
    if (command === 'serve') await assert.rejects(stat(dataDir), { code: 'ENOENT' })
  })
}
