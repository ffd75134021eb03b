/**
 * The coordinator (one per node, on the main thread): retained messages, `$SYS`, the
 * gathering of every thread's metrics for /metrics, and the IM layer's authority:
 * pre-subscription templates and directory, routing rules (gateways hold compiled
 * copies), presence, and the admin API.
 */
import type { Logger } from 'pino';
import type { ActorRef, ActorSystem } from '../runtime/system.js';
import {
  gatewayName,
  shardName,
  type AppMessage,
  type CoordinatorMsg,
  type GatewayMsg,
  type MetricsSnapshot,
  type ShardMsg,
} from '../protocol/messages.js';
import type { Metrics } from '../admin/metrics.js';
import { renderMetrics } from '../admin/render-metrics.js';
import { RetainedStore } from '../router/retained-store.js';
import type { ImConfig } from '../config/schema.js';
import type { TopicLimits } from '../mqtt/topic.js';
import { shardOf } from '../runtime/sharding.js';
import { expandPresub, type DirectoryEntry } from '../im/presub.js';
import { isTopicLevelId, presenceTopic } from '../im/topics.js';
import type { ImUser } from '../im/im-acl.js';
import type { SessionSummary } from '../session/session-view.js';
import { ImState } from './im-state.js';
import { Replies } from '../runtime/replies.js';
import { PresenceBook, presencePayload, type PresenceState } from './presence.js';
import { handleAdmin, type AdminContext, type AdminResponse } from './admin-api.js';
import type { AdminShardOp, HoldRef, QoS } from '../protocol/messages.js';

import { HOLD_PREFIX, parseImTopic } from '../im/topics.js';
import type { Store } from '../store/types.js';
import { storedMessage } from '../store/message.js';
import { gatewayOf } from '../gateway/conn-id.js';
import type { ClusterState, CoordinatorPort, ShardOp } from '../cluster/cluster-state.js';
import type { RoutingRule } from '../im/rules.js';

export interface CoordinatorOptions {
  gateways: number;
  shards: number;
  maxRetainedMessages: number;
  version: string;
  /** Seconds between $SYS updates; 0 = off. */
  sysInterval: number;
  /** Node-wide open-connection counter (shared with the gateways). */
  connCounter: Int32Array;
  im: ImConfig;
  dataDir: string;
  topicLimits: TopicLimits;
  /** The coordinator's own store: retained messages. */
  store: Store;
}

/** A thread that is restarting must not hang /metrics or an admin edit: they answer after this. */
const METRICS_DEADLINE_MS = 2000;
const EDIT_DEADLINE_MS = 5000;

export class CoordinatorActor implements CoordinatorPort {
  private readonly retained: RetainedStore;
  private readonly gateways: ActorRef<GatewayMsg>[] = [];
  private readonly shards: ActorRef<ShardMsg>[] = [];
  /** Every thread's metrics snapshot for one /metrics request (our own ids: two gateways may ask with the same number). */
  private readonly gatherings = new Replies<MetricsSnapshot>();
  /** Admin edits waiting for every shard to apply their pre-subscription changes. */
  private readonly refreshes = new Replies<void>();
  /** Rule edits waiting for every gateway to compile them; the id is the rules' version. */
  private readonly rulesApplied = new Replies<void>();
  private rulesVersion = 0;
  private readonly started = Date.now();
  private readonly sysTimer?: NodeJS.Timeout;
  /** Extra per-node gauges the supervisor maintains (thread restarts...). */
  readonly nodeCounters: Record<string, number> = {};
  private readonly im: ImState;
  private readonly presence = new PresenceBook();
  /** Holding sessions of directory users who never connected, by uid. */
  private readonly holds = new Map<string, HoldRef>();
  private readonly adminReplies = new Replies<AdminResponse>();
  /** Shared subscription resyncs waiting for the shards to have every membership. */
  private readonly resyncs = new Replies<void>();
  /** The cluster's shared state (cluster.nats set; docs/cluster.md): absent on a single node. */
  private cluster?: ClusterState;

