/**
 * Starts and stops the brokers under test, each as its own child process on free
 * loopback ports, and makes sure no child outlives the bench (exit, error, Ctrl-C).
 *
 *   switchboard  node dist/src/cli.js start (compiled CLI, default topology), temp data dir
 *   aedes        node bench/peers/aedes-server.js (aedes + net.createServer)
 *   mosquitto    /usr/sbin/mosquitto -c <temp config>, only if the binary exists
 *   nats         /usr/sbin/nats-server with its MQTT listener (JetStream on, temp store), if installed
 *
 * Each broker runs under bench/lib/leash.js, which kills it when the bench goes away,
 * even on SIGKILL of the bench.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type BrokerName = 'switchboard' | 'aedes' | 'mosquitto' | 'nats';
export const ALL_BROKERS: BrokerName[] = ['switchboard', 'aedes', 'mosquitto', 'nats'];
export const BROKER_LABEL: Record<BrokerName, string> = { switchboard: 'Switchboard', aedes: 'Aedes', mosquitto: 'Mosquitto', nats: 'NATS' };

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
      rmSync(dir, { recursive: true, force: true });
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

export interface BrokerHandle {
  name: BrokerName;
  host: string;
  port: number;
  /** Switchboard's HTTP port (/metrics, /healthz, files, admin API). */
  httpPort?: number;
  /** MQTT over WebSocket, when started with `ws` (Switchboard always has it). */
  wsPort?: number;
  wsPath?: string;
  /** The broker process itself (not its leash). */
  pid: number;
  /** The leash process. */
  child: ChildProcess;
  startMs: number;
  /** Everything the broker printed on stdout/stderr (last 64 KiB). */
  output(): string;
  exit: BrokerExit | undefined;
  /** SIGTERM, then SIGKILL after graceMs. Resolves with how it ended. */
  stop(graceMs?: number): Promise<BrokerExit & { stopMs: number; killed: boolean }>;
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
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) env[k] = v;
  return env;
}

export async function startBroker(name: BrokerName, opts: StartOptions = {}): Promise<BrokerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const port = await freePort(host);
  const tmp = mkdtempSync(path.join(os.tmpdir(), `bench-${name}-`));
  tmpDirs.add(tmp);
  let cmd: string;
  let args: string[];
  let httpPort: number | undefined;
  let wsPort: number | undefined;
  let wsPath = '/mqtt';
  switch (name) {
    case 'switchboard': {
      const cli = path.join(REPO_ROOT, 'dist/src/cli.js');
      if (!existsSync(cli)) throw new Error(`${cli} missing: run "npx tsc -p tsconfig.json" first`);
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
      // set_tcp_nodelay: without it Nagle's algorithm meets delayed ACKs and small
      // messages wait ~40 ms; every broker in the bench gets TCP_NODELAY.
      const lines = [`listener ${port} ${host}`, 'allow_anonymous true', 'persistence false', 'set_tcp_nodelay true', 'log_dest stderr', 'log_type error', 'log_type warning'];
      if (opts.ws) {
        wsPort = await freePort(host);
        wsPath = '/';
        lines.push(`listener ${wsPort} ${host}`, 'protocol websockets');
      }
      // Per-listener settings (allow_anonymous) apply to every listener.
      lines.unshift('per_listener_settings false');
      writeFileSync(conf, [...lines, ''].join('\n'));
      cmd = MOSQUITTO_BIN;
      args = ['-c', conf];
      break;
    }
    case 'nats': {
      if (!natsAvailable()) throw new Error(`${NATS_BIN} not found`);
      const conf = path.join(tmp, 'nats.conf');
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

  const t0 = performance.now();
  const child = spawn(process.execPath, [path.join(BENCH_DIR, 'lib/leash.js'), cmd, ...args], {
    cwd: tmp,
    env: { ...cleanEnv(), ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  trackChild(child);
  let brokerPid = -1;
  let brokerExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.on('message', (m: { type: string; pid?: number; code?: number | null; signal?: NodeJS.Signals | null }) => {
    if (m.type === 'pid') {
      brokerPid = m.pid!;
      brokerPids.add(brokerPid);
    } else if (m.type === 'exit') brokerExit = { code: m.code ?? null, signal: m.signal ?? null };
  });
  let out = '';
  const collect = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > 65536) out = out.slice(-65536);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  let stopping = false;
  const handle: BrokerHandle = {
    name,
    host,
    port,
    pid: -1,
    child,
    startMs: 0,
    output: () => out,
    exit: undefined,
    stop: async (graceMs = 3000) => {
      stopping = true;
      const s0 = performance.now();
      let killed = false;
      if (handle.exit === undefined) {
        const exited = new Promise<void>((r) => child.once('close', () => r()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          killed = true;
          try {
            if (brokerPid > 0) process.kill(brokerPid, 'SIGKILL');
          } catch {
            /* gone */
          }
          child.kill('SIGKILL');
        }, graceMs);
        await exited;
        clearTimeout(timer);
      }
      try {
        rmSync(tmp, { recursive: true, force: true });
        tmpDirs.delete(tmp);
      } catch {
        /* ignore */
      }
      return { ...handle.exit!, stopMs: Math.round(performance.now() - s0), killed };
    },
  };
  if (httpPort !== undefined) handle.httpPort = httpPort;
  if (wsPort !== undefined) {
    handle.wsPort = wsPort;
    handle.wsPath = wsPath;
  }
  child.once('close', (code, signal) => {
    brokerPids.delete(brokerPid);
    // The broker's own exit status as the leash reported it, else the leash's.
    const e = brokerExit ?? { code, signal };
    handle.exit = { code: e.code, signal: e.signal, unexpected: !stopping };
  });

  // Ready = the port accepts connections (and, for Switchboard, it printed its banner).
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (handle.exit) throw new Error(`${name} exited during start-up (code ${handle.exit.code}, signal ${handle.exit.signal}):\n${out}`);
    if (Date.now() > deadline) {
      await handle.stop(500);
      throw new Error(`${name} not accepting on ${host}:${port} after ${opts.readyTimeoutMs ?? 15_000} ms:\n${out}`);
    }
    const bannerOk = name !== 'switchboard' || out.includes('MQTT over TCP');
    if (brokerPid > 0 && bannerOk && (await canConnect(host, port))) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  handle.startMs = Math.round(performance.now() - t0);
  handle.pid = brokerPid;
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
