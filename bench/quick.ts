/**
 * `npm run bench:quick [-- options]`: a first honest throughput number.
 *
 * Runs each scenario against Switchboard and Aedes (and Mosquitto with --mosquitto),
 * interleaved A B A B ..., a fresh broker process per run, one load-generator child
 * process shared by all runs. Prints a Markdown table (median and min-max msg/s per
 * broker, ratio Switchboard/Aedes) and writes bench/results/quick-<timestamp>.json.
 *
 * Options:
 *   --rounds N          rounds per scenario and broker (3)
 *   --duration S        measurement window in seconds (5)
 *   --warmup S          warm-up before the window in seconds (1)
 *   --scenarios LIST    comma list of fanin-qos0,fanin-qos1,pairs (default) and fanin-qos1-e2e
 *   --brokers LIST      comma list of switchboard,aedes,mosquitto (switchboard,aedes)
 *   --mosquitto         add mosquitto to the brokers when /usr/sbin/mosquitto exists
 *   --pairs N           client pairs in the pairs scenario (500)
 *   --publishers N      publishers in fan-in (20)
 *   --window N          fan-in window per publisher (100): QoS 1 = unacked PUBLISHes; QoS 0 = messages
 *                       in transit end to end (sent, not yet seen by the subscriber)
 *   --qos0-flood        fanin-qos0 publishers send as fast as their sockets take (overload test)
 *                       instead of the end-to-end window
 *   --pairs-window N    QoS 1 inflight window per pairs client (10)
 *   --v5                speak MQTT 5 to brokers that support it (Aedes does not: it stays on 3.1.1)
 *   --switchboard-args "ARGS"  extra CLI flags for Switchboard, e.g. "--gateways 0 --shards 0"
 *   --no-build          do not rebuild dist/ even if it looks stale
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BENCH_DIR,
  REPO_ROOT,
  installCleanupHandlers,
  killAllChildren,
  mosquittoAvailable,
  allProcessCpu,
  busiestThreads,
  foreignLoad,
  type ForeignLoad,
  procSample,
  startBroker,
  threadCpu,
  trackChild,
  type BrokerHandle,
  type BrokerName,
  type ProcSample,
} from './lib/brokers.js';
import type { GenToParent, RunRequest, RunResult, ScenarioSpec } from './lib/types.js';

// ---------------------------------------------------------------------------
// Options

function parseOptions(argv: string[]) {
  const o = {
    rounds: 3,
    durationS: 5,
    warmupS: 1,
    scenarios: ['fanin-qos0', 'fanin-qos1', 'pairs'],
    brokers: ['switchboard', 'aedes'] as BrokerName[],
    pairs: 500,
    publishers: 20,
    window: 100,
    pairsWindow: 10,
    v5: false,
    qos0Pacing: 'e2e' as 'e2e' | 'flood',
    switchboardArgs: [] as string[],
    build: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const num = () => {
      const n = Number(val());
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${a} needs a positive number`);
      return n;
    };
    switch (a) {
      case '--rounds': o.rounds = Math.round(num()); break;
      case '--duration': o.durationS = num(); break;
      case '--warmup': o.warmupS = num(); break;
      case '--scenarios': o.scenarios = val().split(','); break;
      case '--brokers': o.brokers = val().split(',') as BrokerName[]; break;
      case '--mosquitto': if (!o.brokers.includes('mosquitto')) o.brokers.push('mosquitto'); break;
      case '--pairs': o.pairs = Math.round(num()); break;
      case '--publishers': o.publishers = Math.round(num()); break;
      case '--window': o.window = Math.round(num()); break;
      case '--pairs-window': o.pairsWindow = Math.round(num()); break;
      case '--v5': o.v5 = true; break;
      case '--qos0-flood': o.qos0Pacing = 'flood'; break;
      case '--switchboard-args': o.switchboardArgs = val().split(/\s+/).filter(Boolean); break;
      case '--no-build': o.build = false; break;
      case '--help': case '-h':
        process.stdout.write(readHeader());
        process.exit(0);
      default:
        throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  for (const b of o.brokers) if (!['switchboard', 'aedes', 'mosquitto'].includes(b)) throw new Error(`unknown broker ${b}`);
  if (o.brokers.includes('mosquitto') && !mosquittoAvailable()) {
    process.stderr.write('bench: /usr/sbin/mosquitto not found, leaving it out\n');
    o.brokers = o.brokers.filter((b) => b !== 'mosquitto');
  }
  return o;
}
type Options = ReturnType<typeof parseOptions>;

function readHeader(): string {
  return 'usage: npm run bench:quick -- [--rounds N] [--duration S] [--warmup S] [--scenarios fanin-qos0,fanin-qos1,pairs]\n' +
    '       [--brokers switchboard,aedes,mosquitto] [--mosquitto] [--pairs N] [--publishers N] [--window N] [--pairs-window N]\n' +
    '       [--qos0-flood] [--v5] [--switchboard-args "--gateways 0 --shards 0"] [--no-build]\n';
}

function scenarioSpec(name: string, o: Options, broker: BrokerName): ScenarioSpec {
  const protocolVersion = o.v5 && broker !== 'aedes' ? 5 : 4;
  switch (name) {
    case 'fanin-qos0':
      return { kind: 'fanin', name, qos: 0, publishers: o.publishers, payloadSize: 64, window: o.window, pacing: o.qos0Pacing, protocolVersion };
    case 'fanin-qos1':
      return { kind: 'fanin', name, qos: 1, publishers: o.publishers, payloadSize: 64, window: o.window, pacing: 'puback', protocolVersion };
    case 'fanin-qos1-e2e':
      return { kind: 'fanin', name, qos: 1, publishers: o.publishers, payloadSize: 64, window: o.window, pacing: 'e2e', protocolVersion };
    case 'pairs':
      return { kind: 'pairs', name, qos: 1, pairs: o.pairs, payloadSize: 64, window: o.pairsWindow, protocolVersion };
    default:
      throw new Error(`unknown scenario ${name}`);
  }
}

function describe(name: string, o: Options): string {
  switch (name) {
    case 'fanin-qos0':
      return `${o.publishers} pubs -> 1 sub on bench/fanin/#, QoS 0, 64 B, ` +
        (o.qos0Pacing === 'e2e' ? `each pub keeps <= ${o.window} msgs in transit end to end` : 'publishers flood (socket backpressure only)');
    case 'fanin-qos1': return `${o.publishers} pubs -> 1 sub on bench/fanin/#, QoS 1 sub, 64 B, each pub keeps <= ${o.window} un-PUBACKed (no end-to-end limit)`;
    case 'fanin-qos1-e2e': return `as fanin-qos1, and each pub also keeps <= ${o.window} msgs in transit end to end`;
    case 'pairs': return `${o.pairs} pairs (${o.pairs * 2} clients), each subscribes /bench/im/u/<uid> and publishes QoS 1 to its partner's, 64 B, <= ${o.pairsWindow} un-PUBACKed per client`;
    default: return name;
  }
}

// ---------------------------------------------------------------------------
// Build freshness

function newestMtime(dir: string, exts: string[]): number {
  let newest = 0;
  if (!existsSync(dir)) return 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p, exts));
    else if (exts.some((x) => e.name.endsWith(x))) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function ensureBuild(build: boolean): void {
  const cli = path.join(REPO_ROOT, 'dist/src/cli.js');
  const srcNewest = Math.max(
    newestMtime(path.join(REPO_ROOT, 'src'), ['.ts']),
    newestMtime(path.join(REPO_ROOT, 'workers'), ['.ts']),
    statSync(path.join(REPO_ROOT, 'tsconfig.json')).mtimeMs,
  );
  const built = existsSync(cli) ? statSync(cli).mtimeMs : 0;
  if (built >= srcNewest) return;
  if (!build) {
    process.stderr.write(`bench: warning: dist/ is ${built ? 'older than src/' : 'missing'} and --no-build was given\n`);
    return;
  }
  process.stderr.write(`bench: dist/ is ${built ? 'older than src/' : 'missing'}, running tsc -p tsconfig.json ...\n`);
  execFileSync(process.execPath, [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], {
    cwd: REPO_ROOT,
    stdio: 'inherit',
  });
}

// ---------------------------------------------------------------------------
// Generator child

class Generator {
  private child!: ChildProcess;
  private waiters = new Map<string, { resolve: (r: RunResult) => void; reject: (e: Error) => void; onPhase: (p: string) => void }>();
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
        else if (m.type === 'result') {
          const w = this.waiters.get(m.runId);
          this.waiters.delete(m.runId);
          w?.resolve(m.result);
        }
      });
    });
  }

  run(req: RunRequest, onPhase: (phase: string) => void, timeoutMs: number): Promise<RunResult> {
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

// ---------------------------------------------------------------------------
// One run

interface RunRecord {
  scenario: string;
  round: number;
  broker: BrokerName;
  protocolVersion: number;
  startedAt: string;
  brokerStartMs: number;
  result: RunResult | undefined;
  error?: string;
  /** Broker process CPU over the measurement window, 1.0 = one core. */
  brokerCpuWindow?: { cpuMs: number; wallMs: number; ratio: number };
  brokerRssMB?: { start: number; windowEnd: number; peakSeen: number };
  brokerThreads?: number;
  /** Busiest broker threads over the window (share of one core each), to spot a saturated thread. */
  brokerBusiestThreads?: number[];
  /** CPU used during the window by other processes on the machine (not broker, generator, bench). */
  otherLoad?: ForeignLoad;
  brokerExit?: { code: number | null; signal: string | null; unexpected: boolean; killed: boolean; stopMs: number };
  /** What the broker printed during the run (startup banner excluded for Switchboard). */
  brokerLog: string;
  /** Switchboard /metrics series of interest after the drain. */
  brokerMetrics?: Record<string, number>;
  issues: string[];
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
const OTHER_LOAD_WARN = 0.1;

