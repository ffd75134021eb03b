/**
 * Shared subscriptions across the nodes of a cluster (docs/cluster.md, "Shared
 * subscriptions"): a message goes to one member of a group in the whole cluster
 * [MQTT-4.8.2], not one per node.
 *
 * Every node tells the others which groups have members on it (`{prefix}.sg`: changes as
 * they happen, everything when a node joins). A message published on this node reaches
 * the groups with members here as on one node; for every other matching group the node
 * picks one node that has members (in turn) and sends the message there alone
 * (`share` on that node's subject), where the group's owner shard gives it to a member.
 * A message that arrives from another node on a topic subject never reaches a group
 * (`remote` publishes): the publishing node has already chosen.
 */
import { pack, unpack } from 'msgpackr';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import { PROTOCOL_VERSION, type AppMessage, type ClusterMsg, type ShardMsg } from '../protocol/messages.js';
import { TopicTrie } from '../router/topic-trie.js';
import type { ActorRef } from '../runtime/system.js';
import { shardOf } from '../runtime/sharding.js';
import type { Bus, BusSubscription } from './bus.js';
import type { DirectChannel } from './direct.js';
import { portable } from './wire.js';

type GroupsMsg = Extract<ClusterMsg, { t: 'shareGroups' }>;

interface Announcement {
  v: number;
  from: string;
  add: Array<[string, string]>;
  del: string[];
  /** Replaces everything known of the sender. */
  full: boolean;
}

interface RemoteGroup {
  filter: string;
  nodes: string[];
  next: number;
}

export class SharedLink {
  /** Groups with members here: key -> filter, and which shard owns which. */
  private readonly local = new Map<string, string>();
  private readonly byShard = new Map<number, Set<string>>();
  /** Groups with members on other nodes. */
  private readonly remote = new Map<string, RemoteGroup>();
  private readonly trie = new TopicTrie<Set<string>>();
  private readonly sub: BusSubscription;

  constructor(
    private readonly o: { node: string; prefix: string },
    private readonly bus: Bus,
    private readonly channel: DirectChannel,
    private readonly shards: ActorRef<ShardMsg>[],
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.sub = bus.subscribe(`${o.prefix}.sg`, (data) => this.fromNode(data));
  }

  /** A shard's groups changed (or its full list, after routeSync). */
  fromShard(m: GroupsMsg): void {
    let mine = this.byShard.get(m.shard);
    if (!mine) this.byShard.set(m.shard, (mine = new Set()));
    const add: Array<[string, string]> = [];
    const del: string[] = [];
    if (m.full) for (const key of mine) if (!m.add.some(([k]) => k === key)) del.push(key);
    for (const key of m.del) if (mine.has(key)) del.push(key);
    for (const key of del) {
      mine.delete(key);
      this.local.delete(key);
    }
    for (const [key, filter] of m.add) {
      if (mine.has(key)) continue;
      mine.add(key);
      this.local.set(key, filter);
      add.push([key, filter]);
    }
    if (add.length > 0 || del.length > 0) this.announce({ add, del, full: false });
  }

  /** A shard thread died: its groups are gone until its snapshot comes back. */
  shardDown(shard: number): void {
    const keys = [...(this.byShard.get(shard) ?? [])];
    this.byShard.delete(shard);
    for (const k of keys) this.local.delete(k);
    if (keys.length > 0) this.announce({ add: [], del: keys, full: false });
  }

  /** A node joined: it learns our groups. */
  nodeJoined(): void {
    this.announce({ add: [...this.local], del: [], full: true });
  }

  nodeGone(node: string): void {
    for (const [key, g] of [...this.remote]) this.removeNode(key, g, node);
  }

  /**
   * A message published on this node: each matching group without members here gets it on
   * one node that has members.
   */
  route(msg: AppMessage): void {
    if (this.remote.size === 0) return;
    let out: AppMessage | undefined;
    this.trie.match(msg.topic, (keys) => {
      for (const key of keys) {
        if (this.local.has(key)) continue; // delivered here, as on one node
        const g = this.remote.get(key)!;
        const node = g.nodes[g.next++ % g.nodes.length]!;
        out ??= portable(msg);
        this.channel.send(node, { k: 'share', id: 0, key, msg: out });
        this.metrics.inc('cluster_shared_out_total');
      }
    });
  }

  /** Another node picked this one for group `key`. */
  deliver(key: string, msg: AppMessage): void {
    this.metrics.inc('cluster_shared_in_total');
    this.shards[shardOf(key, this.shards.length)]!.tell({ t: 'shareRemote', key, msg });
  }

  close(): void {
    this.sub.unsubscribe();
  }

  private announce(a: Omit<Announcement, 'v' | 'from'>): void {
    try {
      this.bus.publish(`${this.o.prefix}.sg`, pack({ v: PROTOCOL_VERSION, from: this.o.node, ...a } satisfies Announcement));
    } catch (err) {
      this.metrics.inc('cluster_errors_total{op="publish"}');
      this.log.error({ err }, 'could not tell the other nodes about shared subscription groups');
    }
  }

  private fromNode(data: Uint8Array): void {
    let a: Partial<Announcement>;
    try {
      a = unpack(data) as Partial<Announcement>;
    } catch {
      a = {};
    }
    if (a?.v !== PROTOCOL_VERSION || typeof a.from !== 'string' || !Array.isArray(a.add) || !Array.isArray(a.del)) {
      this.metrics.inc('cluster_errors_total{op="decode"}');
      return;
    }
    const from = a.from;
    if (from === this.o.node) return;
    if (a.full) for (const [key, g] of [...this.remote]) if (!a.add.some(([k]) => k === key)) this.removeNode(key, g, from);
    for (const key of a.del) {
      const g = this.remote.get(key);
      if (g) this.removeNode(key, g, from);
    }
    for (const [key, filter] of a.add) {
      if (typeof key !== 'string' || typeof filter !== 'string') continue;
      let g = this.remote.get(key);
      if (!g) {
        this.remote.set(key, (g = { filter, nodes: [], next: 0 }));
        let keys = this.trie.get(filter);
        if (!keys) this.trie.set(filter, (keys = new Set()));
        keys.add(key);
      }
      if (!g.nodes.includes(from)) g.nodes.push(from);
    }
    this.gauges();
  }

  private gauges(): void {
    let placements = 0;
    for (const g of this.remote.values()) placements += g.nodes.length;
    this.metrics.set('cluster_shared_remote_groups', this.remote.size);
    this.metrics.set('cluster_shared_remote_placements', placements);
  }

  private removeNode(key: string, g: RemoteGroup, node: string): void {
    const i = g.nodes.indexOf(node);
    if (i < 0) return;
    g.nodes.splice(i, 1);
    if (g.nodes.length > 0) return this.gauges();
    this.remote.delete(key);
    const keys = this.trie.get(g.filter);
    keys?.delete(key);
    if (keys && keys.size === 0) this.trie.delete(g.filter);
    this.gauges();
  }
}
