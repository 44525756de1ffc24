/**
 * Runs `node --import tsx src/cli.ts <args>` to completion in `cwd` (the project by default) with
 * exactly the environment given (plus PATH/HOME), for tests of start-up refusals: exit code and the
 * complete stdout and stderr.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { ROOT } from './child-service.ts'

export interface CliRun { readonly code: number | null, readonly stdout: string, readonly stderr: string }

export async function runCli (args: readonly string[], env: Record<string, string>, cwd = ROOT): Promise<CliRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}
