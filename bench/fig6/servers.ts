/** Helpers to run the throwaway XMPP and SIP servers as child processes. */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { sleep } from './types.js';

export const execFileP = promisify(execFile);

export interface Server {
  host: string;
  port: number;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (TCP; the same number is almost always free for UDP). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitTcp(host: string, port: number, ms: number, child?: ChildProcess): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before listening on ${port}`);
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, host);
      c.once('connect', () => (c.destroy(), r(true)));
      c.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() - start > ms) throw new Error(`nothing listens on ${host}:${port} after ${ms} ms`);
    await sleep(100);
  }
}

/** Kills what is left of a server's process group (Kamailio forks workers). */
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}

/**
 * Spawns a long-running server in its own process group, keeping its output for error
 * messages; the whole group is killed if the bench exits without stopping it.
 */
export function spawnServer(cmd: string, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const kill = (): void => killGroup(child);
  process.once('exit', kill);
  child.once('exit', () => process.removeListener('exit', kill));
  return { child, output: () => out };
}

/** SIGTERM to the server, SIGKILL after `ms` if it is still there, then to its leftover workers. */
export async function stopChild(child: ChildProcess, ms = 3000): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    await exited;
    clearTimeout(t);
  }
  await sleep(200);
  killGroup(child);
}

/** Path of an executable, or null when it is not installed. */
export async function which(cmd: string): Promise<string | null> {
  try {
    const { stdout } = await execFileP('sh', ['-c', `command -v ${cmd}`]);
    return stdout.trim() || null;
  } catch {
    return null;
  }
}
