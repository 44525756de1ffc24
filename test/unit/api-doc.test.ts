/**
 * docs/api.md and the OpenAPI document (src/http/openapi.ts) describe the same routes and error codes,
 * and the page's configuration table is src/config/env.ts's. The page's conventions (stated at its
 * top): a route has a level-3 heading `### METHOD /path` (parameters as `:name`, several routes of one
 * heading separated by ` · `) and its section runs to the next heading of level 3 or above; the codes
 * a route answers are rows of a `| code | status | when |` table in its section; the section
 * "Errors every route shares" holds two such tables, the first for every route and the second for
 * every authenticated route; a route's success status is written in bold (`**201**`).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { buildOpenApi } from '../../src/http/openapi.ts'
import { ENV, type EnvVar } from '../../src/config/env.ts'

type Json = Record<string, any>

interface Table { readonly header: readonly string[], readonly rows: readonly (readonly string[])[] }
interface Section { readonly heading: string, readonly lines: string[], readonly tables: Table[] }

const SHARED_HEADING = 'Errors every route shares'
const ROUTE_HEADING = /^(GET|POST|PATCH|DELETE|PUT) \//
const ROUTE = /\b(GET|POST|PATCH|DELETE|PUT) (\/[^\s·]*)/g

function cells (line: string): string[] {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map(c => c.trim())
}

/** The page cut at every heading of level 1 to 3, each part with its tables. */
function sections (text: string): Section[] {
  const out: Section[] = []
  let cur: Section = { heading: '', lines: [], tables: [] }
  let table: { header: string[], rows: string[][] } | null = null
  let inFence = false
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence
    const h = inFence ? null : /^#{1,3}\s+(.*)$/.exec(line)
    if (h !== null) {
      out.push(cur)
      cur = { heading: h[1]!.trim(), lines: [], tables: [] }
      table = null
      continue
    }
    cur.lines.push(line)
    if (!inFence && line.trimStart().startsWith('|')) {
      if (table === null) { table = { header: cells(line), rows: [] }; cur.tables.push(table); continue }
      if (/^\|[\s:|-]+\|$/.test(line.trim())) continue
      table.rows.push(cells(line))
    } else {
      table = null
    }
  }
  out.push(cur)
  return out
}

/** code → status of the rows of a `| code | status | when |` table. */
function errorRows (t: Table, where: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const row of t.rows) {
    const m = /^`([a-z_]+)`$/.exec(row[0] ?? '')
    assert.ok(m !== null, `${where}: error row without a code in backticks: | ${row.join(' | ')} |`)
    assert.match(row[1] ?? '', /^\d{3}$/, `${where}: ${m[1]}: the status is not a number`)
    assert.ok((row[2] ?? '').length > 0, `${where}: ${m[1]}: says nothing about when`)
    assert.ok(!out.has(m[1]!), `${where}: ${m[1]} is listed twice`)
    out.set(m[1]!, Number(row[1]))
  }
  return out
}

const isErrorTable = (t: Table): boolean => t.header.join('|') === 'code|status|when'

const page = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8')
const parts = sections(page)
const doc = buildOpenApi('0.0.0-test') as { paths: Record<string, Record<string, Json>>, 'x-error-codes': Record<string, { status: number }> }
const catalogue = doc['x-error-codes']

/** "POST /api/events/:event_id/redeliver" → "POST /api/events/{event_id}/redeliver" */
function openApiKey (method: string, path: string): string {
  return `${method} ${path.replace(/:([a-z_]+)/g, '{$1}')}`
}

/** Every documented route → its section. */
function documentedRoutes (): Map<string, Section> {
  const out = new Map<string, Section>()
  for (const s of parts) {
    if (!ROUTE_HEADING.test(s.heading)) continue
    for (const m of s.heading.matchAll(ROUTE)) {
      const key = openApiKey(m[1]!, m[2]!)
      assert.ok(!out.has(key), `docs/api.md documents ${key} twice`)
      out.set(key, s)
    }
  }
  return out
}

interface Operation { readonly key: string, readonly secured: boolean, readonly success: number, readonly codes: Set<string> }

/** Every operation of the document, with the error codes its responses give examples of (one per code). */
function operations (): Map<string, Operation> {
  const out = new Map<string, Operation>()
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const codes = new Set<string>()
      let success = 0
      for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
        if (/^2\d\d$/.test(status)) success = Number(status)
        for (const code of Object.keys(response.content?.['application/json']?.examples ?? {})) codes.add(code)
      }
      const key = `${method.toUpperCase()} ${path}`
      out.set(key, { key, secured: Array.isArray(op.security) && op.security.length > 0, success, codes })
    }
  }
  return out
}

