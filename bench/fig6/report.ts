/** Writes the results: JSON (everything), Markdown tables and a hand-written SVG line chart. */
import type { Bytes, RunResult, VariantInfo } from './types.js';

export interface Report {
  generated: string;
  options: { counts: number[]; text: string; pace: string; quietMs: number; capture: boolean };
  environment: Record<string, string>;
  variants: Array<VariantInfo & { results: RunResult[] }>;
  /** Captured packets that fell in no run (should be 0). */
  unassignedPackets?: number;
  failures: Array<{ variant: string; error: string }>;
}

const sum = (b: Bytes): number => b.up + b.down;
const fmt = (n: number): string => n.toLocaleString('en-US');
const fmt1 = (n: number): string => (Math.round(n * 10) / 10).toLocaleString('en-US');

/** JSON with a `total` next to up/down everywhere, easy to read or plot elsewhere. */
export function toJson(r: Report): string {
  const withTotal = (b: Bytes): Bytes & { total: number } => ({ ...b, total: sum(b) });
  return JSON.stringify(
    {
      ...r,
      variants: r.variants.map((v) => ({
        ...v,
        results: v.results.map((x) => ({
          n: x.n,
          received: x.received,
          setup: withTotal(x.bytes.setup),
          messages: withTotal(x.bytes.messages),
          teardown: withTotal(x.bytes.teardown),
          total: withTotal(x.total),
          messageBytesPerMessage: sum(x.bytes.messages) / x.n,
          wire: x.wire,
          ms: x.ms,
        })),
      })),
    },
    null,
    2,
  );
}

