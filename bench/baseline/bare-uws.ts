/**
 * The no-database ceiling of this machine and load generator, used only by `--calibrate` (choosing
 * autocannon's worker threads; the ingest targets compare with the durable ceiling, durable-uws.ts).
 * uWS (the same native
 * binary the service loads, through src/http/uws.ts) on one port, THREADS listener threads like the
 * service (SO_REUSEPORT; the main thread only supervises), no database and no authentication:
 * POST /api/events reads the body, JSON.parse()s it, checks `type` is a string, and answers 201 with
 * a small JSON object (a fresh UUID, like the service's answer). GET /health answers 200.
 *
 *   PORT=8081 THREADS=2 node --import tsx bench/baseline/bare-uws.ts
 *
 * SIGTERM/SIGINT: each thread closes its listen socket; the process exits when the last connection
 * has closed (uWS aborts a process whose worker loop ends with sockets open, so threads are never
 * terminated).
 */
import os from 'node:os'
import { randomUUID } from 'node:crypto'
import { isMainThread, workerData } from 'node:worker_threads'
import { serveThread, startListenerThreads } from './listener-threads.ts'
import { uws } from '../../src/http/uws.ts'

const port = Number(process.env.PORT ?? 8081)
const threads = Number(process.env.THREADS ?? os.availableParallelism())

function listen (index: number): void {
  const app = uws.App()
  app.post('/api/events', (res, _req) => {
    let aborted = false
    let chunks: Buffer[] = []
    res.onAborted(() => { aborted = true })
    res.onData((ab, isLast) => {
      chunks.push(Buffer.from(new Uint8Array(ab)))
      if (!isLast) return
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
      chunks = []
      let status = '201 Created'
      let out: string
      try {
        const parsed: unknown = JSON.parse(body.toString('utf8'))
        if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { type?: unknown }).type !== 'string') throw new Error('bad event')
        out = `{"id":"${randomUUID()}","status":"pending"}`
      } catch {
        status = '400 Bad Request'
        out = '{"error":"Invalid JSON","code":"invalid_json"}'
      }
      if (aborted) return
      res.cork(() => {
        res.writeStatus(status).writeHeader('Content-Type', 'application/json').end(out)
      })
    })
  })
  serveThread(app, port, index)
}

if (isMainThread) {
  startListenerThreads(new URL(import.meta.url), threads, 'bare-uws', port)
} else {
  listen((workerData as { index: number }).index)
}
