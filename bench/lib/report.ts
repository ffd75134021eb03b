/**
 * The bench report: from every run of every scenario case to a summary per case and
 * broker (median, min-max over the rounds, median of each detail), a Markdown report
 * and SVG charts, written to bench/results/bench-<timestamp>.{json,md} and
 * bench-<timestamp>-<chart>.svg.
 *
 * Ratios are oriented so that > 1 always means Switchboard did better: Switchboard/peer
 * for higher-is-better units (msg/s), peer/Switchboard for lower-is-better ones (seconds).
 *
 * Charts (renderCharts):
 *   throughput[-<unit>]   grouped bars, every higher-is-better ".../s" case per broker
 *   latency-...           p50/p90/p99/p99.9/max per broker, from details p50Ms...maxMs
 *   push-vs-paper         cases "C=<n> push 1-100|1-1000|all" (seconds) with the paper's table 6
 *                         (PAPER_TABLE6 from bench/scenarios/conns.ts)
 *   series-...            Measurement.series of the median run, one line per broker
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BROKER_LABEL, REPO_ROOT, type BrokerName } from './brokers.js';
import { PAPER_TABLE6 } from '../scenarios/conns.js';
import type { BenchOptions, Measurement } from './scenario.js';
import { barChart, lineChart, SERIES_COLORS, type BarSeries, type LineSeries } from './svg.js';

export interface CaseRun {
  scenario: string;
  caseName: string;
  broker: BrokerName;
  round: number;
  m: Measurement;
}

export interface BenchReportInput {
  startedAt: string;
  finishedAt: string;
  host: { cpus: string; cores: number; memGiB: number; node: string; os: string; kernel: string };
  options: BenchOptions;
  scenarios: Array<{ name: string; description: string }>;
  runs: CaseRun[];
  /** Peer versions, e.g. { aedes: '1.2.0', mosquitto: '2.0.11' } */
  versions: Partial<Record<BrokerName, string>>;
  /** e.g. other-load warnings */
  machineNotes: string[];
  /** The command line that reproduces this run; built from the options when absent. */
  command?: string;
  /** The comparison with the previous committed run (regression.ts), Markdown, appended to the report. */
  previous?: string;
}

export interface BrokerSummary {
  /** Over the rounds that produced a number (NaN when none did). */
  median: number;
  min: number;
  max: number;
  /** Rounds that produced a number. */
  n: number;
  /** Rounds run (measured or not). */
  runs: number;
  /** Set when no round produced a number: why (the distinct reasons, joined). */
  notMeasured?: string;
  /** Distinct issues over the rounds, each with the rounds it occurred in. */
  issues: string[];
  /** Median of each detail over the measured rounds. */
  details: Record<string, number>;
  /** A broker of several processes (a cluster): median per process and key over the measured rounds. */
  breakdown?: Record<string, Record<string, number>>;
}

export interface CaseSummary {
  scenario: string;
  caseName: string;
  unit: string;
  higherIsBetter: boolean;
  byBroker: Partial<Record<BrokerName, BrokerSummary>>;
}

export { PAPER_TABLE6 };

export const LATENCY_KEYS = [
  ['p50Ms', 'p50'],
  ['p90Ms', 'p90'],
  ['p99Ms', 'p99'],
  ['p999Ms', 'p99.9'],
  ['maxMs', 'max'],
] as const;

// ---------------------------------------------------------------------------
// Summaries

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const measured = (m: Measurement) => m.notMeasured === undefined && Number.isFinite(m.value);

/** Brokers in report order: Switchboard first, then the order of the options, then any other seen. */
function brokerOrder(input: BenchReportInput): BrokerName[] {
  const seen = new Set<BrokerName>(input.runs.map((r) => r.broker));
  const order: BrokerName[] = [];
  for (const b of ['switchboard' as BrokerName, ...input.options.brokers, ...seen]) if (seen.has(b) && !order.includes(b)) order.push(b);
  return order;
}

function roundsText(rounds: number[]): string {
  return rounds.length === 1 ? `round ${rounds[0]}` : `rounds ${rounds.join(', ')}`;
}

