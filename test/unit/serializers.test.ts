/**
 * generated/serializers.cjs is committed generated code (STYLE C15): it must be exactly what
 * scripts/gen-serializers.ts produces from the current schemas, or a schema change did not reach the
 * serializers the service runs.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { GENERATED_FILE, generateSerializers } from '../../scripts/gen-serializers.ts'
import { serialize } from '../../src/http/serializers.ts'

test('generated/serializers.cjs is up to date with src/http/schemas.ts', () => {
  assert.equal(readFileSync(GENERATED_FILE, 'utf8'), generateSerializers(),
    'run: node --import tsx scripts/gen-serializers.ts')
})

test('the loaded serializers produce the documented shapes', () => {
  assert.equal(serialize.health({ status: 'ok', timestamp: '2026-01-01T00:00:00.000Z', extra: 1 }), '{"status":"ok","timestamp":"2026-01-01T00:00:00.000Z"}')
  const event = { payload: '{"n":12345678901234567890}', id: 'a', type: 't', dedup_id: null, status: 'pending', attempts: 0, response_status: null, last_error: null, created_at: 'c', updated_at: 'u', acknowledged_at: null }
  assert.equal(serialize.inbox({ events: [event], limit: 1, next_cursor: null, has_more: false }),
    '{"events":[{"payload":{"n":12345678901234567890},"id":"a","type":"t","dedup_id":null,"status":"pending","attempts":0,"response_status":null,"last_error":null,"created_at":"c","updated_at":"u","acknowledged_at":null}],"limit":1,"next_cursor":null,"has_more":false}')
})
