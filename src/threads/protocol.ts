/**
 * Messages between threads (STYLE C2): one discriminated union per direction, each with the protocol
 * version `v`. Everything that arrives through postMessage is `unknown` and is narrowed by `parse*`,
 * never cast. Errors travel as WireError ({code, message}) and are rebuilt from the catalogue.
 *
 *   primary ──workerData(WorkerInit)──▶ listener / delivery
 *   listener ──ListenerToPrimary──▶ primary ──PrimaryToListener──▶ listener
 *   primary ──PrimaryToDelivery──▶ delivery ──DeliveryToPrimary──▶ primary
 */
import type { Config } from '../config/load.ts'
import type { WireError } from '../errors.ts'

export const PROTOCOL_VERSION = 1

/** workerData for every thread the primary starts. */
export interface WorkerInit {
  readonly config: Config
  /** The resolved PostgreSQL URL (the embedded one when DATABASE_URL is unset). */
  readonly databaseUrl: string
  readonly threadIndex: number
  /** The port to listen on (listeners); the first listener may get 0 and report the real one. */
  readonly port: number
  /** Shared rate-limit tables (rate-limit/shared-window.ts); null for threads that do not limit. */
  readonly orgWindows: SharedArrayBuffer | null
  readonly ipWindows: SharedArrayBuffer | null
  /** This thread's metric slots (metrics/layout.ts); kept across restarts of the same thread. */
  readonly metrics: SharedArrayBuffer | null
  /**
   * Listeners: listen as soon as ready (a replacement thread), or build the app and wait for 'listen'
   * (start-up: threads boot while the primary applies migrations, and accept only after them).
   */
  readonly listenNow: boolean
}

export type ListenerToPrimary =
  | { v: 1, type: 'listening', port: number }
  | { v: 1, type: 'argon2', id: number, op: 'hash', input: string }
  | { v: 1, type: 'argon2', id: number, op: 'verify', input: string, hash: string }
  /** Evict an organization's keys from every listener; answered by 'evicted' with the same id. */
  | { v: 1, type: 'evict', id: number, organizationId: string }
  /** This listener processed the eviction `ack` (0 means none was asked for). */
  | { v: 1, type: 'evict-ack', ack: number }
  /** Events were committed: wake the delivery thread. */
  | { v: 1, type: 'committed', count: number }
  | { v: 1, type: 'drained' }
  /** An uncaught error: this listener stops accepting and drains; start a replacement now. */
  | { v: 1, type: 'retiring' }

export type PrimaryToListener =
  | { v: 1, type: 'argon2-result', id: number, ok: true, value: string | boolean }
  | { v: 1, type: 'argon2-result', id: number, ok: false, error: WireError }
  /** Evict an organization's keys; answer 'evict-ack' with `ack` when it is non-zero. */
  | { v: 1, type: 'evict', organizationId: string, ack: number }
  | { v: 1, type: 'evicted', id: number }
  /**
   * Drop every cached key. With `hold`, keep answering nothing from the cache (and caching nothing)
   * until a 'drop-caches' without it: the primary may have missed organization changes.
   */
  | { v: 1, type: 'drop-caches', hold: boolean }
  /** Stop listening, answer what was received, flush the writer, report 'drained'. */
  | { v: 1, type: 'drain' }
  /** Migrations are applied: start accepting connections (see WorkerInit.listenNow). */
  | { v: 1, type: 'listen' }

export type PrimaryToDelivery =
  | { v: 1, type: 'wake' }
  /** Stop claiming, let in-flight attempts finish (or release their leases), report 'stopped'. */
  | { v: 1, type: 'stop', deadlineMs: number }

export type DeliveryToPrimary =
  | { v: 1, type: 'ready' }
  | { v: 1, type: 'stopped' }

function isObj (m: unknown): m is Record<string, unknown> {
  return m !== null && typeof m === 'object'
}

function isWire (e: unknown): e is WireError {
  return isObj(e) && typeof e.code === 'string' && typeof e.message === 'string'
}

