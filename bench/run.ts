/**
 * `npm run bench -- <scenario[,scenario...]|all> [options]`: Switchboard and its peers in
 * the same run, on the same load generator, interleaved (A B A B ...) and repeated; a
 * fresh broker process for every run. Writes bench/results/bench-<timestamp>.{json,md}
 * and SVG charts, and prints the Markdown report. See bench/README.md.
 *
 * Scenarios: fanin fanout pairs latency soak conns http durability fanin-slow fig6 (all = every one).
 * Common options:
 *   --quick            small sizes, 1 round, 3 s windows: `all --quick` takes a few minutes
 *   --rounds N         rounds per scenario and broker (3; quick 1)
 *   --duration S       measurement window, s (5; quick 3)     --warmup S   warm-up, s (1)
 *   --brokers LIST     switchboard,aedes,mosquitto,nats (default: every one installed); also
 *                      switchboard-async, switchboard-memory (store.durability; default sync),
 *                      switchboard-hold (limits.queueFullPolicy hold; default drop)
 *   --transport LIST   tcp,ws (default tcp)                   --qos LIST   0,1,2 (default per scenario)
 *   --payload N        payload bytes (64)                     --v5         MQTT 5 where the peer supports it
 *   --switchboard-args "ARGS"   extra flags for Switchboard, e.g. "--gateways 0 --shards 0"
 *   --no-build         do not rebuild dist/                   --out DIR    results directory (bench/results)
 *   --gen-procs N      load generator processes for fanin, fanout, pairs, latency, soak,
 *                      durability, fanin-slow (2): the clients split over N one-thread
 *                      processes so the generator is not the limit; 1 = one process
 * Scenario options (--name value): fanin --publishers --window; fanout --subscribers --messages;
 *   pairs/latency/soak --pairs --window --rate --soak-seconds; conns --conns 10000,20000 --per-process
 *   --connect-rate --addresses --cluster N|auto --node-max-conns 14000 --node-threads 1|auto;
 *   fig6 --counts 1,10,50,100; durability --cases pairs,fanin,latency,
 *   restart-term,restart-kill --modes memory,async,sync --sessions --per-session --protocol 4|5;
 *   fanin-slow --sub-rate 5000 --queue 100 --publishers --window --durability sync|async|memory.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ALL_BROKERS,
  KNOWN_BROKERS,
  BENCH_DIR,
  BROKER_LABEL,
  REPO_ROOT,
  brokerAvailable,
  brokerVersion,
  installCleanupHandlers,
  isSwitchboard,
  killAllChildren,
  startBroker,
  type BrokerHandle,
  type BrokerName,
} from './lib/brokers.js';
import { startSwitchboardCluster } from './lib/cluster.js';
import { startNatsCluster } from './lib/nats-cluster.js';
import { DEFAULT_GEN_PROCS, setGeneratorProcs, stopGenerator } from './lib/gen-run.js';
import type { BenchOptions, Measurement, Progress, Scenario } from './lib/scenario.js';
import { renderMarkdown, summarize, writeReport, type BenchReportInput, type CaseRun } from './lib/report.js';
import { committedRuns, compare, pickBaseline, renderComparison } from './lib/regression.js';
import { fanin, fanout, latency, pairs, soak } from './scenarios/mqtt.js';
import { conns } from './scenarios/conns.js';
import { http } from './scenarios/http.js';
import { durability } from './scenarios/durability.js';
import { faninSlow } from './scenarios/flow-control.js';

const SCENARIOS: Scenario[] = [fanin, fanout, pairs, latency, soak, conns, http, durability, faninSlow];
const ALL_NAMES = [...SCENARIOS.map((s) => s.name), 'fig6'];

function usage(): string {
  const text = readFileSync(new URL(import.meta.url), 'utf8');
  return text.slice(text.indexOf('/**') + 3, text.indexOf('*/')).replace(/^ \* ?/gm, '');
}

