/**
 * The `switchboard` command line, run from sources with tsx as a real child process:
 * `start` with host/port/data-dir flags (pub/sub through it, then SIGTERM -> exit 0), a
 * config file with an unknown key (exit 2, the key named on stderr), unknown flags, and
 * `--help`.
 *
 * The child is node_modules/.bin/tsx, i.e. what `npx tsx src/cli.ts ...` runs, spawned
 * directly: `npx` (npm exec) runs it under `sh -c` and does not pass SIGTERM on to it, so
 * neither the signal nor the broker's exit code would get through npx. tsx relays signals
 * to the node process it starts and exits with its code.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { ROOT, freePorts, portClosed } from '../helpers/broker-process.js';
import { within } from '../helpers/clients.js';

const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
/** tsx compiles the CLI and the worker entries on the fly: give the first start some slack. */
const START_TIMEOUT = 10_000;

interface Run {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<Run>();
const cleanups: Array<() => Promise<void>> = [];
const clients: MqttClient[] = [];

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  // Own process group, so cleanup can kill tsx and the node process it started together.
  const proc = spawn(TSX, ['src/cli.ts', ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SWITCHBOARD_CONFIG: '', ...env },
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  // 'close', not 'exit': only then has all of the output been read.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    proc.on('close', (code, signal) => res({ code, signal })),
  );
  const run: Run = { proc, stdout: () => out, stderr: () => err, exited };
  running.add(run);
  void exited.then(() => running.delete(run));
  return run;
}

async function waitForText(run: Run, stream: 'stdout' | 'stderr', text: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!run[stream]().includes(text)) {
    if (run.proc.exitCode !== null) throw new Error(`exited (${run.proc.exitCode}) before printing "${text}": ${run.stderr()}`);
    if (Date.now() > end) throw new Error(`no "${text}" on ${stream} within ${ms} ms: ${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-cli-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  for (const r of running) {
    try {
      process.kill(-r.proc.pid!, 'SIGKILL'); // the process group this test started
    } catch {
      /* already gone */
    }
  }
  await Promise.all([...running].map((r) => r.exited));
  for (const c of cleanups.splice(0)) await c();
});

describe('switchboard CLI', () => {
  it('start: listens where told, carries MQTT traffic, and exits 0 on SIGTERM', async () => {
    const [tcpPort, wsPort] = await freePorts(2);
    const dataDir = join(await tempDir(), 'data'); // does not exist yet: start creates it
    const run = cli(['start', '--host', '127.0.0.1', '--tcp-port', String(tcpPort), '--ws-port', String(wsPort), '--data-dir', dataDir]);
    await waitForText(run, 'stderr', 'MQTT over TCP', START_TIMEOUT);
    await waitForText(run, 'stderr', 'data directory', 2000);
    expect(run.stderr()).toContain(`mqtt://127.0.0.1:${tcpPort}`);
    expect(run.stderr()).toContain(`ws://127.0.0.1:${wsPort}/mqtt`);
    expect((await stat(dataDir)).isDirectory()).toBe(true);

    // Pub/sub through it, TCP -> WebSocket and back.
    const sub = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(sub);
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcpPort}`, { reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(pub);
    await sub.subscribeAsync('cli/#', { qos: 1 });
    const got = new Promise<string>((r) => sub.on('message', (t, p) => r(`${t} ${p.toString()}`)));
    await pub.publishAsync('cli/hello', 'through the cli', { qos: 1 });
    expect(await within(got, 5000, 'message through the CLI broker')).toBe('cli/hello through the cli');
    expect((await fetch(`http://127.0.0.1:${wsPort}/healthz`)).status).toBe(200);

    // SIGTERM: a graceful stop. v5 clients are told why (DISCONNECT 0x8B Server shutting down).
    const told = new Promise<number | undefined>((r) => sub.on('disconnect', (p) => r(p.reasonCode)));
    run.proc.kill('SIGTERM');
    const { code, signal } = await within(run.exited, 5000, 'exit after SIGTERM');
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(await within(told, 2000, 'DISCONNECT to the v5 client')).toBe(0x8b);
    expect(run.stdout()).toMatch(/"msg":"stopped"/);
    expect(await portClosed(tcpPort!)).toBe(true);
    expect(await portClosed(wsPort!)).toBe(true);
  });

  it('start: a config file with an unknown key exits 2 and names the key', async () => {
    const dir = await tempDir();
    const file = join(dir, 'switchboard.yaml');
    await writeFile(file, ['host: 127.0.0.1', 'limits:', '  maxInflite: 10', ''].join('\n'));
    const run = cli(['start', '--config', file, '--data-dir', join(dir, 'data')]);
    const { code } = await within(run.exited, 5000, 'exit on a bad config');
    expect(code).toBe(2);
    expect(run.stderr()).toContain('limits.maxInflite');
    expect(run.stderr()).toContain('limits.maxInflight'); // the "did you mean" hint
    expect(run.stderr()).toContain(file);
    expect(run.stderr()).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });

  it('start: a bad value and an unknown flag exit 2 with a message', async () => {
    const dir = await tempDir();
    const file = join(dir, 'switchboard.yaml');
    await writeFile(file, 'listeners:\n  tcp:\n    port: seventeen\n');
    const bad = cli(['start', '-c', file]);
    expect((await within(bad.exited, 5000, 'exit on a bad value')).code).toBe(2);
    expect(bad.stderr()).toContain('listeners.tcp.port');

    const flag = cli(['start', '--tcp-prot', '1883']);
    expect((await within(flag.exited, 5000, 'exit on an unknown flag')).code).toBe(2);
    expect(flag.stderr()).toContain('--tcp-prot');
    expect(flag.stderr()).toContain('--tcp-port');
  });

  it('--help prints usage and exits 0', async () => {
    for (const args of [['--help'], ['help'], ['start', '--help']]) {
      const run = cli(args);
      const { code } = await within(run.exited, 5000, `switchboard ${args.join(' ')}`);
      expect(code, args.join(' ')).toBe(0);
      const out = run.stdout();
      expect(out).toContain('Usage: switchboard');
      for (const flag of ['--config', '--host', '--tcp-port', '--ws-port', '--data-dir']) expect(out).toContain(flag);
    }
  });
});
