/**
 * Wires one session shard (thread entry, or main thread with `shards: 0`): opens its
 * store and rebuilds the sessions kept there before the shard takes any message.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ActorSystem } from '../runtime/system.js';
import { MAIN, gatewayCount, shardCount, type Topology } from '../runtime/topology.js';
import { shardName } from '../protocol/messages.js';
import { Metrics } from '../admin/metrics.js';
import { ShardActor } from './shard-actor.js';
import { openStore } from '../store/open.js';

export function startShardHost(o: { system: ActorSystem; index: number; config: Config; topology: Topology; log: Logger }): ShardActor {
  const { limits } = o.config;
  const metrics = new Metrics(o.system.thread === 'main' ? `main/shard:${o.index}` : `shard${o.index}`);
  metrics.mailboxDepth = () => o.system.mailboxDepth();
  // A shard thread's failed actor messages (on the main thread the supervisor counts them).
  if (o.system.thread !== MAIN) metrics.actorErrors = () => o.system.actorErrors;
  const actor = new ShardActor(
    {
      index: o.index,
      gateways: gatewayCount(o.topology),
      shards: shardCount(o.topology),
      maxInflight: limits.maxInflight,
      maxQueuedMessages: limits.maxQueuedMessages,
      maxSubscriptionsPerClient: limits.maxSubscriptionsPerClient,
      maxSessions: Math.ceil(limits.maxSessions / shardCount(o.topology)),
      maxAnonymousSessions: Math.ceil(limits.maxAnonymousSessions / shardCount(o.topology)),
      im: o.config.im.enabled,
      store: openStore(o.config, `shard-${o.index}`),
      dedupMaxAgeMs: limits.maxSessionExpiryInterval * 1000,
      asyncLagMs: o.config.store.durability === 'async' ? o.config.store.asyncMaxLag : null,
      evictAfterMs: o.config.store.durability === 'memory' ? null : o.config.store.evictOfflineAfter * 1000,
      sharedStrategy: o.config.sharedSubscriptions.strategy,
      ...(o.config.cluster.nats !== null ? { cluster: { leaveTimeoutMs: 2 * o.config.cluster.takeoverTimeoutMs } } : {}),
      ...(limits.queueFullPolicy === 'hold' ? { hold: { maxPerSession: limits.maxHeldPerSession, maxAgeMs: limits.maxAckHoldSeconds * 1000 } } : {}),
    },
    o.system,
    metrics,
    o.log.child({ actor: shardName(o.index) }),
  );
  const t0 = performance.now();
  const r = actor.restore();
  if (r.sessions > 0 || r.expired > 0)
    o.log.info({ sessions: r.sessions, messages: r.messages, expired: r.expired, ms: Math.round(performance.now() - t0) }, 'sessions restored from the store');
  o.system.spawn(shardName(o.index), actor);
  return actor;
}
