/**
 * Where the project's files are, for code that reads them at run time (package.json, sql/,
 * generated/, worker entry files). The code runs from src/ under tsx (tests, development) and from
 * dist/ when built — where each thread's entry is one bundle (scripts/build.js), so a module's own
 * location says nothing about where it came from. The root is found once, by walking up from this
 * module to the nearest package.json; every path is taken from it.
 */
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

function findRoot (): string {
  const start = path.dirname(fileURLToPath(import.meta.url))
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${start}`)
  }
}

/** The directory holding package.json, sql/ and generated/. */
export const PROJECT_ROOT = findRoot()

/** True under tsx (this module is src/lib/project-root.ts), false in the built dist/. */
export const FROM_SOURCE = import.meta.url.endsWith('.ts')

/** A file or directory under the project root. */
export function projectPath (...parts: string[]): string {
  return path.join(PROJECT_ROOT, ...parts)
}

/**
 * A thread entry module by its path under src/ without extension ('http/thread'): src/…/x.ts under
 * tsx, dist/…/x.js when built (each is one bundle there).
 */
export function entryUrl (relativeToSrc: string): URL {
  return pathToFileURL(FROM_SOURCE ? projectPath('src', relativeToSrc + '.ts') : projectPath('dist', relativeToSrc + '.js'))
}
