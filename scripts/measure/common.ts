/**
 * What the start-up and memory measurements share (scripts/measure-cold-start.ts,
 * scripts/measure-memory.ts): their flags, the variants they compare, a scratch database, the
 * service spawned as the Dockerfile's CMD runs it, and what /proc says about a process.
 *
 * Flags: --runs=N, --env=NAME=VALUE,… (every variant), --variant=LABEL:DIR[:NAME=VALUE,…]
 * (repeatable: another checkout's dist/ in DIR, or other settings; runs are interleaved variant by
 * variant so that all of them see the same machine load), --nice=N (see `enterOwnSession`).
 * DATABASE_URL names the server (a role that may CREATE DATABASE; default
 * postgres://postgres@127.0.0.1:5432/postgres).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createDb } from '../../src/db/client.ts'
import { readCpuSeconds } from '../../bench/lib/child.ts'

export const HERE = fileURLToPath(new URL('../..', import.meta.url))

export interface Variant { readonly label: string, readonly root: string, readonly env: Record<string, string> }

export interface Flags {
  readonly runs: number
  readonly nice: string | undefined
  readonly variants: readonly Variant[]
  readonly get: (name: string) => string | undefined
}

function parseEnv (s: string | undefined): Record<string, string> {
  return Object.fromEntries((s ?? '').split(',').filter(Boolean).map(kv => {
    const i = kv.indexOf('=')
    return [kv.slice(0, i), kv.slice(i + 1)]
  }))
}

export function parseFlags (argv: readonly string[], defaultRuns: number): Flags {
  const flags = argv.map(a => {
    const [k = '', ...v] = a.replace(/^--/, '').split('=')
    return [k, v.join('=')] as const
  })
  const get = (name: string): string | undefined => flags.findLast(([k]) => k === name)?.[1]
  const common = parseEnv(get('env'))
  const given = flags.filter(([k]) => k === 'variant').map(([, v]): Variant => {
    const [label = 'dist', dir = '', env] = v.split(':')
    return { label, root: path.resolve(dir === '' ? HERE : dir), env: { ...common, ...parseEnv(env) } }
  })
  return {
    runs: Number(get('runs') ?? defaultRuns),
    nice: get('nice'),
    variants: given.length > 0 ? given : [{ label: 'dist', root: HERE, env: common }],
    get,
  }
}

/**
 * --nice: Linux groups a session's processes for scheduling (autogroup) and weighs the groups against
 * each other, so a nice value only matters in a session of its own. The first call re-runs this script
 * detached (setsid) and exits with its code; in the re-run it sets the group's and the process's nice,
 * which the service inherits. Negative values need root. A busy machine does not become quiet: other
 * work still shares the caches, and PostgreSQL's backends keep their own priority.
 */
export async function enterOwnSession (nice: string | undefined): Promise<void> {
  if (nice === undefined) return
  if (process.env.MEASURE_OWN_SESSION === undefined) {
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      detached: true, stdio: 'inherit', env: { ...process.env, MEASURE_OWN_SESSION: '1' },
    })
    const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
    process.exit(code ?? 1)
  }
  try { writeFileSync('/proc/self/autogroup', nice) } catch {}
  os.setPriority(0, Number(nice))
}

/** CPU time (ms) a process has used so far, all its threads (NaN when /proc cannot tell). */
export const cpuMs = async (pid: number): Promise<number> => ((await readCpuSeconds(pid)) ?? NaN) * 1000

export const loadAverage = (): string => os.loadavg().map(n => n.toFixed(2)).join(' ')
export const round1 = (n: number): number => Math.round(n * 10) / 10

/** `node dist/cli.js <argv>` in `root`; its stdout. */
export function cli (root: string, env: Record<string, string>, ...argv: string[]): string {
  const r = spawnSync(process.execPath, ['dist/cli.js', ...argv], {
    cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'warn', ...env },
  })
  if (r.status !== 0) throw new Error(`node dist/cli.js ${argv.join(' ')} failed (${String(r.status)}): ${r.stderr}`)
  return r.stdout
}

/** A scratch database on DATABASE_URL's server, migrated by `root`'s dist/; `drop()` removes it. */
export async function scratchDatabase (root: string, prefix: string): Promise<{ url: string, drop: () => Promise<void> }> {
  const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
  const admin = createDb({ url: base, max: 1, applicationName: `${prefix}-admin` })
  const name = `${prefix}_${Date.now()}_${process.pid}`
  await admin.unsafe(`create database ${name}`)
  const u = new URL(base)
  u.pathname = `/${name}`
  const drop = async (): Promise<void> => {
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end({ timeout: 2 })
  }
  try {
    cli(root, { DATABASE_URL: u.href }, 'migrate')
  } catch (err) {
    await drop()
    throw err
  }
  return { url: u.href, drop }
}

/** The service as the Dockerfile's CMD runs it, with the bench's settings; output kept for errors. */
export class Service {
  readonly proc: ChildProcess
  readonly exited: Promise<number | null>
  exitCode: number | null | undefined = undefined
  #out = ''

  constructor (v: Variant, databaseUrl: string, port: number, metricsPort: number) {
    this.proc = spawn(process.execPath, ['dist/cli.js', 'serve'], {
      cwd: v.root,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'warn',
        DATABASE_URL: databaseUrl, HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: String(metricsPort),
        DELIVERY_ENABLED: 'true', ALLOW_PRIVATE_WEBHOOKS: 'true', KEYGEN_RATE_LIMIT_PER_MINUTE: '100000', ...v.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const keep = (d: Buffer): void => { this.#out = (this.#out + d.toString()).slice(-4000) }
    this.proc.stdout?.on('data', keep)
    this.proc.stderr?.on('data', keep)
    this.exited = new Promise(resolve => this.proc.once('exit', code => { this.exitCode = code; resolve(code) }))
  }

  get running (): boolean { return this.exitCode === undefined }
  get output (): string { return this.#out }

  /** SIGTERM (the service drains) and the exit code. */
  async stop (): Promise<number | null> {
    if (this.running) this.proc.kill('SIGTERM')
    return await this.exited
  }
}

/** Fields of /proc/<pid>/status in kB (VmRSS, VmHWM, RssAnon, RssFile, …). */
export function procStatusKb (pid: number): Record<string, number> {
  const out: Record<string, number> = {}
  try {
    for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+) kB$/.exec(line)
      if (m !== null) out[m[1]!] = Number(m[2])
    }
  } catch {}
  return out
}
