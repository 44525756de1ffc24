/**
 * `triggers-api keygen`: creates an organization from the command line, hashing its key in this
 * process (no pool needed for one key), and returns what POST /api/keys/generate would.
 */
import { randomUUID } from 'node:crypto'
import { hash } from '@node-rs/argon2'
import { createDb } from '../db/client.ts'
import { migrate } from '../db/migrate.ts'
import { insertOrganization } from '../db/queries/organizations.ts'
import { generateApiKey, generatedKeyBody, keyLookup } from './api-key.ts'
import { isTier } from './tiers.ts'

export async function keygen (url: string, name: string, tier: string): Promise<Record<string, unknown>> {
  const trimmed = name.trim()
  if (trimmed.length === 0 || trimmed.length > 255) throw new Error('--org must be 1-255 characters')
  if (!isTier(tier)) throw new Error('--tier must be one of free, pro, business, enterprise')
  const sql = createDb({ url, max: 1, applicationName: 'triggers-keygen' })
  try {
    await migrate(sql)
    const key = generateApiKey()
    const keyHash = await hash(key) // Argon2id by default
    const org = await insertOrganization(sql, { id: randomUUID(), name: trimmed, tier, keyLookup: keyLookup(key), keyHash })
    return generatedKeyBody(key, org)
  } finally {
    await sql.end()
  }
}
