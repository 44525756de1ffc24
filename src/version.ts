/** The service version, read once from package.json (User-Agent, OpenAPI info). */
import { readFileSync } from 'node:fs'

function readVersion (): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  if (pkg !== null && typeof pkg === 'object' && 'version' in pkg && typeof pkg.version === 'string') return pkg.version
  return '0.0.0'
}

export const VERSION = readVersion()