export function summarize(input: BenchReportInput): CaseSummary[] {
  // Case order: scenarios as listed, then cases in the order they were first seen.
  const scenarioRank = new Map(input.scenarios.map((s, i) => [s.name, i]));
  const keys: Array<{ scenario: string; caseName: string; first: number }> = [];
  const byKey = new Map<string, CaseRun[]>();
  input.runs.forEach((r, i) => {
    const k = `${r.scenario}\u0000${r.caseName}`;
    let list = byKey.get(k);
    if (!list) {
      byKey.set(k, (list = []));
      keys.push({ scenario: r.scenario, caseName: r.caseName, first: i });
    }
    list.push(r);
  });
  keys.sort((a, b) => (scenarioRank.get(a.scenario) ?? 1e9) - (scenarioRank.get(b.scenario) ?? 1e9) || a.first - b.first);

  const order = brokerOrder(input);
  return keys.map(({ scenario, caseName }) => {
    const runs = byKey.get(`${scenario}\u0000${caseName}`)!;
    const head = runs.find((r) => measured(r.m)) ?? runs[0]!;
    const summary: CaseSummary = { scenario, caseName, unit: head.m.unit, higherIsBetter: head.m.higherIsBetter, byBroker: {} };
    for (const broker of order) {
      const rs = runs.filter((r) => r.broker === broker).sort((a, b) => a.round - b.round);
      if (!rs.length) continue;
      const ok = rs.filter((r) => measured(r.m));
      const values = ok.map((r) => r.m.value);
      const issueRounds = new Map<string, number[]>();
      for (const r of rs) for (const i of r.m.issues) {
        const list = issueRounds.get(i) ?? [];
        if (!list.includes(r.round)) list.push(r.round);
        issueRounds.set(i, list);
      }
      const issues = [...issueRounds].map(([text, rounds]) => (rs.length > 1 ? `${text} (${roundsText(rounds)})` : text));
      for (const r of ok) {
        if (r.m.unit !== summary.unit) issues.push(`round ${r.round} reported its value in ${r.m.unit}, not ${summary.unit}`);
      }
      const detailKeys = [...new Set(ok.flatMap((r) => Object.keys(r.m.details)))];
      const details: Record<string, number> = {};
      for (const k of detailKeys) {
        const v = median(ok.map((r) => r.m.details[k]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x)));
        if (Number.isFinite(v)) details[k] = v;
      }
      const bs: BrokerSummary = {
        median: median(values),
        min: values.length ? Math.min(...values) : NaN,
        max: values.length ? Math.max(...values) : NaN,
        n: values.length,
        runs: rs.length,
        issues,
        details,
      };
      const procs = [...new Set(ok.flatMap((r) => Object.keys(r.m.breakdown ?? {})))];
      if (procs.length) {
        bs.breakdown = {};
        for (const proc of procs) {
          const keys = [...new Set(ok.flatMap((r) => Object.keys(r.m.breakdown?.[proc] ?? {})))];
          const row: Record<string, number> = {};
          for (const k of keys) {
            const v = median(ok.map((r) => r.m.breakdown?.[proc]?.[k]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x)));
            if (Number.isFinite(v)) row[k] = v;
          }
          bs.breakdown[proc] = row;
        }
      }
      if (!values.length) {
        const reasons = [...new Set(rs.map((r) => r.m.notMeasured).filter((x): x is string => !!x))];
        bs.notMeasured = reasons.length ? reasons.join('; ') : 'no valid measurement';
      } else if (values.length < rs.length) {
        const reasons = [...new Set(rs.filter((r) => !measured(r.m)).map((r) => r.m.notMeasured ?? 'no value'))];
        issues.push(`${rs.length - values.length} of ${rs.length} rounds not measured: ${reasons.join('; ')}`);
      }
      summary.byBroker[broker] = bs;
    }
    return summary;
  });
}

