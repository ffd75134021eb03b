/**
 * The coordinator (one per node, on the main thread): retained messages, `$SYS`, and the
 * gathering of every thread's metrics for /metrics. Later issues add the pre-subscription
 * directory and the routing-rule authority here.
 */
import type { Logger } from 'pino';
import type { ActorRef, ActorSystem } from '../runtime/system.js';
import {
  gatewayName,
  shardName,
  type AppMessage,
  type CoordinatorMsg,
  type GatewayMsg,
  type MetricsSnapshot,
  type ShardMsg,
} from '../protocol/messages.js';
import type { Metrics } from '../admin/metrics.js';
import { renderMetrics } from '../admin/render-metrics.js';
import { RetainedStore } from '../router/retained-store.js';

export interface CoordinatorOptions {
  gateways: number;
  shards: number;
  maxRetainedMessages: number;
  version: string;
  /** Seconds between $SYS updates; 0 = off. */
  sysInterval: number;
  /** Node-wide open-connection counter (shared with the gateways). */
  connCounter: Int32Array;
}

interface Gathering {
  gw: number;
  snaps: MetricsSnapshot[];
  waiting: number;
  timer: NodeJS.Timeout;
}

export class CoordinatorActor {
  private readonly retained: RetainedStore;
  private readonly gateways: ActorRef<GatewayMsg>[] = [];
  private readonly shards: ActorRef<ShardMsg>[] = [];
  private readonly gatherings = new Map<number, Gathering>();
  private readonly started = Date.now();
  private readonly sysTimer?: NodeJS.Timeout;
  /** Extra per-node gauges the supervisor maintains (thread restarts...). */
  readonly nodeCounters: Record<string, number> = {};

  constructor(
    private readonly opts: CoordinatorOptions,
    system: ActorSystem,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    for (let i = 0; i < opts.gateways; i++) this.gateways.push(system.ref(gatewayName(i)));
    for (let i = 0; i < opts.shards; i++) this.shards.push(system.ref(shardName(i)));
    this.retained = new RetainedStore(opts.maxRetainedMessages);
    if (opts.sysInterval > 0) {
      // Once now, so the (retained) $SYS tree is there for the first subscribers rather
      // than only after the first interval; no session exists yet to deliver it to.
      this.publishSys();
      this.sysTimer = setInterval(() => this.publishSys(), opts.sysInterval * 1000);
      this.sysTimer.unref();
    }
  }

  receive(m: CoordinatorMsg): void {
    switch (m.t) {
      case 'retain':
        if (!this.retained.set(m.msg)) this.metrics.inc('messages_dropped_total{reason="retained_full"}');
        return;
      case 'retainedRequest': {
        const msgs: Array<{ msg: AppMessage; opts: (typeof m.subs)[number]['opts'] }> = [];
        for (const s of m.subs) for (const msg of this.retained.match(s.filter)) msgs.push({ msg, opts: s.opts });
        if (msgs.length > 0) this.shards[m.shard]!.tell({ t: 'retained', clientId: m.clientId, connId: m.connId, msgs });
        return;
      }
      case 'metricsRequest':
        return this.gather(m.reqId, m.gw);
      case 'metricsReport': {
        const g = this.gatherings.get(m.reqId);
        if (!g) return;
        g.snaps.push(m.snapshot);
        if (--g.waiting === 0) this.finish(m.reqId);
        return;
      }
    }
  }

  /** Publishes a broker-made message (every shard matches it; retained ones are kept). */
  publish(msg: AppMessage): void {
    for (const s of this.shards) s.tell({ t: 'publish', msg });
    if (msg.retain) this.receive({ t: 'retain', msg });
  }

  private gather(reqId: number, gw: number): void {
    const peers = [...this.gateways, ...this.shards];
    const g: Gathering = {
      gw,
      snaps: [],
      waiting: peers.length,
      // A thread that is restarting must not hang /metrics: answer with what arrived.
      timer: setTimeout(() => this.finish(reqId), 2000),
    };
    this.gatherings.set(reqId, g);
    for (const p of peers) p.tell({ t: 'collectMetrics', reqId });
  }

  private finish(reqId: number): void {
    const g = this.gatherings.get(reqId);
    if (!g) return;
    clearTimeout(g.timer);
    this.gatherings.delete(reqId);
    this.metrics.set('retained_messages', this.retained.size);
    this.metrics.set('uptime_seconds', Math.round((Date.now() - this.started) / 1000));
    for (const [k, v] of Object.entries(this.nodeCounters)) this.metrics.setCounter(k, v);
    g.snaps.push(this.metrics.snapshot());
    this.gateways[g.gw]!.tell({ t: 'metricsText', reqId, text: renderMetrics(g.snaps) });
  }

  private publishSys(): void {
    const sys = (topic: string, value: string | number): void =>
      this.publish({ topic: `$SYS/broker/${topic}`, payload: Buffer.from(String(value)), qos: 0, retain: true });
    sys('version', `switchboard ${this.opts.version}`);
    sys('uptime', `${Math.round((Date.now() - this.started) / 1000)} seconds`);
    sys('retained messages/count', this.retained.size);
    sys('clients/connected', Atomics.load(this.opts.connCounter, 0));
  }

  close(): void {
    if (this.sysTimer) clearInterval(this.sysTimer);
    for (const g of this.gatherings.values()) clearTimeout(g.timer);
  }
}
