/**
 * A gateway: the connections of one I/O thread. It frames and parses incoming bytes,
 * runs the pure channel handlers and carries out their effects: writes (batched per
 * socket per event-loop turn), messages to the session shards, routing of publishes
 * through its route-table replica, closing. See docs/architecture.md, "publish path".
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { Logger } from 'pino';
import type { ActorRef, ActorSystem } from '../runtime/system.js';
import {
  CLUSTER,
  COORDINATOR,
  shardName,
  type AppMessage,
  type ClusterMsg,
  type CoordinatorMsg,
  type QoS,
  type GatewayMsg,
  type ShardMsg,
} from '../protocol/messages.js';
import type { Metrics } from '../admin/metrics.js';
import { CONNACK_V3, RC } from '../mqtt/reason-codes.js';
import { pushFrames, type FrameError } from '../mqtt/framer.js';
import { parseHotPacket } from '../mqtt/fast-parse.js';
import { afterAuth, handleIn, newChannelState, sessionReady, sessionRefused, type ChannelEnv, type Effect } from '../channel/index.js';
import { authStep, methodError, reauthExpired } from '../channel/auth.js';
import type { AuthMethods } from '../auth/enhanced/method.js';
import { EnhancedAuthExchanges } from './enhanced-auth.js';
import { isTopicLevelId } from '../im/topics.js';
import type { AuthResult } from '../channel/connect.js';
import type { ConnIO, ConnSink } from '../transport/connection.js';
import { RouteTable } from './route-table.js';
import { Conn, connClock, type CloseOptions } from './conn.js';
import { Delivery } from './delivery.js';
import { Replies } from '../runtime/replies.js';
import { GENERATION_SPAN, makeConnId } from './conn-id.js';
import { applyRules, compileRules, type CompiledRules } from '../im/rules.js';
import type { ImUser } from '../im/im-acl.js';
import type { AckPacket } from '../channel/types.js';
import { subackReasonString } from '../channel/problem-info.js';
import { CLUSTER_BIT, COORDINATOR_BIT, PendingAcks, firstAckId, type PendingAck } from './pending-acks.js';
import type { QueueFullPolicy } from '../config/schema.js';

export interface GatewayOptions {
  index: number;
  shards: number;
  maxConnections: number;
  socketBufferHighWater: number;
  maxPacketSize: number;
  /** Seconds to complete CONNECT/CONNACK before the socket is closed (enhanced authentication included). */
  connectTimeout: number;
  /** MQTT 5 enhanced authentication methods offered (auth.enhanced; src/auth/enhanced/registry.ts). */
  authMethods?: AuthMethods;
  /** Seconds a re-authentication may take (auth.enhanced.reauthTimeout; default 30). */
  reauthTimeout?: number;
  /** Restarts of the gateway group so far: connection ids of each generation are distinct. */
  generation: number;
  /** Node-wide open-connection counter shared by every gateway (Int32Array over a SAB). */
  connCounter: Int32Array;
  /**
   * Store durability: 'sync' and 'async' hold PUBACK/PUBREC until every destination
   * answered (pending-acks.ts; an async shard answers before its commit while its store
   * keeps up) and tag QoS 2 publishes so shards can drop a resend after a crash.
   */
  durability: 'sync' | 'async' | 'memory';
  /**
   * limits.queueFullPolicy (default drop): with hold, PUBACK/PUBREC are held until the shards
   * answered with any durability, memory too: a message for a full queue is answered only
   * once it entered the queue (src/session/held-publishes.ts).
   */
  queueFullPolicy?: QueueFullPolicy;
  /** The node is part of a cluster (cluster.nats): every routed message also goes to the cluster link. */
  cluster?: boolean;
}

/** The outcome of CONNECT authentication; `uid` (and token hints) for an identified user. */
export interface AuthOutcome {
  result: AuthResult;
  uid?: string;
  ns?: string;
  groups?: string[];
}

/** `certified`: the username is the subject CN of the connection's verified client certificate (ConnIO.certUsername). */
export type Authenticate = (username: string | undefined, password: Buffer | undefined, certified?: boolean) => Promise<AuthOutcome>;

const NO_GROUPS: readonly string[] = Object.freeze([]);

/**
 * mqtt-packet's parser with the fields parseFrame uses: `settings` (the protocol level; a
 * CONNECT replaces it with itself, never changes it) and `error` (set by a failed parse).
 */
type SharedParser = ReturnType<typeof mqttPacket.parser> & { settings: object; error: Error | null };
const PARSE_BEFORE_CONNECT: object = Object.freeze({});
const PARSE_AS: Record<3 | 4 | 5, object> = {
  3: Object.freeze({ protocolVersion: 3 }),
  4: Object.freeze({ protocolVersion: 4 }),
  5: Object.freeze({ protocolVersion: 5 }),
};

