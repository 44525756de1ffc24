/**
 * An embedded cluster made by another PostgreSQL major version (src/db/embedded.ts): after the
 * embedded binaries moved from 17 to 18, an old DATA_DIR does not start. `serve` stops with one line
 * saying so and what to do, without touching the data; the test runner's scratch data (disposable)
 * is no problem — it is made anew.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { embeddedPreflight } from '../../src/db/embedded.ts'
import { runCli } from '../helpers/run-cli.ts'

const LINE = /^(\S+) holds a PostgreSQL 17 cluster, and this version embeds PostgreSQL (\d+): move \1 aside to start with an empty database \(dump it first with PostgreSQL 17's pg_dump to keep its data\), or set DATABASE_URL$/

test('a DATA_DIR made by PostgreSQL 17: serve stops with one line and leaves the data alone', async t => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'triggers-pg17-'))
  t.after(async () => { await rm(dataDir, { recursive: true, force: true }) })
  await chmod(dataDir, 0o755) // reachable by the postgres OS user when this runs as root
  const cluster = path.join(dataDir, 'pg')
  await mkdir(cluster, { recursive: true })
  await writeFile(path.join(cluster, 'PG_VERSION'), '17\n')

  const m = LINE.exec(await embeddedPreflight(dataDir) ?? '')
  assert.ok(m !== null)
  assert.equal(m[1], cluster)
  assert.notEqual(m[2], '17')
  assert.equal(await embeddedPreflight(dataDir, null, true), null, 'scratch data is made anew instead')

  const run = await runCli(['serve'], { DATA_DIR: dataDir, PORT: '0', METRICS_PORT: '0' })
  assert.equal(run.code, 2, run.stderr)
  const lines = run.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, run.stderr)
  assert.match(lines[0]!.slice('triggers-api: '.length), LINE)
  assert.equal(run.stdout, '')
  assert.equal(await readFile(path.join(cluster, 'PG_VERSION'), 'utf8'), '17\n', 'the data was not touched')
})
