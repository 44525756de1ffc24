/**
 * `npm run profile`: scenario 1 (ingest, 64 connections) against the service running under a
 * profiler, flamegraphs into bench/profiles/<date>/. Two modes:
 *
 *  0x (default)   `0x -- node dist/cli.js serve`. 0x runs node with V8's tick profiler (--prof), which
 *                 writes one isolate log per thread (primary, each listener, delivery, the Argon2
 *                 worker). 0x itself turns only ONE of them into flamegraph.html — the first log
 *                 file it finds, in practice the primary thread, which is nearly idle under load. So
 *                 afterwards every other isolate log is rendered too, each with
 *                 `0x --visualize-only` into its own folder named after the thread it belongs to
 *                 (found from the scripts that isolate compiled: dist/http/thread.js = listener, ...).
 *                 0x stops its target with process.exit() on SIGTERM (its soft-exit preload), so the
 *                 service does not drain; uWS then aborts the process at exit (the listener threads
 *                 still hold sockets) — expected, and harmless for the profile, which is complete by then.
 *  cpu-prof       `node --cpu-prof --cpu-prof-dir=... dist/cli.js serve`: V8's sampling profiler, one
 *                 .cpuprofile per thread, written when the thread exits (here the service drains
 *                 normally on SIGTERM). Each is rendered with `0x --visualize-cpu-profile`; the
 *                 .cpuprofile files also open in Chrome DevTools (Performance tab) or speedscope.
 *
 * The run itself (organizations, warm-up, measured 15 s, stored-rows check) is the same as in
 * `npm run bench`; throughput under a profiler is lower and is not a result.
 */
import path from 'node:path'
import { mkdir, readdir, readFile, rename, stat } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Child, waitHealthy } from './lib/child.ts'
import { progress } from './lib/progress.ts'

export type ProfileMode = '0x' | 'cpu-prof'

const ZERO_X = fileURLToPath(new URL('../node_modules/0x/cmd.js', import.meta.url))

export interface ProfileTarget { readonly port: number, readonly pid: number }

/** Which thread an isolate log or .cpuprofile belongs to, from the scripts it mentions. */
function threadKind (text: string): string {
  // Order matters: the primary's log also mentions argon2-worker (it creates that pool).
  if (text.includes('dist/cli.js')) return 'primary'
  if (text.includes('dist/http/thread.js')) return 'listener'
  if (text.includes('dist/delivery/thread.js')) return 'delivery'
  if (text.includes('argon2-worker')) return 'argon2'
  return 'thread'
}

/** The (first) child process of `pid`: the node process 0x started for us. */
function childPidOf (pid: number): number | null {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0]
    return first === undefined || first === '' ? null : Number(first)
  } catch { return null }
}

function render (args: string[]): boolean {
  const r = spawnSync(process.execPath, [ZERO_X, '-q', ...args], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 })
  return r.status === 0
}

export async function profileService<T> (mode: ProfileMode, dir: string, env: Record<string, string>,
  fn: (target: ProfileTarget) => Promise<T>): Promise<{ ingest: T, files: string[] }> {
  await mkdir(dir, { recursive: true })
  const port = Number(env.PORT)
  const files: string[] = []
  if (mode === 'cpu-prof') {
    const profDir = path.join(dir, 'cpuprofile')
    await mkdir(profDir, { recursive: true })
    const child = new Child({ name: 'service (cpu-prof)', args: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, 'dist/cli.js', 'serve'], env, port })
    let result: T
    try {
      await waitHealthy(child, '/health', 30_000, 20)
      result = await fn({ port, pid: child.pid })
    } finally {
      progress('stopping the service (it drains, then every thread writes its .cpuprofile)')
      await child.stop(30_000)
    }
    const counts = new Map<string, number>()
    for (const f of (await readdir(profDir)).filter(f => f.endsWith('.cpuprofile')).sort()) {
      const file = path.join(profDir, f)
      const kind = threadKind(await readFile(file, 'utf8'))
      const n = (counts.get(kind) ?? 0) + 1
      counts.set(kind, n)
      const name = `${kind}-${n}`
      progress(`rendering ${f} (${name}) with 0x --visualize-cpu-profile`)
      if (render(['--visualize-cpu-profile', file, '--name', name])) files.push(path.join(profDir, `${name}.html`))
      files.push(file)
    }
    return { ingest: result, files }
  }

  const work = path.join(dir, '0x-isolates')
  await mkdir(work, { recursive: true })
  const out = path.join(dir, '0x')
  const child = new Child({ name: 'service (0x)', args: [ZERO_X, '--working-dir', work, '--output-dir', out, '--', 'node', 'dist/cli.js', 'serve'], env, port })
  let result: T
  try {
    await waitHealthy(child, '/health', 60_000, 20)
    const pid = childPidOf(child.pid)
    if (pid === null) throw new Error('0x started no node process')
    result = await fn({ port, pid })
  } finally {
    // 0x waits for its target; the target (our grandchild) exits on SIGTERM through 0x's soft-exit preload.
    const target = childPidOf(child.pid)
    if (target !== null) { try { process.kill(target, 'SIGTERM') } catch { /* gone already */ } }
    progress('0x: the service is stopping; 0x renders the first isolate log (can take a minute)')
    await child.stop(180_000)
  }
  files.push(path.join(out, 'flamegraph.html'))
  const first = (await readdir(out)).find(f => f.startsWith('isolate-') && f.endsWith('-v8.log'))
  const firstKind = first === undefined ? 'primary' : threadKind(await readFile(path.join(out, first), 'utf8'))
  progress(`0x rendered the ${firstKind} thread into 0x/flamegraph.html; rendering the other threads`)
  const counts = new Map<string, number>([[firstKind, 1]])
  for (const f of (await readdir(work)).filter(f => f.startsWith('isolate-') && f.endsWith('-v8.log')).sort()) {
    const file = path.join(work, f)
    if ((await stat(file)).size === 0) continue
    const kind = threadKind(await readFile(file, 'utf8'))
    const n = (counts.get(kind) ?? 0) + 1
    counts.set(kind, n)
    const folder = path.join(dir, `0x-${kind}-${n}`)
    await mkdir(folder, { recursive: true })
    await rename(file, path.join(folder, f))
    progress(`rendering ${f} (${kind} ${n}) with 0x --visualize-only`)
    if (render(['--visualize-only', folder, '--name', 'flamegraph'])) files.push(path.join(folder, 'flamegraph.html'))
  }
  return { ingest: result, files }
}
