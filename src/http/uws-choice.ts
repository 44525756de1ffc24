/**
 * Which uWebSockets.js native binary this host loads — a pure function of the host, so every platform
 * rule is unit-tested on any machine (test/unit/uws-choice.test.ts); http/uws.ts gathers the host and
 * loads the result. Two builds are known, each a package of prebuilt binaries
 * `uws_<platform>_<arch>_<Node ABI>.node` (read from the published tarballs, not their docs):
 *
 * - `@btc-vision/uwebsockets.js@20.57.0` (uWS v20.57, maintained, optional dependency): Node 20, 22,
 *   24, 25 (ABI 115/127/137/141; no Node 21 or 23) on Linux x64/arm64 with glibc ≥ 2.38 (its Linux
 *   binaries need the GLIBC_2.38 symbol version), macOS x64/arm64, Windows x64. Preferred wherever it
 *   has a binary.
 * - `@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0` (uWS v20.30, dependency): Node 16, 18, 20
 *   (ABI 93/108/115) on Linux x64/arm64 with glibc ≥ 2.27, Linux arm (32-bit) with glibc ≥ 2.28, macOS
 *   x64/arm64, Windows x64. Used where the newer build cannot load: Node 20 on glibc < 2.38 (Debian 12,
 *   Ubuntu 22.04, RHEL 9), Node 16/18, 32-bit arm.
 *
 * Neither build works on musl (Alpine). Neither package's own JavaScript loader is used: the 20.30
 * package silently falls back to a slow pure-JS imitation when its binary does not load.
 */

export interface UwsBuild {
  readonly pkg: string
  readonly version: string
  /** The uWS release the binaries are built from. */
  readonly uws: string
  /** Node ABI (process.versions.modules) → Node major. */
  readonly abis: Readonly<Record<number, number>>
  /** `${platform}-${arch}` → the lowest glibc on Linux (null: not Linux, no glibc needed). */
  readonly targets: Readonly<Record<string, string | null>>
  /** Where the binary sits inside the package. */
  readonly dir: string
}

export const UWS_V20_57: UwsBuild = {
  pkg: '@btc-vision/uwebsockets.js',
  version: '20.57.0',
  uws: 'v20.57',
  abis: { 115: 20, 127: 22, 137: 24, 141: 25 },
  targets: { 'linux-x64': '2.38', 'linux-arm64': '2.38', 'darwin-x64': null, 'darwin-arm64': null, 'win32-x64': null },
  dir: '',
}

export const UWS_V20_30: UwsBuild = {
  pkg: '@trufflesuite/uws-js-unofficial',
  version: '20.30.0-unofficial.0',
  uws: 'v20.30',
  abis: { 93: 16, 108: 18, 115: 20 },
  targets: { 'linux-x64': '2.27', 'linux-arm64': '2.27', 'linux-arm': '2.28', 'darwin-x64': null, 'darwin-arm64': null, 'win32-x64': null },
  dir: 'binaries/',
}

/** In order of preference. */
export const UWS_BUILDS: readonly UwsBuild[] = [UWS_V20_57, UWS_V20_30]

export interface UwsHost {
  /** process.versions.modules */
  readonly abi: number
  /** process.version */
  readonly nodeVersion: string
  readonly platform: string
  readonly arch: string
  /** glibc at run time (process.report header `glibcVersionRuntime`); null when there is none (musl) or off Linux. */
  readonly glibc: string | null
  /** Names of the build packages that are installed. */
  readonly installed: ReadonlySet<string>
}

export interface UwsCandidate {
  readonly build: UwsBuild
  /** Path of the binary inside the package, e.g. `binaries/uws_linux_x64_115.node`. */
  readonly file: string
}

export interface UwsChoice {
  /** The binaries to try, best first (empty: none can work here). */
  readonly candidates: readonly UwsCandidate[]
  /** For each build not chosen, why — for the one line printed when nothing loads. */
  readonly rejected: readonly string[]
}

/** Numeric comparison of dotted versions ("2.36" < "2.38" < "2.100"). */
export function versionAtLeast (have: string, need: string): boolean {
  const a = have.split('.').map(Number)
  const b = need.split('.').map(Number)
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0
    const y = b[i] ?? 0
    if (Number.isNaN(x)) return false
    if (x !== y) return x > y
  }
  return true
}

function nodes (b: UwsBuild): string {
  return Object.values(b.abis).join('/')
}

/** Why `b` cannot run on `host`, or null when it has a binary for it and is installed. */
function unfit (b: UwsBuild, host: UwsHost): string | null {
  const name = `${b.pkg}@${b.version}`
  const target = `${host.platform}-${host.arch}`
  if (!(target in b.targets)) return `${name} has no binaries for ${host.platform}/${host.arch}`
  if (!(host.abi in b.abis)) return `${name} supports Node ${nodes(b)} only`
  const glibc = b.targets[target]
  if (glibc !== null && glibc !== undefined) {
    if (host.glibc === null) return `${name} needs glibc >= ${glibc} (this system has none: musl?)`
    if (!versionAtLeast(host.glibc, glibc)) return `${name} needs glibc >= ${glibc}, this system has ${host.glibc}`
  }
  if (!host.installed.has(b.pkg)) return `${name} is not installed (run \`npm install\`)`
  return null
}

export function chooseUws (host: UwsHost, builds: readonly UwsBuild[] = UWS_BUILDS): UwsChoice {
  const candidates: UwsCandidate[] = []
  const rejected: string[] = []
  for (const b of builds) {
    const why = unfit(b, host)
    if (why === null) candidates.push({ build: b, file: `${b.dir}uws_${host.platform}_${host.arch}_${host.abi}.node` })
    else rejected.push(why)
  }
  return { candidates, rejected }
}

/** What works, in one sentence (the end of the line printed when nothing loads). */
export const UWS_SUPPORTED = 'Supported: Node 20 on Linux x64/arm64 with glibc >= 2.27; Node 20, 22, 24 or 25 on Linux x64/arm64 with glibc >= 2.38, ' +
  'macOS x64/arm64 or Windows x64 (Node 16/18 and 32-bit Linux arm: the uWS v20.30 build).'

/** The single line printed when no binary loads; `failures` are the load errors of the candidates. */
export function noUwsLine (host: UwsHost, choice: UwsChoice, failures: readonly string[]): string {
  const where = `Node ${host.nodeVersion} (ABI ${host.abi}) on ${host.platform}/${host.arch}` +
    (host.platform === 'linux' ? (host.glibc === null ? ' without glibc' : ` with glibc ${host.glibc}`) : '')
  const reasons = [...failures, ...choice.rejected].map(r => r.replace(/\s+/g, ' ').trim())
  return `uWebSockets.js: no native binary loads for ${where}: ${reasons.join('; ')}. ${UWS_SUPPORTED} ` +
    'The slow JavaScript fallback is refused on purpose.'
}
