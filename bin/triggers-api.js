#!/usr/bin/env node
// The `triggers-api` command: serve | migrate | keygen --org NAME [--tier T]. Runs the compiled build.
import { ensureBuild } from '../scripts/ensure-build.js'

ensureBuild()
await import('../dist/cli.js')
