/**
 * Finds a free TCP port on `host` by binding port 0 and closing again. Used where a port must be
 * known before several listeners bind it: uWS sets SO_REUSEPORT only for an explicit port, so PORT=0
 * with several listener threads needs a concrete port first. Primary thread only.
 */
import { createServer } from 'node:net'

export function freePort (host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => { resolve(port) })
    })
  })
}
