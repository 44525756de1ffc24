/** The service version, read once from package.json (User-Agent, OpenAPI info). */
import { readFileSync } from 'node:fs'
import { projectPath } from './lib/project-root.ts'

function readVersion (): string {
  const pkg: unknown = JSON.parse(readFileSync(projectPath('package.json'), 'utf8'))
  if (pkg !== null && typeof pkg === 'object' && 'version' in pkg && typeof pkg.version === 'string') return pkg.version
  return '0.0.0'
}

export const VERSION = readVersion()
