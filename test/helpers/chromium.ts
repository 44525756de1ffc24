/**
 * Debian's Chromium (/usr/bin/chromium), driven by playwright-core, for checking /docs as a person
 * sees it. Used by test/integration/docs-browser.test.ts and scripts/screenshot-docs.ts.
 *
 * `ensureChromium()` installs the `chromium` package with apt-get when it is missing and this process
 * may (root, apt-get present) — .ci/run does the same up front — and otherwise says why it cannot.
 * `openBrowser()` starts it headless with a fresh profile and no background traffic of its own
 * (no component updates, sync, QUIC or first-run work), so every request it makes comes from the page.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-quic', '--no-first-run', '--disable-sync',
]

/** Null when Chromium is there (installing it if need be), else why it is not. */
export function ensureChromium (): string | null {
  if (existsSync(CHROMIUM)) return null
  if (process.getuid?.() !== 0) return `${CHROMIUM} is missing and this user may not install it (run \`apt-get install -y chromium\` as root)`
  if (!existsSync('/usr/bin/apt-get')) return `${CHROMIUM} is missing and there is no apt-get to install it with`
  const apt = (args: string[]): void => {
    execFileSync('apt-get', ['-o', 'DPkg::Lock::Timeout=120', ...args], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000 })
  }
  try {
    try { apt(['install', '-y', 'chromium']) } catch { apt(['update']); apt(['install', '-y', 'chromium']) }
  } catch (err) {
    return `${CHROMIUM} is missing and \`apt-get install -y chromium\` failed: ${(err as Error).message.split('\n')[0] ?? ''}`
  }
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is still missing after \`apt-get install -y chromium\``
}

export interface Browser {
  readonly context: BrowserContext
  close (): Promise<void>
}

/** Headless Chromium with a fresh --user-data-dir (Playwright passes it), removed on close. */
export async function openBrowser (viewport = { width: 1280, height: 800 }): Promise<Browser> {
  const profile = mkdtempSync(path.join(tmpdir(), 'triggers-chromium-'))
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport })
  } catch (err) {
    rmSync(profile, { recursive: true, force: true })
    throw err
  }
  return {
    context,
    async close () {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}
