/**
 * The state a cluster shares (docs/cluster.md "Shared state"), behind the one interface
 * the coordinator calls (cluster-state.ts): retained messages, the IM directory,
 * templates and rules, presence (each a JetStream KV bucket), and the admin API's
 * session operations (request/reply to every node).
 *
 * Two steps, because a node joins in two steps (start.ts, broker.ts):
 * - open(): right after connecting to NATS, before the shards start: JetStream is
 *   required, the buckets are created or opened, and their current content loaded into
 *   the coordinator, so a node takes no client before it has the cluster's state.
 * - activate(): once the cluster link runs (membership known): broker-made messages go
 *   to the other nodes, IM changes take the admin paths, presence cleans up, this node
 *   answers the others' admin requests.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import type { AppMessage } from '../protocol/messages.js';
import type { SessionSummary } from '../session/session-view.js';
import type { AdminResponse } from '../coordinator/admin-api.js';
import { ClusterAdmin } from './cluster-admin.js';
import type { ClusterState, CoordinatorPort, ImChange, ShardOp } from './cluster-state.js';
import { openBucket, requireJetStream } from './kv.js';
import type { MembershipEvent } from './membership.js';
import { SharedIm } from './shared-im.js';
import { SharedPresence } from './shared-presence.js';
import { SharedRetained } from './shared-retained.js';

export interface SharedStateOptions {
  node: string;
  prefix: string;
  /** For the error message when JetStream is missing. */
  server: string;
  /** How long a KV write or an admin request may take (cluster.flushTimeout). */
  timeoutMs: number;
  /** How long start waits for the buckets' content. */
  loadDeadlineMs: number;
}

export interface ClusterLinkView {
  /** Sends a message to the other nodes (the cluster link's `forward`). */
  forward(msg: AppMessage): void;
  /** The other live nodes' names. */
  others(): string[];
}

export class SharedState implements ClusterState {
  private link?: ClusterLinkView;
  private admin?: ClusterAdmin;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly o: SharedStateOptions,
    private readonly port: CoordinatorPort,
    readonly retained: SharedRetained,
    private readonly im: SharedIm,
    private readonly presenceShare: SharedPresence,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  static async open(nc: NatsConnection, o: SharedStateOptions, port: CoordinatorPort, metrics: Metrics, log: Logger): Promise<SharedState> {
    await requireJetStream(nc, o.server);
    const [r, i, p] = await Promise.all([
      openBucket(nc, o.prefix, 'retained', o.timeoutMs * 5),
      openBucket(nc, o.prefix, 'im', o.timeoutMs * 5),
      openBucket(nc, o.prefix, 'presence', o.timeoutMs * 5),
    ]);
    const s = new SharedState(
      nc,
      o,
      port,
      new SharedRetained(r, port, o.node, o.timeoutMs, metrics, log),
      new SharedIm(i, port, o.node, o.timeoutMs, metrics, log),
      new SharedPresence(p, port, o.node, o.timeoutMs, metrics, log),
      metrics,
      log,
    );
    await Promise.all([s.retained.start(o.loadDeadlineMs), s.im.start(o.loadDeadlineMs), s.presenceShare.start(o.loadDeadlineMs)]);
    return s;
  }

  /** The cluster link runs; `graceMs`: after it, keys of nodes that are not alive are cleaned up. */
  async activate(link: ClusterLinkView, graceMs: number): Promise<void> {
    this.link = link;
    this.admin = new ClusterAdmin(this.nc, this.o.prefix, this.o.node, this.port, () => link.others().length, this.o.timeoutMs, this.metrics, this.log);
    this.presenceShare.activate(() => link.others(), graceMs);
    await this.im.activate();
  }

  onMembership(e: MembershipEvent): void {
    this.presenceShare.onMembership(e);
  }

  // ------------------------------------------------------------ ClusterState (the coordinator calls)
  publish(msg: AppMessage): void {
    if (msg.topic.startsWith('$SYS/')) return;
    this.link?.forward(msg);
  }

  imEdited(change: ImChange): Promise<void> {
    return this.im.edited(change);
  }

  presence(uid: string, ns: string, devices: number): void {
    this.presenceShare.local(uid, ns, devices);
  }

  sessions(uid: string | undefined): Promise<SessionSummary[]> {
    return this.admin ? this.admin.sessions(uid) : this.port.localSessions(uid);
  }

  shardOp(op: ShardOp): Promise<AdminResponse> {
    return this.admin ? this.admin.shardOp(op) : this.port.localShardOp(op);
  }

  close(): void {
    this.admin?.close();
    this.retained.close();
    this.im.close();
    this.presenceShare.close();
  }
}
