/**
 * The bench's report: the results JSON's shape, the targets table (metric, measured, target, verdict),
 * the side-by-side and delivery tables, the machine load of every run, the cost lines, the latency
 * chart, and the results section of bench/README.md.
 */
import { readFile, writeFile } from 'node:fs/promises'
import type { CostEstimate } from './cost.ts'
import { describeMachine, type Machine } from './lib/machine.ts'
import type { RunLoad } from './lib/meter.ts'
import type { LatencySummary } from './lib/stats.ts'
import { latencyChart } from './lib/svg.ts'
import { fmt } from './lib/progress.ts'
import type { IngestScenario } from './scenarios/ingest.ts'
import { BATCH_EVENTS, CONNECTIONS } from './scenarios/ingest.ts'
import { LATENCY_RATE, STORM_RATE, type LatencyScenario, type MemoryScenario, type StormScenario } from './scenarios/latency.ts'
import { COLD_STARTS, type ColdStartScenario } from './scenarios/cold-start.ts'
import { DELIVERY_RATE, type SteadyRun } from './scenarios/steady.ts'
import type { CeilingRun, DrainRun } from './scenarios/drain.ts'
import type { FanOutScenario } from './scenarios/fan-out.ts'
import type { MixedScenario } from './scenarios/mixed.ts'

export type Verdict = 'PASS' | 'MISS' | 'FAIL' | 'info' | 'n/a'
export interface Row { readonly metric: string, readonly measured: string, readonly target: string, readonly verdict: Verdict }

export interface IngestPair { single?: IngestScenario, batch?: IngestScenario }

export interface Results {
  benchmark: string
  date: string
  runId: string
  options: Record<string, unknown>
  machine: Machine | null
  durationsS: number
  scenarios: {
    /** 1 (ours) and 7 (durable ceiling, Fastify + pg): single events. */
    ingest?: { ours: IngestScenario, durable?: IngestScenario, fastifyPg?: IngestScenario, calibration?: { workers: number, reqPerSec: number }[] }
    /** 11: batches of 100, ours and the durable ceiling. */
    batch?: { ours: IngestScenario, durable?: IngestScenario }
    latency?: { ours: LatencyScenario, durable?: LatencyScenario }
    memory?: MemoryScenario
    delivery?: { steady?: SteadyRun, cold?: SteadyRun }
    coldStart?: ColdStartScenario
    authMissStorm?: StormScenario
    drain?: { manyOrigins?: DrainRun, oneOrigin?: DrainRun, ceilingManyOrigins?: CeilingRun, ceilingOneOrigin?: CeilingRun }
    fanOut?: FanOutScenario & { withoutEndpoints: { eventsPerSec: number, from: string } }
    mixed?: MixedScenario
    attemptLog?: { on: { steady?: SteadyRun, drain?: DrainRun }, off: { steady?: SteadyRun, drain?: DrainRun } }
    ab?: { label: string, env: Record<string, string>, plain: IngestPair, variant: IngestPair }
  }
  cost: { single: CostEstimate | null, batch: CostEstimate | null }
  table: Row[]
  serviceWarnings: number
  loadAverageAtEnd: number[]
}

const verdict = (ok: boolean | null): Verdict => ok === null ? 'n/a' : ok ? 'PASS' : 'MISS'
const x2 = (n: number): string => `${n.toFixed(2)}×`

function ratioRow (metric: string, ours: number, ref: number | undefined, refName: string, unit: string, min: number, extraOk = true): Row {
  return {
    metric,
    measured: ref === undefined ? `${fmt(ours)} ${unit}` : `${fmt(ours)} ${unit} = ${x2(ours / ref)} of ${fmt(ref)}`,
    target: `≥ ${min.toFixed(2)} × ${refName}`,
    verdict: verdict(ref === undefined ? null : ours / ref >= min && extraOk),
  }
}

function storedRow (metric: string, s: IngestScenario): Row {
  return {
    metric,
    measured: s.stored === null ? 'n/a' : `${fmt(s.stored)} rows / ${fmt(s.run.events)} events in 2xx`,
    target: 'rows ≥ events answered (no data loss)',
    verdict: s.stored === null ? 'n/a' : s.dataLoss ? 'FAIL' : 'PASS',
  }
}

