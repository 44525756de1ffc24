/**
 * SSRF rules for webhook targets (the contract, docs/api.md "Webhook delivery", POST /api/webhook/config). Two checks share one predicate,
 * `isPublicAddress`:
 *
 *   configuration time  checkWebhookUrl: absolute http(s), ≤ 2048 chars, no userinfo, and — unless
 *                       private targets are allowed — a host that neither is nor resolves to a
 *                       non-public address (a name that does not resolve is accepted: DNS may be down).
 *   connection time     guardedLookup (undici `connect.lookup`): every address the name resolves to
 *                       when the socket is opened must be public, so a DNS change after configuration
 *                       (rebinding) cannot reach the inside. IP-literal hosts never reach a lookup
 *                       function, so the dispatcher checks them with `isPublicAddress` before connecting.
 *
 * Numeric host forms (`http://2130706433/`, `http://0x7f.1/`, `http://127.1/`, `[::ffff:7f00:1]`) are
 * normalized by the WHATWG URL parser before we look at them; the tests pin that behaviour.
 * Runs on listener threads (config route) and the delivery thread (connect guard).
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'
import { isIP, type LookupFunction } from 'node:net'

export const MAX_WEBHOOK_URL_LENGTH = 2048
/** How long configuration waits for DNS before accepting the name as unresolvable. */
const RESOLVE_TIMEOUT_MS = 3000

// IPv4 ranges that are not public, as [network, prefix length] (the contract's list in docs/api.md, exactly).
const V4_BLOCKED: ReadonlyArray<readonly [number, number]> = [
  [v4('0.0.0.0'), 8], [v4('10.0.0.0'), 8], [v4('100.64.0.0'), 10], [v4('127.0.0.0'), 8],
  [v4('169.254.0.0'), 16], [v4('172.16.0.0'), 12], [v4('192.0.0.0'), 24], [v4('192.168.0.0'), 16],
  [v4('198.18.0.0'), 15], [v4('224.0.0.0'), 4], [v4('240.0.0.0'), 4],
]
const V4_MASKS: readonly number[] = V4_BLOCKED.map(([, bits]) => bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0)

function v4 (dotted: string): number {
  const p = dotted.split('.')
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0
}

function isPublicV4 (n: number): boolean {
  for (let i = 0; i < V4_BLOCKED.length; i++) {
    if (((n & V4_MASKS[i]!) >>> 0) === V4_BLOCKED[i]![0]) return false
  }
  return true
}

/** The eight 16-bit groups of a syntactically valid IPv6 address (as accepted by net.isIP), or null. */
function v6Groups (ip: string): number[] | null {
  let s = ip
  const zone = s.indexOf('%')
  if (zone !== -1) s = s.slice(0, zone)
  const lastColon = s.lastIndexOf(':')
  if (s.indexOf('.', lastColon) !== -1) {
    // Embedded dotted IPv4 in the last 32 bits (::ffff:1.2.3.4): rewrite it as two hex groups.
    const n = v4(s.slice(lastColon + 1))
    s = s.slice(0, lastColon + 1) + (n >>> 16).toString(16) + ':' + (n & 0xffff).toString(16)
  }
  const parse = (part: string): number[] => part === '' ? [] : part.split(':').map(h => parseInt(h, 16))
  const dbl = s.indexOf('::')
  let groups: number[]
  if (dbl === -1) {
    groups = parse(s)
  } else {
    const head = parse(s.slice(0, dbl))
    const rest = parse(s.slice(dbl + 2))
    const fill = 8 - head.length - rest.length
    if (fill < 0) return null
    groups = head.concat(new Array<number>(fill).fill(0), rest)
  }
  if (groups.length !== 8 || groups.some(g => !(g >= 0 && g <= 0xffff))) return null
  return groups
}

function isPublicV6 (g: readonly number[]): boolean {
  const g0 = g[0]!
  const zero = (from: number, to: number): boolean => { for (let i = from; i < to; i++) if (g[i] !== 0) return false; return true }
  const embedded = (): number => ((g[6]! << 16) | g[7]!) >>> 0
  if (zero(0, 8)) return false // ::
  if (zero(0, 7) && g[7] === 1) return false // ::1
  if ((g0 & 0xfe00) === 0xfc00) return false // fc00::/7 unique local
  if ((g0 & 0xffc0) === 0xfe80) return false // fe80::/10 link local
  if ((g0 & 0xff00) === 0xff00) return false // ff00::/8 multicast
  // IPv4 carried inside IPv6 reaches the IPv4 address, so it is judged by the IPv4 list:
  if (zero(0, 5) && g[5] === 0xffff) return isPublicV4(embedded()) // ::ffff:0:0/96 mapped
  if (zero(0, 6)) return isPublicV4(embedded()) // ::/96 compatible (deprecated)
  if (zero(0, 4) && g[4] === 0xffff && g[5] === 0) return isPublicV4(embedded()) // ::ffff:0:0:0/96 translated
  if (g0 === 0x64 && g[1] === 0xff9b && zero(2, 6)) return isPublicV4(embedded()) // 64:ff9b::/96 NAT64
  return true
}

