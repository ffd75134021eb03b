/**
 * `conns` (issue 3 item 4): the paper's table 6. For each connection count C: hold C idle
 * MQTT connections, measure the broker's memory per connection and idle CPU, then the time
 * from one publish to its last receipt by 100, 1000 and all C subscribers.
 *
 * The connections live in conn-worker child processes (bench/lib/conn-worker.ts, at most
 * `per-process` each); the publisher is a separate connection in this process. One broker
 * process holds at most ~19k connections here, so Switchboard runs larger C as a cluster
 * (bench/lib/cluster.ts: nats-server + N nodes, the clients round-robin over the nodes,
 * the publisher on node 0), and so does NATS (bench/lib/nats-cluster.ts: N nats-servers
 * with routes, JetStream and MQTT listeners, the same N and round-robin); Aedes and
 * Mosquitto stay single-process. How it works and what is measured: bench/scenarios/conns.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { addressesNeeded, ephemeralPortRange, portsPerAddress, sourceAddresses } from '../lib/addresses.js';
import { allProcessCpu, BENCH_DIR, isSwitchboard, REPO_ROOT, trackChild, type BrokerHandle, type BrokerName } from '../lib/brokers.js';
import { ONE_THREAD_ARGS } from '../lib/cluster.js';
import type { ConnectRequest, FromWorker, PushGroup, PushReport, ToWorker, WorkerStats } from '../lib/conn-worker.js';
import { epochNow, MiniConn, type MiniQoS } from '../lib/mini-conn.js';
import { cpuDeltaMs, cpuNs, cpuNsOf, rssKiB } from '../lib/proc-fine.js';
import type { BenchOptions, Measurement, Progress, Scenario } from '../lib/scenario.js';

/** The paper's table 6 (IM-PROTOCOL.md section 7): Dell R320, 8 cores at 2.5 GHz; times in seconds. */
export const PAPER_TABLE6: ReadonlyArray<{ connections: number; cpuPct: number; push100: number; push1000: number; pushAll: number }> = [
  { connections: 10_000, cpuPct: 14.5, push100: 0.091, push1000: 0.114, pushAll: 13.213 },
  { connections: 20_000, cpuPct: 25.0, push100: 0.105, push1000: 0.225, pushAll: 27.167 },
  { connections: 30_000, cpuPct: 33.2, push100: 0.287, push1000: 0.434, pushAll: 42.254 },
  { connections: 40_000, cpuPct: 40.1, push100: 0.397, push1000: 0.667, pushAll: 68.887 },
  { connections: 50_000, cpuPct: 45.1, push100: 0.487, push1000: 0.976, pushAll: 110.997 },
  { connections: 75_000, cpuPct: 55.3, push100: 0.639, push1000: 1.213, pushAll: 207.876 },
  { connections: 100_000, cpuPct: 62.4, push100: 0.855, push1000: 1.433, pushAll: 313.876 },
];

/** What one broker process can hold here: the per-process descriptor limit is 20000. */
export const SINGLE_PROCESS_MAX_CONNS = 19_000;
export const NEEDS_CLUSTER = 'needs cluster (one broker process holds at most ~19k connections here)';
/**
 * Connections per Switchboard node of a cluster by default (--node-max-conns): 14,000 here.
 * At most 17,000 (20,000 descriptors less a margin for the store, the listeners, the NATS
 * link), and no more than the even half of the ephemeral port range less a margin: an
 * unbound connect() takes even ports first, per destination, and once they are all in
 * use towards one node each further connect() scans all of them in the kernel (~1 ms of
 * system time each; measured: the conn-workers' system time tripled over the last ~15 %
 * of a 100k ramp with 16,700 clients per node, and the ramp fell to ~1,300 conn/s).
 */
export function defaultNodeMaxConns(): number {
  const [lo, hi] = ephemeralPortRange();
  const even = Math.floor((hi - lo + 1) / 2);
  return Math.max(1000, Math.min(17_000, Math.floor((even - 100) / 1000) * 1000));
}
export const NODE_MAX_CONNS = defaultNodeMaxConns();

/**
 * Why a peer's C > the single-process bound is not measured: Aedes and Mosquitto run as
 * one process (Switchboard and NATS run as clusters there: clusterFor).
 */
export const PEER_NEEDS_CLUSTER: Partial<Record<BrokerName, string>> = {
  aedes:
    'needs cluster: Aedes runs as one process here (~19k connections at most); several Aedes processes need a shared emitter and persistence (Redis or MongoDB), not set up here: not run',
  mosquitto:
    'needs cluster: Mosquitto is one process (~19k connections at most) and has no cluster; Mosquittos joined by bridges are not comparable (independent brokers, each bridged topic re-published over a client connection, no shared sessions or client ids): not run',
};

/** Brokers that run as a cluster above the single-process bound (or with --cluster). */
export const clusterable = (broker: BrokerName): boolean => isSwitchboard(broker) || broker === 'nats';