/** Packets a client may send after CONNECT before CONNACK; held until the session is open. */
const MAX_EARLY_PACKETS = 64;



/** Effect lists one connection may have waiting for a restarting shard before it is closed. */
const MAX_DEFERRED = 1000;

export class GatewayActor {
  private readonly conns = new Map<number, Conn>();
  private readonly routes = new RouteTable();
  private readonly shardRefs: ActorRef<ShardMsg>[] = [];
  private readonly coordinator: ActorRef<CoordinatorMsg>;
  private readonly cluster?: ActorRef<ClusterMsg>;
  private connCounter: number;
  private paused = false;
  private accepting = true;
  private readonly timer: NodeJS.Timeout;
  /** Requests to the coordinator, one reply each. */
  private readonly metricsReplies = new Replies<string>();
  private snapshotsPending = 0;
  /** Compiled copy of the coordinator's routing rules (evaluated on the publish path). */
  private rules: CompiledRules = compileRules([]);
  private rulesReceived = false;
  private readonly imReplies = new Replies<ImUser>();
  private readonly adminReplies = new Replies<{ status: number; body: unknown }>();
  /** Shards whose thread is restarting (bits): nothing that needs them is taken meanwhile. */
  private downShards = 0;
  /** Durability sync/async, queueFullPolicy hold: acks waiting for the shards' answers. */
  private readonly acks: PendingAcks;
  /** PUBACK/PUBREC wait for the destinations' `committed` (durability sync/async, or queueFullPolicy hold). */
  private readonly holdAcks: boolean;
  /** Enhanced authentication exchanges under way, per connection (the methods' state between steps). */
  private readonly exchanges: EnhancedAuthExchanges;
  /** logFailure(): when each kind of failure was last logged, and how many since were not. */
  private readonly failureLog: Record<string, { at: number; skipped: number }> = Object.create(null);
  private readyResolve?: () => void;
  /** Resolves once every shard sent its route snapshot: only then is it safe to accept. */
  readonly ready: Promise<void>;
  /** The outbound path: deliveries, encoding, write batching (delivery.ts). */
  private readonly out: Delivery;
  /** mqtt-packet's parser, shared by the connections (parseFrame), and the connection it parses for. */
  private parser: SharedParser | null = null;
  private parsing: Conn | null = null;

  constructor(
    private readonly opts: GatewayOptions,
    private readonly system: ActorSystem,
    private readonly env: ChannelEnv,
    private readonly authenticate: Authenticate,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    for (let i = 0; i < opts.shards; i++) this.shardRefs.push(system.ref(shardName(i)));
    this.coordinator = system.ref(COORDINATOR);
    if (opts.cluster) this.cluster = system.ref(CLUSTER);
    this.connCounter = opts.generation * GENERATION_SPAN;
    this.holdAcks = opts.durability !== 'memory' || opts.queueFullPolicy === 'hold';
    this.acks = new PendingAcks((a) => this.releaseAck(a), firstAckId(opts.generation));
    this.exchanges = new EnhancedAuthExchanges(opts.authMethods ?? new Map());
    this.out = new Delivery({
      conns: this.conns,
      metrics,
      socketBufferHighWater: opts.socketBufferHighWater,
      tellShard: (c, m) => this.tellShard(c, m),
      logFailure: (kind, err, data) => this.logFailure(kind, err, data),
      close: (c, o) => this.close(c, o),
    });
    this.snapshotsPending = opts.shards;
    this.ready = new Promise((r) => (this.readyResolve = r));
    for (const s of this.shardRefs) s.tell({ t: 'routeSync', gw: opts.index });
    this.coordinator.tell({ t: 'imHello', gw: opts.index });
    this.timer = setInterval(() => this.tick(), 500);
    this.timer.unref();
  }

