/**
 * The member side of shared subscriptions: what the shard of a member's session does.
 *
 * The subscription lives in the session like any other (`s.subs` under its whole
 * `$share/{ShareName}/{filter}` key: stored, restored and unsubscribed as usual); the
 * group's owner shard (shardOf(key), shared-groups.ts) is told about it:
 *
 *  - SUBSCRIBE -> `shareJoin`; the SUBACK waits for `shareJoined` (the group's route is
 *    everywhere), behind nothing else but the same client's earlier acks;
 *  - UNSUBSCRIBE, session end -> `shareLeave`; connection up / down -> `shareState`;
 *  - `shareDeliver` -> into the session like a delivery of the subscription (its QoS,
 *    Retain As Published, Subscription Identifier), marked with the group's key; bounced
 *    when the session or subscription is gone;
 *  - connection lost or session ended -> what came from a group and was never
 *    acknowledged goes back to its owner (`shareRequeue`), which gives it to another
 *    member: queued messages, and QoS 1 messages sent and not acknowledged. A QoS 2
 *    message once sent stays with its client [MQTT-4.8.2-4][MQTT-4.8.2-5]. Their journal
 *    records go; the member that gets them writes new ones.
 *  - `shareResync` (broker start, a shard thread restarted) -> `shareSync` to the owners.
 */
import type { AppMessage, QoS, ShardMsg, SharedMsg } from '../protocol/messages.js';
import type { Metrics } from '../admin/metrics.js';
import { shardOf } from '../runtime/sharding.js';
import { isSharedFilter } from '../mqtt/shared.js';
import type { Journal } from './journal.js';
import type { QueuedMessage } from './message-queue.js';
import type { Session } from './session.js';
import { newWait, releaseWait, type AckWait, type HeldPublishes } from './held-publishes.js';

/** What the member side needs of its shard (the ShardActor). */
export interface MemberHost {
  readonly index: number;
  readonly shardCount: number;
  readonly sessions: Map<string, Session>;
  readonly metrics: Metrics;
  readonly journal: Journal;
  /** queueFullPolicy hold: messages parked beyond full queues (null: drop). */
  readonly held: HeldPublishes | null;
  toShard(shard: number, m: ShardMsg): void;
  /**
   * Sends or queues a message like a delivery of one of the session's subscriptions, marked
   * as coming from group `share`; `wait` (hold): it parks when the queue is full.
   */
  deliverShared(s: Session, msg: AppMessage, qos: QoS, retain: boolean, subIds: number[] | undefined, share: string, wait?: AckWait): void;
}

/** An acknowledgement (SUBACK, UNSUBACK) waiting for joins. */
interface Held {
  waits: Set<number>;
  run: () => void;
  timer?: NodeJS.Timeout;
}

/** A SUBACK does not wait longer than this for an owner that does not answer (it then goes anyway). */
const JOIN_TIMEOUT_MS = 10_000;

type MemberMsg = Extract<SharedMsg, { t: 'shareJoined' | 'shareDeliver' | 'shareResync' }>;

export class SharedMembers {
  private nextReq = 1;
  /** Joins waiting for `shareJoined`, by request id. */
  private readonly joins = new Map<number, { key: string; clientId: string; owner: number }>();
  /** Per client id, in order: acknowledgements waiting for joins (and those behind them). */
  private readonly held = new Map<string, Held[]>();
  /** Owner shards whose thread is restarting (bits): what is theirs stays put until they are back. */
  private down = 0;
  private commits = new Map<number, number[]>();
  private commitsQueued = false;

  constructor(private readonly host: MemberHost) {}

  ownerOf(key: string): number {
    return shardOf(key, this.host.shardCount);
  }

  receive(m: MemberMsg): void {
    switch (m.t) {
      case 'shareJoined':
        return this.joined(m.reqId);
      case 'shareDeliver':
        return this.onDeliver(m);
      case 'shareResync':
        return this.resync(m.reqId, m.owner);
    }
  }

  // ------------------------------------------------------------ subscribe / unsubscribe
  /** The session holds (or replaced) the shared subscription `key`: tell the owner. Returns the join's request id. */
  join(s: Session, key: string): number {
    const reqId = this.nextReq++;
    const owner = this.ownerOf(key);
    this.joins.set(reqId, { key, clientId: s.clientId, owner });
    this.host.toShard(owner, { t: 'shareJoin', key, clientId: s.clientId, shard: this.host.index, online: s.binding !== null, reqId });
    return reqId;
  }

