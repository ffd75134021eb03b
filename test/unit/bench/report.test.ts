import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BrokerName } from '../../../bench/lib/brokers.js';
import {
  PAPER_TABLE6,
  detailLabel,
  formatNumber,
  ratioVsPeer,
  renderCharts,
  renderMarkdown,
  summarize,
  writeReport,
  type BenchReportInput,
  type CaseRun,
} from '../../../bench/lib/report.js';
import type { Measurement } from '../../../bench/lib/scenario.js';

function m(value: number, extra: Partial<Measurement> = {}): Measurement {
  return { value, unit: 'msg/s', higherIsBetter: true, details: {}, issues: [], ...extra };
}

function run(scenario: string, caseName: string, broker: BrokerName, round: number, meas: Measurement): CaseRun {
  return { scenario, caseName, broker, round, m: meas };
}

function input(runs: CaseRun[], over: Partial<BenchReportInput> = {}): BenchReportInput {
  return {
    startedAt: '2026-11-25T20:00:00.000Z',
    finishedAt: '2026-11-25T20:05:30.000Z',
    host: { cpus: 'Test CPU @ 2.5GHz', cores: 2, memGiB: 8, node: 'v20.20.2', os: 'linux', kernel: '6.1.0' },
    options: {
      quick: true,
      rounds: 3,
      durationS: 3,
      warmupS: 1,
      transport: 'tcp',
      qos: 0,
      payloadSize: 64,
      protocolVersion: 4,
      brokers: ['switchboard', 'aedes', 'mosquitto'],
      extra: { conns: '1000,2000' },
    },
    scenarios: [
      { name: 'fanin', description: '20 publishers, 1 subscriber' },
      { name: 'conns', description: 'idle connections, push times' },
    ],
    runs,
    versions: { aedes: '1.2.0', mosquitto: '2.0.11' },
    machineNotes: [],
    ...over,
  };
}

const fanin: CaseRun[] = [
  run('fanin', 'qos0', 'switchboard', 1, m(100, { details: { p50Ms: 2, p99Ms: 10 } })),
  run('fanin', 'qos0', 'aedes', 1, m(40, { details: { p50Ms: 5, p99Ms: 30 } })),
  run('fanin', 'qos0', 'switchboard', 2, m(300, { details: { p50Ms: 4, p99Ms: 20 }, issues: ['machine busy'] })),
  run('fanin', 'qos0', 'aedes', 2, m(60, { details: { p50Ms: 7, p99Ms: 50 } })),
  run('fanin', 'qos0', 'switchboard', 3, m(200, { details: { p50Ms: 3, p99Ms: 15 }, issues: ['machine busy'] })),
  run('fanin', 'qos0', 'aedes', 3, m(50, { details: { p50Ms: 6, p99Ms: 40 } })),
  run('fanin', 'qos0', 'mosquitto', 1, m(NaN, { notMeasured: 'not installed' })),
];

const push = (c: number, group: string, broker: BrokerName, v: number): CaseRun =>
  run('conns', `C=${c} push ${group}`, broker, 1, m(v, { unit: 's', higherIsBetter: false }));
const conns: CaseRun[] = [
  push(1000, '1-100', 'switchboard', 0.01),
  push(1000, '1-100', 'aedes', 0.05),
  push(1000, 'all', 'switchboard', 0.2),
  push(1000, 'all', 'aedes', 0.4),
  push(2000, '1-100', 'switchboard', 0.02),
  push(2000, 'all', 'switchboard', 0.5),
  run('conns', 'rss per connection', 'switchboard', 1, m(12, { unit: 'KiB', higherIsBetter: false })),
];

describe('summarize', () => {
  const s = summarize(input([...fanin, ...conns]));

  it('orders cases by scenario list, then first appearance', () => {
    expect(s.map((c) => `${c.scenario}/${c.caseName}`)).toEqual([
      'fanin/qos0',
      'conns/C=1000 push 1-100',
      'conns/C=1000 push all',
      'conns/C=2000 push 1-100',
      'conns/C=2000 push all',
      'conns/rss per connection',
    ]);
  });

  it('gives median, min, max, n and median details per broker', () => {
    const sb = s[0]!.byBroker.switchboard!;
    expect(sb).toMatchObject({ median: 200, min: 100, max: 300, n: 3, runs: 3 });
    expect(sb.details).toEqual({ p50Ms: 3, p99Ms: 15 });
    expect(s[0]!.byBroker.aedes).toMatchObject({ median: 50, min: 40, max: 60, n: 3 });
  });

  it('merges an issue repeated over rounds, naming the rounds', () => {
    expect(s[0]!.byBroker.switchboard!.issues).toEqual(['machine busy (rounds 2, 3)']);
  });

  it('keeps notMeasured when no round produced a number', () => {
    const mo = s[0]!.byBroker.mosquitto!;
    expect(mo.notMeasured).toBe('not installed');
    expect(mo.n).toBe(0);
    expect(Number.isNaN(mo.median)).toBe(true);
  });

  it('counts a partly measured case and says so in its issues', () => {
    const part = summarize(input([run('fanin', 'qos0', 'aedes', 1, m(10)), run('fanin', 'qos0', 'aedes', 2, m(NaN, { notMeasured: 'crashed' }))]));
    const a = part[0]!.byBroker.aedes!;
    expect(a.notMeasured).toBeUndefined();
    expect(a).toMatchObject({ n: 1, runs: 2, median: 10 });
    expect(a.issues).toEqual(['1 of 2 rounds not measured: crashed']);
  });

  it('orients ratios so that > 1 means Switchboard did better', () => {
    expect(ratioVsPeer(s[0]!, 'aedes')).toBe(4); // 200 / 50 msg/s
    const c = s.find((x) => x.caseName === 'C=1000 push 1-100')!;
    expect(c.higherIsBetter).toBe(false);
    expect(ratioVsPeer(c, 'aedes')).toBeCloseTo(5); // 0.05 s / 0.01 s
    expect(Number.isNaN(ratioVsPeer(s[0]!, 'mosquitto'))).toBe(true);
  });
});