  // ------------------------------------------------------------ actor messages
  receive(m: GatewayMsg): void {
    switch (m.t) {
      case 'deliver':
        return this.out.deliver(m.connId, m.out);
      case 'committed':
        return this.acks.committed(m.ids);
      case 'deliverGroup':
        return this.out.deliverGroup(m.msg, m.items);
      case 'connack': {
        const c = this.conns.get(m.connId);
        if (!c) return;
        if (m.refused) return this.apply(c, sessionRefused(c.st, m.refused));
        // A new session: the client resends no earlier QoS 2 PUBLISH, so the shards forget
        // the packet ids it used before (their resend check). Before its first publish,
        // on the same links.
        if (!m.sessionPresent && this.holdAcks) this.broadcast({ t: 'released', origin: c.st.clientId, packetId: null });
        this.apply(c, sessionReady(c.st, m.sessionPresent, m.qos2In, this.env));
        // Packets the client sent before CONNACK now run in order.
        const early = c.early;
        c.early = null;
        try {
          if (early) for (const p of early) if (!c.isClosed) this.apply(c, handleIn(c.st, p, this.env));
        } catch (e) {
          this.connFailed(c, 'packet', e);
        }
        return;
      }
      case 'suback': {
        const c = this.conns.get(m.connId);
        if (!c || c.isClosed) return;
        // A refused filter is explained in the Reason String (unless Request Problem Information is 0).
        const reasonString = subackReasonString(c.st, m.codes);
        this.out.write(c, { cmd: 'suback', messageId: m.packetId, granted: m.codes, ...(reasonString !== undefined ? { properties: { reasonString } } : {}) });
        return;
      }
      case 'unsuback': {
        const c = this.conns.get(m.connId);
        if (!c || c.isClosed) return;
        const reasonString = subackReasonString(c.st, m.codes);
        // 3.1.1 UNSUBACK has no reason codes.
        if (c.st.version !== 5) this.out.write(c, { cmd: 'unsuback', messageId: m.packetId } as Packet);
        else this.out.write(c, { cmd: 'unsuback', messageId: m.packetId, granted: m.codes, ...(reasonString !== undefined ? { properties: { reasonString } } : {}) });
        return;
      }
      case 'kick': {
        const c = this.conns.get(m.connId);
        if (c) this.close(c, { reason: m.reason, why: m.message, notifyShard: false });
        // Confirm after closing: the shard opens the new connection's session only then.
        this.shardRefs[this.env.shardOf(m.clientId)]!.tell({ t: 'kicked', connId: m.connId, clientId: m.clientId });
        return;
      }
      case 'throttle': {
        const c = this.conns.get(m.connId);
        if (!c || c.isClosed) return;
        // TCP only: a WebSocket cannot stop reading (its frames are bounded instead).
        this.metrics.inc('publishers_throttled_total');
        c.io.pause();
        setTimeout(() => {
          if (this.resumable(c)) c.io.resume();
        }, m.ms).unref();
        return;
      }
      case 'routeAdd':
        this.routes.add(m.shard, m.filters);
        this.shardRefs[m.shard]!.tell({ t: 'routeAck', gw: this.opts.index, seq: m.seq });
        return;
      case 'routeDel':
        this.routes.remove(m.shard, m.filters);
        return;
      case 'routeSnapshot': {
        const wasDown = (this.downShards & (1 << m.shard)) !== 0;
        this.downShards &= ~(1 << m.shard);
        this.routes.dropShard(m.shard);
        this.routes.add(m.shard, m.filters);
        if (wasDown) this.resumeDeferred();
        this.snapshotsPending--;
        return this.checkReady();
      }
      case 'imRules':
        this.rules = compileRules(m.rules);
        this.rulesReceived = true;
        this.coordinator.tell({ t: 'imRulesApplied', gw: this.opts.index, version: m.version });
        return this.checkReady();
      case 'imProfile':
        return this.imReplies.reply(m.reqId, m.user);
      case 'imUserUpdate':
        // Directory change: live connections of that user see their new groups at once.
        for (const c of this.conns.values()) if (c.st.im?.uid === m.user.uid) c.st.im = m.user;
        return;
      case 'adminReply':
        return this.adminReplies.reply(m.reqId, { status: m.status, body: m.body });
      case 'shardDown':
        return this.onShardDown(m.shard);
      case 'shardUp':
        // Back, with its sessions restored: its route snapshot replaces the old routes.
        return this.shardRefs[m.shard]!.tell({ t: 'routeSync', gw: this.opts.index });
      case 'metricsText':
        return this.metricsReplies.reply(m.reqId, m.text);
      case 'collectMetrics':
        return this.coordinator.tell({ t: 'metricsReport', reqId: m.reqId, snapshot: this.snapshot() });
    }
  }

  /** Accept clients only once every shard's routes and the routing rules are here. */
  private checkReady(): void {
    if (this.snapshotsPending <= 0 && this.rulesReceived) this.readyResolve?.();
  }

  // ------------------------------------------------------------ connections
  /** Called by the transports for every accepted connection. */
  accept = (io: ConnIO): ConnSink | null => {
    if (!this.accepting) return null;
    // Node-wide connection limit, shared by every gateway through one atomic counter.
    if (Atomics.add(this.opts.connCounter, 0, 1) >= this.opts.maxConnections) {
      Atomics.sub(this.opts.connCounter, 0, 1);
      this.metrics.inc('connections_rejected_total{reason="max_connections"}');
      return null;
    }
    const id = makeConnId(++this.connCounter, this.opts.index);
    const now = connClock();
    const c = new Conn(this, id, io, newChannelState(id), now, now);
    this.conns.set(id, c);
    this.metrics.inc(`connections_total{transport="${io.transport}"}`);
    if (this.paused) io.pause();
    return c;
  };

  // ConnHost: a connection's transport events (the Conn is the transport's ConnSink).
  /** MQTT over WebSocket is binary frames only; a text frame closes [MQTT-6.0.0-1]. */
  connTextFrame(c: Conn): void {
    this.close(c, { reason: RC.MALFORMED_PACKET, why: 'websocket_text_frame', counter: 'protocol_errors_total{reason="websocket_text_frame"}' });
  }