  leave(clientId: string, key: string): void {
    this.host.toShard(this.ownerOf(key), { t: 'shareLeave', key, clientId });
  }

  /**
   * Runs `run` (a SUBACK, an UNSUBACK) once the joins `reqIds` are answered and every
   * acknowledgement of the same client held before it has gone: a client sees its acks in
   * the order of its requests, and other clients do not wait for this one's owner.
   */
  ordered(clientId: string, reqIds: readonly number[], run: () => void): void {
    const waits = new Set(reqIds.filter((id) => this.joins.has(id)));
    let list = this.held.get(clientId);
    if (!list && waits.size === 0) return run();
    if (!list) this.held.set(clientId, (list = []));
    const h: Held = { waits, run };
    if (waits.size > 0) {
      h.timer = setTimeout(() => {
        this.host.metrics.inc('shared_join_timeouts_total');
        h.waits.clear();
        this.drain(clientId);
      }, JOIN_TIMEOUT_MS);
      h.timer.unref();
    }
    list.push(h);
    this.drain(clientId);
  }

  private joined(reqId: number): void {
    const j = this.joins.get(reqId);
    if (!j) return;
    this.joins.delete(reqId);
    const list = this.held.get(j.clientId);
    if (!list) return;
    for (const h of list) h.waits.delete(reqId);
    this.drain(j.clientId);
  }

  private drain(clientId: string): void {
    const list = this.held.get(clientId);
    if (!list) return;
    while (list.length > 0 && list[0]!.waits.size === 0) {
      const h = list.shift()!;
      clearTimeout(h.timer);
      h.run();
    }
    if (list.length === 0) this.held.delete(clientId);
  }

  // ------------------------------------------------------------ connection and session
  /** The session got a connection: its owners prefer it again. */
  online(s: Session): void {
    for (const [owner, keys] of this.keysByOwner(s)) this.host.toShard(owner, { t: 'shareState', clientId: s.clientId, keys, online: true });
  }

  /** The session's connection is gone: its owners prefer other members, and get back what it did not acknowledge. */
  offline(s: Session): void {
    const byOwner = this.keysByOwner(s);
    if (byOwner.size === 0) return;
    for (const [owner, keys] of byOwner) this.host.toShard(owner, { t: 'shareState', clientId: s.clientId, keys, online: false });
    this.giveBack(s, false);
  }

  /** The session ends: what it got from groups and never acknowledged goes to other members (the leaves follow). */
  ended(s: Session): void {
    if (this.keysByOwner(s).size === 0) return;
    this.giveBack(s, true);
  }

  private keysByOwner(s: Session): Map<number, string[]> {
    const out = new Map<number, string[]>();
    for (const key of s.subs.keys()) {
      if (!isSharedFilter(key)) continue;
      const owner = this.ownerOf(key);
      const l = out.get(owner);
      if (l) l.push(key);
      else out.set(owner, [key]);
    }
    return out;
  }

  /**
   * Queued messages from groups, and QoS 1 ones sent and not acknowledged, back to their
   * owners (the spec lets the server send them to another member at once [MQTT 5.0
   * section 4.8.2]). A QoS 2 message once sent is finished with this client
   * [MQTT-4.8.2-4][MQTT-4.8.2-5]. Messages of an owner that is restarting stay.
   */
  private giveBack(s: Session, ending: boolean): void {
    if (s.evicted) {
      if (!ending) return;
      this.host.journal.reload(s); // its messages are in the store only
    }
    const back = new Map<string, AppMessage[]>();
    const take = (e: { share?: string; msg: AppMessage; seq?: number; body?: number }): void => {
      this.host.journal.done(s, e);
      const l = back.get(e.share!);
      if (l) l.push(e.msg);
      else back.set(e.share!, [e.msg]);
    };
    if (s.queueSize > 0) {
      const keep: QueuedMessage[] = [];
      for (let q = s.queue.shift(); q; q = s.queue.shift()) {
        if (q.share !== undefined && this.reachable(q.share)) take(q);
        else keep.push(q);
      }
      for (const q of keep) s.queue.push(q);
    }
    for (const [packetId, e] of [...s.inflight.entriesInOrder()]) {
      if (e.share === undefined || e.state !== 'publish' || e.qos !== 1 || !this.reachable(e.share)) continue;
      s.inflight.delete(packetId);
      take(e);
    }
    // Parked beyond a full queue (queueFullPolicy hold): after the queue, in order.
    for (const q of this.host.held?.take(s, (p) => p.share !== undefined && this.reachable(p.share)) ?? []) take(q);
    for (const [key, msgs] of back) {
      this.host.metrics.inc('shared_given_back_total', msgs.length);
      this.host.toShard(this.ownerOf(key), { t: 'shareRequeue', key, clientId: s.clientId, msgs });
    }
  }

