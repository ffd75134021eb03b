/**
 * The node's link to the other nodes of a cluster (cluster.nats), an actor on the main
 * thread. See docs/cluster.md.
 *
 * Interest: the shards tell it their routes exactly as they tell the gateways (it is one
 * more route target, index = the gateway count): each filter some local session wants is
 * a NATS subscription (subjects.ts; refcounted, since `a/#` and `a` share a subject). A
 * routeAdd is acknowledged once NATS has the subscription (flush), and the shard holds
 * the SUBACK for that ack: once a client has its SUBACK, a message published on any node
 * reaches it.
 *
 * Out: every message published on this node (gateways, after the routing rules; shards,
 * for wills) comes here and is published on its topic's subject; NATS forwards it only to
 * the nodes subscribed to it, and never back to this one (noEcho). What arrives in one
 * turn goes out in one write of the NATS client. Retained messages go on one subject all
 * nodes subscribe to, so every node's coordinator keeps them, and are routed locally there;
 * they also go into the cluster's KV bucket for nodes that join later (shared-retained.ts).
 * A publisher's held PUBACK/PUBREC waits until the NATS server has the message.
 *
 * In: a message from another node is matched against this node's route table and handed
 * to the shards that want it (never forwarded again: no loops), and a retained one is
 * kept by the coordinator.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import { RouteTable } from '../gateway/route-table.js';
import {
  COORDINATOR,
  PROTOCOL_VERSION,
  gatewayName,
  shardName,
  type AppMessage,
  type ClusterMsg,
  type CoordinatorMsg,
  type GatewayMsg,
  type ShardMsg,
} from '../protocol/messages.js';
import type { Actor, ActorRef, ActorSystem } from '../runtime/system.js';
import type { Bus, BusSubscription } from './bus.js';
import { filterSubjects, topicSubject } from './subjects.js';
import { decodeEnvelope, encodeEnvelope, WireError } from './wire.js';
import { Membership, type MembershipEvent, type NodeInfo } from './membership.js';
import { pack, unpack } from 'msgpackr';
import { TakeoverLink } from './takeover-link.js';
import { DirectChannel } from './direct.js';
import { SharedLink } from './shared-link.js';

export interface ClusterOptions {
  /** This node's name (cluster.node). */
  node: string;
  /** Subject prefix (cluster.subjectPrefix): messages go on `{prefix}.m.…`, retained on `{prefix}.r`. */
  prefix: string;
  gateways: number;
  shards: number;
  /** Heartbeat period (ms); a node silent for `deadAfterMs` is gone. */
  heartbeatMs?: number;
  deadAfterMs?: number;
  /** How long a claim waits for the other nodes, and a hand-over for its messages (ms). */
  takeoverTimeoutMs?: number;
  /** The cluster's retained-message bucket (shared-retained.ts): a retained message forwarded here is put there too. */
  retained?: { put(msg: AppMessage): Promise<void> | undefined };
  /** Told of every membership change (shared-presence.ts forgets a gone node's devices). */
  onMembership?: (e: MembershipEvent) => void;
}

/** NATS' default max_control_line is 4096 bytes; a longer subject would be refused. */
const MAX_SUBJECT = 4000;

export class ClusterActor implements Actor<ClusterMsg> {
  private readonly routes = new RouteTable();
  private readonly subjects = new Map<string, { n: number; sub: BusSubscription }>();
  private readonly shardRefs: ActorRef<ShardMsg>[] = [];
  private readonly gatewayRefs: ActorRef<GatewayMsg>[] = [];
  private readonly coordinator: ActorRef<CoordinatorMsg>;
  /** Waiting for the next flush: route acks per shard (newest seq), held acks per gateway. */
  private routeAcks = new Map<number, number>();
  private commits = new Map<number, number[]>();
  private flushQueued = false;
  private readonly retainedSub: BusSubscription;
  private readonly heartbeatSub: BusSubscription;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly since = Date.now();
  readonly membership: Membership;
  private readonly index: number;
  private readonly takeover: TakeoverLink;
  private readonly direct: DirectChannel;
  private readonly shared: SharedLink;
  /** Resolves once this node has heard the nodes already in the cluster (start waits for it before accepting clients). */
  readonly discovered: Promise<void>;

