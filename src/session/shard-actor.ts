/**
 * A session shard: owns the sessions whose client id hashes to it, the trie of their
 * subscriptions, and the registry of which gateway holds each live client (takeover).
 *
 * Route table protocol: when this shard gains the first subscriber of a filter it tells
 * every gateway (`routeAdd`, numbered) and holds the SUBACK until every gateway has
 * acknowledged every routeAdd issued up to then; so once a client has its SUBACK, a
 * publish through any gateway is routed here. Losing the last subscriber sends
 * `routeDel` (no ack needed: a stale route only costs a wasted hop).
 */
import type { ActorRef, ActorSystem } from '../runtime/system.js';
import {
  CLUSTER,
  COORDINATOR,
  gatewayName,
  type ClusterMsg,
  shardName,
  type AppMessage,
  type CoordinatorMsg,
  type GatewayMsg,
  type QoS,
  type ShardMsg,
  type SubOptions,
} from '../protocol/messages.js';
import { PresubAgent } from './presub-agent.js';
import { adminOp } from './shard-admin.js';
import type { ShardCore } from './shard-core.js';
import { TopicTrie } from '../router/topic-trie.js';
import { Session } from './session.js';
import type { Metrics } from '../admin/metrics.js';
import type { Logger } from 'pino';
import { gatewayOf } from '../gateway/conn-id.js';
import { RC } from '../mqtt/reason-codes.js';
import { longTimeout } from './long-timeout.js';
import { Journal } from './journal.js';
import { messageFingerprint } from '../store/message.js';
import { restoreSessions } from './restore.js';
import type { Store } from '../store/types.js';
import { isSharedFilter } from '../mqtt/shared.js';
import { SharedGroups } from './shared-groups.js';
import { SharedMembers } from './shared-member.js';
import type { SharedStrategy } from './shared-strategy.js';
import { HeldPublishes, newWait, releaseWait, type AckWait } from './held-publishes.js';
import { ClusterTakeover, type TakeoverHost } from './cluster-takeover.js';
import { OutboundWindow } from './outbound-window.js';
import { SmallMap } from '../runtime/small-collections.js';

/** What a route target (a gateway, the cluster link) is told about this shard's filters. */
type RouteMsg = Extract<GatewayMsg, { t: 'routeAdd' | 'routeDel' | 'routeSnapshot' }>;

export interface ShardOptions {
  index: number;
  gateways: number;
  shards: number;
  maxInflight: number;
  maxQueuedMessages: number;
  maxSubscriptionsPerClient: number;
  /** Sessions this shard may hold (its share of limits.maxSessions). */
  maxSessions: number;
  /** Persistent sessions of anonymous clients this shard may hold (its share of limits.maxAnonymousSessions). */
  maxAnonymousSessions: number;
  /** IM layer on: new sessions of IM users are pre-subscribed, presence is reported. */
  im: boolean;
  /** Where persistent sessions are written (journal.ts); this shard is its only writer. */
  store: Store;
  /**
   * Offline this long (ms), a persistent session's messages leave memory and live only in
   * the store until its client is back (null: never, the memory store).
   */
  evictAfterMs: number | null;
  /** Durability async: the most a crash may lose, in ms of acknowledged messages (null: sync, nothing). */
  asyncLagMs: number | null;
  /** QoS 2 resend-check entries older than this (ms; the longest a session lives) are purged. */
  dedupMaxAgeMs: number;
  /** sharedSubscriptions.strategy (default round_robin): how a group's member is picked. */
  sharedStrategy?: SharedStrategy;
  /**
   * limits.queueFullPolicy hold (absent: drop): a message for a full queue waits beyond it,
   * at most `maxPerSession` per session and `maxAgeMs`, with its publisher's ack (held-publishes.ts).
   */
  hold?: { maxPerSession: number; maxAgeMs: number };
  /**
   * The node is part of a cluster (cluster.nats): the cluster link is one more route target,
   * and a connect claims its client id from the other nodes (cluster-takeover.ts);
   * `leaveTimeoutMs`: how long a session another node claimed waits for it to settle.
   */
  cluster?: { leaveTimeoutMs: number };
}

/** How often offline sessions are checked for eviction. */
const EVICT_SWEEP_MS = 5000;

type ConnectMsg = Extract<ShardMsg, { t: 'connect' }>;

interface Takeover {
  waitGw: number;
  waitConn: number;
  /** A connection here, or another node's claim (cluster-takeover.ts). */
  next: ConnectMsg | { t: 'release'; then: () => void };
}

/** Something that must wait until every gateway acknowledged the routes up to `needSeq`. */
interface PendingRouted {
  needSeq: number;
  run: () => void;
}