/** > 1 means Switchboard did better than the peer; NaN when either side has no number. */
export function ratioVsPeer(c: CaseSummary, peer: BrokerName): number {
  const sb = c.byBroker.switchboard;
  const p = c.byBroker[peer];
  if (!sb || !p || !sb.n || !p.n) return NaN;
  const r = c.higherIsBetter ? sb.median / p.median : p.median / sb.median;
  return Number.isFinite(r) ? r : NaN;
}

// ---------------------------------------------------------------------------
// Markdown

const label = (b: BrokerName) => BROKER_LABEL[b] ?? b;

/** Numbers for tables: thousands separators for big numbers, 2-3 significant digits for small ones. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 100) return Math.round(v).toLocaleString('en-US');
  if (a >= 10) return v.toFixed(1).replace(/\.0$/, '');
  if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, '');
  if (a === 0) return '0';
  return String(Number(v.toPrecision(3)));
}

/** A Markdown table cell: no pipes or line breaks. */
export function cell(s: string): string {
  return s.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
}

/** `p50Ms` -> `p50 ms`, `brokerCpuPct` -> `brokerCpu %`, `MBps` -> `MB/s`. */
export function detailLabel(key: string): string {
  const m = /^(.*?)(Ms|Pct|MBps|MiB|MB|KiB|S)$/.exec(key);
  if (!m || !m[1]) return key === 'MBps' ? 'MB/s' : key;
  const unit = { Ms: 'ms', Pct: '%', MBps: 'MB/s', MiB: 'MiB', MB: 'MB', KiB: 'KiB', S: 's' }[m[2]!]!;
  const name = m[1] === 'p999' ? 'p99.9' : m[1];
  return `${name} ${unit}`;
}

function valueCell(s: BrokerSummary | undefined): string {
  if (!s) return '–';
  if (s.notMeasured !== undefined) return `*${cell(s.notMeasured)}*`;
  let t = `**${formatNumber(s.median)}**`;
  if (s.n > 1) t += ` (${formatNumber(s.min)}-${formatNumber(s.max)})`;
  if (s.n < s.runs) t += ` [${s.n} of ${s.runs} runs]`;
  return t;
}

function optionsLine(o: BenchOptions): string {
  const parts = [
    o.quick ? 'quick' : 'full',
    `${o.rounds} round${o.rounds === 1 ? '' : 's'}`,
    `${o.durationS} s window after ${o.warmupS} s warm-up`,
    `transport ${o.transport}`,
    `QoS ${o.qos}`,
    `payload ${o.payloadSize} B`,
    `MQTT ${o.protocolVersion === 5 ? '5.0' : '3.1.1'}`,
    `brokers ${o.brokers.join(', ')}`,
  ];
  if (o.genProcs !== undefined) parts.push(`${o.genProcs} generator process${o.genProcs === 1 ? '' : 'es'}`);
  const extra = Object.entries(o.extra);
  if (extra.length) parts.push(`extra ${extra.map(([k, v]) => `${k}=${v}`).join(', ')}`);
  return parts.join('; ');
}

/**
 * A command line for bench/run.ts that reruns the same scenarios with the same options
 * (`--switchboard-args` is not in BenchOptions: pass `command` to keep it).
 */