export function toMarkdown(r: Report): string {
  const counts = r.options.counts;
  const out: string[] = [];
  out.push(`# Figure 6: bytes on the wire for N one-to-one text messages`);
  out.push('');
  out.push(`Generated ${r.generated}. Text: "${r.options.text}" (${Buffer.byteLength(r.options.text)} bytes), pace: ${r.options.pace}.`);
  out.push(`Environment: ${Object.entries(r.environment).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  out.push('');
  out.push('## Total payload bytes (both clients, both directions, setup + messages + teardown)');
  out.push('');
  out.push(`| protocol / variant | ${counts.map((n) => `N=${n}`).join(' | ')} |`);
  out.push(`|---|${counts.map(() => '---:').join('|')}|`);
  for (const v of r.variants) {
    const cell = (n: number): string => {
      const x = v.results.find((y) => y.n === n);
      return x ? fmt(sum(x.total)) : 'n/a';
    };
    out.push(`| ${v.label} | ${counts.map(cell).join(' | ')} |`);
  }
  out.push('');
  out.push('## Where the bytes go (payload bytes; up = clients to server, down = server to clients)');
  out.push('');
  out.push('| protocol / variant | setup up | setup down | per message up | per message down | per message total | teardown up + down |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const v of r.variants) {
    const last = [...v.results].sort((a, b) => b.n - a.n)[0];
    if (!last) continue;
    const m = last.bytes.messages;
    out.push(
      `| ${v.label} | ${fmt(last.bytes.setup.up)} | ${fmt(last.bytes.setup.down)} | ${fmt1(m.up / last.n)} | ${fmt1(m.down / last.n)} | ${fmt1(sum(m) / last.n)} | ${fmt(sum(last.bytes.teardown))} |`,
    );
  }
  out.push('');
  out.push('Per-message figures are the message phase of the largest N divided by N.');
  const wired = r.variants.filter((v) => v.results.some((x) => x.wire));
  if (wired.length) {
    out.push('');
    out.push('## With TCP/UDP and IP headers (tshark on lo; IP total length summed, no link-layer header)');
    out.push('');
    out.push(`| protocol / variant | ${counts.map((n) => `N=${n} bytes (packets)`).join(' | ')} |`);
    out.push(`|---|${counts.map(() => '---:').join('|')}|`);
    for (const v of wired) {
      const cell = (n: number): string => {
        const w = v.results.find((y) => y.n === n)?.wire?.total;
        return w ? `${fmt(w.ipBytes)} (${w.packets})` : 'n/a';
      };
      out.push(`| ${v.label} | ${counts.map(cell).join(' | ')} |`);
    }
    const mismatch = wired.flatMap((v) => v.results.filter((x) => x.wire && x.wire.total.payloadBytes !== sum(x.total)).map((x) => `${v.id} N=${x.n}`));
    out.push('');
    out.push(
      mismatch.length
        ? `Payload bytes seen by tshark differ from the socket counters for: ${mismatch.join(', ')}.`
        : 'Cross-check: the payload bytes tshark saw equal the socket counters in every run.',
    );
    if (r.unassignedPackets) out.push(`${r.unassignedPackets} captured packets could not be attributed to a run.`);
  }
  if (r.failures.length) {
    out.push('');
    out.push('## Failures');
    for (const f of r.failures) out.push(`- ${f.variant}: ${f.error}`);
  }
  out.push('');
  out.push('## Variants');
  out.push('');
  for (const v of r.variants) out.push(`- **${v.label}** (\`${v.id}\`, ${v.transport}): ${v.notes}`);
  out.push('');
  return out.join('\n');
}

/** A "nice" step (1, 2 or 5 times a power of ten) giving about `ticks` intervals. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const STYLE: Record<string, { color: string; dash?: string; marker: 'circle' | 'square' | 'triangle' | 'diamond' }> = {
  'mqtt311-qos0': { color: '#1f77b4', marker: 'circle' },
  'mqtt311-qos1': { color: '#1f77b4', dash: '6 3', marker: 'square' },
  'mqtt5-qos0': { color: '#17becf', marker: 'circle' },
  'mqtt5-qos1': { color: '#17becf', dash: '6 3', marker: 'square' },
  'mqtt311-qos1-sub': { color: '#2ca02c', dash: '2 2', marker: 'diamond' },
  xmpp: { color: '#ff7f0e', marker: 'triangle' },
  'xmpp-sm': { color: '#ff7f0e', dash: '6 3', marker: 'diamond' },
  sip: { color: '#d62728', marker: 'square' },
  'sip-auth': { color: '#d62728', dash: '6 3', marker: 'triangle' },
};
const FALLBACK = ['#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

/** Line chart of total payload bytes against the number of messages, one line per variant. */
export function toSvg(r: Report): string {
  const W = 1000;
  const H = 560;
  const m = { left: 90, right: 320, top: 50, bottom: 70 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const series = r.variants
    .map((v) => ({ v, pts: v.results.map((x) => ({ n: x.n, y: sum(x.total) })).sort((a, b) => a.n - b.n) }))
    .filter((s) => s.pts.length);
  const maxN = Math.max(1, ...series.flatMap((s) => s.pts.map((p) => p.n)));
  const maxY = Math.max(1, ...series.flatMap((s) => s.pts.map((p) => p.y)));
  const xStep = Math.max(1, niceStep(maxN, 10));
  const yStep = niceStep(maxY, 8);
  const xMax = Math.ceil(maxN / xStep) * xStep;
  const yMax = Math.ceil(maxY / yStep) * yStep;
  const X = (n: number): number => m.left + (n / xMax) * pw;
  const Y = (y: number): number => m.top + ph - (y / yMax) * ph;
  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  o.push(`<text x="${m.left + pw / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">Bytes on the wire for N one-to-one text messages</text>`);
  o.push(
    `<text x="${m.left + pw / 2}" y="41" text-anchor="middle" font-size="11" fill="#555">same ${Buffer.byteLength(r.options.text)}-byte text each time; login + messages + logout of sender and receiver; ${esc(r.generated)}</text>`,
  );
  // Grid and ticks.
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    o.push(`<line x1="${m.left}" y1="${Y(y).toFixed(1)}" x2="${m.left + pw}" y2="${Y(y).toFixed(1)}" stroke="#e5e5e5"/>`);
    o.push(`<text x="${m.left - 8}" y="${(Y(y) + 4).toFixed(1)}" text-anchor="end">${fmt(y)}</text>`);
  }
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    o.push(`<line x1="${X(x).toFixed(1)}" y1="${m.top + ph}" x2="${X(x).toFixed(1)}" y2="${m.top + ph + 5}" stroke="#333"/>`);
    o.push(`<text x="${X(x).toFixed(1)}" y="${m.top + ph + 20}" text-anchor="middle">${fmt(x)}</text>`);
  }
  o.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#333"/>`);
  o.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#333"/>`);
  o.push(`<text x="${m.left + pw / 2}" y="${H - 22}" text-anchor="middle" font-size="14">number of messages N</text>`);
  o.push(
    `<text transform="translate(24 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="14">bytes (TCP/UDP payload, both clients, both directions)</text>`,
  );
  // Lines, markers, legend.
  series.forEach((s, i) => {
    const st = STYLE[s.v.id] ?? { color: FALLBACK[i % FALLBACK.length]!, marker: 'circle' as const };
    const d = s.pts.map((p, j) => `${j ? 'L' : 'M'}${X(p.n).toFixed(1)} ${Y(p.y).toFixed(1)}`).join(' ');
    o.push(`<g><title>${esc(s.v.label)}</title>`);
    o.push(`<path d="${d}" fill="none" stroke="${st.color}" stroke-width="2"${st.dash ? ` stroke-dasharray="${st.dash}"` : ''}/>`);
    for (const p of s.pts) o.push(marker(st.marker, X(p.n), Y(p.y), st.color, `${s.v.label}, N=${p.n}: ${fmt(p.y)} bytes`));
    o.push('</g>');
    const ly = m.top + 10 + i * 24;
    const lx = m.left + pw + 20;
    o.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 30}" y2="${ly}" stroke="${st.color}" stroke-width="2"${st.dash ? ` stroke-dasharray="${st.dash}"` : ''}/>`);
    o.push(marker(st.marker, lx + 15, ly, st.color));
    o.push(`<text x="${lx + 38}" y="${ly + 4}">${esc(s.v.label)}</text>`);
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}

function marker(kind: string, x: number, y: number, color: string, title?: string): string {
  const t = title ? `<title>${esc(title)}</title>` : '';
  const X = x.toFixed(1);
  const Y = y.toFixed(1);
  switch (kind) {
    case 'square':
      return `<rect x="${(x - 3.5).toFixed(1)}" y="${(y - 3.5).toFixed(1)}" width="7" height="7" fill="${color}">${t}</rect>`;
    case 'triangle':
      return `<path d="M${X} ${(y - 4.5).toFixed(1)} L${(x + 4.5).toFixed(1)} ${(y + 3.5).toFixed(1)} L${(x - 4.5).toFixed(1)} ${(y + 3.5).toFixed(1)} Z" fill="${color}">${t}</path>`;
    case 'diamond':
      return `<path d="M${X} ${(y - 5).toFixed(1)} L${(x + 5).toFixed(1)} ${Y} L${X} ${(y + 5).toFixed(1)} L${(x - 5).toFixed(1)} ${Y} Z" fill="${color}">${t}</path>`;
    default:
      return `<circle cx="${X}" cy="${Y}" r="3.5" fill="${color}">${t}</circle>`;
  }
}
