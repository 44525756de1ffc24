/**
 * The threads of the uWS baselines (bare-uws.ts, durable-uws.ts). The main thread starts `threads` worker threads
 * running the same file (each listens on the shared port, SO_REUSEPORT), exits the process if one
 * cannot listen or fails, and on SIGTERM/SIGINT asks each to close (uWS aborts a process whose worker
 * loop ends with sockets open, so threads are never terminated: they close their own sockets).
 * Workers post `{type: 'failed'}` when they cannot listen and handle `{type: 'close'}`.
 */
import { Worker, parentPort } from 'node:worker_threads'
import { workerEntry } from '../../src/threads/spawn.ts'
import { uws, type ListenSocket, type TemplatedApp } from '../../src/http/uws.ts'

export function startListenerThreads (self: URL, threads: number, name: string, port: number): void {
  const workers: Worker[] = []
  for (let i = 0; i < threads; i++) {
    const entry = workerEntry(self)
    const w = new Worker(entry.file, { argv: entry.argv, workerData: { index: i } })
    w.on('message', (m: { type: string }) => {
      if (m.type === 'failed') { process.stderr.write(`${name}: thread ${i} could not listen on ${port}\n`); process.exit(1) }
    })
    w.on('error', err => { process.stderr.write(`${name}: thread ${i}: ${err.stack ?? String(err)}\n`); process.exit(1) })
    workers.push(w)
  }
  const stop = (): void => { for (const w of workers) w.postMessage({ type: 'close' }) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

/**
 * The worker side: adds GET /health to `app`, listens on the shared port, and on `{type: 'close'}`
 * closes the listen socket, waits for `drain` (e.g. writes in flight), then closes its port to the
 * main thread so the worker can end once its last connection has closed.
 */
export function serveThread (app: TemplatedApp, port: number, index: number, drain: () => Promise<void> = async () => {}): void {
  let socket: ListenSocket | null = null
  app.get('/health', (res) => {
    res.cork(() => { res.writeHeader('Content-Type', 'application/json').end('{"status":"ok"}') })
  })
  app.listen('127.0.0.1', port, s => {
    if (s === false) { parentPort?.postMessage({ type: 'failed' }); return }
    socket = s
    parentPort?.postMessage({ type: 'listening', index })
  })
  parentPort?.on('message', (m: { type: string }) => {
    if (m.type !== 'close' || socket === null) return
    uws.us_listen_socket_close(socket)
    socket = null
    void drain().finally(() => { parentPort?.close() })
  })
}