export class ShardActor implements TakeoverHost {
  readonly sessions = new Map<string, Session>();
  /** Connections waiting for the gateway of the connection they take over to confirm the kick. */
  private readonly takeovers = new Map<string, Takeover>();
  /** Filter -> its subscribers here (client id -> options); an IM inbox has one, kept without a Map. */
  private readonly trie = new TopicTrie<SmallMap<string, SubOptions>>();
  private readonly gateways: ActorRef<GatewayMsg>[] = [];
  private readonly routeTargets: ActorRef<RouteMsg>[];
  /** The node's NATS link (cluster.nats set): wills published here go to the other nodes too. */
  private readonly cluster?: ActorRef<ClusterMsg>;
  private readonly takeover?: ClusterTakeover;
  private readonly shards: ActorRef<ShardMsg>[] = [];
  private readonly coordinator: ActorRef<CoordinatorMsg>;
  private routeSeq = 0;
  private readonly ackedSeq: number[];
  private pending: PendingRouted[] = [];
  private readonly presub: PresubAgent;
  /** Queues, inflight windows and live deliveries (outbound-window.ts). */
  private readonly out: OutboundWindow;
  // Reused per publish: client id -> its subscription's options, or a Merged of several
  // (overlapping subscriptions). The options are stored as they are: no object per
  // recipient per message unless one client has two matching subscriptions.
  private readonly matched = new Map<string, SubOptions | Merged>();
  readonly journal: Journal;
  private readonly sweep?: NodeJS.Timeout;
  /** Persistent sessions of anonymous clients (limits.maxAnonymousSessions). */
  private anonymous = 0;
  /** Shared subscriptions: the groups this shard owns, and its sessions' memberships (shared-*.ts). */
  readonly groups: SharedGroups;
  readonly members: SharedMembers;
  /** queueFullPolicy hold: messages parked beyond full queues while their publishers wait (null: drop). */
  readonly held: HeldPublishes | null;

  constructor(
    private readonly opts: ShardOptions,
    system: ActorSystem,
    readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    for (let i = 0; i < opts.gateways; i++) this.gateways.push(system.ref(gatewayName(i)));
    // Route targets: the gateways, then the cluster link (index = gateway count) when the
    // node is part of a cluster: it subscribes on NATS to what this shard's sessions want.
    this.routeTargets = [...this.gateways];
    if (opts.cluster) {
      this.cluster = system.ref(CLUSTER);
      this.routeTargets.push(this.cluster);
      this.takeover = new ClusterTakeover(this, opts.cluster.leaveTimeoutMs);
    }
    for (let i = 0; i < opts.shards; i++) this.shards.push(system.ref(shardName(i)));
    this.coordinator = system.ref(COORDINATOR);
    this.ackedSeq = new Array(this.routeTargets.length).fill(0);
    const shard = this;
    this.out = new OutboundWindow({
      gateways: this.gateways,
      sessions: this.sessions,
      metrics,
      get journal() {
        return shard.journal;
      },
      get held() {
        return shard.held;
      },
      maxInflight: opts.maxInflight,
      storeKind: opts.store.kind,
    });
    this.presub = new PresubAgent(this);
    this.groups = new SharedGroups(this, opts.sharedStrategy ?? 'round_robin');
    this.members = new SharedMembers(this);
    this.held = opts.hold ? new HeldPublishes({ metrics, admit: (s, q) => this.out.admit(s, q) }, opts.hold.maxPerSession, opts.hold.maxAgeMs) : null;
    this.journal = new Journal(
      opts.store,
      (gw, ids) => this.gateways[gw]!.tell({ t: 'committed', ids }),
      (err) => {
        this.metrics.inc('store_errors_total');
        this.log.error({ err }, 'store commit failed: the publishes of that turn stay unacknowledged');
      },
      opts.asyncLagMs,
    );
    if (opts.evictAfterMs !== null) {
      this.sweep = setInterval(() => this.evictOffline(), Math.min(EVICT_SWEEP_MS, Math.max(100, opts.evictAfterMs)));
      this.sweep.unref();
    }
  }

  /** Counts (or stops counting) a session as an anonymous persistent one. */
  countAnonymous(s: Session, yes: boolean): void {
    if (s.anonymous === yes) return;
    s.anonymous = yes;
    this.anonymous += yes ? 1 : -1;
  }

  /** Offline sessions past evictAfterMs keep their messages in the store only. */
  private evictOffline(): void {
    this.journal.purgeInbound(Date.now() - this.opts.dedupMaxAgeMs);
    const limit = Date.now() - this.opts.evictAfterMs!;
    const eligible = (s: Session): boolean =>
      this.sessions.get(s.clientId) === s &&
      !s.binding &&
      !s.evicted &&
      s.stored &&
      s.offlineSince !== undefined &&
      s.offlineSince <= limit &&
      this.journal.persistent(s) &&
      !this.takeovers.has(s.clientId) &&
      !this.takeover?.busy(s.clientId);
    const candidates = [...this.sessions.values()].filter(eligible);
    if (candidates.length === 0) return;
    // Once what they wrote so far is committed: the store then has all of their messages.
    this.opts.store.commit().then(() => {
      let n = 0;
      for (const s of candidates) {
        if (!eligible(s)) continue;
        this.journal.evict(s);
        n++;
      }
      if (n > 0) this.metrics.inc('sessions_evicted_total', n);
    }, () => {});
  }