const GROUPS: readonly PushGroup[] = ['k100', 'k1000', 'all'];
const TOPIC: Record<PushGroup, string> = { k100: 'push/k100', k1000: 'push/k1000', all: 'push/all' };
const GROUP_LABEL: Record<PushGroup, string> = { k100: 'push 1-100', k1000: 'push 1-1000', all: 'push all' };
const KEEPALIVE_S = 300;
/** The ramp fails when no client connected or failed for this long. */
const RAMP_STALL_MS = 60_000;
/** Ramps longer than this keep the connections alive (PINGREQ). */
const RAMP_PING_AFTER_MS = 120_000;

/** The case names of one connection count, in report order. */
export function caseNames(c: number): string[] {
  return [...GROUPS.map((g) => `C=${c} ${GROUP_LABEL[g]}`), `C=${c} idle RSS/conn`, `C=${c} idle CPU`, `C=${c} connect rate`];
}

// ---------------------------------------------------------------------------
// Options (`--name value` on the command line, in o.extra)

export interface ConnsOptions {
  counts: number[];
  perProcess: number;
  /** Connection attempts per second over all workers; 0 = unlimited (bounded by concurrency). */
  rate: number;
  concurrency: number;
  /** Source addresses; undefined = addressesNeeded(C + 1) per C. */
  addresses: number | undefined;
  brokerMaxConns: number;
  /** Switchboard: cluster of this many nodes for every C ('auto': as many as nodeMaxConns needs, >= 2); undefined = only above brokerMaxConns. */
  cluster: number | 'auto' | undefined;
  nodeMaxConns: number;
  /** Threads per cluster node: 1 (--gateways 0 --shards 0) or auto (the default topology). */
  nodeThreads: '1' | 'auto';
  holdS: number;
  repeats: number;
  pushTimeoutS: number;
}

function posInt(o: BenchOptions, key: string, dflt: number, min = 1): number {
  const v = o.extra[key];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${key} needs an integer >= ${min} (got ${v})`);
  return n;
}

function posNum(o: BenchOptions, key: string, dflt: number): number {
  const v = o.extra[key];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${key} needs a positive number (got ${v})`);
  return n;
}

export function connsOptions(o: BenchOptions): ConnsOptions {
  const countsRaw = o.extra['conns'] ?? (o.quick ? '2000' : '10000,20000,30000,40000,50000,75000,100000');
  const counts = countsRaw.split(',').map((s) => {
    const n = Number(s.trim().replace(/_/g, ''));
    if (!Number.isInteger(n) || n < 1) throw new Error(`--conns: "${s}" is not a positive integer`);
    return n;
  });
  const perProcess = posInt(o, 'per-process', 15_000);
  if (perProcess > 19_000) throw new Error(`--per-process ${perProcess}: a process may hold at most 20000 descriptors here (use <= 19000)`);
  const addresses = o.extra['addresses'] === undefined ? undefined : posInt(o, 'addresses', 1);
  if (addresses !== undefined && addresses > 254) throw new Error('--addresses: at most 254 (127.0.0.1 .. 127.0.0.254)');
  const clusterRaw = o.extra['cluster'];
  const cluster = clusterRaw === undefined ? undefined : clusterRaw === 'auto' ? 'auto' : posInt(o, 'cluster', 1);
  const nodeMaxConns = posInt(o, 'node-max-conns', NODE_MAX_CONNS);
  if (nodeMaxConns > 19_000) throw new Error(`--node-max-conns ${nodeMaxConns}: a process may hold at most 20000 descriptors here (use <= 19000)`);
  const nodeThreads = o.extra['node-threads'] ?? '1';
  if (nodeThreads !== '1' && nodeThreads !== 'auto') throw new Error(`--node-threads: 1 or auto (got ${nodeThreads})`);
  return {
    counts,
    perProcess,
    rate: posInt(o, 'connect-rate', 2000, 0),
    concurrency: posInt(o, 'connect-concurrency', 500),
    addresses,
    brokerMaxConns: posInt(o, 'broker-max-conns', SINGLE_PROCESS_MAX_CONNS),
    cluster,
    nodeMaxConns,
    nodeThreads,
    holdS: posNum(o, 'hold', o.quick ? 1 : 2),
    repeats: posInt(o, 'repeats', o.quick ? 1 : 3),
    pushTimeoutS: posNum(o, 'push-timeout', 30),
  };
}

/**
 * The cluster Switchboard or NATS runs as for the largest C of these options (a variant has
 * one), or undefined for one process: above brokerMaxConns, or with --cluster. Nodes
 * (Switchboard nodes or nats-servers): enough that none holds more than nodeMaxConns of the
 * C clients + the publisher. nodeArgs: Switchboard's thread arguments ([] for NATS).
 */