export function parseListenerToPrimary (m: unknown): ListenerToPrimary | null {
  if (!isObj(m) || m.v !== PROTOCOL_VERSION) return null
  switch (m.type) {
    case 'listening':
      return typeof m.port === 'number' ? { v: 1, type: 'listening', port: m.port } : null
    case 'argon2':
      if (typeof m.id !== 'number' || typeof m.input !== 'string') return null
      if (m.op === 'hash') return { v: 1, type: 'argon2', id: m.id, op: 'hash', input: m.input }
      if (m.op === 'verify' && typeof m.hash === 'string') return { v: 1, type: 'argon2', id: m.id, op: 'verify', input: m.input, hash: m.hash }
      return null
    case 'evict':
      return typeof m.id === 'number' && typeof m.organizationId === 'string' ? { v: 1, type: 'evict', id: m.id, organizationId: m.organizationId } : null
    case 'evict-ack':
      return typeof m.ack === 'number' ? { v: 1, type: 'evict-ack', ack: m.ack } : null
    case 'committed':
      return typeof m.count === 'number' ? { v: 1, type: 'committed', count: m.count } : null
    case 'drained':
      return { v: 1, type: 'drained' }
    case 'retiring':
      return { v: 1, type: 'retiring' }
    default:
      return null
  }
}

export function parsePrimaryToListener (m: unknown): PrimaryToListener | null {
  if (!isObj(m) || m.v !== PROTOCOL_VERSION) return null
  switch (m.type) {
    case 'argon2-result':
      if (typeof m.id !== 'number') return null
      if (m.ok === true && (typeof m.value === 'string' || typeof m.value === 'boolean')) return { v: 1, type: 'argon2-result', id: m.id, ok: true, value: m.value }
      if (m.ok === false && isWire(m.error)) return { v: 1, type: 'argon2-result', id: m.id, ok: false, error: m.error }
      return null
    case 'evict':
      return typeof m.organizationId === 'string' && typeof m.ack === 'number' ? { v: 1, type: 'evict', organizationId: m.organizationId, ack: m.ack } : null
    case 'evicted':
      return typeof m.id === 'number' ? { v: 1, type: 'evicted', id: m.id } : null
    case 'drop-caches':
      return typeof m.hold === 'boolean' ? { v: 1, type: 'drop-caches', hold: m.hold } : null
    case 'drain':
      return { v: 1, type: 'drain' }
    case 'listen':
      return { v: 1, type: 'listen' }
    default:
      return null
  }
}

export function parsePrimaryToDelivery (m: unknown): PrimaryToDelivery | null {
  if (!isObj(m) || m.v !== PROTOCOL_VERSION) return null
  if (m.type === 'wake') return { v: 1, type: 'wake' }
  if (m.type === 'stop' && typeof m.deadlineMs === 'number') return { v: 1, type: 'stop', deadlineMs: m.deadlineMs }
  return null
}

export function parseDeliveryToPrimary (m: unknown): DeliveryToPrimary | null {
  if (!isObj(m) || m.v !== PROTOCOL_VERSION) return null
  if (m.type === 'ready') return { v: 1, type: 'ready' }
  if (m.type === 'stopped') return { v: 1, type: 'stopped' }
  return null
}

export function parseWorkerInit (d: unknown): Omit<WorkerInit, 'config'> & { config: unknown } {
  if (!isObj(d) || typeof d.databaseUrl !== 'string' || typeof d.threadIndex !== 'number' || typeof d.port !== 'number') {
    throw new TypeError('invalid workerData')
  }
  const sab = (x: unknown): SharedArrayBuffer | null => x instanceof SharedArrayBuffer ? x : null
  return { config: d.config, databaseUrl: d.databaseUrl, threadIndex: d.threadIndex, port: d.port, orgWindows: sab(d.orgWindows), ipWindows: sab(d.ipWindows), metrics: sab(d.metrics), listenNow: d.listenNow !== false }
}
