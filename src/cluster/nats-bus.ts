/**
 * The Bus over a NATS connection (npm @nats-io/transport-node, Debian's nats-server).
 *
 * - `noEcho`: a node never receives its own publishes, although it subscribes to the same
 *   subjects: no message loops back.
 * - Reconnection is the client's: it retries forever (`cluster.reconnectWait` apart),
 *   re-creates every subscription on the new connection and sends what it buffered while
 *   down (up to the client's reconnect buffer; beyond it publish throws, counted by the
 *   caller). Status changes are logged and counted.
 * - The first connection is awaited up to `connectTimeoutMs`: a broker started with an
 *   unreachable NATS fails with that error, rather than running as a node of nothing.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import type { Bus, BusSubscription } from './bus.js';

export interface NatsBusOptions {
  servers: string[];
  /** Connection name, seen in the server's monitoring: the node name. */
  name: string;
  connectTimeoutMs: number;
  reconnectWaitMs: number;
  flushTimeoutMs: number;
}

/** The Bus, and its connection for what the Bus does not cover (JetStream KV, request/reply: shared-state.ts). */
export type NatsBus = Bus & { readonly nc: NatsConnection };

export async function connectNatsBus(o: NatsBusOptions, metrics: Metrics, log: Logger): Promise<NatsBus> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: o.servers,
      name: o.name,
      noEcho: true,
      timeout: o.connectTimeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait: o.reconnectWaitMs,
      pingInterval: 10_000,
    });
  } catch (err) {
    throw new Error(`cluster.nats: cannot connect to ${o.servers.join(', ')}: ${(err as Error).message}`);
  }
  metrics.set('cluster_nats_connected', 1);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        metrics.set('cluster_nats_connected', 0);
        log.warn({ server: s.server }, 'NATS connection lost; reconnecting');
      } else if (s.type === 'reconnect') {
        metrics.set('cluster_nats_connected', 1);
        metrics.inc('cluster_nats_reconnects_total');
        log.info({ server: s.server }, 'NATS connection back; subscriptions restored');
      } else if (s.type === 'error' || s.type === 'slowConsumer') {
        metrics.inc(`cluster_errors_total{op="nats_${s.type}"}`);
        log.error({ status: s }, 'NATS error');
      }
    }
  })().catch(() => {});

  return {
    nc,
    get maxPayload() {
      return nc.info?.max_payload;
    },
    subscribe(subject, onMessage): BusSubscription {
      const sub = nc.subscribe(subject, {
        callback: (err, m) => {
          if (err) {
            metrics.inc('cluster_errors_total{op="subscription"}');
            log.error({ err, subject }, 'NATS subscription failed');
            return;
          }
          onMessage(m.data, m.subject);
        },
      });
      return { unsubscribe: () => sub.unsubscribe() };
    },
    publish(subject, data) {
      nc.publish(subject, data);
    },
    flush() {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`NATS flush took more than ${o.flushTimeoutMs} ms`)), o.flushTimeoutMs);
      });
      return Promise.race([nc.flush(), timeout]).finally(() => clearTimeout(timer));
    },
    async close() {
      metrics.set('cluster_nats_connected', 0);
      await nc.drain().catch(() => nc.close());
    },
  };
}