  /**
   * Rebuilds the sessions kept in the store (at start, and when this shard's thread is
   * restarted after a crash), before any gateway asks for the routes: the trie, and so
   * the route table, holds their subscriptions from the first publish on.
   */
  restore(): { sessions: number; messages: number; expired: number } {
    return restoreSessions(this, this.journal.load(), {
      onExpired: () => this.metrics.inc('sessions_expired_total'),
      afterOffline: (s, lost) => this.offlineTimers(s, lost),
    });
  }

  /** Graceful stop: everything written so far is committed, then the store is closed. */
  async close(): Promise<void> {
    // Sessions stay as they are in the store: no expiry or will may run during the stop.
    for (const s of this.sessions.values()) s.clearTimers();
    clearInterval(this.sweep);
    this.takeover?.close();
    this.held?.close();
    this.journal.flush();
    await this.opts.store.close();
  }

  // ------------------------------------------------------------ ShardCore (for presub-agent.ts, shard-admin.ts)
  get index(): number {
    return this.opts.index;
  }
  get maxSubscriptionsPerClient(): number {
    return this.opts.maxSubscriptionsPerClient;
  }
  get maxQueuedMessages(): number {
    return this.opts.maxQueuedMessages;
  }
  get shardCount(): number {
    return this.opts.shards;
  }
  /** A session of this shard subscribes `filter` (not counting shared subscriptions). */
  hasLocalFilter(filter: string): boolean {
    return this.trie.has(filter);
  }
  /** A `shareDeliver` for session `s`: like a delivery of its subscription, marked with the group's key. */
  deliverShared(s: Session, msg: AppMessage, qos: QoS, retain: boolean, subIds: number[] | undefined, share: string, wait?: AckWait): void {
    this.out.enqueue(s, msg, qos, retain, subIds, share, wait);
  }
  toCoordinator(m: CoordinatorMsg): void {
    this.coordinator.tell(m);
  }
  toShard(shard: number, m: ShardMsg): void {
    this.shards[shard]!.tell(m);
  }
  toGateway(gw: number, m: GatewayMsg): void {
    this.gateways[gw]!.tell(m);
  }
  toCluster(m: ClusterMsg): void {
    this.cluster!.tell(m);
  }
  groupsChanged(add: Array<[string, string]>, del: string[]): void {
    this.cluster?.tell({ t: 'shareGroups', shard: this.opts.index, add, del, full: false });
  }

  receive(m: ShardMsg): void {
    switch (m.t) {
      case 'publish':
        return this.onPublish(m);
      case 'released':
        return this.journal.releaseInbound(m.origin, m.packetId);
      case 'ack':
        return this.out.ack(m);
      case 'connect':
        return this.onConnect(m);
      case 'disconnect':
        return this.onDisconnect(m);
      case 'subscribe':
        return this.onSubscribe(m);
      case 'unsubscribe':
        return this.onUnsubscribe(m);
      case 'retained':
        return this.onRetained(m);
      case 'routeAck':
        return this.onRouteAck(m.gw, m.seq);
      case 'routeSync':
        return this.onRouteSync(m.gw);
      case 'kicked':
        return this.onKicked(m.connId, m.clientId);
      case 'claimed':
      case 'claimDone':
      case 'release':
      case 'releaseFinish':
        if (this.takeover) this.takeover.receive(m);
        return;
      case 'gatewayDown':
        return this.onGatewayDown(m.gw, m.before);
      case 'presubscription':
      case 'presubRefresh':
      case 'holdCreate':
      case 'holdTransfer':
      case 'heldMessages':
        return this.presub.receive(m);
      case 'admin':
        return adminOp(this, m.reqId, m.op);
      case 'shareJoin':
      case 'shareLeave':
      case 'shareState':
      case 'shareBounce':
      case 'shareRequeue':
      case 'shareCommitted':
      case 'shareSync':
        return this.groups.receive(m);
      case 'shareJoined':
      case 'shareDeliver':
      case 'shareResync':
        return this.members.receive(m);
      case 'peerDown':
        this.groups.peerDown(m.shard);
        return this.members.peerDown(m.shard);
      case 'shareRemote':
        return this.groups.publishTo(m.key, m.msg);
      case 'collectMetrics':
        return this.coordinator.tell({ t: 'metricsReport', reqId: m.reqId, snapshot: this.snapshot() });
    }
  }