function steadyMeasured (d: SteadyRun): string {
  return `p50 ${d.latencyMs.p50} / p99 ${d.latencyMs.p99} / max ${d.latencyMs.max} ms; ${fmt(d.delivered)}/${fmt(d.accepted)} delivered, ${d.duplicates} duplicates`
}

function drainRow (label: string, d: DrainRun | undefined, c: CeilingRun | undefined): Row | null {
  if (d === undefined) return null
  const ceil = c?.requestsPerSec
  const all = d.delivered === d.events && d.duplicates === 0 && !d.timedOut
  return {
    metric: `8 drain of ${fmt(d.events)}, ${label} (deliveries/s)`,
    measured: `${fmt(d.deliveriesPerSec)}/s` + (ceil === undefined ? '' : ` = ${x2(d.deliveriesPerSec / ceil)} of the ceiling ${fmt(ceil)}/s`) +
      `; ${fmt(d.delivered)} delivered, ${d.duplicates} duplicates`,
    target: '≥ 5,000/s and ≥ 0.70 × ceiling',
    verdict: verdict(ceil === undefined ? null : d.deliveriesPerSec >= 5000 && d.deliveriesPerSec >= 0.7 * ceil && all),
  }
}

export function buildTable (r: Results): Row[] {
  const rows: Row[] = []
  const s = r.scenarios
  if (s.ingest !== undefined) {
    const ours = s.ingest.ours.run.eventsPerSec
    rows.push(ratioRow('1 single-event ingest vs durable ceiling', ours, s.ingest.durable?.run.eventsPerSec, 'durable ceiling', '201/s', 0.75))
    const fast = s.ingest.fastifyPg?.run.eventsPerSec
    rows.push({
      metric: '1 single-event ingest vs Fastify+pg',
      measured: fast === undefined ? `${fmt(ours)} 201/s` : `${x2(ours / fast)} of ${fmt(fast)}`,
      target: '≥ 8 × Fastify+pg',
      verdict: verdict(fast === undefined ? null : ours / fast >= 8),
    })
    rows.push(storedRow('1 stored rows vs 201s received', s.ingest.ours))
  }
  if (s.batch !== undefined) {
    rows.push(ratioRow(`11 batch ingest (${BATCH_EVENTS} a request) vs durable ceiling`, s.batch.ours.run.eventsPerSec, s.batch.durable?.run.eventsPerSec, 'durable ceiling batches', 'events/s', 0.75,
      s.batch.ours.run.non2xx + s.batch.ours.run.errors === 0))
    rows.push(storedRow('11 stored rows vs events in 200s', s.batch.ours))
  }
  if (s.latency !== undefined) {
    const ours = s.latency.ours.latencyMs
    const bare = s.latency.durable?.latencyMs
    rows.push({
      metric: `2 p99 at ${fmt(LATENCY_RATE)} req/s (open loop)`,
      measured: `p50 ${ours.p50} / p99 ${ours.p99} / max ${ours.max} ms` + (bare === undefined ? '' : `; p99 ${x2(ours.p99 / bare.p99)} of the durable ceiling's ${bare.p99} ms`),
      target: '≤ 3 × durable ceiling p99',
      verdict: bare === undefined ? 'n/a' : verdict(ours.p99 <= 3 * bare.p99 && s.latency.ours.non2xx + s.latency.ours.errors === 0),
    })
  }
  const st = s.delivery?.steady
  if (st !== undefined) {
    rows.push({
      metric: `3 delivery at ${fmt(DELIVERY_RATE)} ev/s, warm (end to end)`,
      measured: steadyMeasured(st),
      target: 'p99 ≤ 50 ms, all delivered, no duplicates',
      verdict: verdict(st.latencyMs.p99 <= 50 && st.missing === 0 && st.duplicates === 0 && st.accepted > 0),
    })
  }
  const cold = s.delivery?.cold
  if (cold !== undefined) {
    rows.push({
      metric: `3 delivery at ${fmt(DELIVERY_RATE)} ev/s, first ${cold.durationMs / 1000} s after a start`,
      measured: steadyMeasured(cold),
      target: 'p99 ≤ 250 ms, all delivered',
      verdict: verdict(cold.latencyMs.p99 <= 250 && cold.missing === 0 && cold.accepted > 0),
    })
  }
  if (s.memory !== undefined) {
    rows.push({
      metric: `4 resident memory at ${fmt(LATENCY_RATE)} req/s`,
      measured: `max ${s.memory.maxMb} MB, mean ${s.memory.meanMb} MB`,
      target: '≤ 150 MB',
      verdict: verdict(s.memory.maxMb <= 150),
    })
  }
  if (s.coldStart !== undefined) {
    rows.push({
      metric: '5 cold start to the first 201 (median of 5)',
      measured: `${s.coldStart.medianMs} ms (${s.coldStart.runsMs.join(', ')})`,
      target: '≤ 250 ms',
      verdict: verdict(s.coldStart.runsMs.length === COLD_STARTS && s.coldStart.medianMs <= 250),
    })
  }
  if (s.authMissStorm !== undefined && s.latency !== undefined) {
    const v = s.authMissStorm.valid.latencyMs.p99
    const base = s.latency.ours.latencyMs.p99
    rows.push({
      metric: '6 valid p99 during auth-miss storm',
      measured: `${v} ms = ${x2(v / base)} of ${base} ms`,
      target: '≤ 2 × p99 without storm',
      verdict: verdict(v <= 2 * base && s.authMissStorm.valid.non2xx + s.authMissStorm.valid.errors === 0),
    })
  }
  const d = s.drain
  for (const row of [drainRow('8 origins', d?.manyOrigins, d?.ceilingManyOrigins), drainRow('one origin', d?.oneOrigin, d?.ceilingOneOrigin)]) if (row !== null) rows.push(row)
  if (s.fanOut !== undefined) {
    const f = s.fanOut
    const base = f.withoutEndpoints.eventsPerSec
    rows.push({
      metric: `9 fan-out to ${f.endpointsPerEvent} endpoints: ingest and deliveries`,
      measured: `${fmt(f.ingest.run.eventsPerSec)} 201/s = ${x2(f.ingest.run.eventsPerSec / base)} of ${fmt(base)} without endpoints; ${fmt(f.deliveriesPerSec)} deliveries/s` +
        `${f.fanOutComplete ? '' : '; NOT 5 deliveries per event'}`,
      target: 'reported',
      verdict: f.fanOutComplete && !f.ingest.dataLoss ? 'info' : 'FAIL',
    })
  }
  if (s.mixed !== undefined) {
    const m = s.mixed
    const last = m.steps[m.steps.length - 1]
    rows.push({
      metric: '10 highest ingest rate delivered in full (mixed)',
      measured: (m.highestSustainedRate === null ? 'none' : `${fmt(m.highestSustainedRate)} events/s`) +
        (last === undefined || last.sustained ? '' : `; at ${fmt(last.rate)}/s the backlog reached ${fmt(last.backlogAtEnd)}`),
      target: 'reported (backlog < 1 s of ingest)',
      verdict: 'info',
    })
  }
  const al = s.attemptLog
  if (al !== undefined) {
    const on = al.on.drain?.deliveriesPerSec
    const off = al.off.drain?.deliveriesPerSec
    const cpuOn = al.on.steady?.serviceCpuMsPerDelivery
    const cpuOff = al.off.steady?.serviceCpuMsPerDelivery
    rows.push({
      metric: '12 attempt log: drain on one origin, log on vs off',
      measured: `${fmt(on ?? NaN)} vs ${fmt(off ?? NaN)} deliveries/s` + (on === undefined || off === undefined ? '' : ` = ${x2(on / off)}`) +
        `; service CPU per delivery at ${fmt(DELIVERY_RATE)} ev/s ${cpuOn ?? '?'} vs ${cpuOff ?? '?'} ms`,
      target: '≥ 0.90 × log off (≤ 10 % fewer)',
      verdict: verdict(on === undefined || off === undefined ? null : on >= 0.9 * off),
    })
  }
  if (s.ab !== undefined) {
    const a = s.ab
    for (const k of ['single', 'batch'] as const) {
      const p = a.plain[k]?.run.eventsPerSec
      const v = a.variant[k]?.run.eventsPerSec
      if (p === undefined || v === undefined) continue
      rows.push({ metric: `13 ${k} ingest with ${a.label} vs without`, measured: `${fmt(v)} vs ${fmt(p)} events/s = ${x2(v / p)}`, target: 'reported', verdict: 'info' })
    }
  }
  return rows
}