async function oneRun(gen: Generator, o: Options, scenario: string, round: number, brokerName: BrokerName): Promise<RunRecord> {
  const spec = scenarioSpec(scenario, o, brokerName);
  const rec: RunRecord = {
    scenario,
    round,
    broker: brokerName,
    protocolVersion: spec.protocolVersion,
    startedAt: new Date().toISOString(),
    brokerStartMs: 0,
    result: undefined,
    brokerLog: '',
    issues: [],
  };
  let broker: BrokerHandle | undefined;
  try {
    broker = await startBroker(brokerName, brokerName === 'switchboard' ? { extraArgs: o.switchboardArgs } : {});
    rec.brokerStartMs = broker.startMs;
    const b = broker;
    const s0 = procSample(b.pid);
    let w0: ProcSample | undefined;
    let th0 = new Map<number, number>();
    let all0 = new Map<number, number>();
    let tw0 = 0;
    let peak = s0?.rssMB ?? 0;
    const sampler = setInterval(() => {
      const s = procSample(b.pid);
      if (s) peak = Math.max(peak, s.rssMB);
    }, 500);
    const runId = `${(++runCounter).toString(36)}${Date.now().toString(36).slice(-4)}`;
    const req: RunRequest = {
      type: 'run',
      runId,
      host: b.host,
      port: b.port,
      scenario: spec,
      warmupMs: o.warmupS * 1000,
      durationMs: o.durationS * 1000,
      drainMs: 3000,
      connectConcurrency: 32,
    };
    try {
      rec.result = await gen.run(
        req,
        (phase) => {
          if (phase === 'window-start') {
            w0 = procSample(b.pid);
            th0 = threadCpu(b.pid);
            all0 = allProcessCpu();
            tw0 = performance.now();
          } else if (phase === 'window-end' && w0) {
            const w1 = procSample(b.pid);
            const wallMs = performance.now() - tw0;
            rec.brokerBusiestThreads = busiestThreads(th0, threadCpu(b.pid), wallMs);
            rec.otherLoad = foreignLoad(all0, allProcessCpu(), new Set([process.pid, gen.pid, b.pid]), wallMs);
            if (w1) {
              rec.brokerCpuWindow = { cpuMs: w1.cpuMs - w0.cpuMs, wallMs: Math.round(wallMs), ratio: Math.round(((w1.cpuMs - w0.cpuMs) / wallMs) * 1000) / 1000 };
              rec.brokerThreads = w1.threads;
              rec.brokerRssMB = { start: s0?.rssMB ?? 0, windowEnd: w1.rssMB, peakSeen: Math.max(peak, w1.rssMB) };
            }
          }
        },
        req.warmupMs + req.durationMs + req.drainMs + 60_000,
      );
    } finally {
      clearInterval(sampler);
    }
    if (brokerName === 'switchboard') rec.brokerMetrics = await scrapeMetrics(b);
    if (rec.brokerRssMB) rec.brokerRssMB.peakSeen = Math.max(rec.brokerRssMB.peakSeen, peak);
  } catch (e) {
    rec.error = (e as Error).message;
  } finally {
    if (broker) {
      const ex = await broker.stop(3000);
      rec.brokerExit = { code: ex.code, signal: ex.signal, unexpected: ex.unexpected, killed: ex.killed, stopMs: ex.stopMs };
      // Everything it printed except its start-up banner (including what it said while stopping).
      rec.brokerLog = broker
        .output()
        .split('\n')
        .filter((l) => l.trim() && !/^switchboard .* started|^\s+(MQTT over|metrics \/ health|data directory)|^aedes listening/.test(l))
        .join('\n');
    }
  }
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
        `backlog: ${r.lost} of ${r.published} QoS 1 message(s) still undelivered when the ${fmt(r.drainMs)} ms drain ended ` +
          `(still arriving at ${fmt(r.drainRate)} msg/s${r.unackedAtEnd ? `, ${r.unackedAtEnd} PUBACKs outstanding` : ''}; not proven lost)${dropNote}`,
      );
    } else if (r.lost) {
      rec.issues.push(
        `LOST: ${r.lost} of ${r.published} QoS 1 message(s) never delivered${r.unackedAtEnd ? ` (${r.unackedAtEnd} never PUBACKed)` : ', all of them PUBACKed'}${dropNote}`,
      );
    } else if (drops.length) rec.issues.push(`broker metrics: ${drops.join(', ')}`);
    else if (r.unackedAtEnd) rec.issues.push(`${r.unackedAtEnd} QoS 1 publish(es) never PUBACKed`);
    if (r.duplicates) rec.issues.push(`${r.duplicates} duplicate deliveries`);
    if (r.reordered) rec.issues.push(`${r.reordered} deliveries out of order`);
    if (r.protocolErrors.length) rec.issues.push(`protocol: ${r.protocolErrors.slice(0, 3).join('; ')}`);
    if (r.unexpectedAcks) rec.issues.push(`${r.unexpectedAcks} PUBACKs for unknown packet ids`);
    if (!r.drained && r.ok && spec.qos === 1 && !r.lost) rec.issues.push(`not drained within ${r.drainMs} ms (${r.unackedAtEnd} PUBACKs outstanding)`);
    if (r.qos0Dropped && spec.kind === 'fanin' && spec.pacing === 'flood') rec.issues.push(`QoS 0: ${r.qos0Dropped} of ${r.published} not delivered`);
    if (r.stallResets) rec.issues.push(`${r.stallResets} publisher window(s) written off after 1 s without progress (broker dropped messages?)`);
  }
  if (rec.brokerExit?.unexpected) rec.issues.push(`broker exited on its own (code ${rec.brokerExit.code}, signal ${rec.brokerExit.signal})`);
  else if (rec.brokerExit && (rec.brokerExit.killed || (rec.brokerExit.code !== 0 && rec.brokerExit.signal !== 'SIGTERM'))) {
    rec.issues.push(`broker did not stop cleanly on SIGTERM (code ${rec.brokerExit.code}, signal ${rec.brokerExit.signal}, killed ${rec.brokerExit.killed})`);
  }
  if (rec.otherLoad && rec.otherLoad.ratio >= OTHER_LOAD_WARN) {
    rec.issues.push(`machine busy: other processes used ${pct(rec.otherLoad.ratio)} of a core during the window (top: ${rec.otherLoad.top.map((t) => `${t.cmd} ${pct(t.ratio)}`).join(', ')})`);
  }
  if (rec.brokerLog) rec.issues.push(`broker log: ${rec.brokerLog.split('\n').length} line(s), first: ${rec.brokerLog.split('\n')[0]!.slice(0, 300)}`);
  return rec;
}

