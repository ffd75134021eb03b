/**
 * ops/cluster/start-local.sh (docs/cluster-local.md): nats-server plus N broker processes
 * of this checkout's dist/ on one port range. Two nodes: a message published on node 0
 * reaches a subscriber on node 1, every node answers /healthz on its HTTP port, SIGTERM
 * to the script stops every process; a node that cannot start (its port taken) makes the
 * script stop the others and exit 1.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, portClosed } from '../helpers/broker-process.js';
import { ClientPool, uid } from '../helpers/clients.js';
import { HAVE_NATS } from '../helpers/nats.js';

const HAVE_DIST = existsSync(join(ROOT, 'dist/src/cli.js'));
const SCRIPT = join(ROOT, 'ops/cluster/start-local.sh');

/** Whether 127.0.0.1:port can be listened on now. */
function free(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.createServer();
    s.once('error', () => res(false));
    s.listen({ host: '127.0.0.1', port }, () => s.close(() => res(true)));
  });
}

/** A base port below the ephemeral range with `n` free ports from it. */
async function freeRange(n: number, avoid: number[] = []): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const base = 20_000 + Math.floor(Math.random() * 10_000);
    const ports = Array.from({ length: n }, (_, k) => base + k);
    if (ports.some((p) => avoid.includes(p))) continue;
    if ((await Promise.all(ports.map(free))).every(Boolean)) return base;
  }
  throw new Error('no free port range');
}

interface Run {
  child: ChildProcess;
  out(): string;
  exited: Promise<number | null>;
  dir: string;
}

function start(args: string[]): Run {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-local-'));
  const env = { ...process.env };
  delete env.SWITCHBOARD;
  const child = spawn('bash', [SCRIPT, '--data', dir, '--grace', '10', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, exited, dir };
}

async function waitFor(run: Run, text: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!run.out().includes(text)) {
    if (run.child.exitCode !== null) throw new Error(`start-local.sh exited (${run.child.exitCode}):\n${run.out()}`);
    if (Date.now() > end) throw new Error(`no "${text}" after ${ms} ms:\n${run.out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!HAVE_NATS || !HAVE_DIST)('43 ops/cluster/start-local.sh', () => {
  const pool = new ClientPool();
  const runs: Run[] = [];

  afterEach(async () => {
    await pool.closeAll();
    for (const r of runs.splice(0)) {
      if (r.child.exitCode === null && r.child.signalCode === null) {
        r.child.kill('SIGTERM');
        await r.exited;
      }
      rmSync(r.dir, { recursive: true, force: true });
    }
  });

  it('starts nats-server and 2 nodes on one port range: cross-node delivery, /healthz on every node, SIGTERM stops them all', async () => {
    const mqtt = await freeRange(2);
    const ws = await freeRange(2, [mqtt, mqtt + 1]);
    const nats = await freeRange(1, [mqtt, mqtt + 1, ws, ws + 1]);
    const run = start(['-n', '2', '--mqtt-base', String(mqtt), '--ws-base', String(ws), '--nats-port', String(nats)]);
    runs.push(run);
    await waitFor(run, 'Ctrl-C stops them all', 60_000);
    expect(run.out()).toContain(`cluster of 2 node(s) on nats://127.0.0.1:${nats}`);
    expect(run.out()).toContain(`n1  mqtt://127.0.0.1:${mqtt + 1}  ws://127.0.0.1:${ws + 1}/mqtt`);

    for (const p of [ws, ws + 1]) expect((await fetch(`http://127.0.0.1:${p}/healthz`)).status).toBe(200);
    const topic = uid('local');
    const sub = await pool.connect(`mqtt://127.0.0.1:${mqtt + 1}`, { clientId: uid('s') });
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const pub = await pool.connect(`mqtt://127.0.0.1:${mqtt}`, { clientId: uid('p') });
    await pub.client.publishAsync(topic, 'across', { qos: 1 });
    expect((await sub.inbox.waitFor(1, 5000)).map((m) => m.payload)).toEqual(['across']);
    await pool.closeAll();

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(143);
    expect(run.out()).toContain('stopping 3 process(es)');
    for (const p of [mqtt, mqtt + 1, ws, ws + 1, nats]) expect(await portClosed(p)).toBe(true);
  }, 90_000);

  it('a node that cannot start (its port taken) stops the others and exits 1', async () => {
    const mqtt = await freeRange(2);
    const ws = await freeRange(2, [mqtt, mqtt + 1]);
    const nats = await freeRange(1, [mqtt, mqtt + 1, ws, ws + 1]);
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port: mqtt + 1 }, () => r()));
    try {
      const run = start(['-n', '2', '--mqtt-base', String(mqtt), '--ws-base', String(ws), '--nats-port', String(nats)]);
      runs.push(run);
      expect(await run.exited).toBe(1);
      expect(run.out()).toMatch(/n1 .*exited/);
      for (const p of [mqtt, ws, ws + 1, nats]) expect(await portClosed(p)).toBe(true);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  }, 90_000);
});
