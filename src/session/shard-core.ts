/**
 * What the shard's helpers (pre-subscription in presub-agent.ts, admin operations in
 * shard-admin.ts) may use of the shard actor: its sessions, the subscription and route
 * bookkeeping, and the messages it sends. One actor, one thread: the helpers run inside
 * the shard's message handling and never concurrently with it.
 */
import type { CoordinatorMsg, GatewayMsg, ShardMsg, SubOptions } from '../protocol/messages.js';
import type { Metrics } from '../admin/metrics.js';
import type { Session } from './session.js';
import type { Journal } from './journal.js';
import type { HeldPublishes } from './held-publishes.js';

export type ConnackMsg = Extract<GatewayMsg, { t: 'connack' }>;

export interface ShardCore {
  readonly index: number;
  readonly sessions: Map<string, Session>;
  readonly metrics: Metrics;
  readonly maxSubscriptionsPerClient: number;
  readonly maxQueuedMessages: number;
  readonly journal: Journal;
  /** queueFullPolicy hold: messages parked beyond full queues (null: drop). */
  readonly held: HeldPublishes | null;
  toCoordinator(m: CoordinatorMsg): void;
  toShard(shard: number, m: ShardMsg): void;
  toGateway(gw: number, m: GatewayMsg): void;
  /** Records a subscription; true when the filter is new on this shard (it needs routeAdd). */
  addSub(s: Session, filter: string, opts: SubOptions): boolean;
  /** True when the filter has no subscriber left on this shard (it needs routeDel). */
  removeSub(clientId: string, filter: string): boolean;
  routeAdd(filters: string[]): void;
  routeDel(filters: string[]): void;
  /** Runs `run` once every gateway has every route issued so far. */
  afterRoutes(run: () => void): void;
  releaseConnack(s: Session, connack: ConnackMsg): void;
  detached(s: Session, publishWill: boolean): void;
  destroy(s: Session): void;
  countAnonymous(s: Session, yes: boolean): void;
}
