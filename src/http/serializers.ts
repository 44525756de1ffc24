/**
 * The response serializers, compiled ahead of time (generated/serializers.cjs, from http/schemas.ts
 * SERIALIZERS by scripts/gen-serializers.ts). Loading them costs ~3 ms instead of ~60 ms of
 * fast-json-stringify import and compilation per listener thread. The generated module sits outside
 * src/ (like sql/), at the project root, for src/ and dist/ alike.
 */
import { createRequire } from 'node:module'
import { SERIALIZERS, type SerializerName } from './schemas.ts'
import { projectPath } from '../lib/project-root.ts'

type Serializer = (doc: unknown) => string

function load (): Record<SerializerName, Serializer> {
  const mod: unknown = createRequire(import.meta.url)(projectPath('generated', 'serializers.cjs'))
  if (mod === null || typeof mod !== 'object') throw new Error('generated/serializers.cjs did not load')
  const out: Partial<Record<SerializerName, Serializer>> = {}
  for (const name of Object.keys(SERIALIZERS) as SerializerName[]) {
    const f: unknown = Reflect.get(mod, name)
    if (typeof f !== 'function') throw new Error(`generated/serializers.cjs lacks ${name}: run scripts/gen-serializers.ts`)
    out[name] = f as Serializer
  }
  return out as Record<SerializerName, Serializer>
}

const compiled = load()
const inboxEventMeta = compiled.inboxEventMeta
const inboxTail = compiled.inboxTail

/**
 * The inbox response. Payloads are stored JSON text and go out byte for byte: each event is
 * serialized without its payload by the InboxEvent schema, and `"payload":<stored text>` is spliced
 * in as its first member (JSON objects are unordered). Same for the list around the events.
 */
function serializeInbox (doc: { events: readonly { payload: string }[], limit: number, next_cursor: string | null, has_more: boolean }): string {
  let out = '{"events":['
  for (let i = 0; i < doc.events.length; i++) {
    const e = doc.events[i]!
    if (i > 0) out += ','
    out += '{"payload":' + e.payload + ',' + inboxEventMeta(e).slice(1)
  }
  return out + '],' + inboxTail(doc).slice(1)
}

export const serialize = {
  error: compiled.error,
  created: compiled.created,
  generated: compiled.generated,
  keyInfo: compiled.keyInfo,
  rotated: compiled.rotated,
  webhookConfig: compiled.webhookConfig,
  secretRotated: compiled.secretRotated,
  inbox: serializeInbox,
  ack: compiled.ack,
  batchAck: compiled.batchAck,
  redeliver: compiled.redeliver,
  endpoint: compiled.endpoint,
  endpointCreated: compiled.endpointCreated,
  endpointDetail: compiled.endpointDetail,
  endpointList: compiled.endpointList,
  eventDeliveries: compiled.eventDeliveries,
  attempt: compiled.attempt,
  attemptList: compiled.attemptList,
  attemptStats: compiled.attemptStats,
  replay: compiled.replay,
  health: compiled.health,
  ready: compiled.ready,
}
