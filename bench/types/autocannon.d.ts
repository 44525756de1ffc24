/** The part of autocannon 8's programmatic API the bench uses (the package ships no types). */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  namespace autocannon {
    interface RequestSpec {
      method?: string
      path?: string
      headers?: Record<string, string>
      body?: string
      /** A function, or (in workers mode) the absolute path of a CommonJS module exporting one. */
      setupRequest?: string | ((req: never, context: Record<string, unknown>) => unknown)
      [extra: string]: unknown
    }
    interface Options {
      url: string
      connections?: number
      pipelining?: number
      duration?: number
      workers?: number
      timeout?: number
      method?: string
      headers?: Record<string, string>
      body?: string
      requests?: RequestSpec[]
      excludeErrorStats?: boolean
    }
    interface Histogram {
      average: number
      mean: number
      stddev: number
      min: number
      max: number
      total: number
      p50: number
      p90: number
      p97_5: number
      p99: number
      p99_9: number
      totalCount?: number
      sent?: number
    }
    interface Result {
      url: string
      connections: number
      pipelining: number
      workers?: number
      duration: number
      start: Date
      finish: Date
      errors: number
      timeouts: number
      mismatches: number
      non2xx: number
      resets: number
      '1xx': number
      '2xx': number
      '3xx': number
      '4xx': number
      '5xx': number
      statusCodeStats: Record<string, { count: number }>
      latency: Histogram
      requests: Histogram
      throughput: Histogram
    }
    interface Instance extends EventEmitter {
      stop (): void
    }
  }

  function autocannon (opts: autocannon.Options, cb: (err: Error | null, result: autocannon.Result) => void): autocannon.Instance
  export = autocannon
}
