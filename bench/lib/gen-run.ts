/**
 * Runs one load-generator scenario (fan-in, fan-out, pairs, latency, soak) against a
 * running broker: drives the generator child (bench/lib/generator.ts, one process reused
 * by every run; the broker never shares its process), samples the broker from /proc over
 * the measurement window (CPU of the process and of its busiest threads, RSS), notes the
 * load of other processes on the machine, scrapes Switchboard's /metrics, and turns it
 * all into a Measurement with the issues a reader must see.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import {
  BENCH_DIR,
  REPO_ROOT,
  allProcessCpu,
  busiestThreads,
  foreignLoad,
  isSwitchboard,
  procSample,
  threadCpu,
  trackChild,
  type BrokerHandle,
  type ForeignLoad,
  type ProcSample,
} from './brokers.js';
import type { GenToParent, RunRequest, RunResult, ScenarioSpec } from './types.js';
import type { Measurement, Progress } from './scenario.js';

type Tick = Extract<GenToParent, { type: 'tick' }>;
type OnPhase = (phase: string, tick?: Tick) => void;

export class Generator {
  private child!: ChildProcess;
  private waiters = new Map<string, { resolve: (r: RunResult) => void; reject: (e: Error) => void; onPhase: OnPhase }>();
  pid = 0;

  async start(): Promise<void> {
    this.child = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'lib/generator.ts')], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    trackChild(this.child);
    this.child.on('exit', (code, signal) => {
      for (const w of this.waiters.values()) w.reject(new Error(`generator exited (code ${code}, signal ${signal})`));
      this.waiters.clear();
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('generator did not start within 20 s')), 20_000);
      this.child.once('exit', () => reject(new Error('generator exited during start-up')));
      this.child.on('message', (m: GenToParent) => {
        if (m.type === 'ready') {
          clearTimeout(t);
          this.pid = m.pid;
          resolve();
        } else if (m.type === 'phase') this.waiters.get(m.runId)?.onPhase(m.phase);
        else if (m.type === 'tick') this.waiters.get(m.runId)?.onPhase('tick', m);
        else if (m.type === 'result') {
          const w = this.waiters.get(m.runId);
          this.waiters.delete(m.runId);
          w?.resolve(m.result);
        }
      });
    });
  }

  run(req: RunRequest, onPhase: OnPhase, timeoutMs: number): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters.delete(req.runId);
        reject(new Error(`run ${req.runId} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(req.runId, {
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
        onPhase,
      });
      this.child.send(req);
    });
  }

  stop(): void {
    if (this.child.connected) this.child.disconnect();
  }
}


/** The one generator child of a bench process, started on first use. */
let shared: Generator | undefined;
export async function generator(): Promise<Generator> {
  if (!shared) {
    shared = new Generator();
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
          rec.otherLoad = foreignLoad(all0, allProcessCpu(), new Set([process.pid, gen.pid, b.pid]), wallMs);
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
    m.details = {
      publishRate: r.publishRate,
      p50Ms: r.latencyMs.p50,
      p90Ms: r.latencyMs.p90,
      p99Ms: r.latencyMs.p99,
      p999Ms: r.latencyMs.p999,
      maxMs: r.latencyMs.max,
      genCpuPct: Math.round(r.genCpuWindow.ratio * 100),
      lost: r.lost,
      qos0Dropped: r.qos0Dropped,
      connectMs: r.connectMs,
    };
    // Whole run (warm-up, window, drain): what the publishers sent, got acknowledged, and
    // what arrived (distinct); with QoS 1, acked - delivered = acknowledged and lost.
    if (spec.kind === 'fanin' && spec.subscriberAckRate !== undefined) Object.assign(m.details, { published: r.published, acked: r.acked, delivered: r.uniqueReceived, ackedLost: Math.max(0, r.acked - r.uniqueReceived) });
    if (r.rateMissed !== undefined) m.details.rateMissed = r.rateMissed;
    // The generator is one thread: near a full core it, not the broker, may be the limit.
    if (r.genCpuWindow.ratio > 0.9) m.issues.push(`generator CPU ${pct(r.genCpuWindow.ratio)} of a core: the generator may have been the limit`);
  }
  if (rec.brokerCpuWindow) m.details.brokerCpuPct = Math.round(rec.brokerCpuWindow.ratio * 100);
  // The busiest broker thread: near 100 % it is the bottleneck even when the process total is not.
  if (rec.brokerBusiestThreads?.length) m.details.busiestThreadPct = Math.round(rec.brokerBusiestThreads[0]! * 100);
  if (rec.brokerRssMB) m.details.brokerRssMB = rec.brokerRssMB.peakSeen;
  if (rec.otherLoad) m.details.otherCpuPct = Math.round(rec.otherLoad.ratio * 100);
  if (o.series) m.series = { 'broker RSS MB': rssSeries, 'latency p99 ms': p99Series };
  return m;
}