// ---------------------------------------------------------------------------
// Report

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const pct = (r: number | undefined) => (r === undefined ? 'n/a' : `${Math.round(r * 100)}%`);

function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Summary {
  scenario: string;
  description: string;
  broker: BrokerName;
  runs: number;
  okRuns: number;
  median: number;
  min: number;
  max: number;
  rates: number[];
  genCpuMedian: number;
  brokerCpuMedian: number;
  latencyP50Median: number;
  latencyP99Median: number;
}

function summarize(records: RunRecord[], o: Options): Summary[] {
  const out: Summary[] = [];
  for (const scenario of o.scenarios) {
    for (const broker of o.brokers) {
      const rs = records.filter((r) => r.scenario === scenario && r.broker === broker);
      const ok = rs.filter((r) => r.result?.ok);
      const rates = ok.map((r) => r.result!.rate);
      out.push({
        scenario,
        description: describe(scenario, o),
        broker,
        runs: rs.length,
        okRuns: ok.length,
        median: median(rates),
        min: rates.length ? Math.min(...rates) : NaN,
        max: rates.length ? Math.max(...rates) : NaN,
        rates,
        genCpuMedian: median(ok.map((r) => r.result!.genCpuWindow.ratio)),
        brokerCpuMedian: median(ok.map((r) => r.brokerCpuWindow?.ratio ?? NaN).filter(Number.isFinite)),
        latencyP50Median: median(ok.map((r) => r.result!.latencyMs.p50).filter(Number.isFinite)),
        latencyP99Median: median(ok.map((r) => r.result!.latencyMs.p99).filter(Number.isFinite)),
      });
    }
  }
  return out;
}

