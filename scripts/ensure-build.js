// Builds dist/ with tsc when it is missing or older than any file in src/ (npm start runs compiled
// JavaScript; no TypeScript is compiled at start-up once the build is fresh).
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
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
  const sources = Math.max(newest(path.join(root, 'src')), statSync(path.join(root, 'tsconfig.build.json')).mtimeMs)
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= sources) return
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  if (!existsSync(tsc)) {
    process.stderr.write('triggers-api: dist/ is missing or stale and TypeScript is not installed; run `npm install` (or `npm run build`)\n')
    process.exit(1)
  }
  process.stderr.write('triggers-api: building dist/ (sources changed)\n')
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root })
  if (r.status !== 0) process.exit(r.status ?? 1)
  writeFileSync(stamp, new Date().toISOString() + '\n')
}