  // ------------------------------------------------------------ sessions
  private onConnect(m: ConnectMsg): void {
    const owned = this.sessions.get(m.clientId);
    if (owned && !this.sameOwner(owned, m)) {
      // A session belongs to the user who made it: another user with the same client id
      // neither resumes it nor kicks its connection (that would hand over its messages).
      this.refuseOwner(m);
      return;
    }
    const pending = this.takeovers.get(m.clientId);
    if (pending) {
      // A third connection while a takeover is in flight: the second one never got its
      // CONNACK; it is closed too, and the newest one waits for the same handshake.
      // (Waiting for a kick another node asked for: this connection comes after it.)
      if (pending.next.t === 'connect') this.kick(pending.next.gw, pending.next.connId, m.clientId);
      else {
        const release = pending.next.then;
        pending.next = { t: 'release', then: () => (release(), this.onConnect(m)) };
        return;
      }
      pending.next = m;
      return;
    }
    const s = this.sessions.get(m.clientId);
    if (s?.binding) {
      // Session takeover [MQTT-3.1.4-3]: close the existing connection (v5 reason 0x8E)
      // and wait for its gateway to confirm before opening the session for the new one.
      // Links are FIFO per thread pair, so a DISCONNECT that gateway handled before the
      // kick reaches this shard before the confirmation: a normal DISCONNECT followed by
      // a quick reconnect through another gateway thread is never mistaken for a lost
      // connection (no spurious will, and its Session Expiry change is applied).
      this.metrics.inc('session_takeovers_total');
      this.takeovers.set(m.clientId, { waitConn: s.binding.connId, waitGw: s.binding.gw, next: m });
      this.kick(s.binding.gw, s.binding.connId, m.clientId);
      return;
    }
    // In a cluster the client id may live on another node: it is claimed first.
    if (this.takeover) this.takeover.claim(m);
    else this.openSession(m);
  }

  refuseOwner(m: ConnectMsg): void {
    this.metrics.inc('connections_rejected_total{reason="session_owner"}');
    this.gateways[m.gw]!.tell({ t: 'connack', connId: m.connId, sessionPresent: false, qos2In: [], refused: 'owner' });
  }

  /** Another node claims the session: its connection here is closed first (cluster-takeover.ts). */
  kickBound(s: Session, then: () => void): void {
    this.takeovers.set(s.clientId, { waitConn: s.binding!.connId, waitGw: s.binding!.gw, next: { t: 'release', then } });
    this.kick(s.binding!.gw, s.binding!.connId, s.clientId);
  }

  /**
   * Same authenticated identity as the session's owner: the IM uid when there is one (a
   * password login and a JWT login of one user share it), else the username.
   */
  private sameOwner(s: Session, m: ConnectMsg): boolean {
    return (s.uid ?? s.username) === (m.uid ?? m.username);
  }

  kick(gw: number, connId: number, clientId: string): void {
    this.gateways[gw]!.tell({
      t: 'kick',
      connId,
      clientId,
      reason: RC.SESSION_TAKEN_OVER,
      message: 'session taken over by another connection',
    });
  }

  /** The gateway closed a kicked connection (or no longer had it). */
  private onKicked(connId: number, clientId: string): void {
    const p = this.takeovers.get(clientId);
    if (!p || p.waitConn !== connId) return; // a superseded waiting connection
    this.takeovers.delete(clientId);
    const s = this.sessions.get(clientId);
    // No DISCONNECT came before the kick: the old connection ended abnormally, like any
    // lost connection. Its will goes out now (delay 0), with the session (expiry 0: a
    // 3.1.1 CleanSession=1 session is never resumed [MQTT-3.1.2-6]) or when a clean start
    // ends the session; a resume within the delay cancels it (openSession).
    if (s && s.isBoundTo(connId)) this.detached(s, true);
    if (p.next.t === 'release') p.next.then();
    else this.openSession(p.next);
  }

  openSession(m: ConnectMsg): void {
    let s = this.sessions.get(m.clientId);
    if (s && m.cleanStart) {
      // Clean start discards the existing session [MQTT-3.1.2-4]; the session ends, so a
      // will still waiting for its delay goes out now [MQTT-3.1.3-9].
      if (s.will && s.willTimer) this.publishWill(s);
      this.destroy(s);
      s = undefined;
    }
    const sessionPresent = s !== undefined;
    const anonymous = m.username === undefined && m.uid === undefined && m.expiry > 0;
    const full = this.sessions.size >= this.opts.maxSessions ? 'max_sessions' : anonymous && this.anonymous >= this.opts.maxAnonymousSessions ? 'max_anonymous_sessions' : null;
    if (!s && full) {
      this.metrics.inc(`connections_rejected_total{reason="${full}"}`);
      this.gateways[m.gw]!.tell({ t: 'connack', connId: m.connId, sessionPresent: false, qos2In: [], refused: 'quota' });
      return;
    }
    if (!s) {
      s = new Session(m.clientId, this.opts.maxQueuedMessages);
      this.sessions.set(m.clientId, s);
      this.countAnonymous(s, anonymous);
    }
    // A reconnect before the will delay or session expiry ran out cancels both.
    s.clearTimers();
    if (s.evicted) {
      const dropped = this.journal.reload(s);
      if (dropped > 0) this.metrics.inc('messages_dropped_total{reason="queue_full"}', dropped);
    }
    s.binding = { gw: m.gw, connId: m.connId };
    s.username = m.username;
    s.protocolVersion = m.protocolVersion;
    s.will = m.will;
    s.expiry = m.expiry;
    s.receiveMaximum = m.receiveMaximum;
    s.uid = m.uid;
    s.ns = m.ns;
    s.offlineSince = undefined;
    s.connackPending = true;
    this.journal.touch(s);
    this.members.online(s);
    const connack = { t: 'connack', connId: m.connId, sessionPresent, qos2In: s.qos2In } as const;
    if (!sessionPresent && this.opts.im && m.uid !== undefined && m.ns !== undefined) {
      // Pre-subscription (IM-PROTOCOL.md section 4): a user's new session holds its
      // topics before CONNACK, so a message sent right after login is never missed.
      this.presub.request(s, connack, true);
      return;
    }
    if (!this.presub.holdConnack(s, connack)) this.releaseConnack(s, connack);
  }

