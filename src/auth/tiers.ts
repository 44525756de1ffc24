/** Tiers and their per-minute request limits (the contract, docs/api.md "Rate limiting"). Pure module. */
export const TIERS = ['free', 'pro', 'business', 'enterprise'] as const
export type Tier = typeof TIERS[number]

export const TIER_LIMITS: Readonly<Record<Tier, number>> = {
  free: 100,
  pro: 1_000,
  business: 10_000,
  enterprise: 100_000,
}

export function isTier (s: unknown): s is Tier {
  return typeof s === 'string' && (TIERS as readonly string[]).includes(s)
}