  constructor(
    private readonly opts: ClusterOptions,
    private readonly bus: Bus,
    system: ActorSystem,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.index = opts.gateways;
    for (let i = 0; i < opts.shards; i++) this.shardRefs.push(system.ref(shardName(i)));
    for (let i = 0; i < opts.gateways; i++) this.gatewayRefs.push(system.ref(gatewayName(i)));
    this.coordinator = system.ref(COORDINATOR);
    this.retainedSub = bus.subscribe(`${opts.prefix}.r`, (data) => this.fromNode(data));
    // Membership: a heartbeat per node every second; silent for 3.5 s = gone.
    const every = opts.heartbeatMs ?? 1000;
    this.membership = new Membership(opts.node, opts.deadAfterMs ?? every * 3.5, every);
    this.heartbeatSub = bus.subscribe(`${opts.prefix}.hb`, (data) => this.onHeartbeat(data));
    this.heartbeat = setInterval(() => this.beat(), every);
    this.heartbeat.unref();
    this.direct = new DirectChannel(
      bus,
      opts.prefix,
      opts.node,
      (from, items) => {
        for (const i of items) if (i.k === 'share') this.shared.deliver(i.key, i.msg);
        this.takeover.fromDirect(from, items);
      },
      metrics,
      log,
    );
    this.takeover = new TakeoverLink(
      { node: opts.node, prefix: opts.prefix, takeoverTimeoutMs: opts.takeoverTimeoutMs ?? 3000, others: () => this.membership.others().map((n) => n.node) },
      bus,
      this.direct,
      this.shardRefs,
      metrics,
      log,
    );
    this.shared = new SharedLink({ node: opts.node, prefix: opts.prefix }, bus, this.direct, this.shardRefs, metrics, log);
    this.beat();
    // The nodes already there answer a newcomer's first heartbeat with theirs at once
    // (changed()): before this node takes connections it knows whom to ask for a client id.
    this.discovered = bus
      .flush()
      .catch(() => {})
      .then(() => new Promise((r) => setTimeout(r, Math.min(every, 300))));
    // Like a gateway at start: every shard sends its routes (routeSnapshot).
    for (const s of this.shardRefs) s.tell({ t: 'routeSync', gw: this.index });
  }

  receive(m: ClusterMsg): void {
    switch (m.t) {
      case 'routeAdd':
        this.add(m.shard, m.filters);
        this.routeAcks.set(m.shard, Math.max(this.routeAcks.get(m.shard) ?? 0, m.seq));
        this.queueFlush();
        return;
      case 'routeDel':
        this.remove(m.shard, m.filters);
        return;
      case 'routeSnapshot': {
        this.dropShard(m.shard);
        this.add(m.shard, m.filters);
        return;
      }
      case 'forward':
        this.forward(m);
        return;
      case 'shardDown':
        this.dropShard(m.shard);
        this.shared.shardDown(m.shard);
        return;
      case 'shareGroups':
        this.shared.fromShard(m);
        return;
      case 'shardUp':
        this.shardRefs[m.shard]!.tell({ t: 'routeSync', gw: this.index });
        return;
      case 'claim':
      case 'claimFinish':
      case 'releaseReply':
      case 'releaseDone':
        this.takeover.receive(m);
        return;
    }
  }

  /** NATS subscriptions of this node (distinct subjects), for metrics and tests. */
  get subscriptionCount(): number {
    return this.subjects.size;
  }

  /** The other live nodes. */
  members(): NodeInfo[] {
    return this.membership.others();
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.takeover.close();
    this.shared.close();
    this.direct.close();
    this.heartbeatSub.unsubscribe();
    this.retainedSub.unsubscribe();
    for (const { sub } of this.subjects.values()) sub.unsubscribe();
    this.subjects.clear();
  }

  // ------------------------------------------------------------ interest
  // The route table says which filters became wanted (or unwanted) by this node as a whole:
  // those are the NATS subscriptions to make (or drop).
  private add(shard: number, filters: string[]): void {
    for (const f of this.routes.add(shard, filters)) for (const s of filterSubjects(`${this.opts.prefix}.m`, f)) this.subscribe(s);
    this.metrics.set('cluster_subscriptions', this.subjects.size);
  }

  private remove(shard: number, filters: string[]): void {
    this.unsubscribeAll(this.routes.remove(shard, filters));
  }

  private dropShard(shard: number): void {
    this.unsubscribeAll(this.routes.dropShard(shard));
  }

  private unsubscribeAll(gone: string[]): void {
    for (const f of gone) for (const s of filterSubjects(`${this.opts.prefix}.m`, f)) this.unsubscribe(s);
    this.metrics.set('cluster_subscriptions', this.subjects.size);
  }

  private subscribe(subject: string): void {
    const have = this.subjects.get(subject);
    if (have) {
      have.n++;
      return;
    }
    if (subject.length > MAX_SUBJECT) {
      this.metrics.inc('cluster_errors_total{op="subject_too_long"}');
      this.log.warn({ subject: subject.slice(0, 80) }, 'filter too long for a NATS subject: messages from other nodes will not reach it');
      return;
    }
    this.subjects.set(subject, { n: 1, sub: this.bus.subscribe(subject, (data) => this.fromNode(data)) });
  }

  private unsubscribe(subject: string): void {
    const have = this.subjects.get(subject);
    if (!have) return;
    if (--have.n > 0) return;
    have.sub.unsubscribe();
    this.subjects.delete(subject);
  }