export function reproduceCommand(input: BenchReportInput): string {
  if (input.command) return input.command;
  const o = input.options;
  const q = (s: string) => (/^[\w.,:/=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const args = [input.scenarios.map((s) => s.name).join(',')];
  if (o.quick) args.push('--quick');
  args.push('--rounds', String(o.rounds), '--duration', String(o.durationS), '--warmup', String(o.warmupS));
  args.push('--brokers', o.brokers.join(','), '--payload', String(o.payloadSize));
  if (o.protocolVersion === 5) args.push('--v5');
  if (o.genProcs !== undefined) args.push('--gen-procs', String(o.genProcs));
  // Scenario options, and --transport / --qos when given, live in `extra`.
  for (const [k, v] of Object.entries(o.extra)) args.push(`--${k}`, v);
  return `npm run bench -- ${args.map(q).join(' ')}`;
}

/**
 * conns: Switchboard's numbers beside the paper's table 6 (PAPER_TABLE6), one row per C
 * that either has. Empty when Switchboard did not run.
 */
export function paperTable(cases: CaseSummary[]): string[] {
  const sb = (name: string) => cases.find((c) => c.caseName === name)?.byBroker.switchboard;
  const counts = [...new Set(cases.map((c) => /^C=(\d+) /.exec(c.caseName)?.[1]).filter((x): x is string => !!x).map(Number))].sort((a, b) => a - b);
  if (!counts.some((c) => sb(`C=${c} push all`))) return [];
  const v = (s: BrokerSummary | undefined, key?: string) =>
    !s ? '–' : s.notMeasured !== undefined ? '*not measured*' : formatNumber(key ? (s.details[key] ?? NaN) : s.median);
  const L = ['', '**Beside the paper (table 6)**: paper = Dell R320, 8 cores at 2.5 GHz, one broker; ours = Switchboard on this machine (median over the rounds; `nodes` > 1: a cluster on this host). Times in s.', ''];
  L.push('| C | nodes | paper 1-100 | ours 1-100 | paper 1-1000 | ours 1-1000 | paper all | ours all | paper CPU % | ours idle CPU % | ours CPU % during push all | RSS/conn KiB | connect rate conn/s |');
  L.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const c of counts) {
    const p = PAPER_TABLE6.find((r) => r.connections === c);
    const all = sb(`C=${c} push all`);
    const nodes = all?.details['nodes'] ?? sb(`C=${c} connect rate`)?.details['nodes'];
    L.push(
      `| ${c.toLocaleString('en-US')} | ${nodes !== undefined ? formatNumber(nodes) : '–'} | ${p ? formatNumber(p.push100) : '–'} | ${v(sb(`C=${c} push 1-100`))} | ${p ? formatNumber(p.push1000) : '–'} | ${v(sb(`C=${c} push 1-1000`))} | ${p ? formatNumber(p.pushAll) : '–'} | ${v(all)} | ${p ? formatNumber(p.cpuPct) : '–'} | ${v(sb(`C=${c} idle CPU`))} | ${v(all, 'brokerCpuPct')} | ${v(sb(`C=${c} idle RSS/conn`))} | ${v(sb(`C=${c} connect rate`))} |`,
    );
  }
  return L;
}

function durationText(startedAt: string, finishedAt: string): string {
  const s = (Date.parse(finishedAt) - Date.parse(startedAt)) / 1000;
  if (!Number.isFinite(s)) return '';
  return s >= 120 ? `${(s / 60).toFixed(1)} min` : `${Math.round(s)} s`;
}

export function renderMarkdown(input: BenchReportInput, summaries: CaseSummary[], charts: string[]): string {
  const L: string[] = [];
  const h = input.host;
  const dur = durationText(input.startedAt, input.finishedAt);
  L.push(`# Switchboard benchmark, ${input.startedAt.slice(0, 10)}`);
  L.push('');
  L.push(`- **date**: ${input.startedAt} to ${input.finishedAt}${dur ? ` (${dur})` : ''}`);
  L.push(`- **machine**: ${h.cpus}, ${h.cores} cores, ${formatNumber(h.memGiB)} GiB; ${h.os} (kernel ${h.kernel}); Node.js ${h.node}`);
  L.push(`- **options**: ${optionsLine(input.options)}`);
  const versions = brokerOrder(input)
    .map((b) => (input.versions[b] ? `${label(b)} ${input.versions[b]}` : label(b)))
    .join(', ');
  if (versions) L.push(`- **brokers**: ${versions}`);
  L.push(`- **reproduce**: \`${reproduceCommand(input)}\``);
  L.push('- **ratios**: "vs X" columns are oriented so that > 1 means Switchboard did better (Switchboard/X for rates, X/Switchboard for times and sizes)');
  L.push('- cells: **median** (min-max) over the rounds; *italics* = not measured, and why');
  if (input.machineNotes.length) {
    L.push('');
    L.push('**Machine notes**');
    L.push('');
    for (const n of input.machineNotes) L.push(`- ${n}`);
  }

  const scenarioNames = [...new Set([...input.scenarios.map((s) => s.name), ...summaries.map((s) => s.scenario)])];
  for (const name of scenarioNames) {
    const cases = summaries.filter((s) => s.scenario === name);
    const desc = input.scenarios.find((s) => s.name === name)?.description;
    L.push('');
    L.push(`## ${name}`);
    L.push('');
    if (desc) {
      L.push(desc);
      L.push('');
    }
    if (!cases.length) {
      L.push('*no runs*');
      continue;
    }
    const brokers = brokerOrder(input).filter((b) => cases.some((c) => c.byBroker[b]));
    const peers = brokers.filter((b) => b !== 'switchboard');
    const units = [...new Set(cases.map((c) => c.unit))];
    const oneUnit = units.length === 1 ? units[0]! : undefined;
    const hasSb = brokers.includes('switchboard');

    const head = ['Case', ...(oneUnit ? [] : ['Unit']), ...brokers.map((b) => (oneUnit ? `${label(b)} (${oneUnit})` : label(b))), ...(hasSb ? peers.map((p) => `vs ${label(p)}`) : [])];
    L.push(`| ${head.map(cell).join(' | ')} |`);
    L.push(`|${head.map((_, i) => (i === 0 || (!oneUnit && i === 1) ? '---' : '---:')).join('|')}|`);
    for (const c of cases) {
      const unitCell = `${c.unit}${c.higherIsBetter ? '' : ' (lower is better)'}`;
      const row = [
        cell(c.caseName),
        ...(oneUnit ? [] : [cell(unitCell)]),
        ...brokers.map((b) => valueCell(c.byBroker[b])),
        ...(hasSb
          ? peers.map((p) => {
              const r = ratioVsPeer(c, p);
              return Number.isFinite(r) ? `${r.toFixed(2)}x` : '–';
            })
          : []),
      ];
      L.push(`| ${row.join(' | ')} |`);
    }
    if (oneUnit && !cases[0]!.higherIsBetter) L.push(`\n(${oneUnit}: lower is better)`);

    // Details: one row per case and broker, one column per detail key.
    const detailKeys = [...new Set(cases.flatMap((c) => brokers.flatMap((b) => Object.keys(c.byBroker[b]?.details ?? {}))))];
    if (detailKeys.length) {
      L.push('');
      const dh = ['Case', 'Broker', ...detailKeys.map(detailLabel)];
      L.push(`| ${dh.map(cell).join(' | ')} |`);
      L.push(`|${dh.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`);
      for (const c of cases) {
        for (const b of brokers) {
          const s = c.byBroker[b];
          if (!s || !Object.keys(s.details).length) continue;
          L.push(`| ${[cell(c.caseName), label(b), ...detailKeys.map((k) => (k in s.details ? formatNumber(s.details[k]!) : '–'))].join(' | ')} |`);
        }
      }
      L.push('');
      L.push('(details: medians over the measured rounds)');
    }

    // Brokers of several processes (a cluster): one cell per key, "n0 12 · n1 11 · nats-server 0.4" (NATS: "s0 · s1").
    const withBreakdown = cases.flatMap((c) => brokers.flatMap((b) => (c.byBroker[b]?.breakdown ? [[c, b, c.byBroker[b]!.breakdown!] as const] : [])));
    if (withBreakdown.length) {
      const bKeys = [...new Set(withBreakdown.flatMap(([, , bd]) => Object.values(bd).flatMap((row) => Object.keys(row))))];
      L.push('');
      L.push("Per process (cluster nodes: Switchboard's n0, n1, ... and nats-server, a NATS cluster's servers s0, s1, ...; the details above are their sums):");
      L.push('');
      const bh = ['Case', 'Broker', ...bKeys.map(detailLabel)];
      L.push(`| ${bh.map(cell).join(' | ')} |`);
      L.push(`|${bh.map(() => '---').join('|')}|`);
      for (const [c, b, bd] of withBreakdown) {
        const cells = bKeys.map((k) => {
          const parts = Object.entries(bd).filter(([, row]) => k in row).map(([proc, row]) => `${proc} ${formatNumber(row[k]!)}`);
          return parts.length ? parts.join(' · ') : '–';
        });
        L.push(`| ${[cell(c.caseName), label(b), ...cells].join(' | ')} |`);
      }
    }

    if (name === 'conns') L.push(...paperTable(cases));

    const issueLines: string[] = [];
    for (const c of cases) {
      for (const b of brokers) {
        for (const i of c.byBroker[b]?.issues ?? []) issueLines.push(`- ${label(b)}, \`${c.caseName.replace(/`/g, "'")}\`: ${i.replace(/\r?\n/g, ' ')}`);
      }
    }
    if (issueLines.length) {
      L.push('');
      L.push('**Issues**');
      L.push('');
      L.push(...issueLines);
    }
  }

  if (input.previous) {
    L.push('');
    L.push(input.previous);
  }

  if (charts.length) {
    L.push('');
    L.push('## Charts');
    for (const c of charts) {
      const base = path.basename(c).replace(/\.svg$/, '').replace(/^bench-\d{4}-\d\d-\d\dT[\d-]+Z-/, '');
      L.push('');
      L.push(`![${base}](${encodeURI(c)})`);
    }
  }
  return L.join('\n') + '\n';
}

