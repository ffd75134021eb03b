/**
 * Messages for one node of the cluster (session hand-overs, shared subscription
 * deliveries): each node subscribes to its own subject `{prefix}.n.{node}`. What is sent
 * in one turn goes as one NATS message per destination; a hand-over part (sized to fit
 * one NATS message, takeover-wire.ts) travels alone.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import type { Bus, BusSubscription } from './bus.js';
import { decodeDirect, encodeDirect, type DirectItem } from './takeover-wire.js';
import { WireError } from './wire.js';

export class DirectChannel {
  private out = new Map<string, DirectItem[]>();
  private queued = false;
  private readonly sub: BusSubscription;

  constructor(
    private readonly bus: Bus,
    private readonly prefix: string,
    private readonly node: string,
    onItems: (from: string, items: DirectItem[]) => void,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.sub = bus.subscribe(`${prefix}.n.${node}`, (data) => {
      let b;
      try {
        b = decodeDirect(data);
      } catch (err) {
        if (!(err instanceof WireError)) throw err;
        this.metrics.inc('cluster_errors_total{op="decode"}');
        this.log.warn({ err: err.message }, 'dropped a message from another node');
        return;
      }
      onItems(b.from, b.items);
    });
  }

  /** Queues `item` for `node`; sent at the end of the turn. */
  send(node: string, item: DirectItem): void {
    let items = this.out.get(node);
    if (!items) this.out.set(node, (items = []));
    items.push(item);
    if (this.queued) return;
    this.queued = true;
    setImmediate(() => this.flush());
  }

  close(): void {
    this.sub.unsubscribe();
  }

  /** Sends what is queued now (also run at the end of the turn). */
  flush(): void {
    this.queued = false;
    if (this.out.size === 0) return;
    const out = this.out;
    this.out = new Map();
    for (const [node, items] of out) {
      try {
        const small = items.filter((i) => i.k !== 'moved');
        if (small.length > 0) this.bus.publish(`${this.prefix}.n.${node}`, encodeDirect(this.node, small));
        for (const i of items) if (i.k === 'moved') this.bus.publish(`${this.prefix}.n.${node}`, encodeDirect(this.node, [i]));
      } catch (err) {
        // NATS down past the reconnect buffer, or over max_payload: claims time out and settle without it.
        this.metrics.inc('cluster_errors_total{op="publish"}');
        this.log.error({ err, node }, 'could not send to another node');
      }
    }
  }
}
