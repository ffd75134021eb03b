/**
 * Presence summed over the cluster (docs/cluster.md "Shared state"), through a JetStream
 * KV bucket (`{prefix}-presence`): key `{base64url uid}.{node}`, value (msgpack) the
 * user's namespace and how many devices that node has; no key = none.
 *
 * - A node's coordinator counts its own devices (presence.ts) and reports each change
 *   here: the node writes its key, and once its write comes back on the watch (all earlier
 *   writes of the other nodes are in its view then) it publishes the retained
 *   `/{ns}/im/p/{uid}` with the cluster-wide count, through the cluster like any retained
 *   message. One change, one publication, by the node where it happened.
 * - A node gone from membership (no heartbeat) has its keys deleted by one node, the
 *   lowest-named live one, which publishes the new counts. Every node forgets the gone
 *   node's devices at once. A node that was only taken for gone sees its keys deleted and
 *   writes them back.
 * - A starting node deletes what its previous incarnation left (it has no devices yet);
 *   the lowest-named node also deletes, after a grace period, the keys of nodes that are
 *   not alive (gone while no other node watched).
 * - If JetStream does not take a write, the node publishes the count from its view at once.
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { pack, unpack } from 'msgpackr';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import type { MembershipEvent } from './membership.js';
import type { CoordinatorPort } from './cluster-state.js';
import { deadline, watchBucket, type Watch } from './kv.js';
import { isLeader, parsePresenceKey, PresenceView, presenceKey } from './presence-view.js';

const FORMAT = 1;

export class SharedPresence {
  private watch?: Watch;
  readonly view = new PresenceView();
  /** Our writes on their way, per key: when one comes back, the new count is published. */
  private readonly pending = new Map<string, number>();
  /** Keys of this node's previous incarnation, found at start. */
  private readonly stale: Array<{ uid: string; ns: string }> = [];
  private others: () => string[] = () => [];
  private sweepTimer?: NodeJS.Timeout;

  constructor(
    private readonly kv: KV,
    private readonly port: CoordinatorPort,
    private readonly node: string,
    private readonly timeoutMs: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  async start(loadDeadlineMs: number): Promise<void> {
    this.watch = await watchBucket(this.kv, (e, initial) => this.onEntry(e, initial), this.log, loadDeadlineMs);
    await this.watch.loaded;
  }

  /**
   * The cluster link runs: `others` names the live nodes. Deletes what this node's
   * previous incarnation left, and after `graceMs` (membership known by then) the keys of
   * nodes that are not alive.
   */
  activate(others: () => string[], graceMs: number): void {
    this.others = others;
    for (const { uid, ns } of this.stale.splice(0)) if (this.view.count(uid, this.node) === 0) this.write(uid, ns, 0, this.node);
    this.sweepTimer = setTimeout(() => this.sweep(), graceMs);
    this.sweepTimer.unref();
  }

  /** This node now has `devices` devices of `uid`. */
  local(uid: string, ns: string, devices: number): void {
    this.view.set(uid, ns, this.node, devices);
    this.write(uid, ns, devices, this.node);
  }

  onMembership(e: MembershipEvent): void {
    if (e.kind === 'gone') this.forget(e.node);
  }

  /** A node is gone: its devices no longer count; the leader deletes its keys (and publishes on their echo). */
  private forget(node: string): void {
    const leader = isLeader(this.node, this.others());
    for (const uid of this.view.dropNode(node)) {
      const ns = this.view.ns(uid);
      if (leader && ns !== undefined) this.write(uid, ns, 0, node);
    }
  }

  private sweep(): void {
    const live = new Set(this.others());
    for (const n of this.view.nodes()) if (n !== this.node && !live.has(n)) this.forget(n);
  }

  private write(uid: string, ns: string, n: number, node: string): void {
    const key = presenceKey(uid, node);
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    const op = n > 0 ? this.kv.put(key, pack({ f: FORMAT, ns, n })) : this.kv.delete(key);
    deadline(Promise.resolve(op), this.timeoutMs).catch((err: unknown) => {
      this.metrics.inc('cluster_errors_total{op="kv_put"}');
      this.log.warn({ err, uid }, 'presence not stored in the cluster bucket; publishing this node\'s view');
      if (this.settle(key)) this.publish(uid);
    });
  }

  /** One of our writes of `key` came back (or failed): true if there was one. */
  private settle(key: string): boolean {
    const n = this.pending.get(key);
    if (n === undefined) return false;
    if (n > 1) this.pending.set(key, n - 1);
    else this.pending.delete(key);
    return true;
  }

  private onEntry(e: KvWatchEntry, initial: boolean): void {
    const k = parsePresenceKey(e.key);
    if (!k) return;
    let ns = this.view.ns(k.uid);
    let n = 0;
    if (e.operation === 'PUT') {
      let v: { f?: unknown; ns?: unknown; n?: unknown };
      try {
        v = unpack(e.value) as typeof v;
      } catch {
        v = {};
      }
      if (v?.f !== FORMAT || typeof v.ns !== 'string' || typeof v.n !== 'number') {
        this.metrics.inc('cluster_errors_total{op="decode"}');
        return;
      }
      ns = v.ns;
      n = v.n;
    }
    if (ns === undefined) return; // a deletion of a user we never knew
    if (initial) {
      if (k.node === this.node) {
        if (n > 0) this.stale.push({ uid: k.uid, ns });
      } else this.view.set(k.uid, ns, k.node, n);
      return;
    }
    const ours = this.settle(e.key);
    if (k.node === this.node) {
      if (ours) return this.publish(k.uid);
      // Another node wrote our key (it took us for gone): our count goes back.
      const mine = this.view.count(k.uid, this.node);
      if (mine !== n) this.write(k.uid, ns, mine, this.node);
      return;
    }
    this.view.set(k.uid, ns, k.node, n);
    if (ours) this.publish(k.uid);
  }

  private publish(uid: string): void {
    const ns = this.view.ns(uid);
    if (ns !== undefined) this.port.publishPresence(ns, this.view.state(uid));
  }

  close(): void {
    clearTimeout(this.sweepTimer);
    this.watch?.stop();
  }
}
