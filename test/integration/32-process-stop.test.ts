/**
 * The broker stops cleanly whichever way it was started (issue 13): SIGTERM to the one
 * process a supervisor knows about must stop every process of the broker, flush its
 * store and free its ports, within the graceful-stop limit.
 *
 *  - `npm start -- ...` exactly as the README says (npm runs the broker with `exec`, so
 *    the signal npm forwards reaches it; no shell in between);
 *  - `node dist/src/cli.js start ...` exactly as ops/switchboard.service runs it;
 *  - a wrapper that dies without passing anything on (SIGKILL of a `sh -c`): the broker
 *    notices its parent is gone and stops by itself instead of living on as an orphan.
 *
 * These run the compiled CLI (`npm run build` first; npm start builds it itself).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts, portClosed } from '../helpers/broker-process.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The default shutdownTimeout (seconds): the broker must be gone within it. */
const GRACE_MS = 10_000;

interface Started {
  proc: ChildProcess;
  output: () => string;
  /** The broker's own pid (from its first log line): not the wrapper's. */
  brokerPid: number;
  ports: number[];
  exited: Promise<number | null>;
}

const started: Started[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const s of started.splice(0)) {
    for (const pid of [s.brokerPid, s.proc.pid]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        /* gone, as it should be */
      }
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(command: string, args: string[], timeoutMs: number): Promise<Started> {
  const [tcp, ws] = await freePorts(2);
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-stop-'));
  dirs.push(dataDir);
  const brokerArgs = ['--host', '127.0.0.1', '--tcp-port', String(tcp), '--ws-port', String(ws), '--data-dir', dataDir];
  const proc = spawn(command, [...args, ...brokerArgs], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SWITCHBOARD_CONFIG: '' } });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
  const end = Date.now() + timeoutMs;
  let pid: number | undefined;
  while (pid === undefined) {
    const m = /"pid":(\d+),"thread":"main","tcp":\d+/.exec(out);
    if (m) pid = Number(m[1]);
    else if (proc.exitCode !== null) throw new Error(`exited (${proc.exitCode}) before listening:\n${out}`);
    else if (Date.now() > end) throw new Error(`not listening within ${timeoutMs} ms:\n${out}`);
    else await new Promise((r) => setTimeout(r, 50));
  }
  const s: Started = { proc, output: () => out, brokerPid: pid, ports: [tcp!, ws!], exited };
  started.push(s);
  return s;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every process of the broker gone within the grace period, its ports free, a clean stop logged. */
async function expectStopped(s: Started, wrapperPid?: number): Promise<void> {
  const end = Date.now() + GRACE_MS;
  while (alive(s.brokerPid) || (wrapperPid !== undefined && alive(wrapperPid))) {
    if (Date.now() > end) throw new Error(`still running after ${GRACE_MS} ms:\n${s.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const p of s.ports) expect(await portClosed(p)).toBe(true);
  expect(s.output()).toContain('"msg":"stopping"');
  expect(s.output()).toContain('"msg":"stopped"');
}

describe('stopping the broker the way supervisors do (issue 13)', () => {
  it('npm start (the README form): SIGTERM to npm alone stops the broker, frees its ports, exit 0', async () => {
    const s = await start('npm', ['start', '--'], 120_000);
    expect(s.brokerPid).not.toBe(s.proc.pid);
    s.proc.kill('SIGTERM'); // npm only, not its process group
    await expectStopped(s, s.proc.pid);
    expect(await s.exited).toBe(0);
  }, 150_000);

  it('node dist/src/cli.js start (the systemd unit form): SIGTERM stops it with exit 0', async () => {
    const s = await start(process.execPath, ['dist/src/cli.js', 'start'], 30_000);
    expect(s.brokerPid).toBe(s.proc.pid);
    s.proc.kill('SIGTERM');
    await expectStopped(s);
    expect(await s.exited).toBe(0);
  }, 60_000);

  it('a wrapper that dies without passing the signal on: the orphaned broker notices and stops by itself', async () => {
    // `sh -c "node ...; true"` keeps the shell as the broker's parent (no exec).
    const s = await start('sh', ['-c', 'node dist/src/cli.js start "$@"; true', 'sh'], 30_000);
    expect(s.brokerPid).not.toBe(s.proc.pid);
    s.proc.kill('SIGKILL');
    await expectStopped(s);
    expect(s.output()).toContain('"signal":"parent exited"');
  }, 60_000);
});
