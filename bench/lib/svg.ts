/**
 * Hand-written SVG charts for the bench report: a grouped bar chart and a line chart,
 * both with axes, tick labels, axis titles, a legend and escaped text. No library, no
 * script, no external fonts: the files open in any browser and render on GitHub.
 *
 * Layout: `width` is the whole picture, `plotHeight` the plotting area; the picture
 * grows downwards for rotated category labels and for the legend, which sits under the
 * plot and wraps onto as many rows as it needs. Every bar and point carries a <title>
 * (the exact value on hover).
 */

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#d62728', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

/** Fixed colours so a broker looks the same in every chart of a report. */
export const SERIES_COLORS: Record<string, string> = {
  switchboard: '#1f77b4',
  'switchboard-async': '#6baed6',
  'switchboard-memory': '#b7d4ea',
  'switchboard-hold': '#08519c',
  'switchboard-1t': '#3182bd',
  'switchboard-2t': '#9ecae1',
  aedes: '#ff7f0e',
  mosquitto: '#2ca02c',
  nats: '#9467bd',
  paper: '#7f7f7f',
};

const FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
const FONT_SIZE = 12;
const AXIS_COLOR = '#333';
const GRID_COLOR = '#e3e3e3';

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Compact number for ticks and bar labels: 1.5k, 12M, 0.25, 3e-4. */
export function formatCompact(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  if (v === 0) return '0';
  const a = Math.abs(v);
  const trim = (x: number, digits: number) => String(Number(x.toFixed(digits)));
  if (a >= 1e9) return trim(v / 1e9, a >= 1e10 ? 0 : 1) + 'G';
  if (a >= 1e6) return trim(v / 1e6, a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return trim(v / 1e3, a >= 1e5 ? 0 : 1) + 'k';
  if (a >= 1000) return trim(v / 1e3, 2) + 'k';
  if (a >= 1) return trim(v, a >= 100 ? 0 : a >= 10 ? 1 : 2);
  if (a >= 1e-3) return String(Number(v.toPrecision(2)));
  return v.toExponential(0);
}

/** Rough rendered width of a string in px (sans-serif averages ~0.58 em per character). */
export function textWidth(s: string, fontSize = FONT_SIZE): number {
  return s.length * fontSize * 0.58;
}

const r1 = (n: number) => Math.round(n * 10) / 10;

// ---------------------------------------------------------------------------
// Scales

export interface Scale {
  /** Value -> pixel. */
  map(v: number): number;
  ticks: number[];
  min: number;
  max: number;
  log: boolean;
}

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/**
 * A scale over [lo, hi] onto the pixels [p0, p1] (p1 < p0 for a y axis). Linear domains
 * are widened to nice tick steps; log domains to whole decades (with 2 and 5 ticks when
 * the data spans two decades or less). Non-positive values cannot be drawn on a log scale.
 */
export function makeScale(lo: number, hi: number, p0: number, p1: number, log: boolean, tickCount = 5): Scale {
  let min: number;
  let max: number;
  let ticks: number[] = [];
  if (log) {
    if (!(lo > 0)) lo = hi > 0 ? hi / 10 : 1;
    if (!(hi > 0)) hi = lo * 10;
    let e0 = Math.floor(Math.log10(lo) + 1e-9);
    let e1 = Math.ceil(Math.log10(hi) - 1e-9);
    if (e1 <= e0) e1 = e0 + 1;
    // A floor right at the smallest value would put that bar at zero height.
    if (10 ** e0 === lo && e1 - e0 < 2) e0 -= 1;
    min = 10 ** e0;
    max = 10 ** e1;
    const decades = e1 - e0;
    const mults = decades <= 2 ? [1, 2, 5] : [1];
    const stride = Math.ceil(decades / 8);
    for (let e = e0; e <= e1; e += 1) {
      if ((e - e0) % stride !== 0 && e !== e1) continue;
      for (const m of mults) {
        const t = m * 10 ** e;
        if (t >= min * 0.999 && t <= max * 1.001) ticks.push(Number(t.toPrecision(6)));
      }
    }
    const lmin = Math.log10(min);
    const span = Math.log10(max) - lmin;
    return { map: (v) => p0 + ((Math.log10(v) - lmin) / span) * (p1 - p0), ticks, min, max, log };
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (hi === lo) {
    const pad = hi === 0 ? 1 : Math.abs(hi) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, tickCount);
  min = Math.floor(lo / step + 1e-9) * step;
  max = Math.ceil(hi / step - 1e-9) * step;
  for (let t = min; t <= max + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  const span = max - min;
  return { map: (v) => p0 + ((v - min) / span) * (p1 - p0), ticks, min, max, log };
}

// ---------------------------------------------------------------------------
// Shared pieces

interface Frame {
  width: number;
  left: number;
  top: number;
  plotW: number;
  plotH: number;
}

function header(title: string, subtitle: string | undefined, width: number): string {
  let s = `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`;
  if (subtitle) s += `<text x="${width / 2}" y="40" text-anchor="middle" font-size="11" fill="#555">${escapeXml(subtitle)}</text>`;
  return s;
}

function yAxis(f: Frame, scale: Scale, label: string): string {
  const parts: string[] = [];
  for (const t of scale.ticks) {
    const y = r1(scale.map(t));
    parts.push(`<line x1="${f.left}" x2="${f.left + f.plotW}" y1="${y}" y2="${y}" stroke="${GRID_COLOR}"/>`);
    parts.push(`<line x1="${f.left - 4}" x2="${f.left}" y1="${y}" y2="${y}" stroke="${AXIS_COLOR}"/>`);
    parts.push(`<text x="${f.left - 7}" y="${y + 4}" text-anchor="end">${escapeXml(formatCompact(t))}</text>`);
  }
  parts.push(`<line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.top + f.plotH}" stroke="${AXIS_COLOR}"/>`);
  const cy = f.top + f.plotH / 2;
  parts.push(`<text transform="translate(16 ${cy}) rotate(-90)" text-anchor="middle" font-weight="bold">${escapeXml(label)}${scale.log ? ' (log scale)' : ''}</text>`);
  return parts.join('');
}

interface LegendItem {
  name: string;
  color: string;
  dash?: string;
  kind: 'box' | 'line';
}

/** The legend under the plot, wrapped to the width; returns the markup and its height. */
function legend(items: LegendItem[], width: number, y0: number): { svg: string; height: number } {
  if (!items.length) return { svg: '', height: 0 };
  const rowH = 18;
  const parts: string[] = [];
  let x = 20;
  let y = y0;
  for (const it of items) {
    const w = 26 + textWidth(it.name) + 18;
    if (x + w > width - 10 && x > 20) {
      x = 20;
      y += rowH;
    }
    if (it.kind === 'box') parts.push(`<rect x="${x}" y="${y - 9}" width="14" height="10" fill="${it.color}"/>`);
    else parts.push(`<line x1="${x}" x2="${x + 20}" y1="${y - 4}" y2="${y - 4}" stroke="${it.color}" stroke-width="2.5"${it.dash ? ` stroke-dasharray="${it.dash}"` : ''}/>`);
    parts.push(`<text x="${x + 26}" y="${y}">${escapeXml(it.name)}</text>`);
    x += w;
  }
  return { svg: parts.join(''), height: y - y0 + rowH };
}

function wrap(width: number, height: number, body: string, title: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${Math.ceil(height)}" viewBox="0 0 ${width} ${Math.ceil(height)}" ` +
    `font-family="${escapeXml(FONT)}" font-size="${FONT_SIZE}" role="img" aria-label="${escapeXml(title)}">\n` +
    `<title>${escapeXml(title)}</title>\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`
  );
}

function noteLine(note: string | undefined, width: number, y: number): string {
  return note ? `<text x="${width / 2}" y="${y}" text-anchor="middle" font-size="10" fill="#666">${escapeXml(note)}</text>` : '';
}

// ---------------------------------------------------------------------------
// Grouped bar chart

export interface BarSeries {
  name: string;
  color?: string;
  /** One value per category; null/undefined/non-finite = not measured (no bar, "n/a" mark). */
  values: Array<number | null | undefined>;
}

export interface BarChartOptions {
  title: string;
  subtitle?: string;
  /** A line of small print under the legend (sources, caveats). */
  note?: string;
  categories: string[];
  series: BarSeries[];
  yLabel: string;
  xLabel?: string;
  logY?: boolean;
  /** Print the value above each bar when there is room (default true). */
  valueLabels?: boolean;
  /** Unit for the hover titles, e.g. "msg/s". */
  unit?: string;
  width?: number;
  plotHeight?: number;
}

export function barChart(o: BarChartOptions): string {
  const width = o.width ?? Math.max(640, Math.min(1400, 160 + o.categories.length * Math.max(70, o.series.length * 28)));
  const plotH = o.plotHeight ?? 300;
  const left = 78;
  const right = 20;
  const top = o.subtitle ? 56 : 40;
  const plotW = width - left - right;
  const f: Frame = { width, left, top, plotW, plotH };

  const vals = o.series.flatMap((s) => s.values).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const logY = !!o.logY;
  const drawable = logY ? vals.filter((v) => v > 0) : vals;
  const lo = logY ? Math.min(...drawable) : Math.min(0, ...drawable);
  const hi = drawable.length ? Math.max(...drawable) : 1;
  const y = makeScale(drawable.length ? lo : logY ? 1 : 0, hi, top + plotH, top, logY);
  const base = y.map(logY ? y.min : Math.max(0, y.min));

  const nCat = Math.max(1, o.categories.length);
  const slot = plotW / nCat;
  const groupW = slot * 0.8;
  const nSer = Math.max(1, o.series.length);
  const barW = groupW / nSer;
  const parts: string[] = [header(o.title, o.subtitle, width), yAxis(f, y, o.yLabel)];
  if (!vals.length) parts.push(`<text x="${left + plotW / 2}" y="${top + plotH / 2}" text-anchor="middle" fill="#999">no data</text>`);

  o.series.forEach((s, si) => {
    const color = s.color ?? PALETTE[si % PALETTE.length]!;
    o.categories.forEach((cat, ci) => {
      const v = s.values[ci];
      const x = left + ci * slot + (slot - groupW) / 2 + si * barW;
      const cx = r1(x + barW / 2);
      if (typeof v !== 'number' || !Number.isFinite(v) || (logY && v <= 0)) {
        parts.push(`<text x="${cx}" y="${r1(base - 3)}" text-anchor="middle" font-size="9" fill="#999">n/a<title>${escapeXml(`${s.name}, ${cat}: not measured`)}</title></text>`);
        return;
      }
      const yv = y.map(Math.max(v, y.min));
      const yTop = Math.min(yv, base);
      const h = Math.max(Math.abs(base - yv), 0.5);
      const tip = `${s.name}, ${cat}: ${formatCompact(v)}${o.unit ? ` ${o.unit}` : ''}`;
      parts.push(`<rect x="${r1(x + 1)}" y="${r1(yTop)}" width="${r1(Math.max(1, barW - 2))}" height="${r1(h)}" fill="${color}"><title>${escapeXml(tip)}</title></rect>`);
      if (o.valueLabels !== false) {
        const label = formatCompact(v);
        if (textWidth(label, 10) <= barW + 4) {
          parts.push(`<text x="${cx}" y="${r1(yTop - 3)}" text-anchor="middle" font-size="10">${escapeXml(label)}</text>`);
        } else if (barW >= 11) {
          parts.push(`<text transform="translate(${r1(cx + 3)} ${r1(yTop - 3)}) rotate(-90)" font-size="10">${escapeXml(label)}</text>`);
        }
      }
    });
  });
  // Baseline and category labels (rotated when they do not fit their slot).
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${r1(base)}" y2="${r1(base)}" stroke="${AXIS_COLOR}"/>`);
  const maxLabelW = Math.max(0, ...o.categories.map((c) => textWidth(c)));
  const rotate = maxLabelW > slot - 4;
  const axisY = top + plotH;
  o.categories.forEach((cat, ci) => {
    const cx = r1(left + ci * slot + slot / 2);
    if (rotate) parts.push(`<text transform="translate(${cx} ${axisY + 14}) rotate(-35)" text-anchor="end">${escapeXml(cat)}</text>`);
    else parts.push(`<text x="${cx}" y="${axisY + 18}" text-anchor="middle">${escapeXml(cat)}</text>`);
  });
  let yCursor = axisY + (rotate ? 14 + maxLabelW * Math.sin((35 * Math.PI) / 180) + 8 : 28);
  if (o.xLabel) {
    yCursor += 8;
    parts.push(`<text x="${left + plotW / 2}" y="${r1(yCursor)}" text-anchor="middle" font-weight="bold">${escapeXml(o.xLabel)}</text>`);
  }
  yCursor += 22;
  return finishChart(
    parts,
    o.series.map((s, si) => ({ name: s.name, color: s.color ?? PALETTE[si % PALETTE.length]!, kind: 'box' as const })),
    width,
    yCursor,
    o,
  );
}

// ---------------------------------------------------------------------------
// Line chart

export interface LineSeries {
  name: string;
  points: Array<[number, number]>;
  color?: string;
  /** stroke-dasharray, e.g. "6 4". */
  dash?: string;
  /** Draw a dot at every point (default: when the series has 30 points or fewer). */
  markers?: boolean;
}

export interface LineChartOptions {
  title: string;
  subtitle?: string;
  note?: string;
  series: LineSeries[];
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  logY?: boolean;
  /** Start the y axis at zero (linear scale only; default true). */
  yFromZero?: boolean;
  /** Unit for the hover titles. */
  unit?: string;
  width?: number;
  plotHeight?: number;
}

export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 820;
  const plotH = o.plotHeight ?? 320;
  const left = 78;
  const right = 24;
  const top = o.subtitle ? 56 : 40;
  const plotW = width - left - right;
  const f: Frame = { width, left, top, plotW, plotH };
  const logX = !!o.logX;
  const logY = !!o.logY;
  const usable = (p: [number, number]) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!logX || p[0] > 0) && (!logY || p[1] > 0);
  const pts = o.series.flatMap((s) => s.points.filter(usable));
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const xScale = makeScale(xs.length ? Math.min(...xs) : logX ? 1 : 0, xs.length ? Math.max(...xs) : logX ? 10 : 1, left, left + plotW, logX, 6);
  const yLo = ys.length ? Math.min(...ys) : logY ? 1 : 0;
  const y = makeScale(!logY && o.yFromZero !== false ? Math.min(0, yLo) : yLo, ys.length ? Math.max(...ys) : logY ? 10 : 1, top + plotH, top, logY);
  const parts: string[] = [header(o.title, o.subtitle, width), yAxis(f, y, o.yLabel)];
  const axisY = top + plotH;
  for (const t of xScale.ticks) {
    const x = r1(xScale.map(t));
    parts.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${axisY}" stroke="${GRID_COLOR}"/>`);
    parts.push(`<line x1="${x}" x2="${x}" y1="${axisY}" y2="${axisY + 4}" stroke="${AXIS_COLOR}"/>`);
    parts.push(`<text x="${x}" y="${axisY + 17}" text-anchor="middle">${escapeXml(formatCompact(t))}</text>`);
  }
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${axisY}" y2="${axisY}" stroke="${AXIS_COLOR}"/>`);
  if (!pts.length) parts.push(`<text x="${left + plotW / 2}" y="${top + plotH / 2}" text-anchor="middle" fill="#999">no data</text>`);

  o.series.forEach((s, si) => {
    const color = s.color ?? PALETTE[si % PALETTE.length]!;
    const sp = s.points.filter(usable).sort((a, b) => a[0] - b[0]);
    if (!sp.length) return;
    const coords = sp.map(([px, py]) => `${r1(xScale.map(px))},${r1(y.map(py))}`);
    parts.push(
      `<polyline points="${coords.join(' ')}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    if (s.markers ?? sp.length <= 30) {
      for (const [px, py] of sp) {
        const tip = `${s.name}: x=${formatCompact(px)}, y=${formatCompact(py)}${o.unit ? ` ${o.unit}` : ''}`;
        parts.push(`<circle cx="${r1(xScale.map(px))}" cy="${r1(y.map(py))}" r="3" fill="${color}"><title>${escapeXml(tip)}</title></circle>`);
      }
    }
  });
  let yCursor = axisY + 40;
  parts.push(`<text x="${left + plotW / 2}" y="${yCursor}" text-anchor="middle" font-weight="bold">${escapeXml(o.xLabel)}${logX ? ' (log scale)' : ''}</text>`);
  yCursor += 24;
  return finishChart(
    parts,
    o.series.map((s, si) => ({ name: s.name, color: s.color ?? PALETTE[si % PALETTE.length]!, kind: 'line' as const, ...(s.dash ? { dash: s.dash } : {}) })),
    width,
    yCursor,
    o,
  );
}

/** Legend under the plot, the optional note, and the outer <svg>: the end of every chart. */
function finishChart(parts: string[], items: Parameters<typeof legend>[0], width: number, yCursor: number, o: { note?: string; title: string }): string {
  const lg = legend(items, width, yCursor);
  parts.push(lg.svg);
  yCursor += lg.height;
  if (o.note) {
    yCursor += 4;
    parts.push(noteLine(o.note, width, yCursor));
  }
  return wrap(width, yCursor + 12, parts.join('\n'), o.title);
}