describe('renderMarkdown', () => {
  const inp = input([...fanin, ...conns], { machineNotes: ['other processes used 35% of a core in 2 runs'] });
  const md = renderMarkdown(inp, summarize(inp), ['bench-x-throughput.svg']);

  it('has a header with machine, date, options, versions and the command to reproduce', () => {
    expect(md).toContain('# Switchboard benchmark, 2026-11-25');
    expect(md).toContain('Test CPU @ 2.5GHz, 2 cores, 8 GiB; linux (kernel 6.1.0); Node.js v20.20.2');
    expect(md).toContain('(5.5 min)');
    expect(md).toContain('quick; 3 rounds; 3 s window after 1 s warm-up');
    expect(md).toContain('Aedes 1.2.0, Mosquitto 2.0.11');
    expect(md).toContain('`npm run bench -- fanin,conns --quick --rounds 3 --duration 3 --warmup 1 --brokers switchboard,aedes,mosquitto --payload 64 --conns 1000,2000`');
    expect(md).toContain('- other processes used 35% of a core in 2 runs');
  });

  it('uses a given command verbatim', () => {
    const custom = input(fanin, { command: 'npm run bench -- fanin' });
    expect(renderMarkdown(custom, summarize(custom), [])).toContain('`npm run bench -- fanin`');
  });

  it('renders a table per scenario with unit in the header, ratios, notMeasured and issues', () => {
    const lines = md.split('\n');
    const headIdx = lines.findIndex((l) => l.startsWith('| Case | Switchboard (msg/s)'));
    expect(lines[headIdx]).toBe('| Case | Switchboard (msg/s) | Aedes (msg/s) | Mosquitto (msg/s) | vs Aedes | vs Mosquitto |');
    expect(lines[headIdx + 1]).toBe('|---|---:|---:|---:|---:|---:|');
    expect(lines[headIdx + 2]).toBe('| qos0 | **200** (100-300) | **50** (40-60) | *not installed* | 4.00x | – |');
    expect(md).toContain('- Switchboard, `qos0`: machine busy (rounds 2, 3)');
  });

  it('adds a Unit column when the cases of a scenario differ in unit, and a details table', () => {
    expect(md).toContain('| Case | Unit | Switchboard | Aedes | vs Aedes |');
    expect(md).toContain('| C=1000 push 1-100 | s (lower is better) | **0.01** | **0.05** | 5.00x |');
    expect(md).toContain('| C=2000 push all | s (lower is better) | **0.5** | – | – |');
    expect(md).toContain('| Case | Broker | p50 ms | p99 ms |');
    expect(md).toContain('| qos0 | Switchboard | 3 | 15 |');
  });

  it('escapes pipes in cells and links the charts', () => {
    const odd = input([run('fanin', 'a|b', 'switchboard', 1, m(1, { notMeasured: 'x | y' }))]);
    const out = renderMarkdown(odd, summarize(odd), []);
    expect(out).toContain('| a\\|b | *x \\| y* |');
    expect(md).toContain('![bench-x-throughput](bench-x-throughput.svg)');
  });
});

describe('formatNumber / detailLabel', () => {
  it('formats numbers for tables', () => {
    expect(formatNumber(123456.7)).toBe('123,457');
    expect(formatNumber(12.34)).toBe('12.3');
    expect(formatNumber(2)).toBe('2');
    expect(formatNumber(1.5)).toBe('1.5');
    expect(formatNumber(0.0912)).toBe('0.0912');
    expect(formatNumber(NaN)).toBe('n/a');
  });

  it('names detail keys', () => {
    expect(detailLabel('p50Ms')).toBe('p50 ms');
    expect(detailLabel('p999Ms')).toBe('p99.9 ms');
    expect(detailLabel('brokerCpuPct')).toBe('brokerCpu %');
    expect(detailLabel('MBps')).toBe('MB/s');
    expect(detailLabel('errors')).toBe('errors');
  });
});

