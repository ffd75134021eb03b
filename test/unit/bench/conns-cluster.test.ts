/**
 * The conns scenario on a Switchboard cluster (bench/scenarios/conns.ts, bench/lib/cluster.ts):
 * when a cluster is used and how many nodes, the peers' reasons, and the report's
 * per-process table and table 6 beside the paper.
 */
import { describe, expect, it } from 'vitest';
import type { BrokerName } from '../../../bench/lib/brokers.js';
import { ONE_THREAD_ARGS } from '../../../bench/lib/cluster.js';
import { paperTable, renderMarkdown, summarize, type BenchReportInput, type CaseRun } from '../../../bench/lib/report.js';
import type { BenchOptions, Measurement } from '../../../bench/lib/scenario.js';
import { ephemeralPortRange } from '../../../bench/lib/addresses.js';
import { clusterFor, connsOptions, defaultNodeMaxConns, NODE_MAX_CONNS, PEER_NEEDS_CLUSTER, conns } from '../../../bench/scenarios/conns.js';

function opts(extra: Record<string, string>): BenchOptions {
  return { quick: false, rounds: 1, durationS: 5, warmupS: 1, transport: 'tcp', qos: 1, payloadSize: 64, protocolVersion: 4, brokers: ['switchboard'], extra };
}

describe('conns: cluster or one process', () => {
  const nodes = (broker: BrokerName, extra: Record<string, string>) => clusterFor(broker, connsOptions(opts(extra)))?.nodes;

  it('holds per node at most the even half of the ephemeral ports (less a margin), and never more than 17,000', () => {
    const [lo, hi] = ephemeralPortRange();
    expect(NODE_MAX_CONNS).toBe(defaultNodeMaxConns());
    expect(NODE_MAX_CONNS).toBeLessThanOrEqual(Math.min(17_000, (hi - lo + 1) / 2 - 100));
    expect(NODE_MAX_CONNS % 1000).toBe(0);
    if (lo === 32768 && hi === 60999) expect(NODE_MAX_CONNS).toBe(14_000); // Linux's default range
  });

  it('runs Switchboard as a cluster above the single-process bound, with enough nodes for C + the publisher', () => {
    const m = { 'node-max-conns': '14000' };
    expect(nodes('switchboard', { conns: '10000', ...m })).toBeUndefined();
    expect(nodes('switchboard', { conns: '19000', ...m })).toBeUndefined();
    const counts = [20_000, 30_000, 40_000, 50_000, 75_000, 100_000];
    expect(counts.map((c) => nodes('switchboard', { conns: String(c), ...m }))).toEqual([2, 3, 3, 4, 6, 8]);
    expect(counts.map((c) => nodes('switchboard', { conns: String(c), 'node-max-conns': '17000' }))).toEqual([2, 2, 3, 3, 5, 6]);
    expect(nodes('switchboard-memory', { conns: '50000', ...m })).toBe(4);
    expect(nodes('switchboard', { conns: '28000', ...m })).toBe(3); // 28,001 > 2 x 14,000
  });

  it('never clusters Aedes or Mosquitto, and says why (bridged Mosquittos: not comparable)', () => {
    for (const b of ['aedes', 'mosquitto'] as const) {
      expect(nodes(b, { conns: '100000' })).toBeUndefined();
      expect(nodes(b, { conns: '10000', cluster: '3' })).toBeUndefined();
      expect(PEER_NEEDS_CLUSTER[b]).toMatch(/^needs cluster: .*not run$/);
    }
    expect(PEER_NEEDS_CLUSTER.mosquitto).toMatch(/bridges are not comparable/);
    expect(PEER_NEEDS_CLUSTER.nats).toBeUndefined();
  });

  it('runs NATS as a NATS cluster of as many servers as Switchboard nodes, without thread arguments', () => {
    const m = { 'node-max-conns': '14000' };
    expect(nodes('nats', { conns: '10000', ...m })).toBeUndefined();
    const counts = [20_000, 30_000, 40_000, 50_000, 75_000, 100_000];
    expect(counts.map((c) => nodes('nats', { conns: String(c), ...m }))).toEqual(counts.map((c) => nodes('switchboard', { conns: String(c), ...m })));
    expect(counts.map((c) => nodes('nats', { conns: String(c), ...m }))).toEqual([2, 3, 3, 4, 6, 8]);
    expect(nodes('nats', { conns: '10000', cluster: 'auto' })).toBe(2);
    expect(clusterFor('nats', connsOptions(opts({ conns: '20000' })))?.nodeArgs).toEqual([]);
    expect(conns.cluster?.('nats', opts({ conns: '100000', 'node-max-conns': '14000' }))?.nodes).toBe(8);
  });

  it('--cluster N|auto forces a cluster for any C; --node-threads picks the node arguments', () => {
    expect(nodes('switchboard', { conns: '10000', cluster: '3' })).toBe(3);
    expect(nodes('switchboard', { conns: '10000', cluster: 'auto' })).toBe(2); // at least 2
    expect(nodes('switchboard', { conns: '100000', cluster: 'auto', 'node-max-conns': '17000' })).toBe(6);
    expect(clusterFor('switchboard', connsOptions(opts({ conns: '20000' })))?.nodeArgs).toEqual(ONE_THREAD_ARGS);
    expect(clusterFor('switchboard', connsOptions(opts({ conns: '20000', 'node-threads': 'auto' })))?.nodeArgs).toEqual([]);
    expect(() => connsOptions(opts({ 'node-threads': '2' }))).toThrow(/node-threads/);
    expect(() => connsOptions(opts({ 'node-max-conns': '20000' }))).toThrow(/node-max-conns/);
    expect(() => connsOptions(opts({ cluster: 'many' }))).toThrow(/cluster/);
  });

  it('is the scenario hook the runner asks, one variant (C) at a time', () => {
    expect(conns.cluster?.('switchboard', opts({ conns: '75000', 'node-max-conns': '14000' }))?.nodes).toBe(6);
    expect(conns.cluster?.('aedes', opts({ conns: '75000' }))).toBeUndefined();
  });
});

