/**
 * Loads the native uWebSockets.js binary explicitly. The package's own loader silently falls back to
 * a slow pure-JS imitation when the binary does not load; we never allow that: the binary for this
 * platform, architecture and Node ABI is required directly, and anything else stops start-up with one
 * clear line. Supported: Linux x64/arm64 (glibc ≥ 2.27), macOS x64/arm64, Windows x64, on Node 16, 18
 * and 20 (ABI 93, 108, 115) — the binaries shipped in @trufflesuite/uws-js-unofficial@20.30.0.
 */
import { createRequire } from 'node:module'
import type * as UWS from '@trufflesuite/uws-js-unofficial'

export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket as ListenSocket } from '@trufflesuite/uws-js-unofficial'

const require = createRequire(import.meta.url)

function load (): typeof UWS {
  const file = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`
  let pkgDir: string
  try {
    pkgDir = require.resolve('@trufflesuite/uws-js-unofficial/package.json').slice(0, -'package.json'.length)
  } catch (err) {
    throw new Error('uWebSockets.js is not installed: run `npm install`', { cause: err })
  }
  try {
    return require(`${pkgDir}binaries/${file}`) as typeof UWS
  } catch (err) {
    throw new Error(
      `uWebSockets.js has no working native binary ${file} for Node ${process.version} on ` +
      `${process.platform}/${process.arch}. Supported: Node 16, 18 or 20 on Linux x64/arm64 with glibc >= 2.27, ` +
      'macOS x64/arm64, Windows x64. The slow JavaScript fallback is refused on purpose.', { cause: err })
  }
}

export const uws: typeof UWS = load()