  /** CONNACK goes once the routes are everywhere; only then does the session deliver. */
  releaseConnack(s: Session, connack: Extract<GatewayMsg, { t: 'connack' }>): void {
    const gw = gatewayOf(connack.connId);
    this.afterRoutes(() => {
      if (this.sessions.get(s.clientId) !== s || !s.isBoundTo(connack.connId)) return;
      this.gateways[gw]!.tell(connack);
      s.connackPending = false;
      if (!s.present && s.uid !== undefined && s.ns !== undefined) {
        s.present = true;
        this.coordinator.tell({ t: 'presence', uid: s.uid, ns: s.ns, delta: 1, shard: this.opts.index });
      }
      if (connack.sessionPresent) this.out.resume(s);
      else this.out.pump(s);
    });
  }

  private onDisconnect(m: Extract<ShardMsg, { t: 'disconnect' }>): void {
    const s = this.sessions.get(m.clientId);
    if (!s || !s.isBoundTo(m.connId)) {
      this.takeover?.connectionLost(m); // or one still waiting for its claim
      return; // a connection already taken over
    }
    s.qos2In = m.qos2In;
    if (m.expiry !== undefined) s.expiry = m.expiry;
    this.detached(s, m.publishWill);
  }

  /** The session's connection is gone: will, then expiry. */
  detached(s: Session, publishWill: boolean): void {
    s.binding = null;
    s.connackPending = false;
    s.offlineSince = Date.now();
    this.leavePresence(s);
    // Its shared subscriptions' owners prefer other members and get back what it did not acknowledge.
    this.members.offline(s);
    // What went back to the groups left room for messages parked here.
    this.held?.refill(s);
    if (!publishWill) s.will = undefined; // normal DISCONNECT discards the will [MQTT-3.14.4-3]
    this.journal.touch(s);
    this.offlineTimers(s, 0);
  }

  /**
   * Will, then expiry, for a session that is offline since `elapsed` ms ago (0 at the
   * disconnect; more for a session read back from the store after a restart).
   */
  private offlineTimers(s: Session, elapsed: number): void {
    if (s.will) {
      const due = Math.min(s.will.delay, s.expiry) * 1000 - elapsed;
      if (s.will.delay === 0 || s.expiry === 0 || due <= 0) this.publishWill(s);
      else s.willTimer = longTimeout(() => this.publishWill(s), due);
    }
    if (s.expiry === 0) this.destroy(s);
    else if (s.expiry < 0xffffffff) s.expiryTimer = longTimeout(() => this.expire(s), Math.max(0, s.expiry * 1000 - elapsed));
  }

  private leavePresence(s: Session): void {
    if (!s.present) return;
    s.present = false;
    this.coordinator.tell({ t: 'presence', uid: s.uid!, ns: s.ns!, delta: -1, shard: this.opts.index });
  }

  private expire(s: Session): void {
    if (s.binding) return;
    this.metrics.inc('sessions_expired_total');
    if (s.will) this.publishWill(s); // the session ends before the will delay [MQTT-3.1.3-9]
    this.destroy(s);
  }

  private publishWill(s: Session): void {
    const will = s.will;
    s.will = undefined;
    s.willTimer?.cancel();
    s.willTimer = undefined;
    if (!will) return;
    this.journal.touch(s);
    this.metrics.inc('wills_published_total');
    this.publishInternal(will.msg);
  }

  /** A broker-made publish (wills): every shard matches it, the coordinator keeps it if retained. */
  private publishInternal(msg: AppMessage): void {
    for (const sh of this.shards) sh.tell({ t: 'publish', msg });
    if (msg.retain) this.coordinator.tell({ t: 'retain', msg });
    this.cluster?.tell({ t: 'forward', msg });
  }

  destroy(s: Session): void {
    s.clearTimers();
    this.leavePresence(s);
    this.presub.sessionGone(s);
    // Unacknowledged messages from shared subscriptions go to other members of their groups.
    this.members.ended(s);
    // Messages the client never acknowledged die with the session (a QoS 2 message past
    // PUBREC was delivered, so it does not count).
    let undelivered = s.queuedCount;
    if (s.evicted) undelivered += s.evicted.inflight;
    if (s.inflightSize > 0) for (const [, e] of s.inflight.entriesInOrder()) if (e.state === 'publish') undelivered++;
    if (undelivered > 0) this.metrics.inc('messages_dropped_total{reason="session_ended"}', undelivered);
    // Parked ones too; their publishers get their acks (as for a message in the queue).
    this.held?.drop(s, 'session_ended');
    const gone: string[] = [];
    for (const filter of s.subs.keys()) if (this.removeSub(s.clientId, filter)) gone.push(filter);
    s.subs.clear();
    this.countAnonymous(s, false);
    // Last: nothing may mark the session for rewriting after its record is deleted.
    this.journal.drop(s);
    // (Not made for that if the session never had any: inflightSize, queueSize.)
    if (s.inflightSize > 0) s.inflight.clear();
    if (s.queueSize > 0) s.queue.clear();
    if (this.sessions.get(s.clientId) === s) this.sessions.delete(s.clientId);
    this.routeDel(gone);
  }

