/**
 * Per-thread metrics: plain counters and gauges keyed by Prometheus series name
 * (`messages_received_total{qos="1"}`). A thread reports a snapshot on request; the
 * coordinator sums the series of all threads and renders the text format (render.ts).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { MetricsSnapshot } from '../protocol/messages.js';

/** One series name per QoS level (`name{qos="0"}` ...), built once for hot paths. */
export function seriesByQos(name: string): readonly string[] {
  return [0, 1, 2].map((q) => `${name}{qos="${q}"}`);
}

export class Metrics {
  readonly thread: string;
  private readonly counters: Record<string, number> = Object.create(null);
  private readonly gauges: Record<string, number> = Object.create(null);
  private readonly loop: IntervalHistogram;
  /** Extra gauges computed at snapshot time (mailbox depth, connections...). */
  mailboxDepth: () => number = () => 0;
  /**
   * Messages of this thread's actor system that threw (`actor_errors_total`); set by the
   * one Metrics that speaks for the thread (main: the supervisor's; a worker: its host's).
   */
  actorErrors: (() => number) | undefined;

  constructor(thread: string) {
    this.thread = thread;
    this.loop = monitorEventLoopDelay({ resolution: 10 });
    this.loop.enable();
  }

  inc(series: string, n = 1): void {
    this.counters[series] = (this.counters[series] ?? 0) + n;
  }

  /** Sets a counter kept elsewhere (e.g. the supervisor's restart count). */
  setCounter(series: string, v: number): void {
    this.counters[series] = v;
  }

  set(series: string, v: number): void {
    this.gauges[series] = v;
  }

  get(series: string): number {
    return this.counters[series] ?? this.gauges[series] ?? 0;
  }

  snapshot(): MetricsSnapshot {
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    if (this.actorErrors) this.counters['actor_errors_total'] = this.actorErrors();
    const snap: MetricsSnapshot = {
      thread: this.thread,
      counters: { ...this.counters },
      gauges: { ...this.gauges },
      loopDelay: { p50: ms(this.loop.percentile(50)), p99: ms(this.loop.percentile(99)), max: ms(this.loop.max) },
      mailboxDepth: this.mailboxDepth(),
    };
    this.loop.reset();
    return snap;
  }

  close(): void {
    this.loop.disable();
  }
}
