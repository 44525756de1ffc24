// Development and test only: worker threads do not inherit tsx's loader on Node 20, so a TypeScript
// worker starts here, registers tsx in its own thread, then imports the real entry (the last argv).
import { register } from 'tsx/esm/api'
import { pathToFileURL } from 'node:url'

register()
const target = process.argv[process.argv.length - 1]
const mod = await import(target.startsWith('file:') ? target : pathToFileURL(target).href)
export default mod.default
