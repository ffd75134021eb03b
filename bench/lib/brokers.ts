/**
 * Starts and stops the brokers under test, each as its own child process on free
 * loopback ports, and makes sure no child outlives the bench (exit, error, Ctrl-C).
 *
 *   switchboard  node dist/src/cli.js start (compiled CLI, default topology), temp data dir
 *   switchboard-async, switchboard-memory   the same with store.durability async / memory
 *   switchboard-hold   the same with limits.queueFullPolicy hold (flow control: fanin-slow)
 *   aedes        node bench/peers/aedes-server.js (aedes + net.createServer)
 *   mosquitto    /usr/sbin/mosquitto -c <temp config>, only if the binary exists (persistence
 *                false, or true with StartOptions.persistence)
 *   nats         /usr/sbin/nats-server with its MQTT listener (JetStream on, temp store), if installed
 *                (or one member of a NATS cluster: StartOptions.natsCluster, bench/lib/nats-cluster.ts)
 *
 * Each broker runs under bench/lib/leash.js, which kills it when the bench goes away,
 * even on SIGKILL of the bench. BrokerHandle.restart() stops a broker (SIGTERM or SIGKILL)
 * and starts it again on the same ports and directory (durability: restart with data).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type BrokerName =
  | 'switchboard'
  | 'switchboard-async'
  | 'switchboard-memory'
  | 'switchboard-hold'
  | 'switchboard-1t'
  | 'switchboard-2t'
  | 'aedes' | 'mosquitto' | 'nats';
/** The brokers of a run unless --brokers says otherwise: one per product. */
export const ALL_BROKERS: BrokerName[] = ['switchboard', 'aedes', 'mosquitto', 'nats'];
/**
 * Switchboard with another `store.durability` than its default (sync), as brokers of their
 * own so that the runner interleaves and reports them like peers
 * (`--brokers switchboard,switchboard-async,switchboard-memory`; the durability scenario
 * adds them itself).
 */
export const SWITCHBOARD_VARIANTS: Partial<Record<BrokerName, Record<string, string>>> = {
  'switchboard-async': { SWITCHBOARD_STORE__DURABILITY: 'async' },
  'switchboard-memory': { SWITCHBOARD_STORE__DURABILITY: 'memory' },
  // Lossless flow control: a full queue holds the publisher's PUBACK instead of dropping.
  'switchboard-hold': { SWITCHBOARD_LIMITS__QUEUE_FULL_POLICY: 'hold' },
  // Topologies side by side (issue 11: the default chosen by measurement for the host).
  'switchboard-1t': { SWITCHBOARD_THREADS__GATEWAYS: '0', SWITCHBOARD_THREADS__SHARDS: '0' },
  'switchboard-2t': { SWITCHBOARD_THREADS__GATEWAYS: '1', SWITCHBOARD_THREADS__SHARDS: '1' },
};
export const KNOWN_BROKERS: BrokerName[] = [...ALL_BROKERS, 'switchboard-async', 'switchboard-memory', 'switchboard-hold', 'switchboard-1t', 'switchboard-2t'];
export const isSwitchboard = (b: BrokerName): boolean => b === 'switchboard' || SWITCHBOARD_VARIANTS[b] !== undefined;
export const BROKER_LABEL: Record<BrokerName, string> = {
  switchboard: 'Switchboard',
  'switchboard-async': 'Switchboard async',
  'switchboard-memory': 'Switchboard memory',
  'switchboard-hold': 'Switchboard hold',
  'switchboard-1t': 'Switchboard 1 thread',
  'switchboard-2t': 'Switchboard 1+1 threads',
  aedes: 'Aedes',
  mosquitto: 'Mosquitto',
  nats: 'NATS',
};

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(BENCH_DIR, '..');
export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

export const NATS_BIN = '/usr/sbin/nats-server';

export const mosquittoAvailable = (): boolean => existsSync(MOSQUITTO_BIN);
export const natsAvailable = (): boolean => existsSync(NATS_BIN);

/** Is this broker installed on this machine (Switchboard and Aedes always are). */
export function brokerAvailable(name: BrokerName): boolean {
  return name === 'mosquitto' ? mosquittoAvailable() : name === 'nats' ? natsAvailable() : true;
}

