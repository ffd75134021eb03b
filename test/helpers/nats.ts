/**
 * A real nats-server (Debian package `nats-server`) for the cluster tests, on a free
 * loopback port, with JetStream (the cluster's shared state lives in JetStream KV); stop()
 * and start() again on the same port to test a NATS restart: the JetStream store directory
 * belongs to the instance, so the KV buckets survive it. `jetstream: false` starts a
 * server without it (to test the error a node gives then).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, portClosed } from './broker-process.js';

export const HAVE_NATS = spawnSync('nats-server', ['--version'], { encoding: 'utf8' }).error === undefined;

export class NatsServer {
  private proc: ChildProcess | null = null;
  private log = '';

  /** Kept across stop()/start(): the JetStream store (file storage). */
  private readonly dir = mkdtempSync(join(tmpdir(), 'nats-'));

  private constructor(
    readonly port: number,
    private readonly jetstream: boolean,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(opts: { jetstream?: boolean } = {}): Promise<NatsServer> {
    const [port] = await freePorts(1);
    const s = new NatsServer(port!, opts.jetstream ?? true);
    await s.start();
    return s;
  }

  /** Starts (again) on the same port; resolves once it accepts clients. */
  async start(): Promise<void> {
    // max_payload above MQTT's default maximum packet size (1 MiB) plus the envelope.
    const conf = join(this.dir, 'nats.conf');
    const js = this.jetstream ? `jetstream {\n  store_dir: "${join(this.dir, 'js')}"\n}\n` : '';
    writeFileSync(conf, `listen: 127.0.0.1:${this.port}\nmax_payload: 8MB\n${js}`);
    const p = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = p;
    this.log = '';
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        this.log += d.toString();
        if (this.log.includes('Server is ready')) resolve();
      };
      p.stderr!.on('data', onData);
      p.stdout!.on('data', onData);
      p.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${this.log}`)));
    });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`nats-server not ready in 10 s: ${this.log}`)), 10_000));
    await Promise.race([ready, timeout]);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
    for (let i = 0; i < 50 && !(await portClosed(this.port)); i++) await new Promise((r) => setTimeout(r, 50));
  }
}