  private onGatewayDown(gw: number, before: number): void {
    // Every connection of that gateway is gone: treat each as a lost connection.
    for (const s of [...this.sessions.values()]) {
      if (!s.binding || s.binding.gw !== gw || s.binding.connId >= before) continue;
      try {
        this.detached(s, true);
      } catch (err) {
        this.itemFailed('gateway_down', s, err, false);
      }
    }
    // Takeovers waiting on that gateway will never hear back: its connections are gone.
    for (const [clientId, p] of [...this.takeovers]) if (p.waitGw === gw && p.waitConn < before) this.onKicked(p.waitConn, clientId);
  }

  // ------------------------------------------------------------ subscriptions
  private onSubscribe(m: Extract<ShardMsg, { t: 'subscribe' }>): void {
    const s = this.sessions.get(m.clientId);
    if (!s || !s.isBoundTo(m.connId)) return;
    const codes: number[] = [];
    const added: string[] = [];
    const forRetained: Array<{ filter: string; opts: SubOptions }> = [];
    /** Joins of shared subscriptions: the SUBACK waits until their groups are routed. */
    const joins: number[] = [];
    for (const r of m.subs) {
      if (r.code >= 0x80) {
        codes.push(r.code);
        continue;
      }
      const existed = s.subs.has(r.filter);
      if (!existed && s.subs.size >= this.opts.maxSubscriptionsPerClient) {
        this.metrics.inc('subscriptions_refused_total{reason="quota"}');
        codes.push(s.protocolVersion === 5 ? RC.QUOTA_EXCEEDED : RC.FAILURE_V3);
        continue;
      }
      const opts: SubOptions = { qos: r.qos, noLocal: r.noLocal, retainAsPublished: r.retainAsPublished };
      if (m.subId !== undefined) opts.subId = m.subId;
      if (this.addSub(s, r.filter, opts)) added.push(r.filter);
      // The client now owns it: a later directory change does not take it away.
      s.presub.delete(r.filter);
      codes.push(r.qos);
      if (isSharedFilter(r.filter)) {
        // No retained messages for a shared subscription: they go to new Non-shared
        // Subscriptions only [MQTT 5.0 sections 3.3.1.3, 4.8.2].
        joins.push(this.members.join(s, r.filter));
        continue;
      }
      // Retain Handling: 0 always, 1 only for a new subscription, 2 never [MQTT-3.3.1-9..11].
      if (r.retainHandling === 0 || (r.retainHandling === 1 && !existed)) forRetained.push({ filter: r.filter, opts });
    }
    this.journal.touch(s);
    const gw = this.gateways[gatewayOf(m.connId)]!;
    this.routeAdd(added);
    this.afterRoutes(() =>
      this.members.ordered(s.clientId, joins, () => {
        gw.tell({ t: 'suback', connId: m.connId, packetId: m.packetId, codes });
        if (forRetained.length > 0)
          this.coordinator.tell({ t: 'retainedRequest', shard: this.opts.index, clientId: s.clientId, connId: m.connId, subs: forRetained });
      }),
    );
  }

  /** Records a subscription (replacing one with the same filter [MQTT-3.8.4-3]); true when the filter is new on this shard. */
  addSub(s: Session, filter: string, opts: SubOptions): boolean {
    s.subs.set(filter, opts);
    this.journal.touch(s);
    // A shared subscription is kept by the session only; its group's owner routes it (members.join).
    if (isSharedFilter(filter)) return false;
    let subscribers = this.trie.get(filter);
    // Routed already when a shared subscription group owned here is on the same filter.
    const fresh = !subscribers && !this.groups.hasFilter(filter);
    if (!subscribers) {
      subscribers = new SmallMap();
      this.trie.set(filter, subscribers);
    }
    subscribers.set(s.clientId, opts);
    return fresh;
  }

  routeAdd(filters: string[]): void {
    if (filters.length === 0) return;
    this.routeSeq++;
    for (const g of this.routeTargets) g.tell({ t: 'routeAdd', shard: this.opts.index, filters, seq: this.routeSeq });
  }

  /** Runs `run` once every gateway has every route issued so far (in issue order). */
  afterRoutes(run: () => void): void {
    this.pending.push({ needSeq: this.routeSeq, run });
    this.releaseSubacks();
  }