/** Transports a broker can be benchmarked over here. NATS 2.9 has no MQTT over WebSocket. */
export function brokerTransports(name: BrokerName): Array<'tcp' | 'ws'> {
  return name === 'nats' ? ['tcp'] : ['tcp', 'ws'];
}

/** Versions for the report (what was measured matters as much as the number). */
export function brokerVersion(name: BrokerName): string {
  try {
    switch (name) {
      case 'switchboard':
      case 'switchboard-async':
      case 'switchboard-memory':
      case 'switchboard-hold':
      case 'switchboard-1t':
      case 'switchboard-2t':
        return JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).version as string;
      case 'aedes':
        return JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules/aedes/package.json'), 'utf8')).version as string;
      case 'mosquitto': {
        let out = '';
        try {
          out = execFileSync(MOSQUITTO_BIN, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        } catch (e) {
          out = String((e as { stdout?: string }).stdout ?? '');
        }
        return /version (\S+)/.exec(out)?.[1] ?? 'unknown';
      }
      case 'nats':
        return /v?(\d+\.\d+\.\d+)/.exec(execFileSync(NATS_BIN, ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
    }
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------
// Child tracking and cleanup.

const children = new Set<ChildProcess>();
/** Broker pids (grandchildren, under a leash), killed directly as well. */
const brokerPids = new Set<number>();
/** Temporary directories (configs, data dirs) of running brokers. */
const tmpDirs = new Set<string>();
let handlersInstalled = false;

/** Registers a child so that it is killed when this process exits for any reason. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** SIGKILLs every tracked child and broker that is still alive (synchronous, safe in 'exit'). */
export function killAllChildren(): void {
  for (const pid of brokerPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  brokerPids.clear();
  for (const dir of tmpDirs) {
    try {
      // Retries: a broker SIGKILLed just above may still be writing into its directory.
      rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
    } catch {
      /* ignore */
    }
  }
  tmpDirs.clear();
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

/** Installs exit/signal/error handlers that kill every tracked child. */
export function installCleanupHandlers(onSignal?: () => void): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllChildren);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping all child processes\n`);
      onSignal?.();
      killAllChildren();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  process.on('uncaughtException', (e) => {
    process.stderr.write(`bench: uncaught ${e?.stack ?? e}\n`);
    killAllChildren();
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    process.stderr.write(`bench: unhandled rejection ${(e as Error)?.stack ?? e}\n`);
    killAllChildren();
    process.exit(1);
  });
}

// ---------------------------------------------------------------------------
// Ports.

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.removeAllListeners();
      s.on('error', () => {});
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}

// ---------------------------------------------------------------------------

export interface BrokerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** It exited on its own, before stop() was called. */
  unexpected: boolean;
}

export type StopResult = BrokerExit & { stopMs: number; killed: boolean };

export interface RestartResult {
  /** How the old process ended, and how long that took. */
  stopped: StopResult;
  /** The new process: from its spawn (its pid reported) to the port accepting connections. */
  readyMs: number;
}

export interface BrokerHandle {
  name: BrokerName;
  host: string;
  port: number;
  /** Switchboard's HTTP port (/metrics, /healthz, files, admin API). */
  httpPort?: number;
  /** MQTT over WebSocket, when started with `ws` (Switchboard always has it). */
  wsPort?: number;
  wsPath?: string;
  /** The broker process itself (not its leash); a new one after restart(). */
  pid: number;
  /** The leash process. */
  child: ChildProcess;
  /** From spawning the leash to the port accepting connections. */
  startMs: number;
  /** From the broker process's spawn (its pid reported by the leash) to the port accepting connections. */
  readyMs: number;
  /** The directory the broker runs in (config, data dir, Mosquitto's database); removed by stop(). */
  dir: string;
  /** Everything the broker printed on stdout/stderr (last 64 KiB, over restarts). */
  output(): string;
  exit: BrokerExit | undefined;
  /** SIGTERM, then SIGKILL after graceMs. Resolves with how it ended. */
  stop(graceMs?: number): Promise<StopResult>;
  /**
   * Stops the broker with `signal` (SIGTERM: SIGKILL after graceMs) and starts it again
   * with the same arguments, ports and directory (its data survives), polling the port
   * every `pollMs`. The handle then refers to the new process.
   */
  restart(o: { signal: 'SIGTERM' | 'SIGKILL'; graceMs?: number; pollMs?: number; readyTimeoutMs?: number }): Promise<RestartResult>;
  /**
   * Set when the broker is several processes (a Switchboard cluster, bench/lib/cluster.ts):
   * host, port, pid and child above are node 0's.
   */
  cluster?: ClusterInfo;
}

/**
 * The processes of a broker run as a cluster: a Switchboard cluster (bench/lib/cluster.ts)
 * or a NATS cluster (bench/lib/nats-cluster.ts, every node a nats-server with its MQTT listener).
 */
export interface ClusterInfo {
  /** The broker nodes, n0 (or s0) first: each its own process, ports and data directory; `port` is its MQTT port. */
  nodes: Array<{ name: string; host: string; port: number; httpPort?: number; pid: number }>;
  /** Switchboard: the nats-server that joins the nodes (a NATS cluster has none apart from its nodes). */
  nats?: { name: string; port: number; pid: number };
  /** Extra arguments every node got (threads). */
  nodeArgs: string[];
  /** Every process of the cluster (nodes, then nats-server), for CPU and RSS sums. */
  processes(): Array<{ name: string; pid: number }>;
}

export interface StartOptions {
  host?: string;
  readyTimeoutMs?: number;
  /** Extra command-line arguments (Switchboard only). */
  extraArgs?: string[];
  /** Extra environment (Switchboard: SWITCHBOARD_* settings such as SWITCHBOARD_ADMIN__TOKEN). */
  env?: Record<string, string>;
  /** Also listen for MQTT over WebSocket (peers; Switchboard always does). */
  ws?: boolean;
  /** Mosquitto: `persistence true` (database in the broker's directory, autosave every MOSQUITTO_AUTOSAVE_S). */
  persistence?: boolean;
  /**
   * nats: a nats-server for a Switchboard cluster to meet on (no MQTT listener; JetStream
   * on, store in the temp dir: the cluster keeps its shared state in JetStream KV);
   * `port` is then its client port.
   */
  natsBus?: boolean;
  /**
   * nats: one member of a NATS cluster (bench/lib/nats-cluster.ts): `port` is its MQTT port
   * (the handle's port), `config` its whole configuration, given the broker's temp dir.
   */
  natsCluster?: { port: number; config: (dir: string) => string };
}

/** Mosquitto's autosave_interval with `persistence`: its default, written out so reports can name it. */
export const MOSQUITTO_AUTOSAVE_S = 1800;

/** The Mosquitto configuration of the bench (pure: tested). */
export function mosquittoConfig(o: { host: string; port: number; wsPort?: number; persistenceDir?: string }): string {
  // set_tcp_nodelay: without it Nagle's algorithm meets delayed ACKs and small
  // messages wait ~40 ms; every broker in the bench gets TCP_NODELAY.
  const lines = [`listener ${o.port} ${o.host}`, 'allow_anonymous true'];
  if (o.persistenceDir === undefined) lines.push('persistence false');
  else {
    // Mosquitto writes its database only every autosave_interval seconds and on shutdown.
    const dir = o.persistenceDir.endsWith('/') ? o.persistenceDir : `${o.persistenceDir}/`;
    lines.push('persistence true', `persistence_location ${dir}`, `autosave_interval ${MOSQUITTO_AUTOSAVE_S}`);
  }
  lines.push('set_tcp_nodelay true', 'log_dest stderr', 'log_type error', 'log_type warning');
  if (o.wsPort !== undefined) lines.push(`listener ${o.wsPort} ${o.host}`, 'protocol websockets');
  // Per-listener settings (allow_anonymous) apply to every listener.
  return ['per_listener_settings false', ...lines, ''].join('\n');
}

/** uid and gid of a local user (/etc/passwd), if there is one. */
function passwdIds(user: string): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${user}:`));
    const f = line?.split(':');
    return f ? { uid: Number(f[2]), gid: Number(f[3]) } : undefined;
  } catch {
    return undefined;
  }
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) env[k] = v;
  return env;
}

