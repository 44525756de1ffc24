/**
 * SSRF rules. Refusals only: nothing here connects anywhere except a local receiver that must see zero
 * requests. Names are resolved by an injected resolver (no real DNS), except `localhost`, which the
 * system resolves from /etc/hosts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { checkWebhookUrl, guardedLookup, isPublicAddress, NonPublicAddressError, type Resolver } from '../../src/webhooks/ssrf.ts'
import { Dispatcher, Target } from '../../src/delivery/dispatch.ts'
import type { AttemptResult } from '../../src/delivery/retry-policy.ts'
import { ClaimedDelivery } from '../../src/db/queries/claim-deliveries.ts'

const NOT_PUBLIC = [
  '0.0.0.0', '0.1.2.3', '10.0.0.1', '10.255.255.255', '100.64.0.1', '100.127.255.255', '127.0.0.1', '127.255.0.1',
  '169.254.169.254', '172.16.0.1', '172.31.255.255', '192.0.0.8', '192.168.0.1', '192.168.255.255', '198.18.0.1',
  '198.19.255.255', '224.0.0.1', '239.255.255.250', '240.0.0.1', '255.255.255.255',
  '::', '::1', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'febf::1', 'fe80::1%eth0', 'ff02::1', 'ff00::',
  '::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:a9fe:a9fe', '::ffff:0.0.0.0',
  '::127.0.0.1', '::ffff:0:7f00:1', '64:ff9b::7f00:1', '64:ff9b::10.1.2.3',
  'not-an-ip', '', 'localhost',
]
const PUBLIC = [
  '8.8.8.8', '1.1.1.1', '93.184.216.34', '9.255.255.255', '11.0.0.0', '100.63.255.255', '100.128.0.0', '126.255.255.255',
  '128.0.0.0', '169.253.255.255', '169.255.0.0', '172.15.255.255', '172.32.0.0', '192.0.1.0', '192.167.255.255',
  '192.169.0.0', '198.17.255.255', '198.20.0.0', '223.255.255.255',
  '2606:4700:4700::1111', '2001:4860:4860::8888', 'fbff::1', 'fec0::1', '::ffff:8.8.8.8', '64:ff9b::808:808', '::2:0:0:1',
]

test('isPublicAddress: every listed non-public range, and their neighbours', () => {
  for (const ip of NOT_PUBLIC) assert.equal(isPublicAddress(ip), false, ip)
  for (const ip of PUBLIC) assert.equal(isPublicAddress(ip), true, ip)
})

function resolver (table: Record<string, readonly string[] | null>): Resolver & { calls: string[] } {
  const calls: string[] = []
  const fn = async (host: string): Promise<readonly string[] | null> => {
    calls.push(host)
    if (!(host in table)) throw new Error(`unexpected DNS lookup of ${host}`)
    return table[host] ?? null
  }
  return Object.assign(fn, { calls })
}

test('not absolute http(s), empty, too long or with credentials: refused', async () => {
  const r = resolver({ 'example.com': ['93.184.216.34'] })
  for (const raw of ['', ' ', 'not a url', '/relative/path', 'example.com/hook', 'ftp://example.com/', 'javascript:alert(1)',
    'file:///etc/passwd', 'ws://example.com/', 'data:text/plain,hi', 'http://user:pass@example.com/', 'https://user@example.com/']) {
    const res = await checkWebhookUrl(raw, false, r)
    assert.equal(res.ok, false, JSON.stringify(raw))
    assert.equal(res.ok, false)
    if (!res.ok) assert.ok(res.reason.length > 0)
  }
  const base = 'https://example.com/'
  const exact = base + 'a'.repeat(2048 - base.length)
  assert.deepEqual(await checkWebhookUrl(exact, false, r), { ok: true, url: exact })
  assert.equal((await checkWebhookUrl(exact + 'a', false, r)).ok, false)
  assert.equal((await checkWebhookUrl(exact + 'a', true, r)).ok, false)
})

test('numeric host forms are normalized by WHATWG URL and refused', async () => {
  const r = resolver({})
  const forms: Array<[string, string]> = [
    ['http://2130706433/', 'http://127.0.0.1/'],
    ['http://0x7f.1/', 'http://127.0.0.1/'],
    ['http://127.1/', 'http://127.0.0.1/'],
    ['http://0177.0.0.1/', 'http://127.0.0.1/'],
    ['http://0x7f000001/', 'http://127.0.0.1/'],
    ['http://017700000001/', 'http://127.0.0.1/'],
    ['http://0/', 'http://0.0.0.0/'],
    ['http://10.1/', 'http://10.0.0.1/'],
    ['http://192.168.257/', 'http://192.168.1.1/'],
    ['http://[::ffff:127.0.0.1]/', 'http://[::ffff:7f00:1]/'],
    ['http://[0:0:0:0:0:ffff:7f00:1]/', 'http://[::ffff:7f00:1]/'],
    ['http://[::127.0.0.1]/', 'http://[::7f00:1]/'],
  ]
  for (const [raw, normalized] of forms) {
    assert.equal(new URL(raw).href, normalized, `WHATWG normalization of ${raw}`)
    assert.equal((await checkWebhookUrl(raw, false, r)).ok, false, raw)
    assert.deepEqual(await checkWebhookUrl(raw, true, r), { ok: true, url: normalized })
  }
  for (const raw of ['http://127.0.0.1:8080/hook', 'https://10.0.0.1/', 'http://169.254.169.254/latest/meta-data/',
    'http://[::1]/', 'http://[::]/', 'http://[fe80::1]/', 'http://[fc00::1]/', 'http://[ff02::1]/', 'http://[::ffff:7f00:1]/',
    'http://100.64.0.1/', 'http://198.18.0.1/', 'http://224.0.0.1/', 'http://240.0.0.1/', 'http://192.0.0.1/', 'http://172.20.0.1/']) {
    assert.equal((await checkWebhookUrl(raw, false, r)).ok, false, raw)
  }
  assert.deepEqual(r.calls, [], 'IP literals need no DNS')
})

test('names are refused when any resolved address is non-public; unresolvable names are accepted', async () => {
  const r = resolver({
    'internal.example': ['10.0.0.5'],
    'mixed.example': ['93.184.216.34', '127.0.0.1'],
    'v6.example': ['::1'],
    'mapped.example': ['::ffff:192.168.0.10'],
    'public.example': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
    'nxdomain.example': null,
  })
  assert.equal((await checkWebhookUrl('https://internal.example/hook', false, r)).ok, false)
  assert.equal((await checkWebhookUrl('https://mixed.example/hook', false, r)).ok, false)
  assert.equal((await checkWebhookUrl('https://v6.example/hook', false, r)).ok, false)
  assert.equal((await checkWebhookUrl('https://mapped.example/hook', false, r)).ok, false)
  assert.deepEqual(await checkWebhookUrl('https://public.example/hook?x=1', false, r), { ok: true, url: 'https://public.example/hook?x=1' })
  assert.deepEqual(await checkWebhookUrl('https://nxdomain.example/hook', false, r), { ok: true, url: 'https://nxdomain.example/hook' })
  assert.deepEqual(await checkWebhookUrl('https://internal.example/hook', true, r), { ok: true, url: 'https://internal.example/hook' })
})

test('localhost (system resolver) is refused unless private targets are allowed', async () => {
  assert.equal((await checkWebhookUrl('http://localhost:3000/hook', false)).ok, false)
  assert.equal((await checkWebhookUrl('http://LOCALHOST./hook', false)).ok, false)
  assert.equal((await checkWebhookUrl('http://api.localhost/hook', false)).ok, false)
  assert.deepEqual(await checkWebhookUrl('http://localhost:3000/hook', true), { ok: true, url: 'http://localhost:3000/hook' })
})

test('guardedLookup refuses a name resolving to loopback, in both callback forms', async () => {
  for (const all of [false, true]) {
    const err = await new Promise<unknown>(resolve => {
      guardedLookup('localhost', { all }, (e) => { resolve(e) })
    })
    assert.ok(err instanceof NonPublicAddressError, `all=${String(all)}`)
  }
})

function delivery (url: string): ClaimedDelivery {
  return new ClaimedDelivery({
    organization_id: '00000000-0000-7000-8000-000000000001',
    event_id: '00000000-0000-7000-8000-000000000002',
    endpoint_id: '00000000-0000-7000-8000-000000000003',
    type: 't',
    payload: '{}',
    created_at: new Date(),
    attempts: 1,
    series_attempt: 1,
    trigger: 'initial',
  }, {
    organization_id: '00000000-0000-7000-8000-000000000001', id: '00000000-0000-7000-8000-000000000003', url, status: 'active',
    is_default: false, signing_secret: 'whsec_' + Buffer.alloc(32).toString('base64'), previous_secret: null, rate_limit: null,
    rate_period_seconds: null, max_concurrency: null, rate_tat: null, throttled_until: null, breaker_until: null,
    consecutive_failures: 0, leased: 0,
  })
}

/** A Dispatcher whose attempts resolve as promises (the scheduler gets them through its Settler). */
function dispatcher (allowPrivate: boolean): { d: Dispatcher, attempt: (url: string) => Promise<AttemptResult> } {
  const waiting = new Map<ClaimedDelivery, (r: AttemptResult) => void>()
  const d = new Dispatcher({ timeoutMs: 2000, connectionsPerOrigin: 2, allowPrivate, excerptBytes: 1024 }, {
    settled (c, r) { waiting.get(c)?.(r); waiting.delete(c) },
  })
  return {
    d,
    attempt: async url => await new Promise(resolve => {
      const c = delivery(url)
      waiting.set(c, resolve)
      d.attempt(c, new Target(new URL(url)))
    }),
  }
}

test('connect-time guard: refusal before any connection (local receiver sees zero requests)', async (t) => {
  let requests = 0
  let connections = 0
  const server = createServer((_req, res) => { requests++; res.end('ok') })
  server.on('connection', (s) => { connections++; s.on('error', () => {}) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>(resolve => server.close(() => resolve())))
  const port = (server.address() as AddressInfo).port
  const guarded = dispatcher(false)
  t.after(() => guarded.d.close())
  for (const url of [`http://localhost:${port}/hook`, `http://127.0.0.1:${port}/hook`, `http://[::ffff:127.0.0.1]:${port}/`]) {
    const r = await guarded.attempt(url)
    assert.equal(r.kind, 'refused', url)
    assert.equal(r.status, 0)
  }
  assert.equal(requests, 0)
  assert.equal(connections, 0)
  // The same receiver is reachable when private targets are allowed (proves the port was right).
  const open = dispatcher(true)
  t.after(() => open.d.close())
  const ok = await open.attempt(`http://localhost:${port}/hook`)
  assert.equal(ok.kind, 'success')
  assert.equal(requests, 1)
})