  // ------------------------------------------------------------ out
  private forward(m: Extract<ClusterMsg, { t: 'forward' }>): void {
    const msg = m.msg;
    const subject = msg.retain ? `${this.opts.prefix}.r` : topicSubject(`${this.opts.prefix}.m`, msg.topic);
    if (subject.length > MAX_SUBJECT) {
      this.metrics.inc('cluster_errors_total{op="subject_too_long"}');
    } else {
      try {
        this.bus.publish(subject, encodeEnvelope(this.opts.node, msg));
        this.metrics.inc('cluster_messages_out_total');
      } catch (err) {
        // Over the server's max_payload, or the client's reconnect buffer is full.
        this.metrics.inc('cluster_errors_total{op="publish"}');
        this.log.error({ err, topic: msg.topic }, 'could not send a message to the other nodes');
      }
    }
    // Shared subscription groups with members only on other nodes: one node each.
    this.shared.route(msg);
    // A retained message (not $SYS) also goes into the cluster's bucket, for nodes that
    // join later. A held ack then waits for the bucket's acknowledgement: it comes after
    // the server had the publish above (one connection, in order); put() never takes
    // longer than cluster.flushTimeout.
    const kept = msg.retain ? this.opts.retained?.put(msg) : undefined;
    if (kept && m.ack !== undefined && m.gw !== undefined) {
      const gw = this.gatewayRefs[m.gw]!;
      const ids = [m.ack];
      void kept.then(() => gw.tell({ t: 'committed', ids }));
      return;
    }
    if (m.ack !== undefined && m.gw !== undefined) {
      let ids = this.commits.get(m.gw);
      if (!ids) this.commits.set(m.gw, (ids = []));
      ids.push(m.ack);
      this.queueFlush();
    }
  }

  /**
   * Once per turn: one flush for every subscription and message of the turn, then the
   * route acks and held publisher acks. A flush that fails (NATS down longer than
   * cluster.flushTimeout) still releases them: the client re-creates the subscriptions
   * and resends its buffer on reconnect, and nothing waits forever.
   */
  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      // What this turn sends to single nodes (shared subscription deliveries) goes before the flush that confirms it.
      this.direct.flush();
      const routeAcks = this.routeAcks;
      const commits = this.commits;
      this.routeAcks = new Map();
      this.commits = new Map();
      const release = (): void => {
        for (const [shard, seq] of routeAcks) this.shardRefs[shard]!.tell({ t: 'routeAck', gw: this.index, seq });
        for (const [gw, ids] of commits) this.gatewayRefs[gw]!.tell({ t: 'committed', ids });
      };
      this.bus.flush().then(release, (err: unknown) => {
        this.metrics.inc('cluster_errors_total{op="flush"}');
        this.log.warn({ err }, 'NATS flush failed; going on');
        release();
      });
    });
  }

  // ------------------------------------------------------------ membership
  private beat(sweep = true): void {
    try {
      this.bus.publish(`${this.opts.prefix}.hb`, pack({ v: PROTOCOL_VERSION, node: this.opts.node, since: this.since }));
    } catch {
      this.metrics.inc('cluster_errors_total{op="publish"}');
    }
    if (sweep) for (const e of this.membership.sweep(Date.now())) this.changed(e);
  }

  private onHeartbeat(data: Uint8Array): void {
    let hb: { v?: unknown; node?: unknown; since?: unknown };
    try {
      hb = unpack(data) as typeof hb;
    } catch {
      this.metrics.inc('cluster_errors_total{op="decode"}');
      return;
    }
    if (typeof hb?.node !== 'string' || typeof hb.since !== 'number') return;
    if (hb.v !== PROTOCOL_VERSION) {
      this.metrics.inc('cluster_errors_total{op="version"}');
      return;
    }
    const e = this.membership.heard(hb.node, hb.since, Date.now());
    if (e) this.changed(e);
  }

  private changed(e: MembershipEvent): void {
    this.metrics.inc(`cluster_node_events_total{kind="${e.kind}"}`);
    this.metrics.set('cluster_nodes', this.membership.others().length + 1);
    this.opts.onMembership?.(e);
    if (e.kind === 'gone') {
      this.log.warn({ peer: e.node }, 'node gone from the cluster (no heartbeat)');
      this.takeover.nodeGone(e.node);
      this.shared.nodeGone(e.node);
      return;
    }
    this.log.info({ peer: e.node }, e.kind === 'joined' ? 'node joined the cluster' : 'node restarted');
    // A newcomer learns of this node now rather than at the next heartbeat, and of its shared subscription groups.
    this.beat(false);
    this.shared.nodeJoined();
  }

  // ------------------------------------------------------------ in
  private fromNode(data: Uint8Array): void {
    let env;
    try {
      env = decodeEnvelope(data);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.metrics.inc('cluster_errors_total{op="decode"}');
      this.log.warn({ err: err.message }, 'dropped a message from another node');
      return;
    }
    if (env.from === this.opts.node) return; // noEcho covers it; a second node with our name does not
    const msg = env.msg;
    this.metrics.inc('cluster_messages_in_total');
    if (msg.retain) this.coordinator.tell({ t: 'retain', msg });
    const mask = this.routes.lookup(msg.topic);
    // `remote`: the shards' shared subscription groups skip it (the publishing node chose one node per group).
    for (let i = 0; mask >>> i !== 0; i++) if (mask & (1 << i)) this.shardRefs[i]!.tell({ t: 'publish', msg, remote: true });
  }
}