  connData(c: Conn, chunk: Buffer): void {
    if (c.isClosed) return;
    c.lastRead = connClock();
    this.metrics.inc('bytes_received_total', chunk.length);
    let err: FrameError | null;
    try {
      err = pushFrames(c, this.opts.maxPacketSize, chunk, (frame) => {
        if (c.isClosed) return;
        // Publishes and acks of a live connection skip the general parser (fast-parse.ts).
        const hot = c.st.phase === 'connected' ? parseHotPacket(frame, c.st.version) : undefined;
        if (hot) return this.onPacket(c, hot);
        this.parseFrame(c, frame);
      });
    } catch (e) {
      // A bug met on this connection's input: it alone is closed, the thread goes on (an
      // exception here would otherwise end the thread and every connection on it).
      return this.connFailed(c, 'packet', e);
    }
    if (err === 'too_large')
      this.close(c, { reason: RC.PACKET_TOO_LARGE, why: 'packet_too_large', counter: 'protocol_errors_total{reason="packet_too_large"}' });
    else if (err === 'bad_length')
      this.close(c, { reason: RC.MALFORMED_PACKET, why: 'bad_remaining_length', counter: 'packets_malformed_total' });
  }

  /**
   * A frame the hand parser does not take (CONNECT, SUBSCRIBE, anything with properties or
   * malformed) goes to mqtt-packet's parser. Frames are whole packets, so a parser holds
   * nothing between them, and one serves every connection of the gateway: an idle
   * connection keeps none (with its streams and buffer list, about 1.7 KB), and a CONNECT
   * makes none (about 2 KB of garbage each).
   */
  private parseFrame(c: Conn, frame: Buffer): void {
    // Re-entered from a packet's handler (not expected): a parser of its own.
    if (this.parsing !== null) return void this.newParser(() => c).parse(frame);
    const parser = (this.parser ??= this.newParser(() => this.parsing!));
    // Before CONNECT the parser learns the protocol level from it; later it is told.
    parser.settings = c.st.phase === 'new' ? PARSE_BEFORE_CONNECT : PARSE_AS[c.st.version];
    this.parsing = c;
    let left = -1;
    try {
      left = parser.parse(frame);
    } finally {
      this.parsing = null;
      // A CONNECT made itself the settings: not kept (its password) until the next frame.
      parser.settings = PARSE_BEFORE_CONNECT;
      // Used again only from a packet boundary: after an error, an exception or bytes left
      // over (none expected), the next frame gets a new parser.
      if (left !== 0 || parser.error) this.parser = null;
    }
  }

  private newParser(connOf: () => Conn): SharedParser {
    const parser = mqttPacket.parser() as SharedParser;
    parser.on('packet', (p: Packet) => this.onPacket(connOf(), p));
    parser.on('error', (err: Error) => this.parseFailed(connOf(), err));
    return parser;
  }

  private parseFailed(c: Conn, err: Error): void {
    if (c.st.phase === 'new' && err.message === 'Invalid protocol version') {
      // An unsupported Protocol Level gets CONNACK 0x01, then the close [MQTT-3.1.2-2].
      this.out.write(c, { cmd: 'connack', sessionPresent: false, returnCode: CONNACK_V3.UNACCEPTABLE_PROTOCOL });
      this.close(c, { why: 'unsupported_protocol_version', counter: 'protocol_errors_total{reason="unsupported_protocol_version"}' });
      return;
    }
    this.close(c, { reason: RC.MALFORMED_PACKET, why: `malformed: ${err.message}`, counter: 'packets_malformed_total' });
  }

  private onPacket(c: Conn, p: Packet): void {
    if (c.isClosed) return;
    // During an enhanced-authentication exchange the channel takes AUTH and DISCONNECT and
    // refuses the rest [MQTT-3.1.2-30] (channel/auth.ts); nothing waits.
    const exchange = c.st.phase === 'auth' && c.st.enhanced !== undefined;
    if ((c.st.phase === 'auth' || c.st.phase === 'connecting') && p.cmd !== 'connect' && !exchange) {
      // [MQTT-3.1.4-?] clients may send packets right after CONNECT; hold them (bounded).
      const early = (c.early ??= []);
      if (early.length >= MAX_EARLY_PACKETS) {
        this.close(c, { reason: RC.RECEIVE_MAXIMUM_EXCEEDED, why: 'too_many_packets_before_connack' });
        return;
      }
      early.push(p);
      return;
    }
    // TLS client certificate as identity (tls.clientCertUsername): a CONNECT without a username logs in as its CN.
    if (p.cmd === 'connect' && p.username === undefined && c.io.certUsername !== undefined) p.username = c.io.certUsername;
    this.apply(c, handleIn(c.st, p, this.env));
  }

