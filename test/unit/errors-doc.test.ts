/**
 * docs/errors.md lists exactly the codes of the error catalogue (src/errors.ts), each with the status
 * the service answers with: a new code needs its line there, and a removed one loses it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { CATALOGUE } from '../../src/errors.ts'

interface Row { readonly code: string, readonly status: number, readonly retry: string, readonly when: string }

async function documentedRows (): Promise<Row[]> {
  const text = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8')
  const rows: Row[] = []
  for (const line of text.split('\n')) {
    // | `code` | status | retry? | when | context fields |
    const m = /^\|\s*`([a-z_]+)`\s*\|\s*(\d{3})\s*\|\s*(yes|no)\s*\|(.*)\|(.*)\|\s*$/.exec(line)
    if (m !== null) rows.push({ code: m[1]!, status: Number(m[2]), retry: m[3]!, when: m[4]!.trim() })
  }
  return rows
}

test('docs/errors.md has one table row per catalogue code, and no other', async () => {
  const rows = await documentedRows()
  const documented = rows.map(r => r.code)
  assert.equal(new Set(documented).size, documented.length, 'a code is listed twice')
  const catalogue = Object.keys(CATALOGUE)
  assert.deepEqual([...documented].sort(), [...catalogue].sort())
})

test('each documented status and retry flag is the catalogue\'s, and each row says when', async () => {
  for (const r of await documentedRows()) {
    assert.ok(r.code in CATALOGUE, r.code)
    const spec = Object.entries(CATALOGUE).find(([code]) => code === r.code)?.[1]
    assert.ok(spec !== undefined)
    assert.equal(r.status, spec.status, `${r.code}: documented ${r.status}, answered ${spec.status}`)
    assert.equal(r.retry, spec.retriable ? 'yes' : 'no', `${r.code}: retry flag`)
    assert.ok(r.when.length > 20, `${r.code}: no explanation`)
  }
})
