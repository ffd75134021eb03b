/**
 * The broker as a real OS process that a test can SIGKILL and start again on the same
 * ports and data directory (crash tests, test/integration/30-durability-crash.test.ts).
 *
 * The child is `node --import tsx src/cli.ts start ...`: node itself is the child, so
 * `kill()` delivers SIGKILL to the broker process (there is no tsx or npx wrapper in
 * between that would take the signal instead). It runs in its own process group
 * (`detached`), so `killAllBrokerProcesses()` can kill the group in afterEach whatever
 * state a failed test left it in.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** tsx compiles the CLI and the worker entries on the fly: a first start takes seconds. */
const START_TIMEOUT = 30_000;
/** Kept of each stream: enough for a stack trace, bounded however much the broker logs. */
const KEEP_CHARS = 20_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every broker process started by this module and not yet seen to exit. */
const live = new Set<ChildProcess>();

export interface BrokerProcessOptions {
  tcpPort: number;
  wsPort: number;
  dataDir: string;
  shards?: number;
  gateways?: number;
  /** Extra environment (SWITCHBOARD_CONFIG is always cleared: no stray config file). */
  env?: NodeJS.ProcessEnv;
}

interface Run {
  proc: ChildProcess;
  out: string;
  err: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Free TCP ports on loopback: listen on port 0, note the port, close. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((res, rej) => {
          const s = net.createServer();
          s.once('error', rej);
          s.listen({ host: '127.0.0.1', port: 0 }, () => res(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** True when nothing accepts TCP connections on loopback `port` (any more). */
export function portClosed(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      res(false);
    });
    s.once('error', () => res(true));
  });
}

export class BrokerProcess {
  readonly tcpUrl: string;
  readonly wsUrl: string;
  /** Successful starts so far (1 after the first start, +1 per restart). */
  starts = 0;
  private run: Run | undefined;

  constructor(readonly opts: BrokerProcessOptions) {
    this.tcpUrl = `mqtt://127.0.0.1:${opts.tcpPort}`;
    this.wsUrl = `ws://127.0.0.1:${opts.wsPort}/mqtt`;
  }

  get pid(): number | undefined {
    return this.run?.proc.pid;
  }

  /** What the current (or last) process wrote to stderr / stdout, for error messages. */
  stderr(): string {
    return this.run?.err ?? '';
  }
  stdout(): string {
    return this.run?.out ?? '';
  }

  private spawnOnce(): Run {
    const o = this.opts;
    const args = [
      '--import', 'tsx', 'src/cli.ts', 'start',
      '--host', '127.0.0.1',
      '--tcp-port', String(o.tcpPort),
      '--ws-port', String(o.wsPort),
      '--data-dir', o.dataDir,
      '--shards', String(o.shards ?? 2),
      '--gateways', String(o.gateways ?? 1),
      '--log-level', 'warn',
    ];
    const proc = spawn(process.execPath, args, {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SWITCHBOARD_CONFIG: '', ...o.env },
    });
    live.add(proc);
    const run: Run = { proc, out: '', err: '', exited: undefined as never };
    // Always drained: a full pipe would block the broker's logging, and with it the broker.
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (run.out = (run.out + d).slice(-KEEP_CHARS)));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (run.err = (run.err + d).slice(-KEEP_CHARS)));
    // 'close', not 'exit': only then has all of the output been read.
    run.exited = new Promise((res) =>
      proc.on('close', (code, signal) => {
        live.delete(proc);
        res({ code, signal });
      }),
    );
    return run;
  }

  /**
   * Starts the broker and resolves once it printed its listeners ("MQTT over TCP" on
   * stderr, as the CLI does when it is ready). Right after a SIGKILL the ports can be
   * briefly unavailable: a start that exits early with EADDRINUSE is retried until
   * `timeoutMs` has passed.
   */
  async start(timeoutMs = START_TIMEOUT): Promise<void> {
    if (this.run && this.run.proc.exitCode === null && this.run.proc.signalCode === null) throw new Error('broker process already running');
    const end = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const run = (this.run = this.spawnOnce());
      let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      void run.exited.then((e) => (exited = e));
      while (!run.err.includes('MQTT over TCP')) {
        if (exited) break;
        if (Date.now() > end) {
          await this.kill();
          throw new Error(`broker did not print "MQTT over TCP" within ${timeoutMs} ms (attempt ${attempt}); stderr:\n${run.err}\nstdout:\n${run.out}`);
        }
        await sleep(25);
      }
      if (!exited) {
        this.starts++;
        return;
      }
      // TCP: "listen EADDRINUSE"; WebSocket (uWS): "WebSocket/HTTP listener could not bind".
      const busy = /EADDRINUSE|address already in use|could not bind/i.test(run.err + run.out);
      if (!busy || Date.now() > end) {
        throw new Error(`broker exited (code ${exited.code}, signal ${exited.signal}) before it listened (attempt ${attempt}); stderr:\n${run.err}\nstdout:\n${run.out}`);
      }
      await sleep(250); // the port is still held: try again
    }
  }

  /** SIGKILL to the broker process (no graceful stop: this is the crash); resolves when it is gone. */
  async kill(): Promise<void> {
    const run = this.run;
    if (!run || run.proc.exitCode !== null || run.proc.signalCode !== null) return;
    try {
      process.kill(run.proc.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await run.exited;
  }

  /** Resolves with the exit of the current process (e.g. to check it did not die on its own). */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined {
    return this.run?.exited;
  }

  /** True while the current process runs. */
  get running(): boolean {
    return !!this.run && this.run.proc.exitCode === null && this.run.proc.signalCode === null;
  }
}

/** For afterEach: SIGKILL the process group of every broker process still running, and wait for them. */
export async function killAllBrokerProcesses(): Promise<void> {
  const procs = [...live];
  for (const p of procs) {
    try {
      process.kill(-p.pid!, 'SIGKILL'); // the group this module started (detached)
    } catch {
      /* already gone */
    }
  }
  await Promise.all(
    procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise<void>((r) => p.once('close', () => r())))),
  );
  for (const p of procs) live.delete(p);
}
