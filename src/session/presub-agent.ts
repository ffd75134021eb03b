/**
 * The shard's side of pre-subscription (IM-PROTOCOL.md section 4): a new session of an IM
 * user asks the coordinator for its list and holds its CONNACK until the subscriptions are
 * routed everywhere; directory or template edits re-run it (subscribe and unsubscribe on
 * the user's behalf) and are answered once applied; holding sessions keep the messages of
 * directory users who never connected and hand them to their first session.
 */
import type { AppMessage, QoS, ShardMsg, SubOptions } from '../protocol/messages.js';
import { Session } from './session.js';
import type { ConnackMsg, ShardCore } from './shard-core.js';

type Fresh = Array<{ filter: string; opts: SubOptions }>;

/**
 * The options of a broker-made subscription, one frozen object per QoS shared by every
 * session (never changed in place: a client's SUBSCRIBE replaces the entry).
 */
const PRESUB_OPTIONS: readonly SubOptions[] = ([0, 1, 2] as const).map((qos) => Object.freeze({ qos, noLocal: false, retainAsPublished: false }));
const presubOptions = (qos: QoS): SubOptions => PRESUB_OPTIONS[qos]!;

/** A pre-subscription answer the session waits for; `connack` is held until it is applied. */
interface PresubWait {
  clientId: string;
  connack?: ConnackMsg;
}

export class PresubAgent {
  private seq = 0;
  private readonly waits = new Map<number, PresubWait>();
  /** Admin edits waiting for the requests they caused (coordinator reqId -> ours). */
  private readonly refreshWaits: Array<{ reqId: number; pending: Set<number> }> = [];
  /** First sessions waiting for a holding session's messages, by request id. */
  private readonly holdWaits = new Map<number, PresubWait & { fresh: Fresh }>();

  constructor(private readonly core: ShardCore) {}

  receive(m: Extract<ShardMsg, { t: 'presubscription' | 'presubRefresh' | 'holdCreate' | 'holdTransfer' | 'heldMessages' }>): void {
    switch (m.t) {
      case 'presubscription':
        this.apply(m);
        return this.settled(m.reqId);
      case 'presubRefresh':
        return this.refresh(m.uids, m.reqId);
      case 'holdCreate':
        return this.holdCreate(m);
      case 'holdTransfer':
        return this.holdTransfer(m);
      case 'heldMessages':
        return this.heldMessages(m);
    }
  }

  /** Asks the coordinator for the session's list; a CONNACK given here waits for it. */
  request(s: Session, connack: ConnackMsg | undefined, first: boolean): void {
    const reqId = ++this.seq;
    if (s.presubReq !== undefined) {
      // A newer request supersedes one in flight; a CONNACK held for the old one stays held,
      // and an admin edit waiting for the old one now waits for this one.
      const old = this.waits.get(s.presubReq);
      this.waits.delete(s.presubReq);
      connack ??= old?.connack;
      for (const w of this.refreshWaits) if (w.pending.delete(s.presubReq)) w.pending.add(reqId);
    }
    s.presubReq = reqId;
    this.waits.set(reqId, { clientId: s.clientId, connack });
    this.core.toCoordinator({ t: 'presubscribe', reqId, shard: this.core.index, clientId: s.clientId, uid: s.uid!, ns: s.ns!, first });
  }

  /**
   * A takeover while the session's pre-subscription is in flight: the new connection's
   * CONNACK waits for it too. False when nothing is in flight.
   */
  holdConnack(s: Session, connack: ConnackMsg): boolean {
    const w = s.presubReq !== undefined ? this.waits.get(s.presubReq) : undefined;
    if (!w) return false;
    w.connack = { ...connack, sessionPresent: false };
    return true;
  }

  /** The session ends: nothing will answer for it. */
  sessionGone(s: Session): void {
    if (s.presubReq === undefined) return;
    this.waits.delete(s.presubReq);
    this.settled(s.presubReq);
    s.presubReq = undefined;
  }

  /** One request is done (applied, or moot): admin edits waiting for it may be answered. */
  private settled(reqId: number): void {
    for (let i = this.refreshWaits.length - 1; i >= 0; i--) {
      const w = this.refreshWaits[i]!;
      if (!w.pending.delete(reqId) || w.pending.size > 0) continue;
      this.refreshWaits.splice(i, 1);
      // Answered once every gateway routes what the edit added, like a SUBACK.
      this.core.afterRoutes(() => this.core.toCoordinator({ t: 'presubRefreshed', reqId: w.reqId, shard: this.core.index }));
    }
  }

