#!/usr/bin/env node
// `npm start`: build if needed, then run the compiled service (`triggers-api serve`).
import { ensureBuild } from './ensure-build.js'

ensureBuild()
process.argv.splice(2, process.argv.length, 'serve')
await import('../dist/cli.js')