export function mdTable (head: string[], body: string[][]): string {
  return [head, head.map(() => '---'), ...body].map(cols => `| ${cols.join(' | ')} |`).join('\n')
}

function sideBySide (r: Results): string | null {
  const i = r.scenarios.ingest
  const b = r.scenarios.batch
  const l = r.scenarios.latency
  if (i?.durable === undefined && b?.durable === undefined && l?.durable === undefined) return null
  const rows: string[][] = []
  const ratio = (a: number | undefined, c: number | undefined): string => a === undefined || c === undefined ? '—' : x2(a / c)
  const n = (x: number | undefined | null): string => x === undefined || x === null ? '—' : fmt(x)
  if (i !== undefined) {
    const ours = i.ours.run.eventsPerSec
    const dur = i.durable?.run.eventsPerSec
    const fast = i.fastifyPg?.run.eventsPerSec
    rows.push([`ingest, single events, ${CONNECTIONS} connections (201/s)`, fmt(ours), n(dur), n(fast), ratio(ours, dur), ratio(ours, fast)])
    rows.push(['ingest p99 under full load (ms, closed loop)', String(i.ours.run.latencyMs.p99), String(i.durable?.run.latencyMs.p99 ?? '—'), String(i.fastifyPg?.run.latencyMs.p99 ?? '—'), '', ''])
    rows.push(['server CPU during single-event ingest (cores)', String(i.ours.serverCpu ?? '—'), String(i.durable?.serverCpu ?? '—'), String(i.fastifyPg?.serverCpu ?? '—'), '', ''])
  }
  if (b !== undefined) {
    rows.push([`ingest, batches of ${BATCH_EVENTS}, ${CONNECTIONS} connections (events/s)`, fmt(b.ours.run.eventsPerSec), n(b.durable?.run.eventsPerSec), '—', ratio(b.ours.run.eventsPerSec, b.durable?.run.eventsPerSec), ''])
    rows.push(['server CPU during batch ingest (cores)', String(b.ours.serverCpu ?? '—'), String(b.durable?.serverCpu ?? '—'), '—', '', ''])
  }
  if (l !== undefined) {
    const o = l.ours.latencyMs
    const d = l.durable?.latencyMs
    rows.push([`p50 / p99 / max at ${fmt(LATENCY_RATE)} req/s (ms)`, `${o.p50} / ${o.p99} / ${o.max}`, d === undefined ? '—' : `${d.p50} / ${d.p99} / ${d.max}`, '—', d === undefined ? '—' : `p99 ${x2(o.p99 / d.p99)}`, ''])
  }
  return mdTable(['', 'ours', 'durable ceiling', 'Fastify+pg', 'ours / ceiling', 'ours / Fastify'], rows)
}