  private onUnsubscribe(m: Extract<ShardMsg, { t: 'unsubscribe' }>): void {
    const s = this.sessions.get(m.clientId);
    if (!s || !s.isBoundTo(m.connId)) return;
    const codes: number[] = [];
    const gone: string[] = [];
    for (const f of m.filters) {
      if (s.subs.delete(f)) {
        codes.push(RC.SUCCESS);
        if (this.removeSub(s.clientId, f)) gone.push(f);
      } else codes.push(RC.NO_SUBSCRIPTION_EXISTED);
    }
    this.routeDel(gone);
    // UNSUBACK has no route dependency, but it must not overtake a pending SUBACK of the
    // same client, so it takes the same queue (and waits behind one held for a shared join).
    const gw = this.gateways[gatewayOf(m.connId)]!;
    this.afterRoutes(() => this.members.ordered(s.clientId, [], () => gw.tell({ t: 'unsuback', connId: m.connId, packetId: m.packetId, codes })));
  }

  /** Removes one subscriber; true when the filter has no subscriber left on this shard. */
  removeSub(clientId: string, filter: string): boolean {
    const owner = this.sessions.get(clientId);
    if (owner) this.journal.touch(owner);
    if (isSharedFilter(filter)) {
      this.members.leave(clientId, filter);
      return false;
    }
    const subscribers = this.trie.get(filter);
    if (!subscribers) return false;
    subscribers.delete(clientId);
    if (subscribers.size > 0) return false;
    this.trie.delete(filter);
    // A shared subscription group owned here on the same filter keeps the route.
    return !this.groups.hasFilter(filter);
  }

  routeDel(filters: string[]): void {
    if (filters.length === 0) return;
    for (const g of this.routeTargets) g.tell({ t: 'routeDel', shard: this.opts.index, filters });
  }

  private onRouteAck(gw: number, seq: number): void {
    // Acks arrive in order per gateway; the smallest acknowledged seq over all gateways
    // is the newest route every gateway has.
    if (this.ackedSeq[gw]! < seq) this.ackedSeq[gw] = seq;
    this.releaseSubacks();
  }

  private releaseSubacks(): void {
    let min = Infinity;
    for (const a of this.ackedSeq) if (a < min) min = a;
    let i = 0;
    while (i < this.pending.length && this.pending[i]!.needSeq <= min) {
      this.pending[i++]!.run();
    }
    if (i > 0) this.pending = this.pending.slice(i);
  }

  private onRouteSync(gw: number): void {
    const filters: string[] = [];
    for (const [f] of this.trie.filters()) filters.push(f);
    for (const f of this.groups.filters()) if (!this.trie.has(f)) filters.push(f);
    this.ackedSeq[gw] = this.routeSeq; // the snapshot carries every route up to now
    this.routeTargets[gw]!.tell({ t: 'routeSnapshot', shard: this.opts.index, filters });
    // The cluster link also learns the groups owned here, for the other nodes.
    if (this.cluster && gw === this.opts.gateways) this.cluster.tell({ t: 'shareGroups', shard: this.opts.index, add: this.groups.keys(), del: [], full: true });
    this.releaseSubacks();
  }

  /**
   * One item of a message from another thread (a recipient of a publish, a retained message,
   * a session of a lost gateway) threw: logged and counted, and the other items go on.
   */
  private itemFailed(op: string, s: Session, err: unknown, message: boolean): void {
    this.metrics.inc(`internal_errors_total{op="${op}"}`);
    if (message) this.metrics.inc('messages_dropped_total{reason="internal_error"}');
    this.log.error({ err, clientId: s.clientId, op }, 'failed on one item of a message; the others go on');
  }

  // ------------------------------------------------------------ delivery
  private onPublish(m: Extract<ShardMsg, { t: 'publish' }>): void {
    const msg = m.msg;
    const key = m.dedup && msg.origin !== undefined ? ([msg.origin, m.dedup.packetId, m.dedup.part] as [string, number, number]) : undefined;
    const fp = key ? messageFingerprint(msg.topic, msg.payload) : 0;
    const ackGw = m.ack !== undefined && msg.originConn !== undefined ? gatewayOf(msg.originConn) : -1;
    let answer = ackGw >= 0;
    // queueFullPolicy hold: copies parked beyond full queues keep the answer back until
    // they entered their queues (held-publishes.ts).
    const wait = answer && this.held ? newWait(() => this.journal.commitToken(ackGw, m.ack!)) : undefined;
    if (key && this.journal.isDuplicate(key, fp)) {
      // A QoS 2 PUBLISH resent after a crash that this shard took in already [MQTT-4.3.3-10].
      this.metrics.inc('messages_duplicate_dropped_total');
    } else {
      let delivered = this.deliver(msg, wait);
      if (this.groups.active && !m.remote) {
        // Shared subscription groups owned here: one member each, on its own shard. (A
        // message from another node reaches a group here only as `shareRemote`.) With
        // durability sync a waiting publisher is answered once those shards committed their
        // copies too (async: as usual, each shard's own lag bound covers its copy); with
        // hold, once they queued them (which a member answers after its commit).
        const waitMembers = answer && (this.opts.asyncLagMs == null || wait !== undefined);
        const shared = this.groups.publish(msg, waitMembers ? () => (wait ? releaseWait(wait) : this.journal.commitToken(ackGw, m.ack!)) : undefined);
        // Never called back before publish() returns (the members answer in later messages).
        if (shared.waiting) {
          if (wait) wait.left++;
          else answer = false;
        }
        delivered ||= shared.delivered;
      }
      if (delivered && key) this.journal.takenIn(key, fp);
    }
    // Answered once durable (group commit at the end of the turn), delivered or not.
    if (answer) {
      if (wait) releaseWait(wait);
      else this.journal.commitToken(ackGw, m.ack!);
    }
  }