/** One broker process under its leash. */
interface Life {
  child: ChildProcess;
  pid: number;
  /** performance.now() when the leash reported the pid. */
  pidAt: number;
  brokerExit?: { code: number | null; signal: NodeJS.Signals | null };
  exit?: BrokerExit;
  stopping: boolean;
  /** Switchboard printed its banner (this process). */
  banner: boolean;
  bannerText: string;
}

export async function startBroker(name: BrokerName, opts: StartOptions = {}): Promise<BrokerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.natsCluster?.port ?? (await freePort(host));
  const tmp = mkdtempSync(path.join(os.tmpdir(), `bench-${name}-`));
  tmpDirs.add(tmp);
  let cmd: string;
  let args: string[];
  let httpPort: number | undefined;
  let wsPort: number | undefined;
  let wsPath = '/mqtt';
  const env = { ...cleanEnv(), ...(opts.env ?? {}) };
  switch (name) {
    case 'switchboard':
    case 'switchboard-async':
    case 'switchboard-memory':
    case 'switchboard-hold':
    case 'switchboard-1t':
    case 'switchboard-2t': {
      const cli = path.join(REPO_ROOT, 'dist/src/cli.js');
      if (!existsSync(cli)) throw new Error(`${cli} missing: run "npx tsc -p tsconfig.json" first`);
      Object.assign(env, SWITCHBOARD_VARIANTS[name] ?? {});
      httpPort = await freePort(host);
      wsPort = httpPort;
      cmd = process.execPath;
      // BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the broker (every thread).
      args = [...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []), cli, 'start', '--host', host, '--tcp-port', String(port), '--ws-port', String(httpPort), '--log-level', 'warn', '--data-dir', path.join(tmp, 'data'), ...(opts.extraArgs ?? [])];
      break;
    }
    case 'aedes':
      cmd = process.execPath;
      args = [path.join(BENCH_DIR, 'peers/aedes-server.js'), '--host', host, '--port', String(port)];
      if (opts.ws) {
        wsPort = await freePort(host);
        args.push('--ws-port', String(wsPort));
      }
      break;
    case 'mosquitto': {
      if (!mosquittoAvailable()) throw new Error(`${MOSQUITTO_BIN} not found`);
      const conf = path.join(tmp, 'mosquitto.conf');
      if (opts.ws) {
        wsPort = await freePort(host);
        wsPath = '/';
      }
      writeFileSync(conf, mosquittoConfig({ host, port, wsPort, persistenceDir: opts.persistence ? tmp : undefined }));
      // Started as root, Mosquitto drops to its own user: that user must be able to write its database.
      if (opts.persistence && process.getuid?.() === 0) {
        const ids = passwdIds('mosquitto') ?? passwdIds('nobody');
        if (ids) chownSync(tmp, ids.uid, ids.gid);
      }
      cmd = MOSQUITTO_BIN;
      args = ['-c', conf];
      break;
    }
    case 'nats': {
      if (!natsAvailable()) throw new Error(`${NATS_BIN} not found`);
      const conf = path.join(tmp, 'nats.conf');
      if (opts.natsBus) {
        // As test/helpers/nats.ts: max_payload above MQTT's default maximum packet size, and
        // JetStream (retained messages, IM state, presence: docs/cluster.md "Shared state").
        writeFileSync(
          conf,
          [`listen: ${host}:${port}`, 'server_name: bench-bus', 'max_payload: 8MB', `jetstream { store_dir: "${path.join(tmp, 'js')}" }`, ''].join('\n'),
        );
        cmd = NATS_BIN;
        args = ['-c', conf];
        break;
      }
      if (opts.natsCluster) {
        writeFileSync(conf, opts.natsCluster.config(tmp));
        cmd = NATS_BIN;
        args = ['-c', conf];
        break;
      }
      const clientPort = await freePort(host);
      // The MQTT listener needs JetStream (sessions, QoS 1 and retained live in streams).
      writeFileSync(
        conf,
        [`listen: ${host}:${clientPort}`, 'server_name: bench', `jetstream { store_dir: "${path.join(tmp, 'js')}" }`, `mqtt { listen: ${host}:${port} }`, ''].join('\n'),
      );
      cmd = NATS_BIN;
      args = ['-c', conf];
      break;
    }
  }

  let out = '';
  const spawnLife = (): Life => {
    const child = spawn(process.execPath, [path.join(BENCH_DIR, 'lib/leash.js'), cmd, ...args], {
      cwd: tmp,
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    trackChild(child);
    const l: Life = { child, pid: -1, pidAt: 0, stopping: false, banner: false, bannerText: '' };
    child.on('message', (m: { type: string; pid?: number; code?: number | null; signal?: NodeJS.Signals | null }) => {
      if (m.type === 'pid') {
        l.pid = m.pid!;
        l.pidAt = performance.now();
        brokerPids.add(l.pid);
      } else if (m.type === 'exit') l.brokerExit = { code: m.code ?? null, signal: m.signal ?? null };
    });
    const collect = (d: Buffer) => {
      const s = d.toString('utf8');
      out += s;
      if (out.length > 65536) out = out.slice(-65536);
      if (!l.banner) {
        l.bannerText = (l.bannerText + s).slice(-4096);
        l.banner = l.bannerText.includes('MQTT over TCP');
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('close', (code, signal) => {
      brokerPids.delete(l.pid);
      // The broker's own exit status as the leash reported it, else the leash's.
      const e = l.brokerExit ?? { code, signal };
      l.exit = { code: e.code, signal: e.signal, unexpected: !l.stopping };
      if (life === l) handle.exit = l.exit;
    });
    return l;
  };

  /** Ready = the port accepts connections (and, for Switchboard, it printed its banner). */
  const waitReady = async (l: Life, timeoutMs: number, pollMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (l.exit) throw new Error(`${name} exited during start-up (code ${l.exit.code}, signal ${l.exit.signal}):\n${out}`);
      if (Date.now() > deadline) {
        await handle.stop(500);
        throw new Error(`${name} not accepting on ${host}:${port} after ${timeoutMs} ms:\n${out}`);
      }
      const bannerOk = !isSwitchboard(name) || l.banner;
      if (l.pid > 0 && bannerOk && (await canConnect(host, port))) return;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  };

  /** Ends one process: `signal` (SIGKILL goes to the broker itself), SIGKILL after graceMs. */
  const end = async (l: Life, signal: 'SIGTERM' | 'SIGKILL', graceMs: number): Promise<StopResult> => {
    l.stopping = true;
    const s0 = performance.now();
    let killed = false;
    if (l.exit === undefined) {
      const exited = new Promise<void>((r) => l.child.once('close', () => r()));
      const kill = () => {
        try {
          if (l.pid > 0) process.kill(l.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        l.child.kill('SIGKILL');
      };
      if (signal === 'SIGTERM') l.child.kill('SIGTERM');
      else if (l.pid > 0) {
        // The broker only: its leash reports how it ended.
        try {
          process.kill(l.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      } else kill();
      const timer = setTimeout(() => {
        killed = true;
        kill();
      }, graceMs);
      await exited;
      clearTimeout(timer);
    }
    return { ...l.exit!, stopMs: Math.round(performance.now() - s0), killed };
  };

  let life = spawnLife();
  const handle: BrokerHandle = {
    name,
    host,
    port,
    pid: -1,
    child: life.child,
    startMs: 0,
    readyMs: 0,
    dir: tmp,
    output: () => out,
    exit: undefined,
    stop: async (graceMs = 3000) => {
      const r = await end(life, 'SIGTERM', graceMs);
      try {
        rmSync(tmp, { recursive: true, force: true });
        tmpDirs.delete(tmp);
      } catch {
        /* ignore */
      }
      return r;
    },
    restart: async ({ signal, graceMs = 30_000, pollMs = 5, readyTimeoutMs = 60_000 }) => {
      const stopped = await end(life, signal, graceMs);
      life = spawnLife();
      handle.exit = undefined;
      handle.child = life.child;
      await waitReady(life, readyTimeoutMs, pollMs);
      handle.pid = life.pid;
      handle.readyMs = Math.round(performance.now() - life.pidAt);
      return { stopped, readyMs: handle.readyMs };
    },
  };
  if (httpPort !== undefined) handle.httpPort = httpPort;
  if (wsPort !== undefined) {
    handle.wsPort = wsPort;
    handle.wsPath = wsPath;
  }
  const t0 = performance.now();
  await waitReady(life, opts.readyTimeoutMs ?? 15_000, 10);
  handle.startMs = Math.round(performance.now() - t0);
  handle.readyMs = Math.round(performance.now() - life.pidAt);
  handle.pid = life.pid;
  return handle;
}

// ---------------------------------------------------------------------------
// Process statistics from /proc (Linux): CPU time and RSS of a broker process
// (all of its threads).

const CLK_TCK = 100;

export interface ProcSample {
  cpuMs: number;
  rssMB: number;
  threads: number;
}

export function procSample(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3; utime 14, stime 15, num_threads 20, rss 24 (pages).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    const threads = Number(rest[17]);
    const rssPages = Number(rest[21]);
    return { cpuMs: ((utime + stime) * 1000) / CLK_TCK, rssMB: Math.round((rssPages * 4096) / 1048576), threads };
  } catch {
    return undefined;
  }
}

/** Bytes a process (all its threads) caused to be written to storage, and its write calls (/proc/PID/io). */
export function procIo(pid: number): { writeBytes: number; syscw: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { writeBytes: field('write_bytes'), syscw: field('syscw') };
  } catch {
    return undefined;
  }
}

/** CPU time (ms) of every thread of a process, by thread id. */
export function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), ((Number(rest[11]) + Number(rest[12])) * 1000) / CLK_TCK);
    } catch {
      /* thread ended */
    }
  }
  return out;
}

