/**
 * A coarse clock (STYLE C9): `now()` reads a number refreshed by one unref'd interval instead of calling
 * Date.now() per request. Rate-limit windows and the X-RateLimit-Reset header read it; its resolution
 * (10 ms) is far below their 1-second granularity. Per thread; `start` is idempotent.
 */
let current = Date.now()
let timer: NodeJS.Timeout | null = null

export const coarseClock = {
  now (): number { return current },
  start (resolutionMs = 10): void {
    if (timer !== null) return
    current = Date.now()
    timer = setInterval(() => { current = Date.now() }, resolutionMs)
    timer.unref()
  },
  stop (): void {
    if (timer !== null) clearInterval(timer)
    timer = null
  },
}