describe('report: per-process breakdown and table 6 beside the paper', () => {
  const m = (value: number, extra: Partial<Measurement> = {}): Measurement => ({ value, unit: 's', higherIsBetter: false, details: {}, issues: [], ...extra });
  const run = (caseName: string, broker: BrokerName, meas: Measurement): CaseRun => ({ scenario: 'conns', caseName, broker, round: 1, m: meas });
  const cpu = { n0: { cpuPct: 40 }, n1: { cpuPct: 35 }, 'nats-server': { cpuPct: 2 } };
  const runs: CaseRun[] = [
    run('C=10000 push 1-100', 'switchboard', m(0.005, { details: { nodes: 1 } })),
    run('C=10000 push all', 'switchboard', m(0.19, { details: { nodes: 1, brokerCpuPct: 101 } })),
    run('C=10000 push all', 'aedes', m(0.13, { details: { nodes: 1 } })),
    run('C=20000 push 1-100', 'switchboard', m(0.02, { details: { nodes: 2 }, breakdown: cpu })),
    run('C=20000 push 1-1000', 'switchboard', m(0.05, { details: { nodes: 2 }, breakdown: cpu })),
    run('C=20000 push all', 'switchboard', m(0.4, { details: { nodes: 2, brokerCpuPct: 77 }, breakdown: cpu })),
    run('C=20000 push all', 'aedes', m(NaN, { notMeasured: PEER_NEEDS_CLUSTER.aedes! })),
    run('C=20000 idle RSS/conn', 'switchboard', m(11.5, { unit: 'KiB', details: { nodes: 2 }, breakdown: { n0: { rssAfterMiB: 200 }, n1: { rssAfterMiB: 190 } } })),
    run('C=20000 idle CPU', 'switchboard', m(3, { unit: '%', details: { nodes: 2 } })),
    run('C=20000 connect rate', 'switchboard', m(2000, { unit: 'conn/s', higherIsBetter: true, details: { nodes: 2 } })),
  ];
  const inp: BenchReportInput = {
    startedAt: '2026-12-06T08:00:00.000Z',
    finishedAt: '2026-12-06T08:10:00.000Z',
    host: { cpus: 'Test CPU', cores: 2, memGiB: 24, node: 'v20', os: 'linux', kernel: '6' },
    options: opts({ conns: '10000,20000' }),
    scenarios: [{ name: 'conns', description: 'table 6' }],
    runs,
    versions: {},
    machineNotes: [],
  };
  const summaries = summarize(inp);

  it('keeps the per-process numbers (median over rounds) and prints them in one cell per key', () => {
    expect(summaries.find((c) => c.caseName === 'C=20000 push all')?.byBroker.switchboard?.breakdown).toEqual(cpu);
    const md = renderMarkdown(inp, summaries, []);
    expect(md).toContain('Per process (cluster nodes');
    expect(md).toContain("a NATS cluster's servers s0, s1");
    expect(md).toContain('| C=20000 push all | Switchboard | n0 40 · n1 35 · nats-server 2 | – |');
    expect(md).toContain('| C=20000 idle RSS/conn | Switchboard | – | n0 200 · n1 190 |');
  });

  it('sets Switchboard beside the paper per C, with the node count', () => {
    const t = paperTable(summaries.filter((c) => c.scenario === 'conns'));
    expect(t.join('\n')).toContain('Beside the paper (table 6)');
    expect(t).toContain('| 10,000 | 1 | 0.091 | 0.005 | 0.114 | – | 13.2 | 0.19 | 14.5 | – | 101 | – | – |');
    expect(t).toContain('| 20,000 | 2 | 0.105 | 0.02 | 0.225 | 0.05 | 27.2 | 0.4 | 25 | 3 | 77 | 11.5 | 2,000 |');
    expect(renderMarkdown(inp, summaries, [])).toContain('**Beside the paper (table 6)**');
  });
});
