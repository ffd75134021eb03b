/**
 * Session takeover across the nodes of a cluster: the shard's part (docs/cluster.md,
 * "Sessions across nodes"). A client id lives on one node at a time [MQTT-3.1.4-3].
 *
 * Claiming (a client connects here, and no connection of its id is bound on this shard):
 *   1. `claim` goes to the cluster link, which asks every other live node; the connection
 *      waits (no CONNACK yet).
 *   2. `claimed`: each node that had a session of the id kicked its connection (0x8E),
 *      published the will as on one node, and keeps the session *leaving*: still
 *      subscribed, still queueing. The newest copy wins (a live one, else the latest to
 *      go offline; a session of this shard takes part too). A clean start takes nothing.
 *   3. The winner's subscriptions are made here and routed (the NATS subscriptions
 *      confirmed), so from then on this node gets every new message for the session;
 *      only then does `claimFinish` ask the winner for its messages and the others to drop
 *      their copies.
 *   4. `claimDone`: the messages come in front of what arrived here meanwhile (inflight
 *      first, under their packet ids, resent with DUP [MQTT-4.4.0-1]; then the queue).
 *      A message that reached both nodes in the overlap of step 3 (same topic, payload and
 *      publisher) is kept once. Then the session opens as on one node.
 *
 * Releasing (another node claims an id of ours): `release` -> kick, `releaseReply` with
 * the session's subscriptions; `releaseFinish` -> hand the messages over or drop; a claim
 * that never finishes (the claiming node died) leaves the session here, offline.
 */
import type { ClaimAnswer, ClusterMsg, SessionMessages, ShardMsg, TakeoverMsg } from '../protocol/messages.js';
import { messageFingerprint } from '../store/message.js';
import type { QueuedMessage } from './message-queue.js';
import { Session } from './session.js';
import type { ShardCore } from './shard-core.js';

type ConnectMsg = Extract<ShardMsg, { t: 'connect' }>;
type DisconnectMsg = Extract<ShardMsg, { t: 'disconnect' }>;
export type ReleaseMsg = Extract<TakeoverMsg, { t: 'release' }>;

/** What the takeover needs of the shard beyond ShardCore. */
export interface TakeoverHost extends ShardCore {
  toCluster(m: ClusterMsg): void;
  /** Opens (or resumes) the session for a connection, as on one node. */
  openSession(m: ConnectMsg): void;
  /** Closes a connection with 0x8E; its gateway answers `kicked`. */
  kick(gw: number, connId: number, clientId: string): void;
  /** Kicks the session's live connection and runs `then` once its gateway confirmed (and the session went offline). */
  kickBound(s: Session, then: () => void): void;
  /** Refuses a connection: its session belongs to another user. */
  refuseOwner(m: ConnectMsg): void;
}

interface Claim {
  reqId: number;
  m: ConnectMsg;
  /** The connection went away while waiting (its DISCONNECT or loss). */
  lost?: DisconnectMsg;
  /** The session made here from the winner's subscriptions, waiting for its messages. */
  moving?: Session;
}

export class ClusterTakeover {
  private seq = 0;
  /** Connections waiting for their claim, by client id. */
  private readonly claims = new Map<string, Claim>();
  /** Sessions another node claimed, until it says take or drop. */
  private readonly leaving = new Map<string, { claim: number; from: string; timer: NodeJS.Timeout }>();

  constructor(
    private readonly host: TakeoverHost,
    /** How long a leaving session waits for `releaseFinish` before it stays here (ms). */
    private readonly leaveTimeoutMs: number,
  ) {}

  /** A claim or a hand-over involves this client id (the session must not be evicted meanwhile). */
  busy(clientId: string): boolean {
    return this.claims.has(clientId) || this.leaving.has(clientId);
  }

  receive(m: TakeoverMsg): void {
    switch (m.t) {
      case 'claimed':
        return this.onClaimed(m);
      case 'claimDone':
        return this.onClaimDone(m.reqId, m.clientId, m.state);
      case 'release':
        return this.onRelease(m);
      case 'releaseFinish':
        return this.onReleaseFinish(m);
    }
  }

  // ------------------------------------------------------------ claiming
  claim(m: ConnectMsg): void {
    const pending = this.claims.get(m.clientId);
    if (pending) {
      // A newer connection while the claim is out: the older one never gets its CONNACK.
      if (!pending.lost) this.host.kick(pending.m.gw, pending.m.connId, m.clientId);
      pending.m = m;
      pending.lost = undefined;
      return;
    }
    const reqId = ++this.seq;
    this.claims.set(m.clientId, { reqId, m });
    this.host.metrics.inc('cluster_claims_total');
    const owner = m.uid ?? m.username;
    this.host.toCluster({ t: 'claim', shard: this.host.index, reqId, clientId: m.clientId, clean: m.cleanStart, ...(owner !== undefined ? { owner } : {}) });
  }

