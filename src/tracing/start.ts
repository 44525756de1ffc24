/**
 * Choosing a thread's Tracer, once, when the thread starts (STYLE C8): NOOP_TRACER when the OTEL_*
 * variables leave traces off — OpenTelemetry is then never loaded — else the OpenTelemetry tracer of
 * otel.ts, imported here and only here. Listener and delivery threads.
 */
import type { Config } from '../config/load.ts'
import type { Logger } from '../log.ts'
import { NOOP_TRACER, type Tracer } from './tracer.ts'

/** This thread's tracer; synchronous when tracing is off. `thread` names the thread in every span's resource. */
export function startTracing (config: Config, thread: string, log: Logger): Tracer | Promise<Tracer> {
  const c = config.traces
  if (c === null) return NOOP_TRACER
  return import('./otel.ts').then(async m => await m.createTracer(c, thread, log.child({ component: 'tracing' })))
}
