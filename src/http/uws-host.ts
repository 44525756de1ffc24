/**
 * The facts about this host that http/uws-choice.ts decides on — Node ABI and version, platform,
 * architecture, glibc (from process.report) and which uWS build packages are installed — and the
 * start-up pre-flight: main.ts asks `uwsPreflight()` before starting anything, so a host where no
 * build can work stops with one plain line instead of failing listener threads. Loads no binary.
 */
import { createRequire } from 'node:module'
import { sep } from 'node:path'
import { chooseUws, noUwsLine, UWS_BUILDS, type UwsHost } from './uws-choice.ts'

const require = createRequire(import.meta.url)

/** The glibc version at run time (Linux only; null on musl or elsewhere). */
function glibcVersion (): string | null {
  if (process.platform !== 'linux') return null
  // The network part of a report does DNS work (≈50 ms); only the header is read here. (Node ≥ 20.13
  // has `excludeNetwork`; @types/node 20 does not declare it.)
  const report = process.report as NodeJS.ProcessReport & { excludeNetwork?: boolean }
  const excluded = report.excludeNetwork
  report.excludeNetwork = true
  try {
    const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
    return header?.glibcVersionRuntime ?? null
  } finally {
    report.excludeNetwork = excluded
  }
}

/**
 * The installed package's directory (with a trailing separator), or null. Resolving runs nothing.
 * (The v20.57 package's `exports` hides its package.json, so the entry point is resolved.)
 */
function packageDir (pkg: string): string | null {
  let entry: string
  try { entry = require.resolve(pkg) } catch { return null }
  const marker = `node_modules${sep}${pkg.split('/').join(sep)}${sep}`
  const i = entry.lastIndexOf(marker)
  return i < 0 ? null : entry.slice(0, i + marker.length)
}

/** Installed build packages → their directories. */
export function installedUwsDirs (): Map<string, string> {
  const dirs = new Map<string, string>()
  for (const b of UWS_BUILDS) {
    const d = packageDir(b.pkg)
    if (d !== null) dirs.set(b.pkg, d)
  }
  return dirs
}

export function currentHost (dirs: ReadonlyMap<string, string>): UwsHost {
  return {
    abi: Number(process.versions.modules),
    nodeVersion: process.version,
    platform: process.platform,
    arch: process.arch,
    glibc: glibcVersion(),
    installed: new Set(dirs.keys()),
  }
}

/** The line to stop start-up with when no build has a binary for this host, else null. */
export function uwsPreflight (): string | null {
  const host = currentHost(installedUwsDirs())
  const choice = chooseUws(host)
  return choice.candidates.length > 0 ? null : noUwsLine(host, choice, [])
}