export function clusterFor(broker: BrokerName, opts: ConnsOptions): { nodes: number; nodeArgs: string[] } | undefined {
  if (!clusterable(broker)) return undefined;
  const c = Math.max(...opts.counts);
  const needed = Math.ceil((c + 1) / opts.nodeMaxConns);
  let nodes: number;
  if (opts.cluster === undefined) {
    if (c <= opts.brokerMaxConns) return undefined;
    nodes = needed;
  } else nodes = opts.cluster === 'auto' ? Math.max(2, needed) : opts.cluster;
  return { nodes, nodeArgs: isSwitchboard(broker) && opts.nodeThreads === '1' ? ONE_THREAD_ARGS : [] };
}

// ---------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
/** `{ [key]: v }` when v is defined, else `{}` (for optional fields under exactOptionalPropertyTypes-style code). */
const optional = <K extends string, V>(key: K, v: V | undefined): { [k in K]?: V } => (v === undefined ? {} : ({ [key]: v } as { [k in K]?: V }));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Busy CPU time of the whole machine (ms, all cores): /proc/stat user+nice+system+irq+softirq+steal. */
function machineBusyMs(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return ((user + nice + system + irq + softirq + steal) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** CPU of every process (allProcessCpu) and of the whole machine, at one instant. */
interface LoadSample {
  procs: Map<number, number>;
  machineMs: number;
}
const loadSample = (): LoadSample => ({ procs: allProcessCpu(), machineMs: machineBusyMs() });

/**
 * CPU used by processes other than `exclude` between two samples (ms): the larger of the
 * processes alive at both samples and the machine's busy time less `exclude`'s, which
 * also catches processes that started and ended in between (test runs, compilers).
 */
function otherCpuMs(before: LoadSample, after: LoadSample, exclude: Set<number>): number {
  let listed = 0;
  let ours = 0;
  for (const [pid, ms] of after.procs) {
    const d = ms - (before.procs.get(pid) ?? ms);
    if (d <= 0) continue;
    if (exclude.has(pid)) ours += d;
    else listed += d;
  }
  const machine = after.machineMs - before.machineMs - ours;
  return Number.isFinite(machine) ? Math.max(listed, machine) : listed;
}

function notMeasured(unit: string, higherIsBetter: boolean, why: string, issues: string[] = []): Measurement {
  return { value: NaN, unit, higherIsBetter, details: {}, issues, notMeasured: why };
}

const UNITS: Record<string, [string, boolean]> = {
  push: ['s', false],
  rss: ['KiB', false],
  cpu: ['%', false],
  rate: ['conn/s', true],
};
const unitOf = (name: string): [string, boolean] =>
  name.includes(' push ') ? UNITS['push']! : name.endsWith('RSS/conn') ? UNITS['rss']! : name.endsWith('CPU') ? UNITS['cpu']! : UNITS['rate']!;

// ---------------------------------------------------------------------------
// A conn-worker child process

type Msg<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>;

class ConnWorker {
  pid = 0;
  exited: string | undefined;
  private readonly listeners = new Set<(m: FromWorker) => void>();
  private readonly onExit = new Set<(why: string) => void>();

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: FromWorker) => {
      for (const l of [...this.listeners]) l(m);
    });
    child.on('exit', (code, signal) => {
      this.exited = `conn-worker exited (code ${code}, signal ${signal})`;
      for (const f of [...this.onExit]) f(this.exited);
    });
  }

  static async start(): Promise<ConnWorker> {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'lib/conn-worker.ts')], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    trackChild(child);
    const w = new ConnWorker(child);
    const ready = await w.next('ready', () => true, 30_000);
    w.pid = ready.pid;
    return w;
  }

  on(f: (m: FromWorker) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** The next message of `type` that satisfies `pred`; register before sending the request. */
  next<T extends FromWorker['type']>(type: T, pred: (m: Msg<T>) => boolean, timeoutMs: number): Promise<Msg<T>> {
    return new Promise((resolve, reject) => {
      if (this.exited) return reject(new Error(this.exited));
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        this.onExit.delete(exit);
      };
      const listener = (m: FromWorker) => {
        if (m.type === 'error') {
          done();
          reject(new Error(`conn-worker: ${m.message}`));
        } else if (m.type === type && pred(m as Msg<T>)) {
          done();
          resolve(m as Msg<T>);
        }
      };
      const exit = (why: string) => {
        done();
        reject(new Error(why));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`conn-worker ${this.pid}: no '${type}' after ${timeoutMs} ms`));
      }, timeoutMs);
      this.listeners.add(listener);
      this.onExit.add(exit);
    });
  }

  send(m: ToWorker): void {
    if (!this.exited && this.child.connected) this.child.send(m);
  }

  /** Asks it to disconnect its clients and exit; SIGKILL if that takes longer than timeoutMs. */
  async close(timeoutMs: number): Promise<Msg<'closed'> | undefined> {
    if (this.exited) return undefined;
    const closed = this.next('closed', () => true, timeoutMs).catch(() => undefined);
    this.send({ type: 'close' });
    const r = await closed;
    if (!this.exited) {
      const gone = new Promise<void>((res) => this.onExit.add(() => res()));
      await Promise.race([gone, sleep(1000)]);
    }
    this.kill();
    return r;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------
// One connection count

interface GroupResult {
  /** Seconds from the publish call to the last target's receipt, one per complete push. */
  times: number[];
  /** Per push: targets (subscribed clients) and deliveries that did not arrive in time. */
  expected: number[];
  missing: number;
  duplicates: number;
  brokerMs: number;
  /** The same per broker process (a cluster's nodes and nats-server). */
  brokerEachMs: number[];
  genMs: number;
  genMaxMs: number;
  otherMs: number;
  wallMs: number;
  /** Receipt times of the last push (s after the publish call), sorted. */
  lastDelays: number[];
  publisherErrors: string[];
}

async function runCount(
  broker: BrokerHandle,
  o: BenchOptions,
  c: number,
  opts: ConnsOptions,
  progress: Progress,
  /** Counts measured before on this broker process (its RSS baseline includes what they left behind). */
  before: number[],
): Promise<Record<string, Measurement>> {
  // The broker's processes (a cluster: every node and nats-server; CPU and RSS are their sums)
  // and the ports the clients spread over (round-robin by client index).
  const procs = broker.cluster ? broker.cluster.processes() : [{ name: broker.name, pid: broker.pid }];
  const brokerPids = procs.map((p) => p.pid);
  const ports = broker.cluster ? broker.cluster.nodes.map((n) => n.port) : [broker.port];
  const nNodes = ports.length;
  const label = `conns ${broker.name}${nNodes > 1 ? ` (${nNodes} nodes)` : ''} C=${c}`;
  const nWorkers = Math.ceil(c / opts.perProcess);
  // Unbound connect()s only need a unique 4-tuple, so each destination (node port) has the
  // whole ephemeral range; bound ones (several source addresses) share it per address.
  const perDestination = Math.ceil((c + 1) / nNodes);
  const nAddresses = opts.addresses ?? (perDestination <= portsPerAddress() ? 1 : addressesNeeded(c + 1));
  const src = sourceAddresses(nAddresses);
  const version: 4 | 5 = o.protocolVersion === 5 && broker.name !== 'aedes' ? 5 : 4;
  const qos = o.qos as MiniQoS;
  const ncpu = os.cpus().length;
  const prefix = `c${Math.random().toString(36).slice(2, 7)}-`;
  const common: string[] = [];
  const workers: ConnWorker[] = [];
  let publisher: MiniConn | undefined;
  const brokerAlive = (phase: string) => {
    if (broker.exit) throw new Error(`broker exited during ${phase} (code ${broker.exit.code}, signal ${broker.exit.signal})`);
  };
  if (nAddresses === 1 ? perDestination > portsPerAddress() : c / nAddresses > portsPerAddress()) {
    common.push(`${c} connections over ${nAddresses} source address(es) and ${nNodes} broker port(s) need more than the ${portsPerAddress()} ephemeral ports per address`);
  }
  const cpuOfBroker = () => cpuNsOf(brokerPids);
  const cpuPerProcess = () => brokerPids.map((pid) => cpuNs(pid) ?? 0);
  const rssPerProcess = () => brokerPids.map((pid) => rssKiB(pid) ?? NaN);
  /** Per process of a cluster: { n0: { [key]: value } , ... }; undefined for one process. */
  const breakdown = (key: string, values: number[]): Record<string, Record<string, number>> | undefined =>
    nNodes > 1 || broker.cluster ? Object.fromEntries(procs.map((p, k) => [p.name, { [key]: values[k]! }])) : undefined;
  const mergeBreakdown = (...bs: Array<Record<string, Record<string, number>> | undefined>) => {
    const out: Record<string, Record<string, number>> = {};
    for (const b of bs) for (const [k, v] of Object.entries(b ?? {})) out[k] = { ...(out[k] ?? {}), ...v };
    return Object.keys(out).length ? out : undefined;
  };

  try {
    workers.push(...(await Promise.all(Array.from({ length: nWorkers }, () => ConnWorker.start()))));
    const workerPids = workers.map((w) => w.pid);
    const exclude = new Set([process.pid, ...brokerPids, broker.child.pid ?? -1, ...workerPids]);

    publisher = new MiniConn({
      host: broker.host,
      port: broker.port,
      clientId: `${prefix}pub`,
      protocolVersion: version,
      keepalive: KEEPALIVE_S,
      ...(src.length ? { localAddress: src[0]! } : {}),
    });
    await withTimeout(publisher.connect(), 10_000, 'publisher CONNECT');
    await sleep(500);
    brokerAlive('start');
    const rssBeforeEach = rssPerProcess();
    const rssBefore = sum(rssBeforeEach);

    // --- Ramp: C connections over the workers, each worker 1/n of the rate.
    const counts = Array.from({ length: nWorkers }, (_, k) => Math.floor(c / nWorkers) + (k < c % nWorkers ? 1 : 0));
    const firsts = counts.map((_, k) => sum(counts.slice(0, k)));
    const done = new Array<number>(nWorkers).fill(0);
    let lastProgressAt = performance.now();
    const offs = workers.map((w, k) =>
      w.on((m) => {
        if (m.type === 'progress') {
          if (m.subscribed + m.failed !== done[k]) lastProgressAt = performance.now();
          done[k] = m.subscribed + m.failed;
          progress.update(`${label}: connecting`, sum(done), c);
        }
      }),
    );
    // A slow but steady broker gets the time it needs (NATS as a cluster: 250-500 conn/s,
    // less on a busy host); the ramp fails when no client connected or failed for
    // RAMP_STALL_MS, or when it averaged less than 50 conn/s.
    const rampTimeoutMs = Math.max((opts.rate > 0 ? (c / opts.rate) * 2 : c / 200) * 1000, (c / 50) * 1000) + 60_000;
    let stallTimer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      stallTimer = setInterval(() => {
        if (performance.now() - lastProgressAt < RAMP_STALL_MS) return;
        reject(new Error(`ramp stalled: no client connected or failed for ${RAMP_STALL_MS / 1000} s (${sum(done)} of ${c} done)`));
      }, 1000);
    });
    const ramp0 = { broker: cpuOfBroker(), each: cpuPerProcess(), gen: cpuNsOf(workerPids), all: loadSample(), t: performance.now() };
    // A long ramp (NATS as a cluster: minutes) must not outlast the keepalive (the broker
    // drops a client silent for 1.5 x KEEPALIVE_S): from RAMP_PING_AFTER_MS on, PINGREQ from
    // the publisher every 30 s and from the workers' clients every KEEPALIVE_S / 2. Short
    // ramps send none, so the pushes that follow are undisturbed as before.
    const rampPing = setInterval(() => {
      if (performance.now() - ramp0.t < RAMP_PING_AFTER_MS) return;
      publisher?.ping();
      for (const w of workers) w.send({ type: 'keepalive' });
    }, 30_000);
    const connectedP = Promise.all(
      workers.map((w, k) => {
        const p = w.next('connected', () => true, rampTimeoutMs);
        const r: ConnectRequest = {
          type: 'connect',
          host: broker.host,
          port: broker.port,
          ...(nNodes > 1 ? { ports } : {}),
          first: firsts[k]!,
          count: counts[k]!,
          sourceAddresses: src,
          rate: opts.rate / nWorkers,
          concurrency: Math.max(1, Math.floor(opts.concurrency / nWorkers)),
          protocolVersion: version,
          qos,
          keepalive: KEEPALIVE_S,
          clientIdPrefix: prefix,
          handshakeTimeoutMs: 30_000,
          retries: 2,
        };
        w.send(r);
        return p;
      }),
    );
    connectedP.catch(() => {}); // a stall wins the race; the workers are killed below
    const connected = await Promise.race([connectedP, stalled]).finally(() => {
      clearInterval(stallTimer);
      clearInterval(rampPing);
    });
    const rampBrokerMs = cpuDeltaMs(ramp0.broker, cpuOfBroker());
    const rampEachMs = cpuPerProcess().map((x, k) => Math.max(0, (x - ramp0.each[k]!) / 1e6));
    const rampGenMs = cpuDeltaMs(ramp0.gen, cpuNsOf(workerPids));
    const rampOtherMs = otherCpuMs(ramp0.all, loadSample(), exclude);
    const rampWallMs = performance.now() - ramp0.t;
    for (const off of offs) off();
    progress.update(`${label}: connecting`, c, c);
    brokerAlive('the ramp');
    const subscribed = sum(connected.map((m) => m.subscribed));
    const failed = sum(connected.map((m) => m.failed));
    const rampS = (Math.max(...connected.map((m) => m.endedAt)) - Math.min(...connected.map((m) => m.startedAt))) / 1000;
    if (subscribed === 0) throw new Error(`no client connected: ${connected.flatMap((m) => m.errorSamples).slice(0, 3).join('; ')}`);
    if (subscribed < c) {
      common.push(`only ${subscribed} of ${c} clients connected and subscribed (${failed} failed: ${connected.flatMap((m) => m.errorSamples).slice(0, 3).join('; ')})`);
    }
    const retries = sum(connected.map((m) => m.retries));

    // --- Idle hold.
    const idle0 = { broker: cpuOfBroker(), each: cpuPerProcess(), gen: cpuNsOf(workerPids), all: loadSample(), t: performance.now() };
    await sleep(opts.holdS * 1000);
    const idle1 = { broker: cpuOfBroker(), each: cpuPerProcess(), gen: cpuNsOf(workerPids), all: loadSample(), t: performance.now() };
    const rssAfterEach = rssPerProcess();
    const rssAfter = sum(rssAfterEach);
    brokerAlive('the idle hold');
    const idleWall = idle1.t - idle0.t;
    const idleBrokerPct = (cpuDeltaMs(idle0.broker, idle1.broker) / idleWall) * 100;
    const idleGenPct = (cpuDeltaMs(idle0.gen, idle1.gen) / idleWall) * 100;
    const idleOtherPct = (otherCpuMs(idle0.all, idle1.all, exclude) / idleWall) * 100;
    const idleEachPct = idle1.each.map((x, k) => (Math.max(0, x - idle0.each[k]!) / 1e6 / idleWall) * 100);

    // --- Pushes: k100, k1000, all; `repeats` rounds.
    const groups = Object.fromEntries(
      GROUPS.map((g) => [
        g,
        {
          times: [],
          expected: [],
          missing: 0,
          duplicates: 0,
          brokerMs: 0,
          brokerEachMs: brokerPids.map(() => 0),
          genMs: 0,
          genMaxMs: 0,
          otherMs: 0,
          wallMs: 0,
          lastDelays: [],
          publisherErrors: [],
        } as GroupResult,
      ]),
    ) as Record<PushGroup, GroupResult>;
    const payloadSize = Math.max(4, o.payloadSize);
    const pushTimeoutMs = opts.pushTimeoutS * 1000;
    let pushId = 0;
    for (let r = 0; r < opts.repeats; r++) {
      for (const w of workers) w.send({ type: 'keepalive' });
      for (const [gi, g] of GROUPS.entries()) {
        progress.update(`${label}: ${GROUP_LABEL[g]} (${r + 1}/${opts.repeats})`, r * GROUPS.length + gi, opts.repeats * GROUPS.length);
        const res = groups[g];
        const id = ++pushId;
        const wantTimes = r === opts.repeats - 1;
        // A worker without targets reports right after 'armed': listen for reports first.
        const got = new Array<boolean>(nWorkers).fill(false);
        const reportsP = workers.map((w, k) => {
          const p = w.next('push', (m) => m.pushId === id, pushTimeoutMs + 25_000);
          p.then(
            () => (got[k] = true),
            () => {},
          );
          return p;
        });
        const armed = await Promise.all(
          workers.map((w) => {
            const p = w.next('armed', (m) => m.pushId === id, 10_000);
            w.send({ type: 'arm', pushId: id, group: g, wantTimes });
            return p;
          }),
        );
        const expected = sum(armed.map((m) => m.expected));
        const payload = Buffer.alloc(payloadSize, 0x78);
        payload.writeUInt32LE(id, 0);
        const p0 = { broker: cpuOfBroker(), each: cpuPerProcess(), gen: workerPids.map((pid) => cpuNs(pid) ?? 0), all: loadSample() };
        const w0 = performance.now();
        const t0 = epochNow();
        const published = publisher.publish(TOPIC[g], payload, qos);
        published.catch(() => {}); // awaited (and its error recorded) after the reports
        const deadline = setTimeout(() => workers.forEach((w, k) => got[k] || w.send({ type: 'report', pushId: id })), pushTimeoutMs);
        let reports: PushReport[];
        try {
          reports = await Promise.all(reportsP);
        } finally {
          clearTimeout(deadline);
        }
        const wallMs = performance.now() - w0;
        const p1 = { broker: cpuOfBroker(), each: cpuPerProcess(), gen: workerPids.map((pid) => cpuNs(pid) ?? 0), all: loadSample() };
        const genMs = p1.gen.map((x, k) => Math.max(0, (x - p0.gen[k]!) / 1e6));
        res.brokerMs += cpuDeltaMs(p0.broker, p1.broker);
        p1.each.forEach((x, k) => (res.brokerEachMs[k]! += Math.max(0, (x - p0.each[k]!) / 1e6)));
        res.genMs += sum(genMs);
        res.genMaxMs += Math.max(...genMs);
        res.otherMs += otherCpuMs(p0.all, p1.all, exclude);
        res.wallMs += wallMs;

        const received = sum(reports.map((m) => m.received));
        res.expected.push(expected);
        res.missing += expected - received;
        res.duplicates += sum(reports.map((m) => m.duplicates));
        const lastAt = Math.max(...reports.filter((m) => m.received > 0).map((m) => m.lastAt));
        if (received === expected && expected > 0) res.times.push((lastAt - t0) / 1000);
        if (wantTimes) res.lastDelays = reports.flatMap((m) => m.times ?? []).map((t) => (t - t0) / 1000).sort((a, b) => a - b);
        await withTimeout(published, 10_000, `publisher ${qos === 1 ? 'PUBACK' : 'PUBCOMP'}`).catch((e: Error) => res.publisherErrors.push(e.message));
        brokerAlive(GROUP_LABEL[g]);
        // Let acknowledgements of the push drain before the next one.
        await sleep(Math.min(5000, 200 + wallMs / 2));
      }
    }
    progress.update(`${label}: closing`, 1, 1);

    // --- Close, then build the measurements.
    await publisher.disconnect(3000);
    const closed = await Promise.all(workers.map((w) => w.close(30_000)));
    const stats = closed.filter((m): m is Msg<'closed'> => m !== undefined);
    if (stats.length < nWorkers) common.push(`${nWorkers - stats.length} conn-worker(s) did not close in time (killed)`);
    const total = (k: keyof WorkerStats) => sum(stats.map((m) => m[k] as number));
    if (total('unexpectedCloses')) {
      common.push(`${total('unexpectedCloses')} subscribed client(s) were disconnected by the broker: ${stats.flatMap((m) => m.errorSamples).filter((s) => s.includes('closed')).slice(0, 3).join('; ')}`);
    }
    if (total('protocolErrors')) common.push(`${total('protocolErrors')} protocol error(s) in what the broker sent`);
    if (total('stray')) common.push(`${total('stray')} delivery(ies) to clients not subscribed to the topic`);
    if (total('late')) common.push(`${total('late')} delivery(ies) arrived after their push had been written off`);
    if (idleOtherPct >= 10) common.push(`machine busy: other processes used ${Math.round(idleOtherPct)}% of a core during the idle hold`);

    const out: Record<string, Measurement> = {};
    const [n100, n1000, nAll, nRss, nCpu, nRate] = caseNames(c) as [string, string, string, string, string, string];
    for (const [g, name] of [
      ['k100', n100],
      ['k1000', n1000],
      ['all', nAll],
    ] as const) {
      const res = groups[g];
      const issues = [...common];
      if (res.missing) {
        issues.push(`${res.missing} of ${sum(res.expected)} deliveries missing (not received within ${opts.pushTimeoutS} s, or the target was disconnected) over ${opts.repeats} push(es)`);
      }
      if (res.duplicates) issues.push(`${res.duplicates} duplicate deliveries`);
      if (res.publisherErrors.length) issues.push(`publisher: ${res.publisherErrors.slice(0, 2).join('; ')}`);
      const otherPct = (res.otherMs / res.wallMs) * 100;
      // /proc counts other processes in 10 ms ticks: meaningless over a few short pushes.
      if (otherPct >= 10 && res.wallMs >= 1000) issues.push(`machine busy: other processes used ${Math.round(otherPct)}% of a core during the pushes`);
      const details: Record<string, number> = {
        brokerCpuPct: round((res.brokerMs / res.wallMs) * 100, 1),
        genCpuPct: round((res.genMs / res.wallMs) * 100, 1),
        genMaxWorkerCpuPct: round((res.genMaxMs / res.wallMs) * 100, 1),
        otherCpuPct: round(otherPct, 1),
        missing: res.missing,
        duplicates: res.duplicates,
        targets: median(res.expected),
        pushes: res.expected.length,
        complete: res.times.length,
        connections: subscribed,
        nodes: nNodes,
      };
      if (res.times.length) {
        details['min'] = round(Math.min(...res.times), 4);
        details['max'] = round(Math.max(...res.times), 4);
      }
      const m: Measurement = res.times.length
        ? { value: round(median(res.times), 4), unit: 's', higherIsBetter: false, details, issues }
        : { value: NaN, unit: 's', higherIsBetter: false, details, issues, notMeasured: `no push reached all its targets within ${opts.pushTimeoutS} s` };
      const each = breakdown('cpuPct', res.brokerEachMs.map((ms) => round((ms / res.wallMs) * 100, 1)));
      if (each) m.breakdown = each;
      if (res.lastDelays.length > 1) {
        // Share of the targets reached over time, last push: [seconds after the publish call, fraction].
        const d = res.lastDelays;
        const targets = res.expected[res.expected.length - 1] ?? d.length;
        const steps = Math.min(50, d.length - 1);
        const points: Array<[number, number]> = [];
        for (let k = 0; k <= steps; k++) {
          const i = Math.round((k / steps) * (d.length - 1));
          points.push([round(d[i]!, 4), round((i + 1) / targets, 4)]);
        }
        m.series = { delivered: points };
      }
      out[name] = m;
    }
    out[nRss] = {
      value: round((rssAfter - rssBefore) / subscribed, 2),
      unit: 'KiB',
      higherIsBetter: false,
      details: { rssBeforeMiB: round(rssBefore / 1024, 1), rssAfterMiB: round(rssAfter / 1024, 1), connections: subscribed, nodes: nNodes },
      ...optional(
        'breakdown',
        mergeBreakdown(
          breakdown('rssBeforeMiB', rssBeforeEach.map((k) => round(k / 1024, 1))),
          breakdown('rssAfterMiB', rssAfterEach.map((k) => round(k / 1024, 1))),
        ),
      ),
      issues: [
        ...common,
        ...(before.length ? [`measured after C=${before.join(', ')} on the same broker process: the baseline includes the memory those left behind`] : []),
      ],
    };
    out[nCpu] = {
      value: round(idleBrokerPct, 2),
      unit: '%',
      higherIsBetter: false,
      details: {
        brokerCpuPctOfMachine: round(idleBrokerPct / ncpu, 2),
        genCpuPct: round(idleGenPct, 1),
        otherCpuPct: round(idleOtherPct, 1),
        holdS: opts.holdS,
        connections: subscribed,
        nodes: nNodes,
      },
      ...optional('breakdown', breakdown('cpuPct', idleEachPct.map((x) => round(x, 2)))),
      issues: [...common],
    };
    out[nRate] = {
      value: round(subscribed / rampS, 0),
      unit: 'conn/s',
      higherIsBetter: true,
      details: {
        targetRate: opts.rate,
        rampS: round(rampS, 2),
        connected: subscribed,
        failed,
        retries,
        brokerCpuPct: round((rampBrokerMs / rampWallMs) * 100, 1),
        genCpuPct: round((rampGenMs / rampWallMs) * 100, 1),
        otherCpuPct: round((rampOtherMs / rampWallMs) * 100, 1),
        workers: nWorkers,
        sourceAddresses: nAddresses,
        nodes: nNodes,
      },
      ...optional('breakdown', breakdown('cpuPct', rampEachMs.map((ms) => round((ms / rampWallMs) * 100, 1)))),
      issues: [...common, ...(retries ? [`${retries} connection attempt(s) retried`] : [])],
    };
    // Give the broker a moment to let go of the closed connections before the next count.
    await sleep(1000);
    return out;
  } finally {
    publisher?.close();
    for (const w of workers) w.kill();
  }
}

