/**
 * Runs one load-generator scenario (fan-in, fan-out, pairs, latency, soak) against a
 * running broker: drives the generator processes (bench/lib/generator-pool.ts, `--gen-procs`,
 * reused by every run; the broker never shares a process with them), samples the broker
 * from /proc over the measurement window (CPU of the process and of its busiest threads,
 * RSS), notes the load of other processes on the machine, scrapes Switchboard's /metrics,
 * and turns it all into a Measurement with the issues a reader must see.
 */
import {
  allProcessCpu,
  busiestThreads,
  foreignLoad,
  isSwitchboard,
  procSample,
  threadCpu,
  type BrokerHandle,
  type ForeignLoad,
  type ProcSample,
} from './brokers.js';
import { GeneratorPool } from './generator-pool.js';
import type { RunRequest, RunResult, ScenarioSpec } from './types.js';
import type { Measurement, Progress } from './scenario.js';

/** Generator processes per run (`--gen-procs`): 2 on this 2-core machine, 1 = one process as before. */
export const DEFAULT_GEN_PROCS = 2;
let genProcs = DEFAULT_GEN_PROCS;
/** The generator processes of this bench process, started on first use and reused by every run. */
let shared: GeneratorPool | undefined;

/** Set before the first run (bench/run.ts, `--gen-procs`). */
export function setGeneratorProcs(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--gen-procs needs a positive integer (got ${n})`);
  if (shared && shared.size !== n) stopGenerator();
  genProcs = n;
}
export async function generator(): Promise<GeneratorPool> {
  if (!shared) {
    shared = new GeneratorPool(genProcs);
    await shared.start();
  }
  return shared;
}
export function stopGenerator(): void {
  shared?.stop();
  shared = undefined;
}

interface RunRecord {
  brokerCpuWindow?: { cpuMs: number; wallMs: number; ratio: number };
  brokerRssMB?: { start: number; windowEnd: number; peakSeen: number };
  brokerBusiestThreads?: number[];
  otherLoad?: ForeignLoad;
  brokerMetrics?: Record<string, number>;
  issues: string[];
  result?: RunResult;
  error?: string;
}

async function scrapeMetrics(b: BrokerHandle): Promise<Record<string, number> | undefined> {
  if (!b.httpPort) return undefined;
  try {
    const res = await fetch(`http://${b.host}:${b.httpPort}/metrics`, { signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      if (!/dropped|rejected|backpressure|messages_(received|sent)_total|queued|inflight|takeover|loop|mailbox|refused|connections/.test(line)) continue;
      const sp = line.lastIndexOf(' ');
      const v = Number(line.slice(sp + 1));
      if (Number.isFinite(v)) out[line.slice(0, sp)] = v;
    }
    return out;
  } catch (e) {
    return { scrape_failed: 1 };
  }
}


let runCounter = 0;
/** Other processes using this much of a core during a window make the run suspect. */
export const OTHER_LOAD_WARN = 0.1;
const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const pct = (r: number | undefined) => (r === undefined ? 'n/a' : `${Math.round(r * 100)}%`);

export interface GenRunOptions {
  spec: ScenarioSpec;
  transport: 'tcp' | 'ws';
  warmupS: number;
  durationS: number;
  drainMs?: number;
  /** Sample the broker's RSS every second of the window (soak). */
  series?: boolean;
  /** Called as the measurement window starts and ends (extra sampling, e.g. disk writes). */
  onWindow?: (phase: 'start' | 'end') => void;
}

