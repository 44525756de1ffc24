/**
 * Key management: POST /api/keys/generate (public, limited per client IP), GET /api/keys and
 * POST /api/keys/rotate. A key is returned exactly once; only its Argon2id hash is stored. Rotation
 * evicts the old key from every listener of this node, and NOTIFYs the other nodes, before answering
 * (primary/eviction-handshake.ts; primary/rotation-watch.ts polls as a fallback). Listener threads only.
 */
import type { Ctx } from '../context.ts'
import type { Services } from '../services.ts'
import type { Body } from '../pipeline.ts'
import { send } from '../reply.ts'
import { serialize } from '../serializers.ts'
import { ApiError } from '../../errors.ts'
import { generateApiKey, generatedKeyBody, keyLookup } from '../../auth/api-key.ts'
import { isTier, TIER_LIMITS, type Tier } from '../../auth/tiers.ts'
import { findOrganization, insertOrganization, rotateKey } from '../../db/queries/organizations.ts'
import { dbError, isUniqueViolation } from '../../db/errors.ts'
import { randomUUID } from 'node:crypto'
import { codePoints } from '../../lib/text.ts'

const ROTATED_MESSAGE = 'API key rotated successfully - update your applications immediately'

function parseGenerate (body: Body): { name: string, tier: Tier } {
  if (body === null) throw new ApiError('invalid_json')
  const raw = body.organization_name ?? body.org_name
  if (raw === undefined || raw === null) {
    throw new ApiError('missing_field', 'Missing required field: organization_name', { field: 'organization_name' })
  }
  const details: Record<string, string> = {}
  let name = ''
  if (typeof raw !== 'string') details.organization_name = 'must be a string'
  else {
    name = raw.trim()
    if (name.length === 0) details.organization_name = 'must not be blank'
    else if (name.length > 255 && codePoints(name) > 255) details.organization_name = 'must be at most 255 characters'
  }
  const tier = body.tier ?? 'free'
  if (!isTier(tier)) details.tier = 'must be one of free, pro, business, enterprise'
  if (Object.keys(details).length > 0 || !isTier(tier)) throw new ApiError('validation_error', undefined, { details })
  return { name, tier }
}

export async function generateKey (ctx: Ctx, s: Services, body: Body): Promise<void> {
  const { name, tier } = parseGenerate(body)
  for (let attempt = 0; ; attempt++) {
    const key = generateApiKey()
    const keyHash = await s.argon2.hash(key)
    try {
      const org = await insertOrganization(s.sql, { id: randomUUID(), name, tier, keyLookup: keyLookup(key), keyHash })
      send(ctx, 201, serialize.generated(generatedKeyBody(key, org)))
      return
    } catch (err) {
      // A lookup-part collision (96 random bits) is astronomically rare; draw a new key once.
      if (isUniqueViolation(err) && attempt === 0) continue
      throw dbError(err)
    }
  }
}

export async function keyInfo (ctx: Ctx, s: Services): Promise<void> {
  const auth = ctx.auth
  if (auth === null) throw new ApiError('unauthorized')
  let org
  try { org = await findOrganization(s.sql, auth.organizationId) } catch (err) { throw dbError(err) }
  if (org === null) throw new ApiError('unauthorized')
  send(ctx, 200, serialize.keyInfo({
    organization_id: org.id,
    organization_name: org.name,
    tier: org.tier,
    rate_limit_per_minute: TIER_LIMITS[org.tier],
    webhook_url: org.webhook_url,
    endpoints_count: org.endpoints_count,
    created_at: org.created_at.toISOString(),
    updated_at: org.updated_at.toISOString(),
  }))
}

export async function rotate (ctx: Ctx, s: Services): Promise<void> {
  const auth = ctx.auth
  if (auth === null) throw new ApiError('unauthorized')
  const key = generateApiKey()
  const keyHash = await s.argon2.hash(key)
  let rotatedAt: Date | null
  try { rotatedAt = await rotateKey(s.sql, auth.organizationId, keyLookup(key), keyHash) } catch (err) { throw dbError(err) }
  if (rotatedAt === null) throw new ApiError('unauthorized')
  // The old key must fail on every thread before the new one is handed out.
  await s.evictEverywhere(auth.organizationId)
  send(ctx, 200, serialize.rotated({ api_key: key, rotated_at: rotatedAt.toISOString(), message: ROTATED_MESSAGE }))
}