  connClosed(c: Conn): void {
    if (!this.conns.has(c.id)) return;
    const wasLive = c.st.phase === 'connecting' || c.st.phase === 'connected' || c.st.phase === 'auth';
    if (!c.isClosed) this.notifyLost(c, wasLive);
    c.isClosed = true;
    this.conns.delete(c.id);
    this.out.forget(c);
    this.acks.dropConn(c.id);
    Atomics.sub(this.opts.connCounter, 0, 1);
  }

  /** The connection ended without DISCONNECT: the shard publishes the will [MQTT-3.1.2-8]. */
  private notifyLost(c: Conn, live: boolean): void {
    if (!live || c.st.phase === 'auth') return;
    this.tellShard(c, {
      t: 'disconnect',
      connId: c.id,
      clientId: c.st.clientId,
      publishWill: true,
      qos2In: [...c.st.qos2In],
    });
  }

  private close(c: Conn, o: CloseOptions): void {
    if (c.isClosed) return;
    if (o.counter) this.metrics.inc(o.counter);
    this.log.debug({ clientId: c.st.clientId, remote: c.io.remote, why: o.why }, 'closing connection');
    if (o.notifyShard !== false && c.st.phase !== 'closed') this.notifyLost(c, true);
    // v5: the server may send DISCONNECT with a reason before closing [MQTT-4.13.2-1].
    if (o.reason !== undefined && c.st.version === 5 && (c.st.phase === 'connected' || c.st.phase === 'connecting')) {
      // Its Reason String says why, also with Request Problem Information 0 [MQTT-3.1.2-29].
      this.out.write(c, { cmd: 'disconnect', reasonCode: o.reason, properties: { reasonString: o.text ?? o.why.replace(/_/g, ' ') } });
    }
    c.st.phase = 'closed';
    c.isClosed = true;
    this.out.flushConn(c);
    c.io.end();
  }

  private tellShard(c: Conn, msg: ShardMsg): void {
    this.shardRefs[c.st.shard]!.tell(msg);
  }

  // ------------------------------------------------------------ effects
  private apply(c: Conn, effects: Effect[]): void {
    if (c.deferred || (this.downShards !== 0 && this.needsDownShard(c, effects))) return this.defer(c, effects);
    for (const ef of effects) {
      switch (ef.e) {
        case 'send':
          // A refused or duplicate publish's ack keeps its place behind held ones.
          if (ef.packet.cmd === 'puback' || ef.packet.cmd === 'pubrec') {
            // Counted (ChannelState.acksHeld) until released, like the held acks before it.
            const counted = this.countsAgainstReceiveMaximum(ef.packet);
            if (this.acks.queueReady(c.id, ef.packet, counted)) {
              if (counted) c.st.acksHeld++;
              break;
            }
          }
          this.out.write(c, ef.packet);
          break;
        case 'released':
          if (this.holdAcks) this.broadcast({ t: 'released', origin: c.st.clientId, packetId: ef.packetId });
          break;
        case 'shard':
          if (ef.msg.t === 'connect') ef.msg.gw = this.opts.index;
          this.tellShard(c, ef.msg);
          break;
        case 'route':
          this.route(ef.msg, ef.from, ef.ack && { c, ack: ef.ack });
          break;
        case 'log':
          this.log.info(ef.data, ef.msg);
          break;
        case 'auth':
          this.runAuth(c, ef.username, ef.password);
          break;
        case 'authExchange':
          this.runExchange(c, ef.method, ef.data, ef.start);
          break;
        case 'identified':
          // An enhanced-authentication login, like a users-file one: the username is the uid (identify.ts).
          this.identified(c, { result: 'ok', uid: isTopicLevelId(ef.user) ? ef.user : undefined });
          break;
        case 'count':
          this.metrics.inc(ef.series, ef.n);
          break;
        case 'close':
          this.close(c, { reason: ef.reason, why: ef.why, counter: ef.counter, text: ef.text });
          break;
      }
    }
  }

  /** Would these effects reach a shard whose thread is restarting? */
  private needsDownShard(c: Conn, effects: Effect[]): boolean {
    for (const ef of effects) {
      if (ef.e === 'shard' && this.downShards & (1 << c.st.shard)) return true;
      if (ef.e === 'route' && this.routeNeedsDownShard(ef.msg, ef.from)) return true;
    }
    return false;
  }

  /**
   * A shard is restarting: what this connection does next waits (in order, socket
   * paused) rather than be lost in the dead thread's mailbox. Bounded.
   */
  private defer(c: Conn, effects: Effect[]): void {
    if (c.isClosed) return;
    if (!c.deferred) {
      c.deferred = [];
      c.io.pause();
      this.metrics.inc('connections_deferred_total');
    }
    if (c.deferred.length >= MAX_DEFERRED) {
      c.deferred = undefined;
      this.close(c, { reason: RC.SERVER_BUSY, why: 'too much waiting for a restarting session shard', notifyShard: false });
      return;
    }
    c.deferred.push(effects);
  }