function sharedTables (): { every: Map<string, number>, authed: Map<string, number> } {
  const s = parts.find(p => p.heading === SHARED_HEADING)
  assert.ok(s !== undefined, `docs/api.md has a section "${SHARED_HEADING}"`)
  const tables = s.tables.filter(isErrorTable)
  assert.equal(tables.length, 2, `"${SHARED_HEADING}" holds two error tables (every route, authenticated routes)`)
  return { every: errorRows(tables[0]!, SHARED_HEADING), authed: errorRows(tables[1]!, SHARED_HEADING) }
}

test('docs/api.md documents every route of the OpenAPI document, and no other', () => {
  const documented = [...documentedRoutes().keys()].sort()
  const served = [...operations().keys()].sort()
  assert.deepEqual(documented.filter(k => !served.includes(k)), [], 'documented in docs/api.md but not in the OpenAPI document')
  assert.deepEqual(served.filter(k => !documented.includes(k)), [], 'in the OpenAPI document but without a `### METHOD /path` heading in docs/api.md')
})

test('every error code of the OpenAPI document is in docs/api.md with its status, and every code there exists', () => {
  const seen = new Map<string, number>()
  for (const s of parts) {
    for (const t of s.tables.filter(isErrorTable)) {
      for (const [code, status] of errorRows(t, s.heading)) {
        const spec = catalogue[code]
        assert.ok(spec !== undefined, `docs/api.md, "${s.heading}": \`${code}\` is not an error code of the service`)
        assert.equal(status, spec.status, `docs/api.md, "${s.heading}": \`${code}\` is answered with ${spec.status}, not ${status}`)
        seen.set(code, status)
      }
    }
  }
  assert.deepEqual(Object.keys(catalogue).filter(c => !seen.has(c)), [], 'codes missing from the error tables of docs/api.md')
})

test('each route section lists the error codes the OpenAPI document gives that route', () => {
  const { every, authed } = sharedTables()
  const ops = operations()
  // The shared tables may only hold what really is shared.
  for (const op of ops.values()) {
    for (const code of every.keys()) assert.ok(op.codes.has(code), `${code} is listed for every route, but ${op.key} does not answer it`)
    if (op.secured) for (const code of authed.keys()) assert.ok(op.codes.has(code), `${code} is listed for every authenticated route, but ${op.key} does not answer it`)
  }
  for (const [key, section] of documentedRoutes()) {
    const op = ops.get(key)
    if (op === undefined) continue // reported by the first test
    const listed = new Set<string>()
    for (const t of section.tables.filter(isErrorTable)) for (const code of errorRows(t, key).keys()) listed.add(code)
    const missing = [...op.codes].filter(c => !every.has(c) && !(op.secured && authed.has(c)) && !listed.has(c))
    assert.deepEqual(missing, [], `${key}: codes of the OpenAPI document missing from its section in docs/api.md`)
  }
})

test('each route section states the success status in bold', () => {
  const ops = operations()
  for (const [key, section] of documentedRoutes()) {
    const op = ops.get(key)
    if (op === undefined) continue
    assert.ok(section.lines.join('\n').includes(`**${op.success}**`), `${key}: "**${op.success}**" not found in its section`)
  }
})

test('the configuration table names every variable of src/config/env.ts with its default, and no other', () => {
  const tables = parts.flatMap(s => s.tables).filter(t => t.header[0] === 'variable' && t.header[1] === 'default')
  assert.equal(tables.length, 1, 'docs/api.md has one `| variable | default | … |` table')
  const rows = new Map<string, string>()
  for (const row of tables[0]!.rows) {
    const m = /^`([A-Z0-9_]+)`$/.exec(row[0] ?? '')
    assert.ok(m !== null, `configuration row without one variable in backticks: | ${row.join(' | ')} |`)
    assert.ok(!rows.has(m[1]!), `${m[1]} is listed twice`)
    rows.set(m[1]!, row[1] ?? '')
  }
  const vars = Object.values(ENV) as EnvVar[]
  assert.deepEqual([...rows.keys()].filter(n => !vars.some(v => v.name === n)), [], 'documented variables the service does not read')
  for (const v of vars) {
    const cell = rows.get(v.name)
    assert.ok(cell !== undefined, `${v.name} is missing from the configuration table`)
    if (v.default === undefined) assert.ok(!cell.includes('`'), `${v.name} has no fixed default, the table gives ${cell}`)
    else assert.equal(cell, `\`${v.default}\``, `${v.name}: the default is ${v.default}`)
  }
})
