/**
 * Joining a cluster (cluster.nats set): connect to NATS first (an unreachable NATS stops
 * the start with its error), load the cluster's shared state into the coordinator
 * (JetStream KV: retained messages, IM state, presence; shared-state.ts; a NATS without
 * JetStream stops the start too), then, once the shards run, spawn the cluster link on
 * the main thread. See cluster-actor.ts and docs/cluster.md.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import type { Config } from '../config/schema.js';
import { CLUSTER } from '../protocol/messages.js';
import type { ActorSystem } from '../runtime/system.js';
import { gatewayCount, shardCount, type Topology } from '../runtime/topology.js';
import { ClusterActor } from './cluster-actor.js';
import { connectNatsBus } from './nats-bus.js';
import type { ClusterState, CoordinatorPort } from './cluster-state.js';
import { SharedState } from './shared-state.js';

export interface ClusterHandle {
  readonly node: string;
  readonly actor: ClusterActor;
  shardDown(shard: number): void;
  shardUp(shard: number): void;
  /** Resolves once the shared state is live (after membership discovery): the node may take clients. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** The node's name: cluster.node, or "{hostname}-{pid}". */
export function nodeName(config: Config): string {
  return config.cluster.node ?? `${os.hostname().replace(/[^A-Za-z0-9_-]/g, '_')}-${process.pid}`;
}

export async function startCluster(
  config: Config,
  topology: Topology,
  system: ActorSystem,
  metrics: Metrics,
  log: Logger,
  coordinator: CoordinatorPort & { attachCluster(c: ClusterState): void },
): Promise<{ spawn(): ClusterHandle }> {
  const c = config.cluster;
  const node = nodeName(config);
  const clog = log.child({ actor: CLUSTER, node });
  const bus = await connectNatsBus(
    {
      servers: c.nats!.split(',').map((s) => s.trim()).filter((s) => s.length > 0),
      name: node,
      connectTimeoutMs: c.connectTimeout * 1000,
      reconnectWaitMs: c.reconnectWait * 1000,
      flushTimeoutMs: c.flushTimeout * 1000,
    },
    metrics,
    clog,
  );
  let shared: SharedState;
  try {
    shared = await SharedState.open(
      bus.nc,
      { node, prefix: c.subjectPrefix, server: c.nats!, timeoutMs: c.flushTimeout * 1000, loadDeadlineMs: c.connectTimeout * 1000 },
      coordinator,
      metrics,
      clog,
    );
  } catch (err) {
    await bus.close().catch(() => {});
    throw err;
  }
  coordinator.attachCluster(shared);
  clog.info({ nats: c.nats }, 'joined the cluster');
  return {
    spawn() {
      const actor = new ClusterActor(
        {
          node,
          prefix: c.subjectPrefix,
          gateways: gatewayCount(topology),
          shards: shardCount(topology),
          heartbeatMs: c.heartbeatMs,
          deadAfterMs: c.deadAfterMs,
          takeoverTimeoutMs: c.takeoverTimeoutMs,
          retained: shared.retained,
          onMembership: (e) => shared.onMembership(e),
        },
        bus,
        system,
        metrics,
        clog,
      );
      const ref = system.spawn(CLUSTER, actor);
      // Once the nodes already there are known: keys of nodes not alive after twice the
      // time a node takes to be declared gone are cleaned up.
      const ready = actor.discovered.then(() =>
        shared.activate({ forward: (msg) => ref.tell({ t: 'forward', msg }), others: () => actor.members().map((n) => n.node) }, 2 * c.deadAfterMs),
      );
      return {
        node,
        actor,
        shardDown: (shard) => ref.tell({ t: 'shardDown', shard }),
        shardUp: (shard) => ref.tell({ t: 'shardUp', shard }),
        ready,
        async close() {
          shared.close();
          actor.close();
          await bus.close();
        },
      };
    },
  };
}
