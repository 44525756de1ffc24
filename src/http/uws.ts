/**
 * Loads a native uWebSockets.js binary explicitly: the build chosen for this host by http/uws-choice.ts
 * (uWS v20.57 where it has a binary, else v20.30), required directly by file. Neither package's own
 * loader is used — the v20.30 one silently falls back to a slow pure-JS imitation — and when no binary
 * loads, start-up stops with one line naming the host, why each build does not fit, and what is
 * supported.
 *
 * Both builds run the same code here. Their APIs, compared by index.d.ts and by running the test
 * suite on each (v20.57 under glibc 2.41):
 * - `App.close()` (closes every socket, listen sockets included) exists on both native apps; only
 *   v20.57's typings declare it, so http/thread.ts calls it by reflection.
 * - `getParameter(index)` is typed `string | undefined` in v20.57 (it also takes a name); with an index
 *   of an existing route parameter both return the string. `getQuery()` without a key returns the
 *   whole query string on both, '' or undefined when there is none (callers use `?? ''`).
 * - `onData`, `onAborted`, `cork`, `end(body, closeConnection)`, `endWithoutBody(length?, close?)`
 *   (http/reply.ts HEAD handling), `getRemoteAddressAsText`, `close`, `us_listen_socket_close` and
 *   `us_socket_local_port` have the same signatures and behave alike for everything the service does
 *   (every write is corked; both print a warning for writes outside `cork`).
 * - v20.57 adds `filter`, `DeclarativeResponse`, `setTimeout`/`clearTimeout` and the WebSocket
 *   `dropped` handler; v20.30 has `sendFirstFragment`/`sendFragment`/`sendLastFragment` and `_cfg`. The
 *   service uses none of them. Types come from the v20.30 package, always installed.
 */
import { createRequire } from 'node:module'
import type * as UWS from '@trufflesuite/uws-js-unofficial'
import { chooseUws, noUwsLine, type UwsBuild, type UwsHost } from './uws-choice.ts'
import { currentHost, installedUwsDirs } from './uws-host.ts'

export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket as ListenSocket } from '@trufflesuite/uws-js-unofficial'

const require = createRequire(import.meta.url)

export interface LoadedUws { readonly uws: typeof UWS, readonly build: UwsBuild, readonly file: string }

/**
 * Requires the first candidate binary that loads. `dirs` maps installed build packages to their
 * directories. Throws one line (no line breaks; the load errors are also kept as `cause`).
 */
export function loadUws (host: UwsHost, dirs: ReadonlyMap<string, string>, load: (path: string) => unknown = require): LoadedUws {
  const choice = chooseUws(host)
  const failures: string[] = []
  const causes: unknown[] = []
  for (const c of choice.candidates) {
    const path = `${dirs.get(c.build.pkg) ?? ''}${c.file}`
    try {
      return { uws: load(path) as typeof UWS, build: c.build, file: path }
    } catch (err) {
      causes.push(err)
      const first = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? ''
      failures.push(`${c.build.pkg}@${c.build.version} did not load ${c.file} (${first.slice(0, 200)})`)
    }
  }
  throw new Error(noUwsLine(host, choice, failures), { cause: causes.length === 1 ? causes[0] : causes })
}

const dirs = installedUwsDirs()
export const loaded: LoadedUws = loadUws(currentHost(dirs), dirs)
export const uws: typeof UWS = loaded.uws