function deliveryTable (r: Results): string | null {
  const s = r.scenarios
  const rows: string[][] = []
  const d = s.drain
  const pair = (label: string, run: DrainRun | undefined, c: CeilingRun | undefined): void => {
    if (run === undefined && c === undefined) return
    rows.push([label, run === undefined ? '—' : fmt(run.deliveriesPerSec), c === undefined ? '—' : fmt(c.requestsPerSec),
      run === undefined || c === undefined ? '—' : x2(run.deliveriesPerSec / c.requestsPerSec),
      run?.serviceCpuMsPerDelivery == null ? '—' : String(run.serviceCpuMsPerDelivery)])
  }
  pair('drain, 8 origins (deliveries/s)', d?.manyOrigins, d?.ceilingManyOrigins)
  pair('drain, one origin (deliveries/s)', d?.oneOrigin ?? s.attemptLog?.on.drain, d?.ceilingOneOrigin)
  const off = s.attemptLog?.off.drain
  if (off !== undefined) rows.push(['drain, one origin, ATTEMPT_LOG=false', fmt(off.deliveriesPerSec), '—', '—', String(off.serviceCpuMsPerDelivery ?? '—')])
  const st = s.delivery?.steady ?? s.attemptLog?.on.steady
  if (st !== undefined) rows.push([`steady ${fmt(DELIVERY_RATE)} ev/s, ingest + delivery`, '—', '—', '—', String(st.serviceCpuMsPerDelivery ?? '—')])
  const stOff = s.attemptLog?.off.steady
  if (stOff !== undefined) rows.push([`steady ${fmt(DELIVERY_RATE)} ev/s, ATTEMPT_LOG=false`, '—', '—', '—', String(stOff.serviceCpuMsPerDelivery ?? '—')])
  if (s.fanOut !== undefined) rows.push([`fan-out ×${s.fanOut.endpointsPerEvent} during saturating ingest (deliveries/s)`, fmt(s.fanOut.deliveriesPerSec), '—', '—', '—'])
  if (s.mixed !== undefined) {
    for (const step of s.mixed.steps) {
      rows.push([`mixed, ingest ${fmt(step.rate)}/s: deliveries/s, backlog at end`, `${fmt(step.deliveredPerSec)}, ${fmt(step.backlogAtEnd)}${step.sustained ? '' : ' (not sustained)'}`, '—', '—', '—'])
    }
  }
  if (rows.length === 0) return null
  return mdTable(['delivery', 'service', 'ceiling (no database)', 'service / ceiling', 'service CPU ms per delivery'], rows)
}

