/**
 * The seam between a node's coordinator and the cluster's shared state (docs/cluster.md
 * "Shared state"). Both run on the main thread: plain method calls, no messages.
 *
 * - `ClusterState` is what the coordinator calls when it has one (cluster.nats set);
 *   without it (a single node) the coordinator behaves as it always did.
 * - `CoordinatorPort` is what the cluster side calls back: the same paths an admin edit,
 *   a retained publish or a presence change take on one node.
 */
import type { AdminShardOp, AppMessage } from '../protocol/messages.js';
import type { SessionSummary } from '../session/session-view.js';
import type { AdminResponse } from '../coordinator/admin-api.js';
import type { ImState } from '../coordinator/im-state.js';
import type { PresenceState } from '../coordinator/presence.js';
import type { DirectoryEntry } from '../im/presub.js';
import type { RoutingRule } from '../im/rules.js';

/** What an admin edit changed in the IM state (the new value is in ImState). */
export type ImChange = { kind: 'templates' } | { kind: 'rules' } | { kind: 'user'; uid: string };

export type ShardOp = Exclude<AdminShardOp, { op: 'list' }>;

export interface ClusterState {
  /** A broker-made message (presence, admin publish; never $SYS): to the other nodes too. */
  publish(msg: AppMessage): void;
  /** An admin edit made on this node: into the shared KV. Resolves once stored; rejects when it could not be. */
  imEdited(change: ImChange): Promise<void>;
  /** This node's device count of `uid` changed: the cluster-wide count is published (once, by this node). */
  presence(uid: string, ns: string, devices: number): void;
  /** Every live node's sessions (optionally one user's). */
  sessions(uid: string | undefined): Promise<SessionSummary[]>;
  /** An operation on the node that has the client id. */
  shardOp(op: ShardOp): Promise<AdminResponse>;
}

export interface CoordinatorPort {
  /** Keep (or delete: empty payload) a retained message, as a `retain` message would. */
  keepRetained(msg: AppMessage): void;
  /** The retained messages this node keeps, `$` topics aside. */
  retainedMessages(): AppMessage[];
  readonly imState: ImState;
  /** Another node's edit, applied as an admin edit here would be (pre-subscriptions, gateways' rules). */
  applyTemplates(templates: string[]): Promise<void>;
  applyRules(rules: RoutingRule[]): Promise<void>;
  applyUser(uid: string, entry: DirectoryEntry | undefined): Promise<void>;
  /** Every session asks for its pre-subscriptions again (the IM state changed while the node was away). */
  refreshAll(): Promise<void>;
  publishPresence(ns: string, state: PresenceState): void;
  localSessions(uid: string | undefined): Promise<SessionSummary[]>;
  localShardOp(op: ShardOp): Promise<AdminResponse>;
}
