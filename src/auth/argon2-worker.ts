/**
 * Piscina task module: Argon2id hashing and verification off every event loop that serves requests.
 * Runs in the Argon2 pool's worker threads. Parameters are @node-rs/argon2's defaults for Argon2id
 * (19 MiB memory, 2 passes, 1 lane: the OWASP minimum), recorded in each hash string, so a future
 * change of parameters still verifies old hashes.
 */
import { hash, verify } from '@node-rs/argon2'

export interface Argon2Task {
  /** 'warm' does nothing: it only makes the pool start a thread ahead of a burst of verifications. */
  readonly op: 'hash' | 'verify' | 'warm'
  readonly input: string
  readonly hash: string
}

export default async function run (task: Argon2Task): Promise<string | boolean> {
  if (task.op === 'warm') return true
  if (task.op === 'hash') // @node-rs/argon2 defaults to Argon2id.
  return await hash(task.input)
  try {
    return await verify(task.hash, task.input)
  } catch {
    // A malformed stored hash verifies nothing; the caller answers 401 like any wrong key.
    return false
  }
}