  private reachable(key: string): boolean {
    return (this.down & (1 << this.ownerOf(key))) === 0;
  }

  // ------------------------------------------------------------ deliveries
  private onDeliver(m: Extract<SharedMsg, { t: 'shareDeliver' }>): void {
    const s = this.host.sessions.get(m.clientId);
    const opts = s?.subs.get(m.key);
    const owner = this.ownerOf(m.key);
    if (!s || !opts) {
      // Gone while the message was on its way: the owner gives it to another member.
      const bounce: Extract<SharedMsg, { t: 'shareBounce' }> = { t: 'shareBounce', key: m.key, clientId: m.clientId, msg: m.msg, gone: true };
      if (m.id !== undefined) bounce.id = m.id;
      return this.host.toShard(owner, bounce);
    }
    // Like any delivery: the subscription's granted QoS [MQTT-4.8.2-3][MQTT-3.8.4-8], Retain
    // As Published [MQTT-3.3.1-12][MQTT-3.3.1-13], its Subscription Identifier [MQTT-3.3.4-3].
    const qos = (m.msg.qos < opts.qos ? m.msg.qos : opts.qos) as QoS;
    // queueFullPolicy hold: a copy parked beyond a full queue is answered once it entered it.
    const answer = m.id !== undefined ? () => this.host.journal.afterCommit(() => this.committed(owner, m.id!)) : undefined;
    const wait = answer && this.host.held ? newWait(answer) : undefined;
    try {
      this.host.deliverShared(s, m.msg, qos, opts.retainAsPublished ? m.msg.retain : false, opts.subId !== undefined ? [opts.subId] : undefined, m.key, wait);
    } finally {
      // Answered delivered or not (a full queue drops it, counted), so the publisher is never stuck.
      if (wait) releaseWait(wait);
      else answer?.();
    }
  }

  /** Durable here: the owner may answer the publisher (batched per owner). */
  private committed(owner: number, id: number): void {
    const l = this.commits.get(owner);
    if (l) l.push(id);
    else this.commits.set(owner, [id]);
    if (this.commitsQueued) return;
    this.commitsQueued = true;
    queueMicrotask(() => {
      this.commitsQueued = false;
      const all = this.commits;
      this.commits = new Map();
      for (const [o, ids] of all) this.host.toShard(o, { t: 'shareCommitted', ids });
    });
  }

  // ------------------------------------------------------------ restarts
  /** A shard thread died: its groups get nothing from here until it is back (shareResync). */
  peerDown(shard: number): void {
    this.down |= 1 << shard;
  }

  /**
   * Tell owners every membership of this shard's sessions: all owners (broker start, or
   * this shard restarted), or the one that restarted. Joins it never answered are asked again.
   */
  private resync(reqId: number, owner: number | null): void {
    const all = owner === null || owner === this.host.index;
    if (owner !== null) this.down &= ~(1 << owner);
    const lists = new Map<number, Array<{ key: string; clientId: string; online: boolean }>>();
    if (all) for (let i = 0; i < this.host.shardCount; i++) lists.set(i, []);
    else lists.set(owner, []);
    for (const s of this.host.sessions.values()) {
      for (const key of s.subs.keys()) {
        if (isSharedFilter(key)) lists.get(this.ownerOf(key))?.push({ key, clientId: s.clientId, online: s.binding !== null });
      }
    }
    for (const [to, members] of lists) this.host.toShard(to, { t: 'shareSync', reqId, shard: this.host.index, members, answer: owner === null || to === owner });
    if (owner === null || owner === this.host.index) return;
    for (const [id, j] of [...this.joins]) {
      if (j.owner !== owner) continue;
      const s = this.host.sessions.get(j.clientId);
      // Unsubscribed meanwhile: nothing to wait for (the shareSync above has it right).
      if (!s || !s.subs.has(j.key)) this.joined(id);
      else this.host.toShard(owner, { t: 'shareJoin', key: j.key, clientId: j.clientId, shard: this.host.index, online: s.binding !== null, reqId: id });
    }
  }
}
