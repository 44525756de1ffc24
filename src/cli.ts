/**
 * The `triggers-api` command: `serve` (default), `migrate` (apply sql/ migrations and exit: a deploy
 * step), `keygen --org NAME [--tier T]` (create an organization and print its key once).
 */
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from './config/load.ts'
import { createDb } from './db/client.ts'
import { migrate } from './db/migrate.ts'
import { serve } from './main.ts'

const USAGE = `usage: triggers-api [serve | migrate | keygen --org NAME [--tier free|pro|business|enterprise]]`

async function withDatabase<T> (fn: (url: string) => Promise<T>): Promise<T> {
  const config = loadConfig()
  if (config.databaseUrl === null) {
    const { startEmbedded } = await import('./db/embedded.ts')
    const db = await startEmbedded(config.dataDir)
    try { return await fn(db.url) } finally { await db.stop() }
  }
  return await fn(config.databaseUrl)
}

export async function cli (argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv
  try {
    switch (command) {
      case 'serve':
        await serve()
        return -1
      case 'migrate':
        return await withDatabase(async url => {
          const sql = createDb({ url, max: 1, applicationName: 'triggers-migrate' })
          try {
            const applied = await migrate(sql)
            process.stdout.write(applied.length === 0 ? 'schema is up to date\n' : `applied migrations ${applied.join(', ')}\n`)
          } finally { await sql.end() }
          return 0
        })
      case 'keygen': {
        const { values } = parseArgs({ args: rest, options: { org: { type: 'string' }, tier: { type: 'string', default: 'free' } } })
        if (values.org === undefined) { process.stderr.write(USAGE + '\n'); return 2 }
        const { keygen } = await import('./auth/keygen.ts')
        const org = values.org
        const tier = values.tier ?? 'free'
        return await withDatabase(async url => {
          const out = await keygen(url, org, tier)
          process.stdout.write(JSON.stringify(out, null, 2) + '\n')
          return 0
        })
      }
      default:
        process.stderr.write(USAGE + '\n')
        return 2
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`triggers-api: configuration error: ${p}\n`)
      return 2
    }
    process.stderr.write(`triggers-api: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
}

const code = await cli(process.argv.slice(2))
if (code >= 0) process.exit(code)
