#!/usr/bin/env node
// `npm run build`: type-check src/ (tsc, tsconfig.build.json), then bundle each thread's entry into
// one file with esbuild — dist/cli.js (the primary, and the migrate/keygen commands),
// dist/http/thread.js, dist/delivery/thread.js, dist/auth/argon2-worker.js. Code an entry imports
// only on demand (the embedded PostgreSQL, keygen, /metrics, the OpenAPI builder) goes to
// dist/chunks/. Packages stay in node_modules (never bundled). A thread then loads one or two files
// of its own instead of up to ~70 modules (README "Performance"). Code that reads files at run time
// finds them from the project root, not from its own module (src/lib/project-root.ts).
//
// dist/.build-stamp records a successful build (scripts/ensure-build.js compares it with src/).
// Files in dist/ that this build did not write (earlier builds' chunks, the per-module files tsc
// used to emit) are removed afterwards.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = path.join(root, 'dist')

/** Every thread's entry module under src/, without extension: each becomes dist/<entry>.js. */
const ENTRIES = ['cli', 'http/thread', 'delivery/thread', 'auth/argon2-worker']

function typecheck () {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root })
  return r.status === 0
}

/**
 * One build per entry, so that a thread loads its own bundle and nothing another thread needs; with
 * splitting on, only what an entry imports on demand (`await import(…)`) goes to a chunk of its own.
 */
async function bundle () {
  const esbuild = await import('esbuild')
  const results = await Promise.all(ENTRIES.map(e => esbuild.build({
    absWorkingDir: root,
    entryPoints: { [e]: `src/${e}.ts` },
    outdir: dist,
    bundle: true,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
  })))
  const written = new Set(results.flatMap(r => Object.keys(r.metafile.outputs)).map(f => path.resolve(root, f)))
  removeStale(dist, written)
}

function removeStale (dir, keep) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) {
      removeStale(p, keep)
      if (readdirSync(p).length === 0) rmdirSync(p)
    } else if (!keep.has(p) && e.name !== '.build-stamp') {
      rmSync(p)
    }
  }
}

if (!existsSync(path.join(root, 'node_modules', 'esbuild')) || !existsSync(path.join(root, 'node_modules', 'typescript'))) {
  process.stderr.write('triggers-api: the build needs the dev dependencies (typescript, esbuild); run `npm install`\n')
  process.exit(1)
}
if (!typecheck()) process.exit(1)
await bundle()
writeFileSync(path.join(dist, '.build-stamp'), new Date().toISOString() + '\n')