interface Parsed {
  names: string[];
  o: BenchOptions;
  switchboardArgs: string[];
  build: boolean;
  out: string;
}

export function parseArgs(argv: string[]): Parsed {
  const names: string[] = [];
  const extra: Record<string, string> = {};
  const flags = { quick: false, v5: false, build: true };
  let rounds: number | undefined;
  let durationS: number | undefined;
  let warmupS = 1;
  let payloadSize = 64;
  let genProcs = DEFAULT_GEN_PROCS;
  let brokers: BrokerName[] | undefined;
  let switchboardArgs: string[] = [];
  let out = path.join(BENCH_DIR, 'results');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const pos = (): number => {
      const n = Number(val());
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${a} needs a positive number`);
      return n;
    };
    if (!a.startsWith('--')) {
      names.push(...a.split(',').filter(Boolean));
      continue;
    }
    switch (a) {
      case '--quick': flags.quick = true; break;
      case '--v5': flags.v5 = true; break;
      case '--no-build': flags.build = false; break;
      case '--rounds': rounds = Math.round(pos()); break;
      case '--duration': durationS = pos(); break;
      case '--warmup': warmupS = pos(); break;
      case '--payload': payloadSize = Math.round(pos()); break;
      case '--gen-procs': genProcs = Math.round(pos()); break;
      case '--brokers': brokers = val().split(',') as BrokerName[]; break;
      case '--switchboard-args': switchboardArgs = val().split(/\s+/).filter(Boolean); break;
      case '--out': out = path.resolve(val()); break;
      case '--help': process.stdout.write(usage()); process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default: extra[a.slice(2)] = val();
    }
  }
  if (names.length === 0) throw new Error(`name a scenario: ${ALL_NAMES.join(', ')} or all (see --help)`);
  const expanded = names.includes('all') ? ALL_NAMES : names;
  for (const n of expanded) if (!ALL_NAMES.includes(n)) throw new Error(`unknown scenario "${n}" (known: ${ALL_NAMES.join(', ')}, all)`);
  for (const b of brokers ?? []) if (!KNOWN_BROKERS.includes(b)) throw new Error(`unknown broker "${b}" (known: ${KNOWN_BROKERS.join(', ')})`);
  const chosen = (brokers ?? ALL_BROKERS).filter((b) => {
    if (brokerAvailable(b)) return true;
    process.stderr.write(`bench: ${b} is not installed here, leaving it out\n`);
    return false;
  });
  const firstQos = Number((extra.qos ?? '1').split(',')[0]) as 0 | 1 | 2;
  const o: BenchOptions = {
    quick: flags.quick,
    rounds: rounds ?? (flags.quick ? 1 : 3),
    durationS: durationS ?? (flags.quick ? 3 : 5),
    warmupS,
    transport: (extra.transport ?? 'tcp').split(',')[0] as 'tcp' | 'ws',
    qos: firstQos,
    payloadSize,
    protocolVersion: flags.v5 ? 5 : 4,
    brokers: chosen,
    genProcs,
    extra,
  };
  return { names: expanded, o, switchboardArgs, build: flags.build, out };
}

// ---------------------------------------------------------------- build freshness
function newestMtime(dir: string): number {
  let newest = 0;
  if (!existsSync(dir)) return 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function ensureBuild(build: boolean): void {
  const cli = path.join(REPO_ROOT, 'dist/src/cli.js');
  const srcNewest = Math.max(newestMtime(path.join(REPO_ROOT, 'src')), newestMtime(path.join(REPO_ROOT, 'workers')));
  const built = existsSync(cli) ? statSync(cli).mtimeMs : 0;
  if (built >= srcNewest) return;
  if (!build) {
    process.stderr.write(`bench: warning: dist/ is ${built ? 'older than src/' : 'missing'} and --no-build was given\n`);
    return;
  }
  process.stderr.write('bench: building dist/ (tsc -p tsconfig.json) ...\n');
  execFileSync(process.execPath, [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: REPO_ROOT, stdio: 'inherit' });
}

// ---------------------------------------------------------------- progress
function progressLine(): Progress {
  let last = 0;
  const tty = process.stderr.isTTY;
  return {
    update(label, done, total) {
      const now = Date.now();
      if (now - last < (tty ? 200 : 5000)) return;
      last = now;
      const width = 24;
      const filled = Math.max(0, Math.min(width, Math.round((done / Math.max(1, total)) * width)));
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
      process.stderr.write(tty ? `\r  ${label} ${bar}\x1b[K` : `  ${label} ${bar}\n`);
    },
    done() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

// ---------------------------------------------------------------- running
const fmt = (m: Measurement): string =>
  m.notMeasured ? m.notMeasured : Number.isFinite(m.value) ? `${m.value.toLocaleString('en-US', { maximumFractionDigits: 3 })} ${m.unit}` : 'failed';

async function runOne(s: Scenario, b: BrokerName, p: Parsed, round: number): Promise<CaseRun[]> {
  const bo = s.brokerOptions?.(p.o) ?? {};
  let broker: BrokerHandle | undefined;
  const runs: CaseRun[] = [];
  try {
    // Switchboard and NATS can run as a cluster (conns above one process's connections).
    const cl = isSwitchboard(b) || b === 'nats' ? s.cluster?.(b, p.o) : undefined;
    broker =
      cl && cl.nodes > 0 && b === 'nats'
        ? await startNatsCluster({ servers: cl.nodes })
        : cl && cl.nodes > 0
        ? await startSwitchboardCluster(b, { nodes: cl.nodes, nodeArgs: cl.nodeArgs, env: bo.env, extraArgs: [...p.switchboardArgs, ...(bo.switchboardArgs ?? [])] })
        : await startBroker(b, {
            ws: bo.ws,
            env: bo.env,
            persistence: bo.persistence,
            extraArgs: isSwitchboard(b) ? [...p.switchboardArgs, ...(bo.switchboardArgs ?? [])] : undefined,
          });
    const cases = await s.run(broker, p.o, progressLine());
    for (const [caseName, m] of Object.entries(cases)) runs.push({ scenario: s.name, caseName, broker: b, round, m });
  } catch (e) {
    runs.push({
      scenario: s.name,
      caseName: s.name,
      broker: b,
      round,
      m: { value: NaN, unit: '', higherIsBetter: true, details: {}, issues: [`run failed: ${(e as Error).message.split('\n')[0]}`] },
    });
  } finally {
    if (broker) {
      const ex = await broker.stop(5000);
      // nats-server exits with status 1 after a SIGTERM it handled; that is its clean stop.
      const cleanCodes = b === 'nats' ? [0, 1] : [0];
      const unclean = ex.unexpected || ex.killed || (!cleanCodes.includes(ex.code ?? -1) && ex.signal !== 'SIGTERM');
      const log = broker
        .output()
        .split('\n')
        // A cluster's lines start with the process name ("n0: ", "nats-server: ", a NATS cluster's "s0: ").
        .filter((l) => l.trim() && !/^(?:[\w-]+: )?(?:switchboard .* started|\s+(MQTT over|metrics \/ health|web client|data directory|store  ))|listening on|\[INF\]/.test(l));
      for (const r of runs) {
        if (unclean) r.m.issues.push(`broker did not stop cleanly (code ${ex.code}, signal ${ex.signal}${ex.unexpected ? ', exited on its own' : ''})`);
        if (log.length) r.m.issues.push(`broker log: ${log.length} line(s), first: ${log[0]!.slice(0, 200)}`);
      }
    }
  }
  return runs;
}

function runFig6(p: Parsed): string[] {
  const entry = path.join(BENCH_DIR, 'fig6/run.ts');
  if (!existsSync(entry)) return ['fig6: bench/fig6/run.ts not found'];
  const args = ['--import', 'tsx', entry, '--out', p.out, ...(p.o.extra.counts ? ['--counts', p.o.extra.counts] : p.o.quick ? ['--counts', '1,10,50'] : [])];
  process.stderr.write(`bench: fig6 (bytes on the wire, MQTT vs XMPP vs SIP) ...\n`);
  const r = spawnSync(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: 15 * 60_000 });
  if (r.status !== 0) return [`fig6 failed (exit ${r.status}): see its output above`];
  return [`fig6: ${r.stdout.trim().split('\n').slice(-1)[0] ?? ''}`];
}

async function main(): Promise<void> {
  const p = parseArgs(process.argv.slice(2));
  installCleanupHandlers(() => stopGenerator());
  setGeneratorProcs(p.o.genProcs ?? DEFAULT_GEN_PROCS);
  ensureBuild(p.build);
  const startedAt = new Date().toISOString();
  const runs: CaseRun[] = [];
  const notes: string[] = [];
  const scenarios = SCENARIOS.filter((s) => p.names.includes(s.name));
  for (const s of scenarios) {
    const candidates = s.brokers?.(p.o.brokers, p.o) ?? p.o.brokers;
    const brokers = candidates.filter((b) => s.supports(b, p.o));
    process.stderr.write(`bench: ${s.name}: ${s.describe(p.o)}\n        ${p.o.rounds} round(s) x ${brokers.map((b) => BROKER_LABEL[b]).join(', ')}\n`);
    for (const variant of s.variants?.(p.o) ?? [{}]) {
      const pv: Parsed = { ...p, o: { ...p.o, extra: { ...p.o.extra, ...variant } } };
      // A variant may leave brokers out (e.g. durability's restart cases: not Switchboard memory).
      const vBrokers = candidates.filter((b) => s.supports(b, pv.o));
      for (let round = 1; round <= p.o.rounds; round++) {
        for (const b of vBrokers) {
          const got = await runOne(s, b, pv, round);
          runs.push(...got);
          for (const r of got) {
            const issues = r.m.issues.length ? `\n      issues: ${r.m.issues.join('\n              ')}` : '';
            process.stderr.write(`  r${round} ${BROKER_LABEL[b].padEnd(11)} ${r.caseName.padEnd(28)} ${fmt(r.m)}${issues}\n`);
          }
        }
      }
    }
  }
  stopGenerator();
  if (p.names.includes('fig6')) notes.push(...runFig6(p));
  const cpus = os.cpus();
  const input: BenchReportInput = {
    startedAt,
    finishedAt: new Date().toISOString(),
    host: {
      cpus: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      os: `${os.type()} ${os.release()}`,
      kernel: os.release(),
    },
    options: p.o,
    scenarios: scenarios.map((s) => ({ name: s.name, description: s.describe(p.o) })),
    runs,
    versions: Object.fromEntries([...new Set([...p.o.brokers, ...runs.map((r) => r.broker)])].map((b) => [b, brokerVersion(b)])),
    machineNotes: notes,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
  };
  // The regression guard: Switchboard against the previous committed run of the same kind.
  const baseline = pickBaseline(committedRuns(REPO_ROOT), input.startedAt, p.o.quick, summarize(input));
  const rows = baseline ? compare(summarize(input), baseline.summaries) : [];
  if (baseline && rows.length > 0) input.previous = renderComparison(baseline, rows);
  const files = writeReport(input, p.out);
  process.stdout.write('\n' + renderMarkdown(input, summarize(input), files.svgs.map((f) => path.basename(f))) + '\n');
  process.stderr.write(`bench: wrote ${[files.json, files.md, ...files.svgs].map((f) => path.relative(REPO_ROOT, f)).join(', ')}\n`);
}

main().then(
  () => {
    killAllChildren();
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error)?.message ?? String(e)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