const LABEL: Record<BrokerName, string> = { switchboard: 'Switchboard', aedes: 'Aedes', mosquitto: 'Mosquitto' };

function renderTables(summaries: Summary[], records: RunRecord[], o: Options, host: object): string {
  const lines: string[] = [];
  const hasBoth = o.brokers.includes('switchboard') && o.brokers.includes('aedes');
  lines.push(`### bench:quick: messages/s received (median of ${o.rounds}, min-max), ${o.durationS} s window after ${o.warmupS} s warm-up`);
  lines.push('');
  const head = ['Scenario', ...o.brokers.map((b) => `${LABEL[b]} msg/s`), ...(hasBoth ? ['Switchboard / Aedes'] : [])];
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const scenario of o.scenarios) {
    const cells = [scenario];
    const byBroker = new Map(summaries.filter((s) => s.scenario === scenario).map((s) => [s.broker, s]));
    for (const b of o.brokers) {
      const s = byBroker.get(b)!;
      const failed = s.runs - s.okRuns;
      cells.push(s.okRuns ? `**${fmt(s.median)}** (${fmt(s.min)}-${fmt(s.max)})${failed ? ` [${failed} failed]` : ''}` : 'all runs failed');
    }
    if (hasBoth) {
      const r = byBroker.get('switchboard')!.median / byBroker.get('aedes')!.median;
      cells.push(Number.isFinite(r) ? `${r.toFixed(2)}x` : 'n/a');
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  lines.push('');
  for (const scenario of o.scenarios) lines.push(`- \`${scenario}\`: ${describe(scenario, o)}`);
  const busy = records.filter((r) => (r.otherLoad?.ratio ?? 0) >= OTHER_LOAD_WARN);
  if (busy.length) {
    lines.push(
      `- **machine not idle**: in ${busy.length} of ${records.length} runs other processes used >= ${pct(OTHER_LOAD_WARN)} of a core ` +
        `(max ${pct(Math.max(...busy.map((r) => r.otherLoad!.ratio)))}); those numbers are noisier (see "other CPU")`,
    );
  }
  const flagged = (re: RegExp) => records.filter((r) => r.issues.some((i) => re.test(i)));
  for (const [label, re] of [
    ['QoS 1 messages LOST', /^LOST/],
    ['QoS 1 backlog not drained in time', /^backlog/],
    ['unexpected disconnects', /closed by the broker/],
    ['broker crashed / unclean stop', /broker exited on its own|did not stop cleanly/],
    ['failed runs', /^run (error|failed)/],
  ] as const) {
    const rs = flagged(re);
    if (rs.length) lines.push(`- ${label}: ${rs.map((r) => `${r.scenario} r${r.round} ${LABEL[r.broker]}`).join(', ')} (details in the per-run table)`);
  }
  lines.push(`- host: ${JSON.stringify(host)}`);
  lines.push('');
  lines.push('#### Every run (CPU = busy share of one core over the window: generator is 1 thread, so ~100% means the generator was the limit)');
  lines.push('');
  lines.push('| Scenario | # | Broker | msg/s | pub/s | lat p50/p99 ms | gen CPU | broker CPU (busiest threads) | other CPU | broker RSS MB | issues |');
  lines.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of records) {
    const res = r.result;
    const issues = r.issues.length ? r.issues.map((i) => i.replace(/\|/g, '/').replace(/\n/g, ' ').slice(0, 160)).join('; ') : '-';
    lines.push(
      `| ${r.scenario} | ${r.round} | ${LABEL[r.broker]} | ${res?.ok ? fmt(res.rate) : 'FAIL'} | ${res?.ok ? fmt(res.publishRate) : '-'} | ` +
        `${res?.ok ? `${res.latencyMs.p50}/${res.latencyMs.p99}` : '-'} | ${pct(res?.genCpuWindow.ratio)} | ` +
        `${pct(r.brokerCpuWindow?.ratio)}${r.brokerBusiestThreads && r.broker === 'switchboard' ? ` (${r.brokerBusiestThreads.slice(0, 3).map(pct).join(' ')})` : ''} | ` +
        `${pct(r.otherLoad?.ratio)} | ${r.brokerRssMB ? r.brokerRssMB.peakSeen : '-'} | ${issues} |`,
    );
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  let gen: Generator | undefined;
  installCleanupHandlers(() => gen?.stop());
  ensureBuild(o.build);

  const cpus = os.cpus();
  const host = {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
  };
  const t0 = performance.now();
  gen = new Generator();
  await gen.start();
  const total = o.scenarios.length * o.rounds * o.brokers.length;
  process.stderr.write(
    `bench: ${total} runs (${o.scenarios.join(', ')} x ${o.rounds} rounds x ${o.brokers.join(', ')}), ` +
      `warm-up ${o.warmupS} s + window ${o.durationS} s each; generator pid ${gen.pid}\n`,
  );

  const records: RunRecord[] = [];
  let n = 0;
  for (const scenario of o.scenarios) {
    for (let round = 1; round <= o.rounds; round++) {
      for (const broker of o.brokers) {
        n++;
        const rec = await oneRun(gen, o, scenario, round, broker);
        records.push(rec);
        const r = rec.result;
        process.stderr.write(
          `[${n}/${total}] ${scenario} r${round} ${LABEL[broker].padEnd(11)} ` +
            (r?.ok
              ? `${fmt(r.rate).padStart(9)} msg/s  (pub ${fmt(r.publishRate)}/s; gen CPU ${pct(r.genCpuWindow.ratio)}, broker CPU ${pct(rec.brokerCpuWindow?.ratio)} ` +
                `[threads ${rec.brokerBusiestThreads?.map(pct).join(' ') ?? 'n/a'}]; start ${rec.brokerStartMs} ms, connect ${fmt(r.connectMs)} ms, drain ${fmt(r.drainMs)} ms)`
              : `FAILED: ${rec.error ?? r?.error}`) +
            (rec.issues.length ? `\n      issues: ${rec.issues.join('\n              ')}` : '') +
            '\n',
        );
      }
    }
  }
  gen.stop();

  const summaries = summarize(records, o);
  const elapsedS = Math.round((performance.now() - t0) / 100) / 10;
  const table = renderTables(summaries, records, o, host);
  process.stdout.write('\n' + table + `\n(total ${elapsedS} s)\n`);

  const resultsDir = path.join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = path.join(resultsDir, `quick-${stamp}.json`);
  const medians: Record<string, Record<string, number>> = {};
  for (const s of summaries) (medians[s.scenario] ??= {})[s.broker] = s.median;
  const ratios: Record<string, number> = {};
  for (const sc of o.scenarios) {
    const m = medians[sc];
    if (m?.switchboard !== undefined && m.aedes !== undefined) ratios[sc] = Math.round((m.switchboard / m.aedes) * 1000) / 1000;
  }
  writeFileSync(
    file,
    JSON.stringify(
      {
        kind: 'bench:quick',
        createdAt: new Date().toISOString(),
        elapsedS,
        host,
        options: o,
        scenarios: Object.fromEntries(o.scenarios.map((s) => [s, describe(s, o)])),
        medians,
        ratiosSwitchboardOverAedes: ratios,
        summaries,
        runs: records,
        markdown: table,
      },
      null,
      2,
    ) + '\n',
  );
  process.stderr.write(`bench: results written to ${path.relative(REPO_ROOT, file)}\n`);
}

main().then(
  () => {
    killAllChildren();
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error)?.stack ?? String(e)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
