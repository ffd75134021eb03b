/**
 * The load generator processes of a bench process: GeneratorPool spreads each run over
 * its generator children (bench/lib/generator.ts, one thread each), so that the
 * generator is not the limit. `run()` splits the clients (gen-parts.ts splitRun), keeps
 * the parts in step (everyone connected and subscribed, then `go` with a common start time
 * on the shared clock, so every part has the same warm-up and window; the parts exchange
 * their progress directly, for end-to-end pacing and the drain across processes), merges
 * the per-second ticks, and merges the parts' results into one RunResult (mergeResults).
 * A pool of one process runs every run as a whole in that process, as before.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { BENCH_DIR, REPO_ROOT, trackChild } from './brokers.js';
import { mergeResults, mergeTicks, splitRun } from './gen-parts.js';
import { sharedClockMs, type GenToParent, type ParentToGen, type RunRequest, type RunResult } from './types.js';

export type Tick = Extract<GenToParent, { type: 'tick' }>;
export type OnPhase = (phase: string, tick?: Tick) => void;
type OnMessage = (m: Exclude<GenToParent, { type: 'ready' | 'result' }>) => void;

/** The parts start this long after the last one is subscribed: `go` reaches all of them first. */
const START_DELAY_MS = 20;

/** One generator child process. */
class Generator {
  private child!: ChildProcess;
  private waiters = new Map<string, { resolve: (r: RunResult) => void; reject: (e: Error) => void; onMessage: OnMessage }>();
  pid = 0;

  async start(): Promise<void> {
    this.child = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'lib/generator.ts')], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    trackChild(this.child);
    this.child.on('exit', (code, signal) => {
      for (const w of this.waiters.values()) w.reject(new Error(`generator exited (code ${code}, signal ${signal})`));
      this.waiters.clear();
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('generator did not start within 20 s')), 20_000);
      this.child.once('exit', () => reject(new Error('generator exited during start-up')));
      this.child.on('message', (m: GenToParent) => {
        if (m.type === 'ready') {
          clearTimeout(t);
          this.pid = m.pid;
          resolve();
        } else if (m.type === 'result') {
          const w = this.waiters.get(m.runId);
          this.waiters.delete(m.runId);
          w?.resolve(m.result);
        } else this.waiters.get(m.runId)?.onMessage(m);
      });
    });
  }

  run(req: RunRequest, onMessage: OnMessage, timeoutMs: number): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters.delete(req.runId);
        reject(new Error(`run ${req.runId} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(req.runId, {
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
        onMessage,
      });
      this.child.send(req);
    });
  }

  send(m: ParentToGen): void {
    if (this.child.connected) this.child.send(m);
  }

  stop(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

export class GeneratorPool {
  private readonly procs: Generator[];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`generator processes: ${size} is not a positive integer`);
    this.procs = Array.from({ length: size }, () => new Generator());
  }

  get pids(): number[] {
    return this.procs.map((g) => g.pid);
  }

  async start(): Promise<void> {
    await Promise.all(this.procs.map((g) => g.start()));
  }

  /** Phases and ticks reach `onPhase` once every part has got there. */
  async run(req: RunRequest, onPhase: OnPhase, timeoutMs: number): Promise<RunResult> {
    const parts = splitRun(req.scenario, this.procs.length);
    if (parts.length === 1) {
      return this.procs[0]!.run(req, (m) => (m.type === 'phase' ? onPhase(m.phase) : m.type === 'tick' ? onPhase('tick', m) : undefined), timeoutMs);
    }
    const procs = this.procs.slice(0, parts.length);
    const all = (m: ParentToGen) => procs.forEach((g) => g.send(m));
    const reached = new Map<string, number>();
    const ticks = new Map<number, Tick[]>();
    const ports: number[] = [];
    const onMessage =
      (index: number): OnMessage =>
      (m) => {
        if (m.type === 'tick') {
          const got = [...(ticks.get(m.second) ?? []), m];
          ticks.set(m.second, got);
          if (got.length === procs.length) onPhase('tick', mergeTicks(got));
        } else if (m.type === 'phase') {
          if (m.port !== undefined) ports[index] = m.port;
          const n = (reached.get(m.phase) ?? 0) + 1;
          reached.set(m.phase, n);
          if (n < procs.length) return;
          if (m.phase === 'subscribed') all({ type: 'go', runId: req.runId, startAt: sharedClockMs() + START_DELAY_MS, ports });
          onPhase(m.phase);
        }
      };
    // A part that fails before `go` (connect, subscribe) leaves the others waiting: stop them.
    const abort = (reason: string) => all({ type: 'abort', runId: req.runId, reason });
    // The broker sees `connectConcurrency` connects at a time in all, as with one process.
    const connectConcurrency = Math.max(1, Math.ceil(req.connectConcurrency / procs.length));
    try {
      const results = await Promise.all(
        procs.map((g, i) =>
          g.run({ ...req, connectConcurrency, part: parts[i] }, onMessage(i), timeoutMs).then((r) => {
            if (!r.ok) abort(`generator ${i} failed: ${r.error}`);
            return r;
          }),
        ),
      );
      return mergeResults(req.scenario, results);
    } catch (e) {
      abort((e as Error).message);
      throw e;
    }
  }

  stop(): void {
    for (const g of this.procs) g.stop();
  }
}