  constructor(
    private readonly opts: CoordinatorOptions,
    system: ActorSystem,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    for (let i = 0; i < opts.gateways; i++) this.gateways.push(system.ref(gatewayName(i)));
    for (let i = 0; i < opts.shards; i++) this.shards.push(system.ref(shardName(i)));
    this.retained = new RetainedStore(opts.maxRetainedMessages);
    this.restoreRetained();
    this.im = new ImState(opts.im, opts.store, opts.dataDir);
    this.adminContext.state = this.im;
    this.adminContext.limits = opts.topicLimits;
    if (this.im.source === 'file') log.info('IM templates, directory and rules moved from im-state.json into the store (renamed im-state.json.migrated)');
    else if (this.im.source === 'store')
      log.info('IM templates, directory and rules loaded from the store (runtime edits through the admin API win over the config)');
    if (opts.sysInterval > 0) {
      // Once now, so the (retained) $SYS tree is there for the first subscribers rather
      // than only after the first interval; no session exists yet to deliver it to.
      this.publishSys();
      this.sysTimer = setInterval(() => this.publishSys(), opts.sysInterval * 1000);
      this.sysTimer.unref();
    }
  }

  receive(m: CoordinatorMsg): void {
    switch (m.t) {
      case 'retain':
        return this.onRetain(m.msg, m.ack);
      case 'retainedRequest': {
        const msgs: Array<{ msg: AppMessage; opts: (typeof m.subs)[number]['opts'] }> = [];
        for (const s of m.subs) for (const msg of this.retained.match(s.filter)) msgs.push({ msg, opts: s.opts });
        if (msgs.length > 0) this.shards[m.shard]!.tell({ t: 'retained', clientId: m.clientId, connId: m.connId, msgs });
        return;
      }
      case 'metricsRequest':
        return this.gather(m.reqId, m.gw);
      case 'imHello':
        return this.gateways[m.gw]!.tell({ t: 'imRules', rules: this.opts.im.enabled ? this.im.rules : [], version: this.rulesVersion });
      case 'imRulesApplied':
        return this.rulesApplied.reply(m.version, undefined);
      case 'imProfileRequest':
        return this.gateways[m.gw]!.tell({ t: 'imProfile', reqId: m.reqId, user: this.profile(m.uid, m.ns, m.groups) });
      case 'presubscribe':
        return this.onPresubscribe(m);
      case 'presence':
        return this.onPresence(m.uid, m.ns, m.delta, m.shard);
      case 'adminRequest':
        return this.onAdminRequest(m);
      case 'presubRefreshed':
        return this.refreshes.reply(m.reqId, undefined);
      case 'adminShardReply':
        return this.adminReplies.reply(m.reqId, { status: m.status, body: m.body });
      case 'metricsReport':
        return this.gatherings.reply(m.reqId, m.snapshot);
      case 'shareResynced':
        return this.resyncs.reply(m.reqId, undefined);
    }
  }

  /**
   * Keeps (or deletes) a retained message, in memory and in the store; `ack` (durability
   * sync) is answered to the publisher's gateway once committed.
   */
  private onRetain(msg: AppMessage, ack?: number): void {
    if (!this.retained.set(msg)) this.metrics.inc('messages_dropped_total{reason="retained_full"}');
    // $SYS is remade at every start and every few seconds: not worth a write.
    else if (!msg.topic.startsWith('$SYS/')) {
      if (msg.payload.length === 0) this.opts.store.deleteRetained(msg.topic);
      else this.opts.store.putRetained(storedMessage(msg));
    }
    if (ack === undefined || msg.originConn === undefined) return;
    const gw = this.gateways[gatewayOf(msg.originConn)]!;
    this.opts.store.commit().then(
      () => gw.tell({ t: 'committed', ids: [ack] }),
      (err: unknown) => {
        this.metrics.inc('store_errors_total');
        this.log.error({ err }, 'store commit failed: the retained publish stays unacknowledged');
      },
    );
  }