// ---------------------------------------------------------------------------

export const conns: Scenario = {
  name: 'conns',
  // A fresh broker per connection count: its RSS baseline is then the broker at rest.
  variants: (o) => connsOptions(o).counts.map((c) => ({ conns: String(c) })),
  describe(o) {
    const opts = connsOptions(o);
    return (
      `C idle MQTT ${o.protocolVersion === 5 ? '5.0 (3.1.1 to Aedes)' : '3.1.1'} clients over TCP (C = ${opts.counts.join(', ')}; <= ${opts.perProcess} per conn-worker process, ` +
      `${opts.rate > 0 ? `${opts.rate} conn/s` : `${opts.concurrency} handshakes at a time`}; clean session, keepalive ${KEEPALIVE_S} s), ` +
      `each subscribed at QoS ${o.qos} to push/all, the first 100 / 1000 also to push/k100 / push/k1000. ` +
      `Broker RSS per connection and CPU over a ${opts.holdS} s idle hold; then one ${Math.max(4, o.payloadSize)} B publish to 100, 1000 and all C: ` +
      `seconds from the publish call to the last receipt, median of ${opts.repeats}. ` +
      (opts.cluster === undefined
        ? `One broker process holds ~19k connections here: for C > ${opts.brokerMaxConns} Switchboard and NATS run as clusters`
        : `Switchboard and NATS run as clusters for every C (--cluster ${opts.cluster})`) +
      ` of ${opts.cluster === undefined || opts.cluster === 'auto' ? `ceil((C + 1) / ${opts.nodeMaxConns})` : opts.cluster} nodes on this host ` +
      `(Switchboard: nats-server + nodes of ${opts.nodeThreads === '1' ? 'one thread' : 'the default threads'} each; NATS: nats-servers with routes, JetStream and MQTT, MQTT streams and consumers R1), ` +
      `clients round-robin over the nodes, the publisher on node 0; CPU and RSS summed over the processes; ` +
      `Aedes and Mosquitto stay one process and are not run above ${opts.brokerMaxConns}` +
      (o.transport === 'ws' ? '. TCP only (even with --transport ws)' : '')
    );
  },
  supports: () => true,
  cluster: (broker, o) => clusterFor(broker, connsOptions(o)),
  async run(broker, o, progress) {
    const opts = connsOptions(o);
    const out: Record<string, Measurement> = {};
    let brokerGone: string | undefined;
    const measured: number[] = [];
    for (const c of opts.counts) {
      const names = caseNames(c);
      const capacity = broker.cluster ? broker.cluster.nodes.length * opts.nodeMaxConns : opts.brokerMaxConns;
      if (!broker.cluster && c > opts.brokerMaxConns) {
        for (const n of names) out[n] = notMeasured(...unitOf(n), PEER_NEEDS_CLUSTER[broker.name] ?? NEEDS_CLUSTER);
        continue;
      }
      if (broker.cluster && c + 1 > capacity) {
        const why = `a cluster of ${broker.cluster.nodes.length} node(s) holds at most ${capacity} connections (--node-max-conns ${opts.nodeMaxConns})`;
        for (const n of names) out[n] = notMeasured(...unitOf(n), why);
        continue;
      }
      if (brokerGone) {
        for (const n of names) out[n] = notMeasured(...unitOf(n), brokerGone);
        continue;
      }
      try {
        Object.assign(out, await runCount(broker, o, c, opts, progress, [...measured]));
      } catch (e) {
        const msg = (e as Error).message;
        if (broker.exit) brokerGone = `broker exited (code ${broker.exit.code}, signal ${broker.exit.signal})`;
        for (const n of names) out[n] = notMeasured(...unitOf(n), `failed: ${msg}`, [msg]);
      }
      measured.push(c);
    }
    progress.done();
    return out;
  },
};