  /** The waiting connection closed: it gets no session, but the claim still settles (and a moved session stays here, offline). */
  connectionLost(d: DisconnectMsg): boolean {
    const c = this.claims.get(d.clientId);
    if (!c || c.m.connId !== d.connId) return false;
    c.lost = d;
    return true;
  }

  private onClaimed(m: Extract<TakeoverMsg, { t: 'claimed' }>): void {
    const c = this.claims.get(m.clientId);
    if (!c || c.reqId !== m.reqId) return;
    const h = this.host;
    if (m.answers.some((a) => a.refused === 'owner')) {
      this.claims.delete(m.clientId);
      h.toCluster({ t: 'claimFinish', shard: h.index, reqId: m.reqId, claim: m.claim, clientId: m.clientId, winner: null });
      if (!c.lost) h.refuseOwner(c.m);
      return;
    }
    let winner: ClaimAnswer | undefined;
    for (const a of m.answers) if (a.has && a.meta && (winner === undefined || (a.lastSeen ?? 0) > (winner.lastSeen ?? 0))) winner = a;
    const local = h.sessions.get(m.clientId);
    const localSeen = local ? (local.binding ? Date.now() : (local.offlineSince ?? 0)) : -1;
    if (c.m.cleanStart || !winner || (winner.lastSeen ?? 0) < localSeen) {
      // Nothing to take: the other copies go (a clean start discards the session anyway).
      h.toCluster({ t: 'claimFinish', shard: h.index, reqId: m.reqId, claim: m.claim, clientId: m.clientId, winner: null });
      this.open(c);
      return;
    }
    // The winner's session is newer than any copy here, which goes.
    if (local) h.destroy(local);
    const meta = winner.meta!;
    const s = new Session(m.clientId, h.maxQueuedMessages);
    s.protocolVersion = meta.protocolVersion;
    s.expiry = meta.expiry;
    s.qos2In = meta.qos2In;
    s.username = meta.username;
    s.uid = meta.uid;
    s.ns = meta.ns;
    s.offlineSince = Date.now();
    for (const f of meta.presub) s.presub.add(f);
    h.sessions.set(s.clientId, s);
    const routes: string[] = [];
    for (const [filter, opts] of meta.subs) if (h.addSub(s, filter, opts)) routes.push(filter);
    h.journal.touch(s);
    h.routeAdd(routes);
    c.moving = s;
    h.metrics.inc('cluster_sessions_moved_in_total');
    // Once this node gets every new message for the session, the winner lets go of it.
    h.afterRoutes(() =>
      h.toCluster({ t: 'claimFinish', shard: h.index, reqId: m.reqId, claim: m.claim, clientId: m.clientId, winner: winner!.node }),
    );
  }

  private onClaimDone(reqId: number, clientId: string, state: SessionMessages | null): void {
    const c = this.claims.get(clientId);
    if (!c || c.reqId !== reqId) return;
    const s = c.moving;
    if (s && state && this.host.sessions.get(clientId) === s) this.merge(s, state);
    else if (s && !state) this.host.metrics.inc('cluster_errors_total{op="handover"}');
    this.open(c);
  }

  /** The claim is settled: the session opens for the connection, as on one node. */
  private open(c: Claim): void {
    this.claims.delete(c.m.clientId);
    this.host.openSession(c.m);
    if (!c.lost) return;
    // Its connection went while the claim was out: the session (moved here or new) goes offline as after any lost connection.
    const s = this.host.sessions.get(c.m.clientId);
    if (s?.isBoundTo(c.m.connId)) {
      s.qos2In = c.lost.qos2In;
      if (c.lost.expiry !== undefined) s.expiry = c.lost.expiry;
      this.host.detached(s, c.lost.publishWill);
    }
  }

  /**
   * The old node's messages go in front of what this node queued since it subscribed; a
   * message both nodes got in that overlap is kept once (same topic, payload, publisher).
   */
  private merge(s: Session, state: SessionMessages): void {
    const h = this.host;
    const here = new Map<string, number>();
    const key = (q: { msg: { topic: string; payload: Uint8Array; origin?: string }; qos: number }): string =>
      `${messageFingerprint(q.msg.topic, q.msg.payload)}/${q.msg.origin ?? ''}/${q.qos}`;
    for (const q of s.queue.items()) here.set(key(q), (here.get(key(q)) ?? 0) + 1);
    for (const e of state.inflight) {
      const entry = { msg: e.msg, qos: e.qos, retain: e.retain, subIds: e.subIds, state: e.state };
      s.inflight.restore(e.packetId, entry);
      h.journal.sent(s, entry, e.packetId);
      if (e.state === 'pubrel') h.journal.released(s, entry, e.packetId);
    }
    const older: QueuedMessage[] = [];
    let twins = 0;
    for (const q of state.queue) {
      const k = key(q);
      const n = here.get(k) ?? 0;
      if (n > 0) {
        here.set(k, n - 1);
        twins++;
        continue;
      }
      older.push(q.subIds ? { msg: q.msg, qos: q.qos, retain: q.retain, subIds: q.subIds } : { msg: q.msg, qos: q.qos, retain: q.retain });
    }
    if (twins > 0) h.metrics.inc('cluster_handover_duplicates_total', twins);
    const dropped = s.queue.prepend(older);
    if (dropped > 0) h.metrics.inc('messages_dropped_total{reason="queue_full"}', dropped);
    h.journal.requeue(s);
  }