  /**
   * Retained messages back from the store; expired ones are purged. Presence is reset:
   * nobody is connected to a broker that is starting, whatever was retained before.
   */
  private restoreRetained(): void {
    const now = Date.now();
    let n = 0;
    for (const msg of this.opts.store.loadRetained()) {
      if (msg.props?.expiresAt !== undefined && msg.props.expiresAt <= now) {
        this.opts.store.deleteRetained(msg.topic);
        continue;
      }
      const im = this.opts.im.enabled ? parseImTopic(msg.topic) : null;
      if (im?.kind === 'p') {
        const offline: PresenceState = { uid: im.id, online: false, devices: 0, ts: now };
        msg.payload = Buffer.from(JSON.stringify(offline));
        this.opts.store.putRetained(msg);
      }
      if (this.retained.set(msg)) n++;
      else this.opts.store.deleteRetained(msg.topic); // the limit was lowered since
    }
    if (n > 0) this.log.info({ retained: n }, 'retained messages restored from the store');
  }

  /** Publishes a broker-made message (every shard matches it; retained ones are kept; in a cluster, `$SYS` aside, every node gets it). */
  publish(msg: AppMessage): void {
    for (const s of this.shards) s.tell({ t: 'publish', msg });
    if (msg.retain) this.receive({ t: 'retain', msg });
    if (this.cluster && !msg.topic.startsWith('$SYS/')) this.cluster.publish(msg);
  }

  // ------------------------------------------------------------ cluster (src/cluster/cluster-state.ts)
  /** This node joined a cluster: retained messages, IM state, presence and session admin become cluster-wide. */
  attachCluster(cluster: ClusterState): void {
    this.cluster = cluster;
  }

  keepRetained(msg: AppMessage): void {
    this.onRetain(msg);
  }

  retainedMessages(): AppMessage[] {
    return this.retained.match('#');
  }

  get imState(): ImState {
    return this.im;
  }

  async applyTemplates(templates: string[]): Promise<void> {
    this.im.templates = templates;
    await this.im.save();
    await this.templatesApplied();
  }

  async applyRules(rules: RoutingRule[]): Promise<void> {
    this.im.rules = rules;
    await this.im.save();
    await this.rulesApplied_();
  }

  async applyUser(uid: string, entry: DirectoryEntry | undefined): Promise<void> {
    if (entry) this.im.directory.set(uid, entry);
    else this.im.directory.delete(uid);
    await this.im.save();
    await this.userApplied(uid, entry);
  }

  refreshAll(): Promise<void> {
    return this.refreshPresub(null);
  }

  localSessions(uid: string | undefined): Promise<SessionSummary[]> {
    return this.sessionsHere(uid);
  }

  localShardOp(op: ShardOp): Promise<AdminResponse> {
    return this.shardOpHere(op);
  }

  // ------------------------------------------------------------ IM
  /** The IM identity of a uid: the directory entry wins over the token's hints. */
  private profile(uid: string, nsHint?: string, groupsHint?: string[]): ImUser {
    const e = this.im.directory.get(uid);
    const ns = e?.ns ?? (nsHint !== undefined && isTopicLevelId(nsHint) ? nsHint : this.opts.im.defaultNamespace);
    const groups = e?.groups ?? (groupsHint ?? []).filter(isTopicLevelId);
    return { uid, ns, groups };
  }

  private onPresubscribe(m: Extract<CoordinatorMsg, { t: 'presubscribe' }>): void {
    const entry = this.im.directory.get(m.uid);
    const topics = expandPresub(this.im.templates, entry, { uid: m.uid, ns: m.ns, clientId: m.clientId });
    let hold: HoldRef | undefined;
    if (m.first && this.opts.im.presubscribe.holdNewUsers) {
      hold = this.holds.get(m.uid);
      this.holds.delete(m.uid);
      if (!this.im.seen.has(m.uid)) {
        this.im.seen.add(m.uid);
        this.im.saveSoon();
      }
    }
    const qos = this.opts.im.presubscribe.qos as QoS;
    this.shards[m.shard]!.tell({ t: 'presubscription', reqId: m.reqId, clientId: m.clientId, topics, qos, ...(hold ? { hold } : {}) });
    // The paper's external pre-subscription module listened on a server topic: the same event, for anyone allowed to read $SYS.
    this.publish({
      topic: '$SYS/broker/im/presubscribe',
      payload: Buffer.from(JSON.stringify({ uid: m.uid, ns: m.ns, clientId: m.clientId, topics, first: m.first, ts: Date.now() })),
      qos: 0,
      retain: false,
    });
  }