// ---------------------------------------------------------------------------
// Charts

export function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60) || 'chart';
}

const color = (b: string) => SERIES_COLORS[b];
const withColor = (name: string, key: string) => {
  const c = color(key);
  return c ? { name, color: c } : { name };
};

const PUSH_RE = /^C\s*=\s*([\d,_]+)\s+push\s+(1-100|1-1000|all)$/i;
const PUSH_GROUPS = [
  { key: '1-100', paper: 'push100', dash: undefined },
  { key: '1-1000', paper: 'push1000', dash: '7 4' },
  { key: 'all', paper: 'pushAll', dash: '2 3' },
] as const;

function isRateUnit(unit: string): boolean {
  return /\/\s*s$|per s(ec(ond)?)?$/i.test(unit.trim());
}

export function renderCharts(input: BenchReportInput, summaries: CaseSummary[]): Array<{ name: string; svg: string }> {
  const out: Array<{ name: string; svg: string }> = [];
  const used = new Set<string>();
  const add = (name: string, svg: string) => {
    let n = slug(name);
    for (let i = 2; used.has(n); i++) n = `${slug(name)}-${i}`;
    used.add(n);
    out.push({ name: n, svg });
  };
  const order = brokerOrder(input);
  const rounds = `median of ${input.options.rounds} round${input.options.rounds === 1 ? '' : 's'}`;

  // (a) throughput: one grouped bar chart per rate unit.
  const rateCases = summaries.filter((c) => c.higherIsBetter && isRateUnit(c.unit) && Object.values(c.byBroker).some((s) => s && s.n));
  const rateUnits = [...new Set(rateCases.map((c) => c.unit))];
  for (const unit of rateUnits) {
    const cases = rateCases.filter((c) => c.unit === unit);
    const brokers = order.filter((b) => cases.some((c) => c.byBroker[b]));
    const vals = cases.flatMap((c) => brokers.map((b) => c.byBroker[b]?.median)).filter((v): v is number => typeof v === 'number' && v > 0);
    const logY = vals.length > 1 && Math.max(...vals) / Math.min(...vals) > 30;
    const multiScenario = new Set(cases.map((c) => c.scenario)).size > 1;
    add(
      rateUnits.length > 1 ? `throughput-${unit}` : 'throughput',
      barChart({
        title: `Throughput per scenario case (${unit})`,
        subtitle: `${rounds}, higher is better; ${input.startedAt.slice(0, 10)}, ${input.host.cores} cores`,
        categories: cases.map((c) => (multiScenario && c.caseName !== c.scenario ? `${c.scenario}: ${c.caseName}` : c.caseName)),
        series: brokers.map<BarSeries>((b) => ({ ...withColor(label(b), b), values: cases.map((c) => (c.byBroker[b]?.n ? c.byBroker[b]!.median : null)) })),
        yLabel: unit,
        unit,
        logY,
      }),
    );
  }

  // (b) latency percentiles.
  // At least two of the percentiles, else there is no distribution to draw.
  const hasLatency = (s: BrokerSummary | undefined) => !!s && LATENCY_KEYS.filter(([k]) => Number.isFinite(s.details[k])).length >= 2;
  const latencyPoints = (s: BrokerSummary) => LATENCY_KEYS.map(([k]) => s.details[k] ?? null);
  const latencyLog = (series: BarSeries[]) => {
    const v = series.flatMap((s) => s.values).filter((x): x is number => typeof x === 'number' && x > 0);
    return v.length > 1 && Math.max(...v) / Math.min(...v) > 20;
  };
  for (const scenario of [...new Set(summaries.map((c) => c.scenario))]) {
    const cases = summaries.filter((c) => c.scenario === scenario && order.some((b) => hasLatency(c.byBroker[b])));
    if (!cases.length) continue;
    const brokers = order.filter((b) => cases.some((c) => hasLatency(c.byBroker[b])));
    if (brokers.length === 1) {
      // One broker (e.g. HTTP): one chart, a series per case.
      const b = brokers[0]!;
      const series = cases
        .filter((c) => hasLatency(c.byBroker[b]))
        .map<BarSeries>((c) => ({ name: c.caseName, values: latencyPoints(c.byBroker[b]!) }));
      add(
        `latency-${scenario}`,
        barChart({
          title: `${scenario}: latency percentiles, ${label(b)}`,
          subtitle: `ms, lower is better (${rounds} of each percentile)`,
          categories: LATENCY_KEYS.map(([, l]) => l),
          series,
          yLabel: 'latency (ms)',
          unit: 'ms',
          logY: latencyLog(series),
        }),
      );
      continue;
    }
    for (const c of cases) {
      const series = brokers.map<BarSeries>((b) => ({
        ...withColor(label(b), b),
        values: hasLatency(c.byBroker[b]) ? latencyPoints(c.byBroker[b]!) : LATENCY_KEYS.map(() => null),
      }));
      add(
        cases.length === 1 && c.caseName === scenario ? `latency-${scenario}` : `latency-${scenario}-${c.caseName}`,
        barChart({
          title: `${c.caseName === scenario ? scenario : `${scenario} / ${c.caseName}`}: latency percentiles`,
          subtitle: `ms, lower is better (${rounds} of each percentile)`,
          categories: LATENCY_KEYS.map(([, l]) => l),
          series,
          yLabel: 'latency (ms)',
          unit: 'ms',
          logY: latencyLog(series),
        }),
      );
    }
  }

  // (c) push times against the paper's table 6.
  const push = summaries
    .map((c) => ({ c, m: PUSH_RE.exec(c.caseName.trim()) }))
    .filter((x): x is { c: CaseSummary; m: RegExpExecArray } => x.m !== null)
    .map(({ c, m }) => ({ c, conns: Number(m[1]!.replace(/[,_]/g, '')), group: m[2]!.toLowerCase() }));
  if (push.length) {
    const series: LineSeries[] = [];
    const brokers = order.filter((b) => push.some((p) => p.c.byBroker[b]?.n));
    for (const g of PUSH_GROUPS) {
      const inGroup = push.filter((p) => p.group === g.key);
      if (!inGroup.length) continue;
      for (const b of brokers) {
        const pts = inGroup.filter((p) => p.c.byBroker[b]?.n).map<[number, number]>((p) => [p.conns, p.c.byBroker[b]!.median]);
        if (pts.length) series.push({ ...withColor(`${label(b)} push ${g.key}`, b), points: pts, ...(g.dash ? { dash: g.dash } : {}), markers: true });
      }
      series.push({
        name: `paper push ${g.key}`,
        color: SERIES_COLORS.paper!,
        points: PAPER_TABLE6.map((r) => [r.connections, r[g.paper]]),
        ...(g.dash ? { dash: g.dash } : {}),
        markers: true,
      });
    }
    const xs = series.flatMap((s) => s.points.map((p) => p[0]));
    add(
      'push-vs-paper',
      lineChart({
        title: 'Time to push one message to clients 1-100, 1-1000 and all, against the paper (table 6)',
        subtitle: `seconds, lower is better (${rounds}); line style = recipients, colour = broker`,
        note: "paper: Dell R320, 8 cores at 2.5 GHz, 100 Mbit/s (the paper gives no unit; read as seconds). This run: " +
          `${input.host.cores} cores, ${input.host.cpus}`,
        series,
        xLabel: 'connections',
        yLabel: 'push time (s)',
        unit: 's',
        logY: true,
        logX: Math.max(...xs) / Math.min(...xs) > 20,
      }),
    );
  }

  // (d) time series: the run closest to the broker's median, one line per broker.
  const runsByCase = new Map<string, CaseRun[]>();
  for (const r of input.runs) {
    if (!r.m.series || !Object.keys(r.m.series).length) continue;
    const k = `${r.scenario}\u0000${r.caseName}`;
    runsByCase.set(k, [...(runsByCase.get(k) ?? []), r]);
  }
  for (const c of summaries) {
    const runs = runsByCase.get(`${c.scenario}\u0000${c.caseName}`);
    if (!runs) continue;
    const names = [...new Set(runs.flatMap((r) => Object.keys(r.m.series!)))];
    for (const sname of names) {
      const series: LineSeries[] = [];
      for (const b of order) {
        const rs = runs.filter((r) => r.broker === b && r.m.series![sname]?.length);
        if (!rs.length) continue;
        const med = c.byBroker[b]?.median;
        const pick =
          med !== undefined && Number.isFinite(med)
            ? rs.reduce((best, r) => (Math.abs(r.m.value - med) < Math.abs(best.m.value - med) ? r : best))
            : rs[0]!;
        series.push({ ...withColor(`${label(b)} (round ${pick.round})`, b), points: pick.m.series![sname]!, markers: false });
      }
      if (!series.length) continue;
      const [yLab, xLab] = sname.includes(' vs ') ? (sname.split(' vs ', 2) as [string, string]) : [sname, 'time (s)'];
      const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v > 0);
      add(
        `series-${c.scenario}-${c.caseName === c.scenario ? '' : `${c.caseName}-`}${sname}`,
        lineChart({
          title: `${c.caseName === c.scenario ? c.scenario : `${c.scenario} / ${c.caseName}`}: ${yLab}`,
          subtitle: 'the round closest to each broker\'s median',
          series,
          xLabel: xLab,
          yLabel: yLab,
          logY: ys.length > 1 && Math.max(...ys) / Math.min(...ys) > 1000,
        }),
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Files

/** `2026-11-25T19:33:51.138Z` -> `2026-11-25T19-33-51-138Z` (as bench:quick names its files). */
export function fileStamp(iso: string): string {
  return iso.replace(/[:.]/g, '-');
}

export function writeReport(input: BenchReportInput, dir = 'bench/results'): { json: string; md: string; svgs: string[] } {
  const outDir = path.resolve(REPO_ROOT, dir);
  mkdirSync(outDir, { recursive: true });
  const stamp = fileStamp(input.startedAt);
  const base = `bench-${stamp}`;
  const summaries = summarize(input);
  const charts = renderCharts(input, summaries);
  const svgs: string[] = [];
  for (const c of charts) {
    const file = path.join(outDir, `${base}-${c.name}.svg`);
    writeFileSync(file, c.svg);
    svgs.push(file);
  }
  const markdown = renderMarkdown(input, summaries, svgs.map((f) => path.basename(f)));
  const md = path.join(outDir, `${base}.md`);
  writeFileSync(md, markdown);
  const json = path.join(outDir, `${base}.json`);
  writeFileSync(
    json,
    JSON.stringify({ kind: 'bench', ...input, command: reproduceCommand(input), summaries, charts: svgs.map((f) => path.basename(f)) }, null, 2) + '\n',
  );
  return { json, md, svgs };
}


