import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestService } from '../helpers/server.ts'

test('a key works end to end on a running service', async t => {
  const s = await startTestService()
  t.after(() => s.stop())
  const org = await s.createOrg('pro')
  const r = await s.api('POST', '/api/events', { key: org.key, body: { type: 'order.created', payload: { n: 1 } } })
  assert.equal(r.status, 201)
  const inbox = await s.api('GET', '/api/inbox', { key: org.key })
  assert.equal(inbox.status, 200)
  assert.equal(inbox.json.events[0].id, r.json.id)
})
