/**
 * Process entry for `npm start` / `triggers-api serve`: load the configuration once (a bad value stops
 * start-up with one line naming the variable), refuse to start, with one line, on a postgres.js without
 * its repair (db/driver-repair.ts) or where the embedded PostgreSQL cannot run (db/embedded.ts), start
 * the service, and stop it in order on SIGTERM or SIGINT, exiting 0 when drained. Fatal errors are
 * logged and exit non-zero (STYLE C5). Once the node serves, it caps how far V8 lets each thread's
 * heap grow between full collections (HEAP_GROWING_PERCENT).
 */
import { ConfigError, loadConfig, redactConfig, type Config } from './config/load.ts'
import { createLogger } from './log.ts'
import { startService, type RunningService } from './service.ts'
import { checkDriverRepair } from './db/driver-repair.ts'
import { uwsPreflight } from './http/uws-host.ts'
import { setFlagsFromString } from 'node:v8'

/**
 * After a full collection V8 lets a heap grow by up to 4× what survived before the next one. Under a
 * steady 2,000 req/s the listeners' old generations then filled with promoted garbage for ~10 s
 * between full collections: a sawtooth of ~35 MB in the resident set (2026-12-03, a busy 2-core
 * machine: max 193 MB without this cap, 158 MB with it), at no measurable CPU cost per request
 * (scripts/measure-memory.ts, README "Performance"). A process-wide V8 flag, read at every collection,
 * so it holds for every thread's isolate. Set once the listeners accept, not before: while the heaps
 * grow from nothing during start-up the cap only adds full collections (~12 % more CPU before the
 * first 201). `node --heap-growing-percent=N dist/cli.js serve` overrides it.
 */
const HEAP_GROWING_PERCENT = 30

function capHeapGrowth (): void {
  if (process.execArgv.some(a => a.startsWith('--heap-growing-percent') || a.startsWith('--heap_growing_percent'))) return
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
}

export async function serve (): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`triggers-api: configuration error: ${p}\n`)
      process.exit(2)
    }
    throw err
  }
  const noUws = uwsPreflight()
  if (noUws !== null) { process.stderr.write(`triggers-api: ${noUws}\n`); process.exit(2) }
  // Pools that a database outage can strand for good are worse than not starting (db/driver-repair.ts).
  const driver = checkDriverRepair()
  if (driver.problem !== null) {
    process.stderr.write(`triggers-api: postgres.js lacks the write-timer repair (${driver.file}: ${driver.problem}); run \`npm install\` or \`node scripts/patch-postgres.js\`, then start again\n`)
    process.exit(2)
  }
  if (config.databaseUrl === null) {
    const { embeddedPreflight } = await import('./db/embedded.ts')
    const problem = await embeddedPreflight(config.dataDir)
    if (problem !== null) { process.stderr.write(`triggers-api: ${problem}\n`); process.exit(2) }
  }
  const log = createLogger(config.logLevel, 'primary')
  process.on('uncaughtException', err => { log.fatal({ err }, 'uncaught exception'); process.exit(1) })
  process.on('unhandledRejection', err => { log.fatal({ err }, 'unhandled rejection'); process.exit(1) })
  log.info({ config: redactConfig(config) }, 'starting')
  // Signals are handled from here on: one arriving during start-up (the first listener already
  // answers) stops the service as soon as it has started, in order, instead of killing the process
  // with a listener mid-request and an embedded PostgreSQL left behind.
  let running: RunningService | null = null
  let signals = 0
  const stop = (svc: RunningService): void => {
    svc.stop().then(() => { process.exit(0) }, (err: unknown) => {
      log.fatal({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) { log.warn({ signal }, 'second signal: exiting now'); process.exit(1) }
    log.info({ signal, starting: running === null }, 'shutting down')
    const hard = setTimeout(() => { log.error('shutdown timed out'); process.exit(1) }, config.shutdownTimeoutMs + 5000)
    hard.unref()
    if (running !== null) stop(running)
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  try {
    running = await startService(config, log)
  } catch (err) {
    log.fatal({ err }, 'start-up failed')
    process.exit(1)
  }
  capHeapGrowth()
  if (signals > 0) stop(running)
}