describe('renderCharts', () => {
  const lat = (p50: number) => ({ p50Ms: p50, p90Ms: p50 * 2, p99Ms: p50 * 4, p999Ms: p50 * 8, maxMs: p50 * 20 });
  const soak = (broker: BrokerName, rss: number) =>
    run('soak', 'soak', broker, 1, m(1000, { series: { 'rss MB': [[0, rss], [10, rss + 5], [20, rss + 7]] } }));
  const inp = input([
    ...fanin.map((r) => ({ ...r, m: { ...r.m, details: { ...r.m.details, ...lat(r.broker === 'aedes' ? 5 : 2) } } })),
    ...conns,
    run('http', 'GET /healthz', 'switchboard', 1, m(50_000, { unit: 'req/s', details: lat(0.5) })),
    run('http', 'GET /metrics', 'switchboard', 1, m(1_000, { unit: 'req/s', details: lat(5) })),
    soak('switchboard', 80),
    soak('aedes', 120),
  ]);
  const charts = renderCharts(inp, summarize(inp));
  const byName = new Map(charts.map((c) => [c.name, c.svg]));

  it('draws throughput per rate unit, latency, push vs paper and series charts', () => {
    expect([...byName.keys()].sort()).toEqual(
      [
        'latency-fanin-qos0', // several brokers: a chart per case, series = brokers
        'latency-http', // one broker: series = cases
        'push-vs-paper',
        'series-soak-rss-mb',
        'throughput-msg-s',
        'throughput-req-s',
      ].sort(),
    );
    for (const svg of byName.values()) expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>\n$/);
  });

  it('throughput: one bar per broker and case, log scale for a wide range', () => {
    const t = byName.get('throughput-msg-s')!;
    expect(t).toContain('>Switchboard<');
    expect(t).toContain('>Aedes<');
    expect(t).toContain('msg/s');
    // fanin qos0 (200, 50, mosquitto n/a) + soak (1000, 1000): 4 bars, + 3 legend swatches
    expect(t.match(/<rect x=/g)).toHaveLength(4 + 3);
    expect(byName.get('throughput-req-s')).toContain('(log scale)'); // 50k vs 1k
    expect(t).not.toContain('(log scale)'); // 1000 vs 50
  });

  it('latency: the five percentiles', () => {
    const l = byName.get('latency-http')!;
    for (const p of ['p50', 'p90', 'p99', 'p99.9', 'max']) expect(l).toContain(`>${p}<`);
    expect(l).toContain('>GET /healthz<');
  });

  it('push vs paper: measured lines and the paper values on a log time axis', () => {
    const p = byName.get('push-vs-paper')!;
    expect(p).toContain('Switchboard push 1-100');
    expect(p).toContain('Aedes push all');
    expect(p).toContain('paper push 1-100');
    expect(p).toContain('paper push all');
    expect(p).not.toContain('paper push 1-1000'); // not measured in this run, so not drawn
    expect(p).toContain('push time (s) (log scale)');
    // The paper's 100,000-connection push to all.
    expect(p).toContain(`y=${314}`);
    expect(PAPER_TABLE6).toHaveLength(7);
  });

  it('series: one line per broker', () => {
    const s = byName.get('series-soak-rss-mb')!;
    expect(s.match(/<polyline /g)).toHaveLength(2);
    expect(s).toContain('Switchboard (round 1)');
  });
});

describe('writeReport', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'report-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes bench-<timestamp>.json/.md and one svg per chart', () => {
    const inp = input([...fanin, ...conns]);
    const out = writeReport(inp, dir);
    expect(path.basename(out.json)).toBe('bench-2026-11-25T20-00-00-000Z.json');
    expect(path.basename(out.md)).toBe('bench-2026-11-25T20-00-00-000Z.md');
    expect(out.svgs.map((f) => path.basename(f)).sort()).toEqual(
      ['bench-2026-11-25T20-00-00-000Z-push-vs-paper.svg', 'bench-2026-11-25T20-00-00-000Z-throughput.svg', 'bench-2026-11-25T20-00-00-000Z-latency-fanin-qos0.svg'].sort(),
    );
    for (const f of out.svgs) expect(existsSync(f)).toBe(true);
    const md = readFileSync(out.md, 'utf8');
    expect(md).toContain('](bench-2026-11-25T20-00-00-000Z-throughput.svg)');
    const json = JSON.parse(readFileSync(out.json, 'utf8'));
    expect(json.kind).toBe('bench');
    expect(json.summaries).toHaveLength(6);
    expect(json.runs).toHaveLength(fanin.length + conns.length);
    expect(json.command).toMatch(/^npm run bench -- fanin,conns /);
    expect(md).toContain('![throughput](bench-2026-11-25T20-00-00-000Z-throughput.svg)');
  });
});