  /** A shard is back: connections waiting for it go on (or wait for another one still down). */
  private resumeDeferred(): void {
    for (const c of [...this.conns.values()]) {
      if (!c.deferred || c.isClosed) continue;
      const lists = c.deferred;
      c.deferred = undefined;
      // Each connection on its own: one that closes (or fails) meanwhile stops its own
      // replay, never the other connections' (they would stay paused).
      try {
        for (let i = 0; i < lists.length; i++) {
          if (c.isClosed) break;
          if (c.deferred) {
            (c.deferred as Effect[][]).push(...lists.slice(i));
            break;
          }
          this.apply(c, lists[i]!);
        }
      } catch (e) {
        this.connFailed(c, 'deferred', e);
      }
      if (this.resumable(c)) c.io.resume();
    }
  }

  private runAuth(c: Conn, username: string | undefined, password: Buffer | undefined): void {
    this.authenticate(username, password, username !== undefined && username === c.io.certUsername).then(
      (outcome) => this.identified(c, outcome),
      (err: unknown) => {
        this.log.error({ err }, 'authentication failed with an error');
        if (!c.isClosed) this.apply(c, afterAuth(c.st, 'not_authorized', this.env));
      },
    );
  }

  /** CONNECT authenticated (or refused): an identified user's IM profile first, then afterAuth. */
  private identified(c: Conn, outcome: AuthOutcome): void {
    if (c.isClosed) return;
    if (outcome.result !== 'ok' || outcome.uid === undefined || !this.env.im) {
      this.apply(c, afterAuth(c.st, outcome.result, this.env));
      return;
    }
    // An identified user: the coordinator's directory gives namespace and groups.
    const reqId = this.imReplies.expect(1, ([user]) => {
      // A user in no group (most): the shared empty list, not an array per connection.
      if (user!.groups.length === 0) user!.groups = NO_GROUPS;
      if (!c.isClosed) this.apply(c, afterAuth(c.st, 'ok', this.env, user));
    });
    this.coordinator.tell({ t: 'imProfileRequest', reqId, gw: this.opts.index, uid: outcome.uid, ns: outcome.ns, groups: outcome.groups });
  }

  /** One step of an enhanced-authentication exchange: the method's answer goes to the channel (auth.ts). */
  private runExchange(c: Conn, method: string, data: Buffer | undefined, start: boolean): void {
    const st = c.st;
    const reauth = st.phase === 'connected';
    const ctx = {
      clientId: st.clientId,
      username: reauth ? st.username : st.connect?.username,
      password: reauth ? undefined : st.connect?.password,
      phase: reauth ? ('reauth' as const) : ('connect' as const),
      identity: reauth ? st.username : undefined,
      remote: c.io.remote,
    };
    this.exchanges.step(c, { method, data, start, ctx }, (r) => {
      if (c.isClosed) return;
      try {
        if ('error' in r) {
          this.metrics.inc('internal_errors_total{op="auth_method"}');
          this.logFailure('auth_method', r.error, { clientId: st.clientId, method });
          this.apply(c, methodError(st, this.env));
        } else this.apply(c, authStep(st, r, this.env));
      } catch (e) {
        this.connFailed(c, 'auth', e);
      }
    });
  }

  /**
   * The publish path, step 1: the routing rules (for client messages; a rule-made message
   * is not matched again), then the route-table lookup, one message per interested shard.
   * `ack`: the publisher's PUBACK/PUBREC, sent now or, with held acks, once every
   * destination answered (committed the message; with queueFullPolicy hold, queued it).
   */
  route(msg: AppMessage, from?: { uid?: string; clientId: string }, ack?: { c: Conn; ack: AckPacket }): void {
    const held = ack && this.holdAcks ? this.acks.open(ack.c.id, ack.ack) : undefined;
    if (held) {
      // Unacknowledged until written: counts against our Receive Maximum (publish.ts) [MQTT-3.3.4-7].
      const c = ack!.c;
      c.st.acksHeld++;
      // A 3.1.1 client has no Receive Maximum: it is not read while it has that many held.
      if (c.st.version !== 5 && c.st.acksHeld >= this.env.limits.maxInflight && !c.ackPaused) {
        c.ackPaused = true;
        c.io.pause();
        this.metrics.inc('publishers_paused_held_acks_total');
      }
    }
    // QoS 2 with held acks: shards remember (publisher, packet id, part) to drop a resend
    // (after a crash, or a reconnect before the PUBREC came).
    const pid = ack?.ack.cmd === 'pubrec' && this.holdAcks ? ack.ack.messageId : undefined;
    let deliverOriginal = true;
    if (from && this.rules.size > 0) {
      const o = applyRules(this.rules, msg.topic, { sender: from.uid, clientId: from.clientId });
      if (o.skipped > 0) this.metrics.inc('im_rule_actions_skipped_total', o.skipped);
      let part = 0;
      for (const topic of o.copies) {
        this.metrics.inc('im_rule_messages_total');
        // Never retained: the copy is a delivery, the original alone may be kept.
        this.routeOne({ ...msg, topic, retain: false, carbon: true }, held, pid, ++part);
      }
      deliverOriginal = o.deliverOriginal;
      if (!deliverOriginal) this.metrics.inc('im_rule_originals_withheld_total');
    }
    if (deliverOriginal) this.routeOne(msg, held, pid, 0);
    if (held) this.acks.seal(held);
    else if (ack) this.writeAck(ack.c, ack.ack);
  }