  /** holdNewUsers: a holding session for every directory user who never connected (called once the shards run). */
  createHolds(): void {
    if (!this.opts.im.enabled || !this.opts.im.presubscribe.holdNewUsers) return;
    for (const e of this.im.directory.values()) this.createHold(e);
  }

  private createHold(e: DirectoryEntry): void {
    if (this.im.seen.has(e.uid) || this.holds.has(e.uid) || this.presence.devices(e.uid) > 0) return;
    const clientId = `${HOLD_PREFIX}${e.uid}`;
    const shard = shardOf(clientId, this.shards.length);
    const topics = expandPresub(this.im.templates, e, { uid: e.uid, ns: e.ns ?? this.opts.im.defaultNamespace, clientId });
    this.holds.set(e.uid, { clientId, shard });
    this.shards[shard]!.tell({ t: 'holdCreate', clientId, uid: e.uid, topics, qos: this.opts.im.presubscribe.qos as QoS });
  }

  private onPresence(uid: string, ns: string, delta: 1 | -1, shard: number): void {
    if (!this.opts.im.presence) return;
    const { state } = this.presence.change(uid, ns, delta, shard);
    // In a cluster the count is summed over the nodes, and published once (shared-presence.ts).
    if (this.cluster) this.cluster.presence(uid, ns, state.devices);
    else this.publishPresence(ns, state);
  }

  publishPresence(ns: string, state: PresenceState): void {
    if (!this.opts.im.presence) return;
    this.publish({ topic: presenceTopic(ns, state.uid), payload: presencePayload(state), qos: 1, retain: true });
  }

  /** A shard restarted: its sessions, devices and holding sessions are gone. */
  shardRestarted(shard: number): void {
    for (const { ns, state } of this.presence.dropShard(shard)) {
      if (this.cluster) this.cluster.presence(state.uid, ns, state.devices);
      else this.publishPresence(ns, state);
    }
    for (const [uid, h] of [...this.holds]) if (h.shard === shard) this.holds.delete(uid);
    this.createHolds();
  }

  /**
   * Shared subscriptions: the owners' group tables live in memory and are rebuilt from the
   * members. `owner` null (broker start, once every shard restored its sessions): every
   * shard tells every owner its memberships; a shard index (that shard's thread restarted):
   * every shard tells it, and it tells every owner its own. Resolves once the owners have
   * them (their route snapshots then hold the groups' filters), or after a deadline.
   */
  resyncShared(owner: number | null): Promise<void> {
    return new Promise((done) => {
      const reqId = this.resyncs.expect(owner === null ? this.shards.length : 1, () => done(), EDIT_DEADLINE_MS);
      for (const s of this.shards) s.tell({ t: 'shareResync', reqId, owner });
    });
  }

  // ------------------------------------------------------------ admin API
  private onAdminRequest(m: Extract<CoordinatorMsg, { t: 'adminRequest' }>): void {
    const reply = (r: AdminResponse): void => this.gateways[m.gw]!.tell({ t: 'adminReply', reqId: m.reqId, status: r.status, body: r.body });
    handleAdmin(m, this.adminContext).then(reply, (err: unknown) => {
      this.log.error({ err, path: m.path }, 'admin request failed');
      reply({ status: 500, body: { error: `internal error: ${(err as Error).message}` } });
    });
  }

  /**
   * Sessions of these users (null = all) ask for their lists again; resolves once every
   * shard applied the changes and the gateways route them, so the admin API answers only
   * when the edit is in effect (a message sent right after the answer is delivered).
   */
  private refreshPresub(uids: string[] | null): Promise<void> {
    return new Promise((done) => {
      const reqId = this.refreshes.expect(this.shards.length, () => done(), EDIT_DEADLINE_MS);
      for (const s of this.shards) s.tell({ t: 'presubRefresh', uids, reqId });
    });
  }

  private askShards(shards: number[], op: AdminShardOp): Promise<AdminResponse[]> {
    return new Promise((done) => {
      const reqId = this.adminReplies.expect(shards.length, done);
      for (const i of shards) this.shards[i]!.tell({ t: 'admin', reqId, op });
    });
  }

  private async sessionsHere(uid: string | undefined): Promise<SessionSummary[]> {
    const all = this.shards.map((_, i) => i);
    const rs = await this.askShards(all, uid === undefined ? { op: 'list' } : { op: 'list', uid });
    return rs.flatMap((r) => r.body as SessionSummary[]).sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
  }