/** Every measured run with its load record, in order. */
export function loads (r: Results): [string, RunLoad][] {
  const s = r.scenarios
  const out: [string, RunLoad][] = []
  const add = (label: string, l: RunLoad | undefined): void => { if (l !== undefined) out.push([label, l]) }
  add('1 ingest, ours', s.ingest?.ours.load)
  add('7 ingest, durable ceiling', s.ingest?.durable?.load)
  add('7 ingest, Fastify+pg', s.ingest?.fastifyPg?.load)
  add('11 batch, ours', s.batch?.ours.load)
  add('11 batch, durable ceiling', s.batch?.durable?.load)
  add('2 latency, ours', s.latency?.ours.load)
  add('2 latency, durable ceiling', s.latency?.durable?.load)
  add('6 auth-miss storm', s.authMissStorm?.load)
  add('3 delivery, cold', s.delivery?.cold?.load)
  add('3 delivery, warm', s.delivery?.steady?.load)
  add('8 drain, 8 origins', s.drain?.manyOrigins?.load)
  add('8 ceiling, 8 origins', s.drain?.ceilingManyOrigins?.load)
  add('8 drain, one origin', s.drain?.oneOrigin?.load)
  add('8 ceiling, one origin', s.drain?.ceilingOneOrigin?.load)
  if (s.attemptLog !== undefined) {
    if (s.delivery?.steady === undefined) add('12 steady, log on', s.attemptLog.on.steady?.load)
    if (s.drain?.oneOrigin === undefined) add('12 drain, log on', s.attemptLog.on.drain?.load)
    add('12 steady, log off', s.attemptLog.off.steady?.load)
    add('12 drain, log off', s.attemptLog.off.drain?.load)
  }
  for (const step of s.mixed?.steps ?? []) add(`10 mixed at ${fmt(step.rate)}/s`, step.load)
  add('9 fan-out', s.fanOut?.ingest.load)
  if (s.ab !== undefined) {
    add(`13 single, ${s.ab.label}`, s.ab.variant.single?.load)
    add(`13 batch, ${s.ab.label}`, s.ab.variant.batch?.load)
  }
  return out
}

function loadTable (r: Results): string | null {
  const rows = loads(r).map(([label, l]) => {
    const helpers = Object.entries(l.cpuCores).filter(([k, v]) => v !== null && k !== 'service' && k !== 'server' && k !== 'postgres').map(([k, v]) => `${k} ${v}`).join(', ')
    const svc = l.cpuCores.service ?? l.cpuCores.server ?? null
    return [label, `${l.loadAverageBefore[0]?.toFixed(2)} → ${l.loadAverageAfter[0]?.toFixed(2)}`, String(l.machineBusyCores ?? '—'),
      String(svc ?? '—'), String(l.cpuCores.postgres ?? '—'), helpers || '—', String(l.otherCores ?? '—')]
  })
  if (rows.length === 0) return null
  return mdTable(['run', 'load average (1 min) before → after', 'machine busy (cores)', 'server (cores)', 'PostgreSQL', 'load generator and helpers', 'other'], rows)
}