  /** The coordinator's list: subscribe what is missing, drop what the broker added and is no longer listed. */
  private apply(m: Extract<ShardMsg, { t: 'presubscription' }>): void {
    const core = this.core;
    const w = this.waits.get(m.reqId);
    this.waits.delete(m.reqId);
    const s = core.sessions.get(m.clientId);
    if (!w || !s || s.presubReq !== m.reqId) return;
    s.presubReq = undefined;
    const want = new Set(m.topics);
    const added: string[] = [];
    const gone: string[] = [];
    const fresh: Fresh = [];
    for (const filter of m.topics) {
      if (s.subs.has(filter)) continue; // the client (or an earlier list) already holds it
      if (s.subs.size >= core.maxSubscriptionsPerClient) {
        core.metrics.inc('subscriptions_refused_total{reason="quota"}');
        continue;
      }
      const opts = presubOptions(m.qos);
      if (core.addSub(s, filter, opts)) added.push(filter);
      s.presub.add(filter);
      fresh.push({ filter, opts });
    }
    for (const filter of [...s.presub]) {
      if (want.has(filter)) continue;
      s.presub.delete(filter);
      s.subs.delete(filter);
      if (core.removeSub(s.clientId, filter)) gone.push(filter);
    }
    core.metrics.inc('presubscriptions_total', fresh.length);
    core.routeAdd(added);
    core.routeDel(gone);
    if (m.hold) {
      // The user's first session adopts what the holding session kept (holdNewUsers).
      this.holdWaits.set(m.reqId, { clientId: s.clientId, connack: w.connack, fresh });
      core.toShard(m.hold.shard, { t: 'holdTransfer', holdClientId: m.hold.clientId, toShard: core.index, toClientId: s.clientId, reqId: m.reqId });
      return;
    }
    this.finish(s, w.connack, fresh);
  }

  private finish(s: Session, connack: ConnackMsg | undefined, fresh: Fresh): void {
    const core = this.core;
    const retained = (connId: number): void => {
      if (fresh.length === 0) return;
      // After CONNACK (same queue, so in order): retained messages of the new subscriptions.
      core.afterRoutes(() => {
        if (s.isBoundTo(connId)) core.toCoordinator({ t: 'retainedRequest', shard: core.index, clientId: s.clientId, connId, subs: fresh });
      });
    };
    if (connack) {
      core.releaseConnack(s, connack);
      retained(connack.connId);
    } else if (s.binding && !s.connackPending) retained(s.binding.connId);
  }

  private refresh(uids: string[] | null, reqId?: number): void {
    const only = uids === null ? null : new Set(uids);
    const pending = new Set<number>();
    for (const s of this.core.sessions.values()) {
      if (s.uid === undefined || s.ns === undefined || s.hold) continue;
      if (only !== null && !only.has(s.uid)) continue;
      this.request(s, undefined, false);
      pending.add(s.presubReq!);
    }
    if (reqId === undefined) return;
    if (pending.size === 0) this.core.afterRoutes(() => this.core.toCoordinator({ t: 'presubRefreshed', reqId, shard: this.core.index }));
    else this.refreshWaits.push({ reqId, pending });
  }

  /** A directory user who never connected: a session that only keeps their messages. */
  private holdCreate(m: Extract<ShardMsg, { t: 'holdCreate' }>): void {
    const core = this.core;
    if (core.sessions.has(m.clientId)) return;
    const s = new Session(m.clientId, core.maxQueuedMessages);
    s.hold = true;
    s.uid = m.uid;
    s.expiry = 0xffffffff;
    core.sessions.set(m.clientId, s);
    const added: string[] = [];
    for (const filter of m.topics) {
      if (core.addSub(s, filter, presubOptions(m.qos))) added.push(filter);
      s.presub.add(filter);
    }
    core.routeAdd(added);
  }

  private holdTransfer(m: Extract<ShardMsg, { t: 'holdTransfer' }>): void {
    const s = this.core.sessions.get(m.holdClientId);
    const msgs: Array<{ msg: AppMessage; qos: QoS }> = [];
    if (s?.hold) {
      this.core.journal.reload(s); // held messages may be on disk only
      for (const q of s.queue.items()) msgs.push({ msg: q.msg, qos: q.qos });
      // Handed over, not lost: the queue goes (and its stored records) before destroy counts it.
      for (let q = s.queue.shift(); q; q = s.queue.shift()) this.core.journal.done(s, q);
      // Messages parked beyond its full queue (queueFullPolicy hold) follow, in order.
      for (const q of this.core.held?.take(s) ?? []) msgs.push({ msg: q.msg, qos: q.qos });
      this.core.destroy(s);
    }
    this.core.toShard(m.toShard, { t: 'heldMessages', reqId: m.reqId, clientId: m.toClientId, msgs });
  }

  private heldMessages(m: Extract<ShardMsg, { t: 'heldMessages' }>): void {
    const w = this.holdWaits.get(m.reqId);
    this.holdWaits.delete(m.reqId);
    const s = this.core.sessions.get(m.clientId);
    if (!w || !s) {
      if (m.msgs.length > 0) this.core.metrics.inc('messages_dropped_total{reason="session_ended"}', m.msgs.length);
      return;
    }
    // Held messages are older than anything the new session got since it subscribed.
    const dropped = s.queue.prepend(m.msgs.map((h) => ({ msg: h.msg, qos: h.qos, retain: false })));
    if (dropped > 0) this.core.metrics.inc('messages_dropped_total{reason="queue_full"}', dropped);
    this.core.journal.requeue(s);
    this.finish(s, w.connack, w.fresh);
  }
}
