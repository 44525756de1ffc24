/**
 * The service as a separate process, the way an operator runs it: `node --import tsx src/cli.ts serve`
 * (or any other entry, e.g. `scripts/start.js`) with exactly the environment given (plus PATH/HOME),
 * stdout and stderr captured, readiness awaited on GET /health (and the `listening` log line). For
 * tests of signals, exit codes and logs. Cleanup only ever signals the child this helper started, by its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import type { TestContext } from 'node:test'
import { waitFor } from './db.ts'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export interface Exit { readonly code: number | null, readonly signal: NodeJS.Signals | null, readonly at: number }

export interface ChildService {
  readonly child: ChildProcess
  readonly pid: number
  readonly base: string
  /** Resolves when the process has exited and its output is complete; `at` is performance.now(). */
  readonly exited: Promise<Exit>
  stdout (): string
  stderr (): string
  /** True until the process has exited. */
  running (): boolean
  /** SIGTERM, then SIGKILL after `graceMs` if it is still running (for cleanup after failures). */
  ensureStopped (graceMs?: number): Promise<Exit>
}

export interface SpawnOptions {
  /** Arguments after `node` (default: --import tsx src/cli.ts serve). */
  readonly args?: readonly string[]
  /** Port the API listens on (the env's PORT). */
  readonly port: number
  /** How long to wait for readiness (default 30 s). */
  readonly readyTimeoutMs?: number
  /**
   * Also wait for the primary's `listening` log line (start-up complete: every listener thread up,
   * signal handlers installed). /health answers as soon as the first listener does. Default: true
   * when LOG_LEVEL lets info lines through.
   */
  readonly waitForStarted?: boolean
}

const INFO_OR_MORE = new Set(['info', 'debug', 'trace'])

export async function spawnService (env: Record<string, string>, o: SpawnOptions): Promise<ChildService> {
  const child = spawn(process.execPath, [...(o.args ?? ['--import', 'tsx', 'src/cli.ts', 'serve'])], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (child.pid === undefined) throw new Error('the service process did not start')
  const pid = child.pid
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
  let done = false
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => { done = true; resolve({ code, signal, at: performance.now() }) })
  })
  const base = `http://127.0.0.1:${o.port}`
  const svc: ChildService = {
    child,
    pid,
    base,
    exited,
    stdout: () => out,
    stderr: () => err,
    running: () => !done,
    async ensureStopped (graceMs = 20_000) {
      if (done) return await exited
      child.kill('SIGTERM')
      const timer = setTimeout(() => { if (!done) child.kill('SIGKILL') }, graceMs)
      try { return await exited } finally { clearTimeout(timer) }
    },
  }
  try {
    await waitFor(async () => {
      if (done) throw new Error(`the service exited before it was ready\nstdout:\n${out}\nstderr:\n${err}`)
      try {
        const r = await request(base + '/health', { reset: true })
        await r.body.dump()
        return r.statusCode === 200
      } catch {
        return false // not listening yet: poll again
      }
    }, o.readyTimeoutMs ?? 30_000, 'GET /health on the spawned service')
    if (o.waitForStarted ?? INFO_OR_MORE.has(env.LOG_LEVEL ?? 'info')) {
      await waitFor(() => {
        if (done) throw new Error(`the service exited during start-up\nstdout:\n${out}\nstderr:\n${err}`)
        return /"msg":"listening"/.test(out)
      }, o.readyTimeoutMs ?? 30_000, 'the service to log that it is listening')
    }
  } catch (e) {
    await svc.ensureStopped(5000)
    throw e
  }
  return svc
}

/** The process's stdout as pino JSON lines (throws on a line that is not JSON). */
export function jsonLines (text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    const v: unknown = JSON.parse(line)
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`not a JSON object line: ${line}`)
    out.push(v as Record<string, unknown>)
  }
  return out
}

/**
 * node:test runs `t.after` hooks in registration order; cleanups usually must run in reverse (stop
 * the service before dropping its database). Returns `defer(fn)`: every deferred fn runs, last first;
 * the first error is rethrown after all have run.
 */
export function deferrer (t: Pick<TestContext, 'after'>): (fn: () => unknown) => void {
  const fns: Array<() => unknown> = []
  t.after(async () => {
    let first: unknown = null
    for (const fn of fns.reverse()) {
      try { await fn() } catch (err) { first ??= err }
    }
    if (first !== null) throw first
  })
  return fn => { fns.push(fn) }
}