function costLine (label: string, c: CostEstimate | null): string | null {
  if (c === null) return null
  const price = c.vm.hourlyUsd === null ? 'price unknown (add it to FLY_MONTHLY_USD in bench/cost.ts)' : `$${c.vm.hourlyUsd.toFixed(5)}/h`
  return `Cost, ${label}: ${fmt(c.throughputPerSec)} durable events/s on ${c.benchCores} cores = ${fmt(c.perVcpuPerSec)} per vCPU → ` +
    `${c.vm.size} (${c.vm.memoryMb} MB, ${c.vm.vcpus} vCPU, ${price}, prices read ${c.pricesReadOn}; from ${c.vm.source}) ` +
    `≈ ${fmt(c.eventsPerHourOnVm / 1e6, 1)} M events/h → ` +
    (c.usdPerMillion === null ? 'n/a' : `$${c.usdPerMillion.toFixed(5)} per million durable events`) + ' (VM only, at full load)'
}

export function markdown (r: Results, long: boolean): string {
  const parts: string[] = []
  const loadEnd = r.loadAverageAtEnd.map(x => x.toFixed(2)).join(' ')
  parts.push(`Run ${r.date.slice(0, 16).replace('T', ' ')} UTC, ${long ? 'long' : 'default'} durations, ${fmt(r.durationsS)} s in all` +
    `${r.machine === null ? '' : `, on ${describeMachine(r.machine)}`}; load average at end ${loadEnd}.`)
  parts.push(mdTable(['metric', 'measured', 'target', 'result'], r.table.map(row => [row.metric, row.measured, row.target, row.verdict])))
  for (const t of [sideBySide(r), deliveryTable(r)]) if (t !== null) parts.push(t)
  const costs = [costLine('single events', r.cost.single), costLine(`batches of ${BATCH_EVENTS}`, r.cost.batch)].filter((x): x is string => x !== null)
  parts.push(costs.length === 0 ? 'Cost: n/a (needs scenario 1 or 11)' : costs.join('\n\n'))
  const lt = loadTable(r)
  if (lt !== null) parts.push('Machine load during each measured run (cores = CPU seconds per second; "other" is work on the machine outside this bench):\n\n' + lt)
  return parts.join('\n\n') + '\n'
}

export function chart (r: Results): string | null {
  const series = []
  const tail = (l: LatencySummary): string => ` (p99 ${l.p99.toFixed(1)}, max ${l.max.toFixed(0)} ms)`
  const l = r.scenarios.latency
  if (l !== undefined) series.push({ label: `2 ours, ${fmt(LATENCY_RATE)}/s${tail(l.ours.latencyMs)}`, color: '#1f77b4', curve: l.ours.curve })
  if (l?.durable !== undefined) series.push({ label: `2 durable ceiling, ${fmt(LATENCY_RATE)}/s${tail(l.durable.latencyMs)}`, color: '#7f7f7f', dashed: true, curve: l.durable.curve })
  const s = r.scenarios.authMissStorm
  if (s !== undefined) series.push({ label: `6 ours + ${STORM_RATE}/s forged${tail(s.valid.latencyMs)}`, color: '#d62728', curve: s.valid.curve })
  const d = r.scenarios.delivery
  if (d?.steady !== undefined) series.push({ label: `3 delivery, ${fmt(DELIVERY_RATE)}/s${tail(d.steady.latencyMs)}`, color: '#2ca02c', curve: d.steady.curve })
  if (d?.cold !== undefined) series.push({ label: `3 delivery, first ${d.cold.durationMs / 1000} s${tail(d.cold.latencyMs)}`, color: '#98df8a', dashed: true, curve: d.cold.curve })
  if (series.length === 0) return null
  const m = r.machine
  return latencyChart('Triggers API latency distributions (open loop)',
    `${r.date.slice(0, 10)} · ${m === null ? '' : `${m.cpu}, ${m.cores} cores, Node ${m.node}`} · from the scheduled send time (3: from the 201 to the webhook's arrival)`, series)
}

export async function updateReadme (readme: URL, md: string): Promise<void> {
  let text: string
  try { text = await readFile(readme, 'utf8') } catch { return }
  const start = '<!-- bench:results:start -->'
  const end = '<!-- bench:results:end -->'
  const a = text.indexOf(start)
  const b = text.indexOf(end)
  if (a < 0 || b < a) return
  await writeFile(readme, text.slice(0, a + start.length) + '\n' + md + text.slice(b))
}
