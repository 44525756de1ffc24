/**
 * Tracing's pure parts (docs/tracing.md): the W3C traceparent parser and formatter, and how the
 * OTEL_* variables resolve into the traces configuration (on or off, endpoint, protocol, headers,
 * sampler) — including that the export headers never reach the start-up log line.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatTraceparent, parseTraceparent } from '../../src/tracing/traceparent.ts'
import { ConfigError, loadConfig, redactConfig } from '../../src/config/load.ts'
import { NOOP_TRACER } from '../../src/tracing/tracer.ts'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN = '00f067aa0ba902b7'

test('traceparent: valid headers parse, invalid ones are ignored', () => {
  assert.deepEqual({ ...parseTraceparent(`00-${TRACE}-${SPAN}-01`) }, { traceId: TRACE, spanId: SPAN, flags: 1 })
  assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-00`)?.flags, 0)
  // A later version may carry more fields; its first four are read.
  assert.equal(parseTraceparent(`01-${TRACE}-${SPAN}-01-what-comes-next`)?.traceId, TRACE)
  for (const bad of [
    '', 'garbage', `00-${TRACE}-${SPAN}`, `00-${TRACE}-${SPAN}-01-extra`, `ff-${TRACE}-${SPAN}-01`,
    `00-${TRACE.toUpperCase()}-${SPAN}-01`, `00-${'0'.repeat(32)}-${SPAN}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`,
    `00-${TRACE}-${SPAN}-1`, `01-${TRACE}-${SPAN}-01x`,
  ]) assert.equal(parseTraceparent(bad), null, bad)
})

test('traceparent: formatting is the version-00 header, flags as two hex digits', () => {
  assert.equal(formatTraceparent(TRACE, SPAN, 1), `00-${TRACE}-${SPAN}-01`)
  assert.equal(formatTraceparent(TRACE, SPAN, 0), `00-${TRACE}-${SPAN}-00`)
  assert.equal(formatTraceparent(TRACE, SPAN, 0xab), `00-${TRACE}-${SPAN}-ab`)
})

test('the no-op tracer is off and makes nothing', async () => {
  assert.equal(NOOP_TRACER.on, false)
  assert.equal(NOOP_TRACER.ingest('/api/events', 0, '', ''), null)
  await NOOP_TRACER.shutdown(0)
})

test('traces are off unless OTEL_TRACES_EXPORTER=otlp or an endpoint is set, and never with none or OTEL_SDK_DISABLED', () => {
  assert.equal(loadConfig({}).traces, null)
  assert.equal(loadConfig({ OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on' }).traces, null)
  assert.equal(loadConfig({ OTEL_TRACES_EXPORTER: 'otlp' }).traces?.url, 'http://localhost:4318/v1/traces')
  assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).traces?.url, 'http://c:4318/v1/traces')
  assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c/base/' }).traces?.url, 'https://c/base/v1/traces')
  assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:9/x' }).traces?.url, 'http://t:9/x')
  assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }).traces, null)
  assert.equal(loadConfig({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }).traces, null)
})

test('traces configuration: specific variables win over general ones; headers merge; sampler ratio', () => {
  const c = loadConfig({
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20secret-token, x-a = 1',
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-a=2',
    OTEL_EXPORTER_OTLP_TIMEOUT: '3000',
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '2000',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=hooks',
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.25',
  }).traces
  assert.ok(c !== null)
  assert.equal(c.protocol, 'http/json')
  assert.deepEqual(c.headers, { authorization: 'Bearer secret-token', 'x-a': '2' })
  assert.equal(c.timeoutMs, 2000)
  assert.deepEqual(c.resourceAttributes, { 'deployment.environment.name': 'prod', team: 'hooks' })
  assert.equal(c.serviceName, 'triggers-api')
  assert.equal(c.sampler, 'parentbased_traceidratio')
  assert.equal(c.samplerRatio, 0.25)
  assert.equal(loadConfig({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' }).traces?.protocol, 'http/json')
})

test('export headers are redacted from the start-up log line', () => {
  const c = loadConfig({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=secret-token' })
  assert.ok(!JSON.stringify(redactConfig(c)).includes('secret-token'))
})

test('bad OTEL_* values stop start-up naming the variable', () => {
  const cases: [Record<string, string>, string][] = [
    [{ OTEL_TRACES_EXPORTER: 'jaeger' }, 'OTEL_TRACES_EXPORTER'],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://c/x' }, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, 'OTEL_EXPORTER_OTLP_HEADERS'],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'a=%E0%A4%A' }, 'OTEL_EXPORTER_OTLP_HEADERS'],
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER'],
    [{ OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG'],
    [{ OTEL_TRACES_SAMPLER_ARG: '-0.1' }, 'OTEL_TRACES_SAMPLER_ARG'],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: '100', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '200' }, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE'],
    [{ OTEL_SERVICE_NAME: '' }, 'OTEL_SERVICE_NAME'],
  ]
  for (const [env, name] of cases) {
    assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && e.problems.some(p => p.startsWith(name)), JSON.stringify(env))
  }
})
