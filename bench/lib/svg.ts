/**
 * A hand-written SVG chart of latency percentile curves: x is the percentile on a "nines" scale
 * (p0, p50, p90, p99, p99.9 evenly spaced at 0, 0.3, 1, 2, 3), y is latency in ms on a log scale.
 * No dependencies; readable in any browser and on GitHub.
 */

export interface Series {
  readonly label: string
  readonly color: string
  readonly dashed?: boolean
  readonly curve: readonly { readonly p: number, readonly ms: number }[]
}

const W = 1000
const H = 520
const M = { left: 70, right: 330, top: 64, bottom: 56 }
const PW = W - M.left - M.right
const PH = H - M.top - M.bottom

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

const nines = (p: number): number => (p >= 100 ? 3 : Math.min(3, -Math.log10(1 - p / 100)))

export function latencyChart (title: string, subtitle: string, series: readonly Series[]): string {
  const all = series.flatMap(s => s.curve.map(c => c.ms)).filter(x => Number.isFinite(x) && x > 0)
  // Axis ends on a 1-2-5 step around the data, at least 0.1 ms at the bottom.
  const steps = (e: number): number[] => [1, 2, 5].map(m => m * 10 ** e)
  const lo = Math.max(0.1, Math.min(...all, 1))
  const hi = Math.max(...all, 1)
  let bottom = 0.1
  for (let e = -1; e <= 6; e++) for (const v of steps(e)) if (v <= lo + 1e-12) bottom = v
  let top = 1
  search: for (let e = 0; e <= 7; e++) for (const v of steps(e)) if (v >= hi - 1e-12) { top = v; break search }
  const y0 = Math.log10(bottom)
  const y1 = Math.log10(top)
  const x = (p: number): number => M.left + (nines(p) / 3) * PW
  const y = (ms: number): number => M.top + PH - ((Math.log10(Math.min(top, Math.max(ms, bottom))) - y0) / (y1 - y0)) * PH
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`)
  out.push(`<text x="${M.left}" y="26" font-size="16" font-weight="600">${esc(title)}</text>`)
  out.push(`<text x="${M.left}" y="45" fill="#555">${esc(subtitle)}</text>`)
  // Grid and y labels on the 1-2-5 steps between the axis ends.
  for (let e = Math.floor(y0); e <= Math.ceil(y1); e++) {
    for (const v of steps(e)) {
      if (v < bottom - 1e-12 || v > top + 1e-12) continue
      const yy = y(v).toFixed(1)
      out.push(`<line x1="${M.left}" x2="${M.left + PW}" y1="${yy}" y2="${yy}" stroke="${v === 10 ** e ? '#ccc' : '#eee'}"/>`)
      const label = v >= 1 ? String(v) : v.toFixed(Math.max(0, -e))
      out.push(`<text x="${M.left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#444">${label}</text>`)
    }
  }
  for (const p of [0, 50, 90, 99, 99.9]) {
    const xx = x(p).toFixed(1)
    out.push(`<line x1="${xx}" x2="${xx}" y1="${M.top}" y2="${M.top + PH}" stroke="#ddd"/>`)
    out.push(`<text x="${xx}" y="${M.top + PH + 18}" text-anchor="middle" fill="#444">p${p}</text>`)
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" fill="none" stroke="#888"/>`)
  out.push(`<text x="${M.left + PW / 2}" y="${H - 12}" text-anchor="middle" fill="#222">percentile (log scale of nines)</text>`)
  out.push(`<text transform="translate(18 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle" fill="#222">latency, ms (log scale)</text>`)
  series.forEach((s, i) => {
    const pts = s.curve.filter(c => Number.isFinite(c.ms)).map(c => `${x(c.p).toFixed(1)},${y(c.ms).toFixed(1)}`).join(' ')
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''} points="${pts}"/>`)
    const ly = M.top + 10 + i * 22
    const lx = M.left + PW + 16
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`)
    out.push(`<text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${esc(s.label)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
