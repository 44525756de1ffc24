/**
 * Which uWebSockets.js binary each kind of host gets (http/uws-choice.ts), the one line printed when
 * none loads (http/uws.ts loadUws with a stand-in `require`), and the real binary on this machine.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chooseUws, noUwsLine, versionAtLeast, UWS_V20_30, UWS_V20_57, type UwsHost } from '../../src/http/uws-choice.ts'
import { loaded, loadUws } from '../../src/http/uws.ts'

const BOTH = new Set([UWS_V20_57.pkg, UWS_V20_30.pkg])
const ONLY_OLD = new Set([UWS_V20_30.pkg])

function host (over: Partial<UwsHost>): UwsHost {
  return { abi: 115, nodeVersion: 'v20.20.2', platform: 'linux', arch: 'x64', glibc: '2.36', installed: BOTH, ...over }
}

function chosen (h: UwsHost): string[] {
  return chooseUws(h).candidates.map(c => `${c.build.uws} ${c.file}`)
}

test('glibc versions compare numerically', () => {
  assert.equal(versionAtLeast('2.38', '2.38'), true)
  assert.equal(versionAtLeast('2.41', '2.38'), true)
  assert.equal(versionAtLeast('2.36', '2.38'), false)
  assert.equal(versionAtLeast('2.100', '2.38'), true)
  assert.equal(versionAtLeast('3', '2.38'), true)
  assert.equal(versionAtLeast('2', '2.27'), false)
  assert.equal(versionAtLeast('x.y', '2.27'), false)
})

test('Node 20 on glibc < 2.38 (Debian 12): only the v20.30 build', () => {
  assert.deepEqual(chosen(host({})), ['v20.30 binaries/uws_linux_x64_115.node'])
  assert.deepEqual(chosen(host({ arch: 'arm64', glibc: '2.35' })), ['v20.30 binaries/uws_linux_arm64_115.node'])
  assert.match(chooseUws(host({})).rejected.join(), /@btc-vision\/uwebsockets\.js@20\.57\.0 needs glibc >= 2\.38, this system has 2\.36/)
})

test('Node 20 on glibc >= 2.38 (Debian 13): v20.57 first, v20.30 as the second try', () => {
  assert.deepEqual(chosen(host({ glibc: '2.41' })), ['v20.57 uws_linux_x64_115.node', 'v20.30 binaries/uws_linux_x64_115.node'])
  assert.deepEqual(chosen(host({ glibc: '2.38', arch: 'arm64' })), ['v20.57 uws_linux_arm64_115.node', 'v20.30 binaries/uws_linux_arm64_115.node'])
})

test('Node 22, 24, 25: v20.57 only, and only with glibc >= 2.38 on Linux', () => {
  assert.deepEqual(chosen(host({ abi: 127, nodeVersion: 'v22.12.0', glibc: '2.41' })), ['v20.57 uws_linux_x64_127.node'])
  assert.deepEqual(chosen(host({ abi: 137, nodeVersion: 'v24.1.0', glibc: '2.39' })), ['v20.57 uws_linux_x64_137.node'])
  assert.deepEqual(chosen(host({ abi: 141, nodeVersion: 'v25.0.0', glibc: '2.41', arch: 'arm64' })), ['v20.57 uws_linux_arm64_141.node'])
  const old = chooseUws(host({ abi: 127, nodeVersion: 'v22.12.0' }))
  assert.deepEqual(old.candidates, [])
  assert.deepEqual(old.rejected, [
    '@btc-vision/uwebsockets.js@20.57.0 needs glibc >= 2.38, this system has 2.36',
    '@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0 supports Node 16/18/20 only',
  ])
})

test('Node 21 and 23 have no binary in either build', () => {
  for (const abi of [120, 131]) assert.deepEqual(chosen(host({ abi, glibc: '2.41' })), [])
})

test('Node 16 and 18: v20.30', () => {
  assert.deepEqual(chosen(host({ abi: 93, glibc: '2.31' })), ['v20.30 binaries/uws_linux_x64_93.node'])
  assert.deepEqual(chosen(host({ abi: 108, glibc: '2.41' })), ['v20.30 binaries/uws_linux_x64_108.node'])
})

test('macOS and Windows: v20.57 (no glibc involved), v20.30 behind it on Node 20', () => {
  assert.deepEqual(chosen(host({ platform: 'darwin', arch: 'arm64', glibc: null })), ['v20.57 uws_darwin_arm64_115.node', 'v20.30 binaries/uws_darwin_arm64_115.node'])
  assert.deepEqual(chosen(host({ platform: 'darwin', arch: 'x64', glibc: null, abi: 137 })), ['v20.57 uws_darwin_x64_137.node'])
  assert.deepEqual(chosen(host({ platform: 'win32', arch: 'x64', glibc: null, abi: 127 })), ['v20.57 uws_win32_x64_127.node'])
  assert.deepEqual(chosen(host({ platform: 'win32', arch: 'arm64', glibc: null })), [])
})

test('musl (no glibc), old glibc, 32-bit arm, other systems', () => {
  assert.deepEqual(chosen(host({ glibc: null })), [])
  assert.match(chooseUws(host({ glibc: null })).rejected.join(), /needs glibc >= 2\.38 \(this system has none: musl\?\)/)
  assert.deepEqual(chosen(host({ glibc: '2.24' })), [])
  assert.deepEqual(chosen(host({ arch: 'arm', glibc: '2.36' })), ['v20.30 binaries/uws_linux_arm_115.node'])
  assert.deepEqual(chosen(host({ arch: 'arm', abi: 127, glibc: '2.41' })), [])
  assert.deepEqual(chosen(host({ platform: 'freebsd', glibc: null })), [])
})

test('a build that is not installed is skipped (the newer one is optional)', () => {
  assert.deepEqual(chosen(host({ glibc: '2.41', installed: ONLY_OLD })), ['v20.30 binaries/uws_linux_x64_115.node'])
  const none = chooseUws(host({ abi: 127, glibc: '2.41', installed: ONLY_OLD }))
  assert.deepEqual(none.candidates, [])
  assert.match(none.rejected[0] ?? '', /@btc-vision\/uwebsockets\.js@20\.57\.0 is not installed \(run `npm install`\)/)
})

test('when nothing loads: one line naming the host, each reason, what is supported', () => {
  const h = host({ abi: 127, nodeVersion: 'v22.12.0', installed: BOTH })
  const line = noUwsLine(h, chooseUws(h), [])
  assert.doesNotMatch(line, /\n/)
  assert.match(line, /^uWebSockets\.js: no native binary loads for Node v22\.12\.0 \(ABI 127\) on linux\/x64 with glibc 2\.36: /)
  assert.match(line, /needs glibc >= 2\.38, this system has 2\.36; @trufflesuite\/uws-js-unofficial@20\.30\.0-unofficial\.0 supports Node 16\/18\/20 only\./)
  assert.match(line, /Supported: Node 20 on Linux x64\/arm64 with glibc >= 2\.27; Node 20, 22, 24 or 25 on Linux x64\/arm64 with glibc >= 2\.38/)
  assert.match(line, /The slow JavaScript fallback is refused on purpose\.$/)
})

test('loadUws: a candidate that fails to load is reported in the same single line, the next one is tried', () => {
  const h = host({ glibc: '2.41' })
  const dirs = new Map([[UWS_V20_57.pkg, '/x/new/'], [UWS_V20_30.pkg, '/x/old/']])
  const tried: string[] = []
  const ok = loadUws(h, dirs, path => {
    tried.push(path)
    if (path.startsWith('/x/new/')) throw new Error('/lib/libc.so.6: version `GLIBC_2.38\' not found\n(required by …)')
    return { App: () => null }
  })
  assert.deepEqual(tried, ['/x/new/uws_linux_x64_115.node', '/x/old/binaries/uws_linux_x64_115.node'])
  assert.equal(ok.build, UWS_V20_30)

  assert.throws(() => loadUws(h, dirs, () => { throw new Error('invalid ELF header\nmore') }), (err: Error) => {
    assert.doesNotMatch(err.message, /\n/)
    assert.match(err.message, /@btc-vision\/uwebsockets\.js@20\.57\.0 did not load uws_linux_x64_115\.node \(invalid ELF header\); @trufflesuite\/uws-js-unofficial@20\.30\.0-unofficial\.0 did not load binaries\/uws_linux_x64_115\.node \(invalid ELF header\)\./)
    assert.ok(Array.isArray(err.cause))
    return true
  })
})

test('this machine loads a native binary (never the JavaScript fallback) with the API the service uses', () => {
  assert.match(loaded.file, /\.node$/)
  const app = loaded.uws.App()
  for (const m of ['get', 'post', 'any', 'listen', 'close'] as const) assert.equal(typeof Reflect.get(app, m), 'function', `App.${m}`)
  assert.equal(typeof loaded.uws.us_listen_socket_close, 'function')
  assert.equal(typeof loaded.uws.us_socket_local_port, 'function')
  Reflect.apply(Reflect.get(app, 'close') as () => void, app, [])
})