  // ------------------------------------------------------------ releasing
  private onRelease(m: ReleaseMsg): void {
    const h = this.host;
    const reply = (answer: Omit<ClaimAnswer, 'node'>): void =>
      h.toCluster({ t: 'releaseReply', claim: m.claim, to: m.from, answer: { node: '', ...answer } });
    const s = h.sessions.get(m.clientId);
    // A connect here claims the same id at the same moment: each node keeps its own (rare; see docs/cluster.md).
    if (!s || this.claims.has(m.clientId) || s.hold) return reply({ has: false });
    if ((s.uid ?? s.username) !== m.owner) {
      h.metrics.inc('connections_rejected_total{reason="session_owner"}');
      return reply({ has: false, refused: 'owner' });
    }
    const answer = (): void => {
      const now = h.sessions.get(m.clientId);
      // Gone with its connection (Session Expiry 0), or a clean start discards it: nothing to hand over.
      if (!now) return reply({ has: false });
      if (m.clean) {
        h.destroy(now);
        return reply({ has: false });
      }
      this.leave(now, m.claim, m.from);
      reply({
        has: true,
        lastSeen: now.offlineSince ?? Date.now(),
        meta: {
          protocolVersion: now.protocolVersion,
          expiry: now.expiry,
          subs: [...now.subs],
          presub: [...now.presub],
          qos2In: now.qos2In,
          ...(now.username !== undefined ? { username: now.username } : {}),
          ...(now.uid !== undefined ? { uid: now.uid } : {}),
          ...(now.ns !== undefined ? { ns: now.ns } : {}),
        },
      });
    };
    h.metrics.inc('cluster_sessions_released_total');
    if (s.binding) {
      h.metrics.inc('session_takeovers_total');
      // lastSeen is now: it was live when the claim came.
      h.kickBound(s, () => {
        const now = h.sessions.get(m.clientId);
        if (now) now.offlineSince = Date.now();
        answer();
      });
    } else answer();
  }

  private leave(s: Session, claim: number, from: string): void {
    const old = this.leaving.get(s.clientId);
    if (old) clearTimeout(old.timer);
    const timer = setTimeout(() => {
      // The claiming node never settled (it died, or lost NATS): the session stays here.
      if (this.leaving.get(s.clientId)?.claim === claim) this.leaving.delete(s.clientId);
      this.host.metrics.inc('cluster_errors_total{op="handover_timeout"}');
    }, this.leaveTimeoutMs);
    timer.unref();
    this.leaving.set(s.clientId, { claim, from, timer });
  }

  private onReleaseFinish(m: Extract<TakeoverMsg, { t: 'releaseFinish' }>): void {
    const h = this.host;
    const l = this.leaving.get(m.clientId);
    const s = h.sessions.get(m.clientId);
    if (!l || l.claim !== m.claim || l.from !== m.from || !s || s.binding) {
      // Too late (it timed out and the client came back here), or never leaving.
      if (m.take) h.toCluster({ t: 'releaseDone', claim: m.claim, to: m.from, state: { inflight: [], queue: [] } });
      return;
    }
    clearTimeout(l.timer);
    this.leaving.delete(m.clientId);
    if (!m.take) {
      h.destroy(s);
      return;
    }
    h.journal.reload(s); // an offline session's messages may be on disk only
    const state: SessionMessages = { inflight: [], queue: [] };
    for (const [packetId, e] of s.inflight.entriesInOrder()) {
      state.inflight.push({ packetId, msg: e.msg, qos: e.qos, retain: e.retain, state: e.state, ...(e.subIds ? { subIds: e.subIds } : {}) });
      h.journal.done(s, e);
    }
    s.inflight.clear();
    const queued = [...s.queue.items(), ...(h.held?.take(s) ?? [])];
    for (const q of queued) {
      state.queue.push({ msg: q.msg, qos: q.qos, retain: q.retain, ...(q.subIds ? { subIds: q.subIds } : {}) });
      h.journal.done(s, q);
    }
    s.queue.clear();
    // Handed over, not lost: nothing is counted as dropped when the session goes.
    h.destroy(s);
    h.toCluster({ t: 'releaseDone', claim: m.claim, to: m.from, state });
  }

  close(): void {
    for (const l of this.leaving.values()) clearTimeout(l.timer);
    this.leaving.clear();
  }
}

