/**
 * API key format: `zap_live_` + 55 URL-safe characters from a CSPRNG, 64 characters in all. The first
 * 16 random characters are the non-secret lookup part (indexed in organizations.key_lookup, so a row is
 * found without hashing); the whole key is what Argon2id hashes. Pure module.
 */
import { randomBytes } from 'node:crypto'
import type { OrganizationRow } from '../db/queries/organizations.ts'
import { TIER_LIMITS } from './tiers.ts'

export const KEY_PREFIX = 'zap_live_'
export const KEY_LENGTH = 64
const LOOKUP_LENGTH = 16
const KEY_RE = /^zap_live_[A-Za-z0-9_-]{55}$/

/** A new key: 55 characters of base64url from 42 random bytes (56 characters, one dropped). */
export function generateApiKey (): string {
  return KEY_PREFIX + randomBytes(42).toString('base64url').slice(0, KEY_LENGTH - KEY_PREFIX.length)
}

/** True when `key` has the shape of a key (the cheap check done before any lookup). */
export function isWellFormedKey (key: string): boolean {
  return key.length === KEY_LENGTH && KEY_RE.test(key)
}

/** The non-secret lookup part of a well-formed key. */
export function keyLookup (key: string): string {
  return key.slice(KEY_PREFIX.length, KEY_PREFIX.length + LOOKUP_LENGTH)
}

export const GENERATED_MESSAGE = "Save this API key securely - it won't be shown again"

/** The body of a key generation (POST /api/keys/generate and `triggers-api keygen`): the key, once. */
export function generatedKeyBody (key: string, org: OrganizationRow): Record<string, unknown> {
  return {
    api_key: key,
    organization_id: org.id,
    organization_name: org.name,
    tier: org.tier,
    rate_limit_per_minute: TIER_LIMITS[org.tier],
    created_at: org.created_at.toISOString(),
    message: GENERATED_MESSAGE,
  }
}
