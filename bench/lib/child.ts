/**
 * Child processes the bench starts (the service, the baselines, the cold-start probes): spawned with
 * an explicit environment, their output kept in a bounded ring for diagnosis, and stopped by pid with
 * SIGTERM, then SIGKILL after a deadline. Every live child is in `children`, so the Ctrl-C handler
 * and the final cleanup can stop exactly the processes this run started and nothing else.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { readFile } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { sleep } from './progress.ts'

export const REPO_ROOT = new URL('../../', import.meta.url)

export interface ChildSpec {
  readonly name: string
  readonly args: readonly string[] // arguments to `node` (process.execPath)
  readonly env: Readonly<Record<string, string>>
  readonly port: number
  /** An IPC channel to the child (process.send / 'message'): the receiver and the ceiling client. */
  readonly ipc?: boolean
}

const RING_BYTES = 64 * 1024
export const children = new Set<Child>()

export class Child {
  readonly name: string
  readonly port: number
  readonly proc: ChildProcess
  readonly spawnedAt: number
  readonly exited: Promise<number | string>
  #out = ''
  /** Lines that look like pino warnings or errors (level 40+) or uncaught errors. */
  warnings = 0
  exitCode: number | string | null = null

  constructor (spec: ChildSpec) {
    this.name = spec.name
    this.port = spec.port
    this.spawnedAt = performance.now()
    this.proc = spawn(process.execPath, [...spec.args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...spec.env },
      stdio: spec.ipc === true ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
      // Own process group: a Ctrl-C in the terminal reaches only the bench, which then stops its
      // children in order (a second signal would make the service skip its drain).
      detached: true,
    })
    children.add(this)
    const onData = (chunk: Buffer): void => {
      const s = chunk.toString('utf8')
      const m = s.match(/"level":[456]0|^\w*Error\b/gm)
      if (m !== null) this.warnings += m.length
      this.#out = (this.#out + s).slice(-RING_BYTES)
    }
    this.proc.stdout?.on('data', onData)
    this.proc.stderr?.on('data', onData)
    this.exited = new Promise(resolve => {
      this.proc.once('exit', (code, signal) => {
        this.exitCode = code ?? signal ?? 'unknown'
        children.delete(this)
        resolve(this.exitCode)
      })
    })
  }

  get pid (): number { return this.proc.pid ?? -1 }

  /** Waits for the first IPC message with `type` (rejects if the child exits or `timeoutMs` passes). */
  nextMessage<T extends { type: string }> (type: string, timeoutMs = 30_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: unknown): void => {
        if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === type) { done(); resolve(m as T) }
      }
      const onExit = (): void => { done(); reject(new Error(`${this.name} exited (${String(this.exitCode)}) before sending "${type}":\n${this.output()}`)) }
      const timer = setTimeout(() => { done(); reject(new Error(`${this.name} sent no "${type}" within ${timeoutMs} ms:\n${this.output()}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.proc.off('message', onMessage); this.proc.off('exit', onExit) }
      this.proc.on('message', onMessage)
      this.proc.once('exit', onExit)
    })
  }
  get running (): boolean { return this.exitCode === null }
  output (lastBytes = 4000): string { return this.#out.slice(-lastBytes) }

  /** SIGTERM, wait up to `graceMs`, then SIGKILL. Resolves with the exit code or signal. */
  async stop (graceMs = 20_000): Promise<number | string> {
    if (!this.running) return this.exitCode ?? 'unknown'
    this.proc.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<null>(resolve => { timer = setTimeout(resolve, graceMs, null) })
    const code = await Promise.race([this.exited, timedOut])
    clearTimeout(timer)
    if (code !== null) return code
    this.proc.kill('SIGKILL')
    return await this.exited
  }
}

/** One GET with a short timeout and no keep-alive; resolves with the status, or 0 on any error. */
export function probe (port: number, path: string, timeoutMs: number): Promise<number> {
  return new Promise(resolve => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, res => {
      res.resume()
      res.once('end', () => { resolve(res.statusCode ?? 0) })
      res.once('error', () => { resolve(0) })
    })
    req.once('timeout', () => { req.destroy() })
    req.once('error', () => { resolve(0) })
    req.end()
  })
}

/**
 * Polls GET `path` every `everyMs` until it answers 200; resolves with the time (performance.now())
 * the 200 arrived. Rejects if the child exits or `timeoutMs` passes.
 */
export async function waitHealthy (child: Child, path = '/health', timeoutMs = 30_000, everyMs = 5): Promise<number> {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (!child.running) throw new Error(`${child.name} exited (${String(child.exitCode)}) before answering ${path}:\n${child.output()}`)
    const t = performance.now()
    const status = await probe(child.port, path, 100)
    if (status === 200) return performance.now()
    const wait = everyMs - (performance.now() - t)
    if (wait > 0) await sleep(wait)
  }
  throw new Error(`${child.name} did not answer ${path} with 200 within ${timeoutMs} ms:\n${child.output()}`)
}

export async function startChild (spec: ChildSpec, timeoutMs = 30_000): Promise<Child> {
  const child = new Child(spec)
  try {
    await waitHealthy(child, '/health', timeoutMs, 20)
  } catch (err) {
    await child.stop(5000)
    throw err
  }
  return child
}

// Last resort if the bench exits without cleaning up (a crash): no child outlives it.
process.on('exit', () => {
  for (const c of children) { try { c.proc.kill('SIGKILL') } catch { /* already gone */ } }
})

/** Stops every child still running (used on failure and Ctrl-C). */
export async function stopAllChildren (graceMs = 15_000): Promise<void> {
  await Promise.all([...children].map(async c => await c.stop(graceMs)))
}

/** Resident set size (VmRSS) of a process in bytes, from /proc: all its threads share one address space. */
export async function readRss (pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
    return m === null ? null : Number(m[1]) * 1024
  } catch { return null }
}

/** Peak resident set size (VmHWM) of a process in bytes. */
export async function readHwm (pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)
    return m === null ? null : Number(m[1]) * 1024
  } catch { return null }
}

/** CPU seconds (user + system, all threads) a process has used, from /proc/<pid>/stat. */
export async function readCpuSeconds (pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // After the command name: state is field 3, utime 14 and stime 15 (1-based), i.e. index 11 and 12 here.
    const ticks = Number(fields[11]) + Number(fields[12])
    return ticks / CLOCK_TICKS
  } catch { return null }
}

const CLOCK_TICKS = 100 // sysconf(_SC_CLK_TCK) on Linux x64/arm64
