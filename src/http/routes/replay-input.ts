/**
 * The time window of a replay body: `since` (ISO-8601, optional unless required) and `until`
 * (optional, exclusive). An unparsable time is 400 `invalid_event` with `details` (the contract, docs/api.md). Pure.
 */
import { ApiError } from '../../errors.ts'
import type { Body } from '../pipeline.ts'

export interface ReplayWindow { readonly since: Date | null, readonly until: Date | null }

function time (body: NonNullable<Body>, name: 'since' | 'until', required: boolean): Date | null {
  const raw = body[name]
  if (raw === undefined || raw === null) {
    if (required) throw new ApiError('invalid_event', `${name} is required`, { details: { [name]: 'is required for status missed' } })
    return null
  }
  const t = typeof raw === 'string' ? new Date(raw) : new Date(NaN)
  if (Number.isNaN(t.getTime())) throw new ApiError('invalid_event', `${name} must be an ISO-8601 time`, { details: { [name]: 'must be an ISO-8601 time' } })
  return t
}

export function parseReplayWindow (body: NonNullable<Body>, sinceRequired: boolean): ReplayWindow {
  return { since: time(body, 'since', sinceRequired), until: time(body, 'until', false) }
}
