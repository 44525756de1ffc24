/** What the results came from: CPU, cores, memory, OS, Node, PostgreSQL, git commit, load average. */
import os from 'node:os'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly memoryBytes: number
  readonly os: string
  readonly node: string
  readonly postgres: string
  readonly postgresSettings: Record<string, string>
  readonly database: 'DATABASE_URL' | 'embedded'
  readonly gitCommit: string
  readonly gitDirty: boolean
  readonly loadAverageAtStart: readonly number[]
  readonly packages: Record<string, string>
}

const root = fileURLToPath(new URL('../../', import.meta.url))

function git (args: string[]): string {
  try { return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() } catch { return '' }
}

function pkgVersion (name: string): string {
  try {
    return (JSON.parse(readFileSync(`${root}node_modules/${name}/package.json`, 'utf8')) as { version: string }).version
  } catch { return 'missing' }
}

export function machineInfo (postgres: string, postgresSettings: Record<string, string>, embedded: boolean, loadAverageAtStart: readonly number[]): Machine {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    postgres,
    postgresSettings,
    database: embedded ? 'embedded' : 'DATABASE_URL',
    gitCommit: git(['rev-parse', 'HEAD']) || 'unknown',
    gitDirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    loadAverageAtStart,
    packages: Object.fromEntries(['autocannon', 'undici', 'fastify', 'pg', 'postgres', '@trufflesuite/uws-js-unofficial', '0x']
      .map(n => [n, pkgVersion(n)])),
  }
}

export function describeMachine (m: Machine): string {
  const gb = (m.memoryBytes / 2 ** 30).toFixed(0)
  const pg = /PostgreSQL [\d.]+/.exec(m.postgres)?.[0] ?? m.postgres
  return `${m.cpu}, ${m.cores} cores, ${gb} GB RAM, ${m.os}, Node ${m.node}, ${pg} (${m.database}), ` +
    `commit ${m.gitCommit.slice(0, 10)}${m.gitDirty ? ' (with uncommitted changes)' : ''}, ` +
    `load average at start ${m.loadAverageAtStart.map(x => x.toFixed(2)).join(' ')}`
}
