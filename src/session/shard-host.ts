/** Wires one session shard (thread entry, or main thread with `shards: 0`). */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ActorSystem } from '../runtime/system.js';
import { gatewayCount, shardCount, type Topology } from '../runtime/topology.js';
import { shardName } from '../protocol/messages.js';
import { Metrics } from '../admin/metrics.js';
import { ShardActor } from './shard-actor.js';

export function startShardHost(o: { system: ActorSystem; index: number; config: Config; topology: Topology; log: Logger }): ShardActor {
  const { limits } = o.config;
  const metrics = new Metrics(o.system.thread === 'main' ? `main/shard:${o.index}` : `shard${o.index}`);
  metrics.mailboxDepth = () => o.system.mailboxDepth();
  const actor = new ShardActor(
    {
      index: o.index,
      gateways: gatewayCount(o.topology),
      shards: shardCount(o.topology),
      maxInflight: limits.maxInflight,
      maxQueuedMessages: limits.maxQueuedMessages,
      maxSubscriptionsPerClient: limits.maxSubscriptionsPerClient,
      maxSessions: Math.ceil(limits.maxSessions / shardCount(o.topology)),
      im: o.config.im.enabled,
    },
    o.system,
    metrics,
    o.log.child({ actor: shardName(o.index) }),
  );
  o.system.spawn(shardName(o.index), actor);
  return actor;
}