export async function runGenerator(b: BrokerHandle, o: GenRunOptions, progress: Progress): Promise<Measurement> {
  const gen = await generator();
  const spec = o.spec;
  const rec: RunRecord = { issues: [] };
  // Counters are totals since the broker started: a case reports what changed during it.
  const metricsBefore = isSwitchboard(b.name) ? await scrapeMetrics(b) : undefined;
  const s0 = procSample(b.pid);
  let w0: ProcSample | undefined;
  let th0 = new Map<number, number>();
  let all0 = new Map<number, number>();
  let tw0 = 0;
  let peak = s0?.rssMB ?? 0;
  const rssSeries: Array<[number, number]> = [];
  const p99Series: Array<[number, number]> = [];
  const sampler = setInterval(() => {
    const s = procSample(b.pid);
    if (s) peak = Math.max(peak, s.rssMB);
  }, 500);
  const runId = `${(++runCounter).toString(36)}${Date.now().toString(36).slice(-4)}`;
  if (o.transport === 'ws' && b.wsPort === undefined) throw new Error(`${b.name} was started without a WebSocket listener`);
  const req: RunRequest = {
    type: 'run',
    runId,
    host: b.host,
    port: o.transport === 'ws' ? b.wsPort! : b.port,
    ...(o.transport === 'ws' ? { wsPath: b.wsPath ?? '/mqtt' } : {}),
    scenario: spec,
    warmupMs: o.warmupS * 1000,
    durationMs: o.durationS * 1000,
    drainMs: o.drainMs ?? 3000,
    connectConcurrency: 32,
  };
  try {
    rec.result = await gen.run(
      req,
      (phase, tick) => {
        if (phase === 'tick' && tick) {
          progress.update(`${spec.name} ${b.name}`, tick.second, o.durationS);
          if (o.series) {
            const s = procSample(b.pid);
            if (s) rssSeries.push([tick.second, s.rssMB]);
            if (Number.isFinite(tick.p99Ms)) p99Series.push([tick.second, tick.p99Ms]);
          }
        } else if (phase === 'window-start') {
          o.onWindow?.('start');
          w0 = procSample(b.pid);
          th0 = threadCpu(b.pid);
          all0 = allProcessCpu();
          tw0 = performance.now();
        } else if (phase === 'window-end' && w0) {
          o.onWindow?.('end');
          const w1 = procSample(b.pid);
          const wallMs = performance.now() - tw0;
          rec.brokerBusiestThreads = busiestThreads(th0, threadCpu(b.pid), wallMs);
          rec.otherLoad = foreignLoad(all0, allProcessCpu(), new Set([process.pid, ...gen.pids, b.pid]), wallMs);
          if (w1) {
            rec.brokerCpuWindow = { cpuMs: w1.cpuMs - w0.cpuMs, wallMs: Math.round(wallMs), ratio: Math.round(((w1.cpuMs - w0.cpuMs) / wallMs) * 1000) / 1000 };
            rec.brokerRssMB = { start: s0?.rssMB ?? 0, windowEnd: w1.rssMB, peakSeen: Math.max(peak, w1.rssMB) };
          }
        }
      },
      req.warmupMs + req.durationMs + req.drainMs + 120_000,
    );
  } catch (e) {
    rec.error = (e as Error).message;
  } finally {
    clearInterval(sampler);
    progress.done();
  }
  if (isSwitchboard(b.name)) {
    const after = await scrapeMetrics(b);
    if (after && metricsBefore) for (const k of Object.keys(after)) if (k.includes('_total')) after[k] = after[k]! - (metricsBefore[k] ?? 0);
    rec.brokerMetrics = after;
  }
  if (rec.brokerRssMB) rec.brokerRssMB.peakSeen = Math.max(rec.brokerRssMB.peakSeen, peak);
  // Anything a reader should look at.
  const r = rec.result;
  if (rec.error) rec.issues.push(`run error: ${rec.error}`);
  if (r && !r.ok) rec.issues.push(`run failed: ${r.error}`);
  if (r) {
    if (r.unexpectedCloses) rec.issues.push(`${r.unexpectedCloses} client connection(s) closed by the broker/network (first: ${JSON.stringify(r.closeSamples[0])})`);
    const m = rec.brokerMetrics ?? {};
    const drops = Object.entries(m)
      .filter(([k, v]) => k.includes('dropped') && v > 0)
      .map(([k, v]) => `${k.replace(/^switchboard_messages_dropped_total/, 'dropped')}=${v}`);
    const dropNote = drops.length ? ` [broker metrics: ${drops.join(', ')}]` : '';
    if (r.lost && r.drainEnd === 'timeout') {
      rec.issues.push(
        `backlog: ${r.lost} of ${r.published} QoS 1/2 message(s) still undelivered when the ${fmt(r.drainMs)} ms drain ended ` +
          `(still arriving at ${fmt(r.drainRate)} msg/s${r.unackedAtEnd ? `, ${r.unackedAtEnd} PUBACKs outstanding` : ''}; not proven lost)${dropNote}`,
      );
    } else if (r.lost) {
      rec.issues.push(
        `LOST: ${r.lost} of ${r.published} QoS 1/2 message(s) never delivered${r.unackedAtEnd ? ` (${r.unackedAtEnd} never PUBACKed)` : ', all of them PUBACKed'}${dropNote}`,
      );
    } else if (drops.length) rec.issues.push(`broker metrics: ${drops.join(', ')}`);
    else if (r.unackedAtEnd) rec.issues.push(`${r.unackedAtEnd} QoS 1 publish(es) never PUBACKed`);
    if (r.duplicates) rec.issues.push(`${r.duplicates} duplicate deliveries`);
    if (r.reordered) rec.issues.push(`${r.reordered} deliveries out of order`);
    if (r.protocolErrors.length) rec.issues.push(`protocol: ${r.protocolErrors.slice(0, 3).join('; ')}`);
    if (r.unexpectedAcks) rec.issues.push(`${r.unexpectedAcks} PUBACKs for unknown packet ids`);
    if (!r.drained && r.ok && spec.qos > 0 && !r.lost) rec.issues.push(`not drained within ${r.drainMs} ms (${r.unackedAtEnd} PUBACKs outstanding)`);
    if (r.qos0Dropped && spec.kind === 'fanin' && spec.pacing === 'flood') rec.issues.push(`QoS 0: ${r.qos0Dropped} of ${r.published} not delivered`);
    if (r.stallResets) rec.issues.push(`${r.stallResets} publisher window(s) written off after 1 s without progress (broker dropped messages?)`);
  }
  if (rec.otherLoad && rec.otherLoad.ratio >= OTHER_LOAD_WARN) {
    rec.issues.push(`machine busy: other processes used ${pct(rec.otherLoad.ratio)} of a core during the window (top: ${rec.otherLoad.top.map((t) => `${t.cmd} ${pct(t.ratio)}`).join(', ')})`);
  }

  const m: Measurement = {
    value: r?.ok ? r.rate : NaN,
    unit: spec.kind === 'fanout' ? 'deliveries/s' : 'msg/s',
    higherIsBetter: true,
    details: {},
    issues: rec.issues,
  };
  if (r?.ok) {
    const cpuParts = r.genCpuParts ?? [r.genCpuWindow];
    const busiest = cpuParts.reduce((a, c) => (c.ratio > a.ratio ? c : a));
    m.details = {
      publishRate: r.publishRate,
      p50Ms: r.latencyMs.p50,
      p90Ms: r.latencyMs.p90,
      p99Ms: r.latencyMs.p99,
      p999Ms: r.latencyMs.p999,
      maxMs: r.latencyMs.max,
      // The busiest generator process: each is one thread, so this is the one to watch.
      genCpuPct: Math.round(busiest.ratio * 100),
      lost: r.lost,
      qos0Dropped: r.qos0Dropped,
      connectMs: r.connectMs,
    };
    // Whole run (warm-up, window, drain): what the publishers sent, got acknowledged, and
    // what arrived (distinct); with QoS 1, acked - delivered = acknowledged and lost.
    if (spec.kind === 'fanin' && spec.subscriberAckRate !== undefined) Object.assign(m.details, { published: r.published, acked: r.acked, delivered: r.uniqueReceived, ackedLost: Math.max(0, r.acked - r.uniqueReceived) });
    if (r.rateMissed !== undefined) m.details.rateMissed = r.rateMissed;
    if (cpuParts.length > 1) m.details.genCpuSumPct = Math.round(r.genCpuWindow.ratio * 100);
    m.generatorCpuPct = cpuParts.map((c) => Math.round(c.ratio * 100));
    // Each generator process is one thread: near a full core it, not the broker, may be the limit.
    if (busiest.ratio >= 0.9) {
      const which = cpuParts.length > 1 ? ` (generator process ${cpuParts.indexOf(busiest)} of ${cpuParts.length})` : '';
      m.issues.push(`generator CPU ${pct(busiest.ratio)} of a core${which}: the generator may have been the limit`);
    }
  }
  if (rec.brokerCpuWindow) m.details.brokerCpuPct = Math.round(rec.brokerCpuWindow.ratio * 100);
  // The busiest broker thread: near 100 % it is the bottleneck even when the process total is not.
  if (rec.brokerBusiestThreads?.length) m.details.busiestThreadPct = Math.round(rec.brokerBusiestThreads[0]! * 100);
  if (rec.brokerRssMB) m.details.brokerRssMB = rec.brokerRssMB.peakSeen;
  if (rec.otherLoad) m.details.otherCpuPct = Math.round(rec.otherLoad.ratio * 100);
  if (o.series) m.series = { 'broker RSS MB': rssSeries, 'latency p99 ms': p99Series };
  return m;
}