  /** Matches and delivers (or queues) a message; false when no session here wanted it. */
  private deliver(msg: AppMessage, wait?: AckWait): boolean {
    const matched = this.matched;
    this.trie.match(msg.topic, (subscribers) => {
      for (const [clientId, o] of subscribers) {
        const prev = matched.get(clientId);
        if (prev === undefined) matched.set(clientId, o);
        else {
          // Overlapping subscriptions: one delivery at the highest QoS [MQTT-3.3.5-1], with
          // every matching Subscription Identifier [MQTT-3.3.4-3], each once (the filters of
          // one SUBSCRIBE share its identifier).
          const m = prev instanceof Merged ? prev : new Merged(prev);
          m.add(o);
          if (m !== prev) matched.set(clientId, m);
        }
      }
    });
    if (matched.size === 0) return false;
    this.out.group(msg, () => this.deliverMatched(msg, wait));
    return true;
  }

  private deliverMatched(msg: AppMessage, wait: AckWait | undefined): void {
    const matched = this.matched;
    for (const [clientId, d] of matched) {
      const m = d instanceof Merged ? d : undefined;
      // No Local: not back to the publishing client [MQTT-3.8.3-3]; a rule-made copy
      // (carbon) is not sent back to the session that published the original either.
      if (((m ? m.nl : (d as SubOptions).noLocal) || msg.carbon) && msg.origin === clientId) continue;
      const s = this.sessions.get(clientId);
      if (!s) continue;
      const qos = (msg.qos < d.qos ? msg.qos : d.qos) as QoS;
      const rap = m ? m.rap : (d as SubOptions).retainAsPublished;
      const subId = (d as SubOptions).subId;
      const subIds = m ? m.subIds : subId !== undefined ? [subId] : undefined;
      // Retain is cleared on live delivery unless Retain As Published [MQTT-3.3.1-12].
      // One recipient's failure never costs the others (nor leaves `matched` dirty).
      try {
        this.out.enqueue(s, msg, qos, rap ? msg.retain : false, subIds, undefined, wait);
      } catch (err) {
        this.itemFailed('deliver', s, err, true);
      }
    }
    matched.clear();
  }

  private onRetained(m: Extract<ShardMsg, { t: 'retained' }>): void {
    const s = this.sessions.get(m.clientId);
    if (!s || !s.isBoundTo(m.connId)) return;
    for (const { msg, opts } of m.msgs) {
      const qos = (msg.qos < opts.qos ? msg.qos : opts.qos) as QoS;
      // Retained messages sent because of a new subscription keep RETAIN=1 [MQTT-3.3.1-8].
      try {
        this.out.enqueue(s, msg, qos, true, opts.subId !== undefined ? [opts.subId] : undefined);
      } catch (err) {
        this.itemFailed('retained', s, err, true);
      }
    }
  }

  // ------------------------------------------------------------ metrics
  private snapshot() {
    let subscriptions = 0;
    let queued = 0;
    let inflight = 0;
    let online = 0;
    let evicted = 0;
    for (const s of this.sessions.values()) {
      subscriptions += s.subs.size;
      queued += s.queuedCount;
      inflight += s.inflightCount;
      if (s.binding) online++;
      if (s.evicted) evicted++;
    }
    this.metrics.set('sessions_evicted', evicted);
    this.metrics.set('sessions', this.sessions.size);
    this.metrics.set('sessions_online', online);
    this.metrics.set('subscriptions', subscriptions);
    this.metrics.set('messages_queued', queued);
    this.metrics.set('messages_inflight', inflight);
    if (this.held) this.metrics.set('messages_held', this.held.size);
    const shared = this.groups.size;
    this.metrics.set('shared_groups', shared.groups);
    this.metrics.set('shared_members', shared.members);
    const st = this.opts.store.stats();
    this.metrics.set('store_bytes', st.bytes);
    this.metrics.set('store_entries', st.entries);
    return this.metrics.snapshot();
  }
}

/** The delivery options of one client with several subscriptions matching a message. */
class Merged {
  qos: QoS;
  rap: boolean;
  nl: boolean;
  subIds: number[] | undefined;

  constructor(o: SubOptions) {
    this.qos = o.qos;
    this.rap = o.retainAsPublished;
    this.nl = o.noLocal;
    this.subIds = o.subId !== undefined ? [o.subId] : undefined;
  }

  add(o: SubOptions): void {
    if (o.qos > this.qos) this.qos = o.qos;
    this.rap ||= o.retainAsPublished;
    this.nl &&= o.noLocal;
    if (o.subId !== undefined && !this.subIds?.includes(o.subId)) (this.subIds ??= []).push(o.subId);
  }
}
