/**
 * GET /metrics on METRICS_PORT (a plain node:http server on the primary thread: scrapes are rare and
 * must not touch the listeners' event loops). Any other path is 404 in the API's envelope.
 */
import { createServer, type Server } from 'node:http'
import type { Registry } from 'prom-client'
import type { Logger } from '../log.ts'

/** What the server needs of a prom-client Registry (primary/scheduled-jobs.ts builds that on demand). */
export type MetricsSource = Pick<Registry, 'metrics' | 'contentType'>

export function startMetricsServer (registry: MetricsSource, host: string, port: number, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(req.url === '/metrics' ? 405 : 404, { 'Content-Type': 'application/json' })
      res.end(req.url === '/metrics'
        ? '{"error":"Method not allowed","code":"method_not_allowed"}'
        : '{"error":"Not found","code":"not_found"}')
      return
    }
    registry.metrics().then(text => {
      res.writeHead(200, { 'Content-Type': registry.contentType })
      res.end(text)
    }, (err: unknown) => {
      log.error({ err }, 'metrics collection failed')
      res.writeHead(500, { 'Content-Type': 'application/json' })
      res.end('{"error":"Internal server error","code":"internal_error"}')
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve(server) })
  })
}