  private async shardOpHere(op: ShardOp): Promise<AdminResponse> {
    return (await this.askShards([shardOf(op.clientId, this.shards.length)], op))[0]!;
  }

  /** An IM edit takes effect on this node's sessions and gateways (an admin edit, or another node's). */
  private templatesApplied(): Promise<void> {
    return this.refreshPresub(null);
  }

  private userApplied(uid: string, entry: DirectoryEntry | undefined): Promise<void> {
    const user = this.profile(uid);
    for (const g of this.gateways) g.tell({ t: 'imUserUpdate', user });
    if (entry && this.opts.im.presubscribe.holdNewUsers) this.createHold(entry);
    return this.refreshPresub([uid]);
  }

  private rulesApplied_(): Promise<void> {
    // Answered once every gateway compiled the new rules: a publish right after the
    // answer, through any gateway, sees them.
    return new Promise<void>((done) => {
      const version = (this.rulesVersion = this.rulesApplied.expect(this.gateways.length, () => done(), EDIT_DEADLINE_MS));
      for (const g of this.gateways) g.tell({ t: 'imRules', rules: this.im.rules, version });
    });
  }

  // In a cluster, sessions are asked of every node, and an IM edit is in the shared KV
  // before it is applied here and answered (the other nodes apply it from there).
  private readonly adminContext: AdminContext = {
    state: undefined as unknown as ImState, // set in the constructor (field order)
    limits: undefined as unknown as TopicLimits,
    sessions: (uid) => (this.cluster ? this.cluster.sessions(uid) : this.sessionsHere(uid)),
    shardOp: (op) => (this.cluster ? this.cluster.shardOp(op) : this.shardOpHere(op)),
    templatesChanged: async () => {
      await this.cluster?.imEdited({ kind: 'templates' });
      return this.templatesApplied();
    },
    userChanged: async (uid, entry) => {
      await this.cluster?.imEdited({ kind: 'user', uid });
      return this.userApplied(uid, entry);
    },
    rulesChanged: async () => {
      await this.cluster?.imEdited({ kind: 'rules' });
      return this.rulesApplied_();
    },
    publish: (msg) => this.publish(msg),
  };

  private gather(gwReqId: number, gw: number): void {
    const peers = [...this.gateways, ...this.shards];
    // At the deadline, answer with what arrived.
    const reqId = this.gatherings.expect(peers.length, (snaps) => this.finish(snaps, gw, gwReqId), METRICS_DEADLINE_MS);
    for (const p of peers) p.tell({ t: 'collectMetrics', reqId });
  }

  private finish(snaps: MetricsSnapshot[], gw: number, gwReqId: number): void {
    this.metrics.set('retained_messages', this.retained.size);
    const st = this.opts.store.stats();
    this.metrics.set('store_bytes', st.bytes);
    this.metrics.set('store_entries', st.entries);
    this.metrics.set('uptime_seconds', Math.round((Date.now() - this.started) / 1000));
    for (const [k, v] of Object.entries(this.nodeCounters)) this.metrics.setCounter(k, v);
    snaps.push(this.metrics.snapshot());
    this.gateways[gw]!.tell({ t: 'metricsText', reqId: gwReqId, text: renderMetrics(snaps) });
  }

  private publishSys(): void {
    const sys = (topic: string, value: string | number): void =>
      this.publish({ topic: `$SYS/broker/${topic}`, payload: Buffer.from(String(value)), qos: 0, retain: true });
    sys('version', `switchboard ${this.opts.version}`);
    sys('uptime', `${Math.round((Date.now() - this.started) / 1000)} seconds`);
    sys('retained messages/count', this.retained.size);
    sys('clients/connected', Atomics.load(this.opts.connCounter, 0));
  }

  /** Graceful stop: IM state saved, the store committed and closed. */
  async close(): Promise<void> {
    this.im.close();
    await this.opts.store.close();
    if (this.sysTimer) clearInterval(this.sysTimer);
    this.gatherings.close();
    this.refreshes.close();
    this.rulesApplied.close();
    this.adminReplies.close();
    this.resyncs.close();
  }
}