/** True when `ip` is an IP address outside every non-public range; anything that is not an IP is false. */
export function isPublicAddress (ip: string): boolean {
  const family = isIP(ip)
  if (family === 4) return isPublicV4(v4(ip))
  if (family === 6) {
    const g = v6Groups(ip)
    return g !== null && isPublicV6(g)
  }
  return false
}

/** The host of a parsed URL without IPv6 brackets. */
export function urlHost (u: URL): string {
  const h = u.hostname
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h
}

export type UrlCheck = { ok: true, url: string } | { ok: false, reason: string }

/** Resolves a name to all its addresses; null when it does not resolve (or not in time). */
export type Resolver = (host: string) => Promise<readonly string[] | null>

/** The default resolver: dns.lookup with all: true (the system resolver, as connections use), bounded in time. */
export function resolveAll (host: string): Promise<readonly string[] | null> {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, RESOLVE_TIMEOUT_MS, null)
    dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => {
      clearTimeout(timer)
      resolve(err === null ? addresses.map(a => a.address) : null)
    })
  })
}

function refuse (reason: string): UrlCheck {
  return { ok: false, reason }
}

/**
 * Validates a webhook URL for configuration. On success `url` is the WHATWG-normalized href (what is
 * stored and used to connect; e.g. `http://2130706433/` would become `http://127.0.0.1/`).
 * `resolve` is injectable so tests never query a real resolver for names.
 */
export async function checkWebhookUrl (raw: string, allowPrivate: boolean, resolve: Resolver = resolveAll): Promise<UrlCheck> {
  if (raw.length === 0) return refuse('webhook_url must not be empty')
  if (raw.length > MAX_WEBHOOK_URL_LENGTH) return refuse(`webhook_url must be at most ${MAX_WEBHOOK_URL_LENGTH} characters`)
  let u: URL
  try { u = new URL(raw) } catch { return refuse('webhook_url must be an absolute http or https URL') }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return refuse('webhook_url must be an absolute http or https URL')
  if (u.href.length > MAX_WEBHOOK_URL_LENGTH) return refuse(`webhook_url must be at most ${MAX_WEBHOOK_URL_LENGTH} characters`)
  // Userinfo would silently not be sent (deliveries carry exactly the documented headers), so refuse it.
  if (u.username !== '' || u.password !== '') return refuse('webhook_url must not contain credentials')
  const host = urlHost(u)
  if (host === '') return refuse('webhook_url must have a host')
  if (!allowPrivate) {
    if (isIP(host) !== 0) {
      if (!isPublicAddress(host)) return refuse('webhook_url host is a non-public address')
    } else {
      // RFC 6761 §6.3: localhost names are loopback whatever DNS says (and "localhost." may not resolve
      // here yet resolve at connect time elsewhere), so refuse them without asking.
      const name = host.endsWith('.') ? host.slice(0, -1) : host
      if (name === 'localhost' || name.endsWith('.localhost')) return refuse('webhook_url host is a loopback name')
      const addresses = await resolve(host)
      if (addresses !== null) {
        for (const a of addresses) {
          if (!isPublicAddress(a)) return refuse('webhook_url host resolves to a non-public address')
        }
      }
    }
  }
  return { ok: true, url: u.href }
}

/** The error a connection gets when its host resolves to a non-public address. */
export class NonPublicAddressError extends Error {
  readonly code = 'ERR_WEBHOOK_NON_PUBLIC_ADDRESS'
  readonly address: string
  constructor (address: string) {
    super('webhook host resolves to a non-public address')
    this.name = 'NonPublicAddressError'
    this.address = address
  }
}

function onLookup (this: { options: LookupOptions, callback: Parameters<LookupFunction>[2] }, err: NodeJS.ErrnoException | null, addresses: LookupAddress[]): void {
  const cb = this.callback
  if (err !== null) { cb(err, '', 0); return }
  for (const a of addresses) {
    if (!isPublicAddress(a.address)) { cb(new NonPublicAddressError(a.address), '', 0); return }
  }
  const first = addresses[0]
  if (first === undefined) { cb(Object.assign(new Error('no addresses'), { code: 'ENOTFOUND' }), '', 0); return }
  if (this.options.all === true) cb(null, addresses)
  else cb(null, first.address, first.family)
}

/**
 * A `lookup` for net/tls.connect (undici `connect.lookup`) that refuses the connection when any resolved
 * address is non-public, before a socket is opened. Handles both callback forms (`all` is set when
 * Node's happy-eyeballs autoSelectFamily is on).
 */
export const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { family: options.family, hints: options.hints, all: true }, onLookup.bind({ options, callback }))
}