  private routeNeedsDownShard(msg: AppMessage, from?: { uid?: string; clientId: string }): boolean {
    if (this.routes.lookup(msg.topic) & this.downShards) return true;
    if (!from || this.rules.size === 0) return false;
    const o = applyRules(this.rules, msg.topic, { sender: from.uid, clientId: from.clientId });
    return o.copies.some((t) => (this.routes.lookup(t) & this.downShards) !== 0);
  }

  private routeOne(msg: AppMessage, held: PendingAck | undefined, pid: number | undefined, part: number): void {
    const mask = this.routes.lookup(msg.topic);
    const ackId = held?.id;
    const dedup = pid !== undefined ? { packetId: pid, part } : undefined;
    for (let i = 0; mask >>> i !== 0; i++) {
      if (!(mask & (1 << i))) continue;
      this.shardRefs[i]!.tell(dedup ? { t: 'publish', msg, ack: ackId, dedup } : ackId !== undefined ? { t: 'publish', msg, ack: ackId } : { t: 'publish', msg });
      if (held) this.acks.expect(held, 1 << i);
    }
    if (msg.retain) {
      this.coordinator.tell(ackId !== undefined ? { t: 'retain', msg, ack: ackId } : { t: 'retain', msg });
      if (held) this.acks.expect(held, COORDINATOR_BIT);
    }
    if (this.cluster) {
      // The other nodes: NATS forwards it to those with a matching subscription (cluster-actor.ts).
      this.cluster.tell(ackId !== undefined ? { t: 'forward', msg, gw: this.opts.index, ack: ackId } : { t: 'forward', msg });
      if (held) this.acks.expect(held, CLUSTER_BIT);
    }
  }

  /** A PUBACK/PUBREC whose publish is routed (and, with held acks, committed). */
  private writeAck(c: Conn, ack: AckPacket): void {
    if (c.isClosed) return;
    if (ack.cmd === 'pubrec' && this.holdAcks) c.st.qos2In.add(ack.messageId);
    this.out.write(c, ack as Packet);
  }

  private releaseAck(a: PendingAck): void {
    const c = this.conns.get(a.connId);
    if (!c || c.isClosed) return;
    if (a.id !== 0 || a.counted) c.st.acksHeld--;
    if (c.ackPaused && c.st.acksHeld < this.env.limits.maxInflight) {
      c.ackPaused = false;
      // Not read meanwhile: its keep alive counts from now.
      c.lastRead = connClock();
      if (this.resumable(c)) c.io.resume();
    }
    if (a.id === 0) this.out.write(c, a.packet as Packet); // a refusal queued behind held acks
    else this.writeAck(c, a.packet as AckPacket);
  }

  /**
   * A PUBACK/PUBREC the channel sends itself: a refusal (every PUBACK, a PUBREC of 0x80 or
   * more) answers a PUBLISH the client counts as unacknowledged until it gets it; a
   * PUBREC of success answers a resent QoS 2 PUBLISH whose id qos2In already counts.
   */
  private countsAgainstReceiveMaximum(p: Packet): boolean {
    return p.cmd === 'puback' || (p.cmd === 'pubrec' && (p.reasonCode ?? 0) >= 0x80);
  }

  private broadcast(m: ShardMsg): void {
    for (const s of this.shardRefs) s.tell(m);
  }

  /** A bug met while handling one connection's packets: that connection is closed, no other. */
  private connFailed(c: Conn, op: string, err: unknown): void {
    this.metrics.inc(`internal_errors_total{op="${op}"}`);
    this.logFailure(op, err, { clientId: c.st.clientId, remote: c.io.remote });
    this.close(c, { reason: RC.UNSPECIFIED_ERROR, why: 'internal error' });
  }

  /**
   * Logs a failure with its reason, at most once a second per kind (a fan-out of a message
   * that cannot be encoded fails once per recipient): the next line tells how many were
   * not logged meanwhile.
   */
  private logFailure(kind: string, err: unknown, data: Record<string, unknown>): void {
    const now = Date.now();
    const f = (this.failureLog[kind] ??= { at: 0, skipped: 0 });
    if (now - f.at < 1000) {
      f.skipped++;
      return;
    }
    this.log.error({ err, kind, ...data, notLoggedBefore: f.skipped }, 'failed on one packet; the others go on');
    f.at = now;
    f.skipped = 0;
  }

