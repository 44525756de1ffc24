// Builds dist/ (scripts/build.js: type check, then one bundle per thread entry) when it is missing or
// older than any file in src/, tsconfig.build.json or the build script itself (npm start runs compiled
// JavaScript; no TypeScript is compiled at start-up once the build is fresh).
import { existsSync, readdirSync, statSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = fileURLToPath(new URL('..', import.meta.url))
const stamp = path.join(root, 'dist', '.build-stamp')

function newest (dir) {
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return t
}

export function ensureBuild () {
  const sources = Math.max(newest(path.join(root, 'src')), ...['tsconfig.build.json', 'scripts/build.js'].map(f => statSync(path.join(root, f)).mtimeMs))
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= sources) return
  if (!existsSync(path.join(root, 'node_modules', 'typescript')) || !existsSync(path.join(root, 'node_modules', 'esbuild'))) {
    process.stderr.write('triggers-api: dist/ is missing or stale and the build tools are not installed; run `npm install` (or `npm run build`)\n')
    process.exit(1)
  }
  process.stderr.write('triggers-api: building dist/ (sources changed)\n')
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.js')], { stdio: 'inherit', cwd: root })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