/** Busy share of one core per thread between two threadCpu() samples, busiest first. */
export function busiestThreads(before: Map<number, number>, after: Map<number, number>, wallMs: number, top = 4): number[] {
  const ratios: number[] = [];
  for (const [tid, ms] of after) ratios.push((ms - (before.get(tid) ?? 0)) / wallMs);
  return ratios
    .sort((a, b) => b - a)
    .slice(0, top)
    .map((r) => Math.round(r * 100) / 100);
}

/** CPU time (ms) of every process on the machine, by pid (Linux /proc). */
export function allProcessCpu(): Map<number, number> {
  const out = new Map<number, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(pid), ((Number(rest[11]) + Number(rest[12])) * 1000) / CLK_TCK);
    } catch {
      /* process ended */
    }
  }
  return out;
}

export interface ForeignLoad {
  /** CPU used by processes other than the excluded ones, as a share of one core. */
  ratio: number;
  /** The busiest of them. */
  top: { pid: number; ratio: number; cmd: string }[];
}

/**
 * CPU used between two allProcessCpu() samples by every process not in `exclude`
 * (processes that ended in between are missed): other work on the machine that
 * competed with the broker and the generator for the cores.
 */
export function foreignLoad(before: Map<number, number>, after: Map<number, number>, exclude: Set<number>, wallMs: number): ForeignLoad {
  const used: { pid: number; ms: number }[] = [];
  let total = 0;
  for (const [pid, ms] of after) {
    if (exclude.has(pid)) continue;
    const d = ms - (before.get(pid) ?? 0);
    if (d <= 0) continue;
    total += d;
    used.push({ pid, ms: d });
  }
  used.sort((a, b) => b.ms - a.ms);
  const top = used.slice(0, 3).map(({ pid, ms }) => {
    let cmd = '?';
    try {
      // Short: program basename and its first non-flag argument.
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const base = (a: string) => a.split('/').filter(Boolean).slice(-2).join('/');
      const rest = argv.slice(1);
      const first =
        rest.find((a) => /\.[cm]?[jt]s$/.test(a) && !/tsx\/dist|suppress-warnings/.test(a)) ?? rest.find((a) => !a.startsWith('-'));
      cmd = [base(argv[0] ?? '?'), first ? base(first) : ''].join(' ').trim().slice(0, 60);
    } catch {
      /* ended */
    }
    return { pid, ratio: Math.round((ms / wallMs) * 100) / 100, cmd };
  });
  return { ratio: Math.round((total / wallMs) * 100) / 100, top };
}