  // ------------------------------------------------------------ housekeeping
  private tick(): void {
    const now = Date.now();
    const clock = connClock();
    for (const c of this.conns.values()) {
      // Keepalive: close after 1.5 x the interval without a packet [MQTT-3.1.2-24].
      if (c.st.phase === 'connected') {
        // A publisher paused for its held acks cannot be read: its PINGREQs wait too.
        if (c.st.keepalive > 0 && clock - c.lastRead > c.st.keepalive * 1500 && !c.ackPaused)
          this.close(c, { reason: RC.KEEP_ALIVE_TIMEOUT, why: 'keepalive_timeout', counter: 'keepalive_timeouts_total' });
        // A re-authentication under way (AUTH 0x19) must conclude in time (auth.enhanced.reauthTimeout).
        const since = c.st.enhanced?.reauth ? this.exchanges.startedAt(c) : undefined;
        if (!c.isClosed && since !== undefined && now - since > (this.opts.reauthTimeout ?? 30) * 1000) {
          this.exchanges.drop(c);
          this.apply(c, reauthExpired(c.st));
        }
      } else if (clock - c.opened > this.opts.connectTimeout * 1000) {
        this.close(c, { why: 'connect_timeout', counter: 'connect_timeouts_total' });
      }
    }
    this.checkBackpressure();
  }

  /**
   * Nothing else keeps the socket paused: the links (backpressure), a restarting shard
   * (deferred), too many held acks (ackPaused). A throttle is a timer that ends by itself.
   */
  private resumable(c: Conn): boolean {
    return !c.isClosed && !this.paused && !c.deferred && !c.ackPaused;
  }

  /** Stop reading sockets while a peer thread is behind; resume when it caught up. */
  private checkBackpressure(): void {
    const congested = this.system.congested();
    if (congested === this.paused) return;
    this.paused = congested;
    for (const c of this.conns.values()) {
      if (congested) c.io.pause();
      else if (this.resumable(c)) c.io.resume();
    }
    if (congested) {
      this.metrics.inc('backpressure_pauses_total');
      const poll = setInterval(() => {
        this.checkBackpressure();
        if (!this.paused) clearInterval(poll);
      }, 5);
    }
  }

  private onShardDown(shard: number): void {
    // Its routes stay: the shard comes back with its persistent sessions, and the snapshot
    // it then sends replaces them. Until then what needs it waits (defer).
    this.downShards |= 1 << shard;
    // Publishers whose acks wait for that shard will not hear from it: closed without the
    // ack, they resend after reconnecting (the shards drop QoS 2 resends they took in).
    for (const connId of this.acks.waitingOn(1 << shard)) {
      const c = this.conns.get(connId);
      if (c) this.close(c, { reason: RC.UNSPECIFIED_ERROR, why: 'a session shard restarted before the publish was committed' });
    }
    for (const c of [...this.conns.values()]) {
      if (c.st.shard === shard && c.st.phase !== 'new')
        this.close(c, { reason: RC.UNSPECIFIED_ERROR, why: 'session shard restarted', notifyShard: false });
    }
  }

  /** Admin API: the coordinator owns the state; the gateway only carries the request. */
  requestAdmin(req: { method: string; path: string; query: Record<string, string>; body: unknown }, reply: (status: number, body: unknown) => void): void {
    const reqId = this.adminReplies.expect(1, ([r]) => reply(r!.status, r!.body));
    this.coordinator.tell({ t: 'adminRequest', reqId, gw: this.opts.index, ...req });
  }

  /** /metrics: the coordinator gathers every thread's snapshot and renders the text. */
  requestMetrics(reply: (text: string) => void): void {
    const reqId = this.metricsReplies.expect(1, ([text]) => reply(text!));
    this.coordinator.tell({ t: 'metricsRequest', reqId, gw: this.opts.index });
  }

  snapshot() {
    const by: Record<string, number> = { tcp: 0, ws: 0, tls: 0, wss: 0 };
    for (const c of this.conns.values()) by[c.io.transport]!++;
    for (const [transport, n] of Object.entries(by)) this.metrics.set(`connections{transport="${transport}"}`, n);
    this.metrics.set('acks_waiting_commit', this.acks.size);
    this.metrics.mailboxDepth = () => this.system.mailboxDepth();
    return this.metrics.snapshot();
  }

  /** Graceful stop: refuse new connections, tell clients (v5 0x8B), flush and close. */
  shutdown(): void {
    this.accepting = false;
    clearInterval(this.timer);
    for (const c of [...this.conns.values()]) this.close(c, { reason: RC.SERVER_SHUTTING_DOWN, why: 'server shutting down' });
  }
}
