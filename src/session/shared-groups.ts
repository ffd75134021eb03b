/**
 * The owner side of shared subscriptions (`$share/{ShareName}/{filter}`, MQTT 5.0 section
 * 4.8.2): the groups whose key hashes to this shard. A group is its members (client id,
 * the shard of their session, online or not) and a route for its filter; the members'
 * sessions, with the subscription, live on their own shards (shared-member.ts).
 *
 *  - Routes: the first group on a filter adds it to the route table of every gateway (like
 *    a first subscriber, unless a session of this shard subscribes the same filter), the
 *    last one gone removes it. A join is answered (`shareJoined`) once the route is
 *    acknowledged everywhere, and only then does the member's shard send the SUBACK: a
 *    message published after the SUBACK reaches the group.
 *  - Publish: the gateways route the message here; each matching group gives it to one
 *    member [MQTT-4.8.2-3 is the member's business: its own granted QoS], online members
 *    first (shared-strategy.ts picks); with no member online it is queued on one. A member
 *    whose subscription went away meanwhile bounces it and another one gets it.
 *  - Redelivery: a member whose connection or session ends gives back what it never
 *    acknowledged (`shareRequeue`); other members get it, the same one when it is alone.
 *  - Durability sync: a publish that waits for its commit (its gateway's ack token) is
 *    answered here only once every member shard it went to committed it.
 *  - Restarts: the table is memory only, rebuilt from the members: at start and after a
 *    shard thread restarted, every shard sends each owner all its memberships
 *    (`shareSync`), which replace what the owner knew of that shard.
 */
import type { AppMessage, CoordinatorMsg, ShardMsg, SharedMsg } from '../protocol/messages.js';
import type { Metrics } from '../admin/metrics.js';
import { TopicTrie } from '../router/topic-trie.js';
import { sharedInnerFilter } from '../mqtt/shared.js';
import { newPickState, pickMember, type PickState, type SharedStrategy } from './shared-strategy.js';

/** What the owner side needs of its shard (the ShardActor). */
export interface GroupHost {
  readonly index: number;
  readonly shardCount: number;
  readonly metrics: Metrics;
  /** Bound of the messages kept for a group whose members are all on restarting shards. */
  readonly maxQueuedMessages: number;
  toShard(shard: number, m: ShardMsg): void;
  toCoordinator(m: CoordinatorMsg): void;
  routeAdd(filters: string[]): void;
  routeDel(filters: string[]): void;
  afterRoutes(run: () => void): void;
  /** A session of this shard subscribes this filter itself: its route stays while it does. */
  hasLocalFilter(filter: string): boolean;
  /** Groups owned here began or ended (the cluster link tells the other nodes). */
  groupsChanged(add: Array<[string, string]>, del: string[]): void;
}

interface Member {
  clientId: string;
  shard: number;
  online: boolean;
}

/** A publish waiting for its deliveries to be durable: `left` copies, then `done`. */
interface CommitWait {
  left: number;
  done: () => void;
}

/** A message kept while every member of its group is on a restarting shard. */
interface Parked {
  msg: AppMessage;
  wait?: CommitWait;
  /** A requeue: not back to this member if another one can take it. */
  from?: string;
}

interface Group {
  key: string;
  filter: string;
  members: Map<string, Member>;
  pick: PickState;
  parked: Parked[];
}

/** A delivery the publisher waits for (durability sync). */
interface Tracked {
  key: string;
  msg: AppMessage;
  shard: number;
  wait: CommitWait;
}

type OwnerMsg = Extract<SharedMsg, { t: 'shareJoin' | 'shareLeave' | 'shareState' | 'shareBounce' | 'shareRequeue' | 'shareCommitted' | 'shareSync' }>;

export class SharedGroups {
  private readonly groups = new Map<string, Group>();
  /** Inner filter -> the groups on it (by key). */
  private readonly trie = new TopicTrie<Map<string, Group>>();
  private readonly tracked = new Map<number, Tracked>();
  private nextId = 1;
  /** Shards whose thread is restarting (bits): their members get nothing until their shareSync. */
  private down = 0;
  /** shareResync requests: shareSync answers counted so far. */
  private readonly resyncs = new Map<number, number>();
  private memberCount = 0;

  constructor(
    private readonly host: GroupHost,
    private readonly strategy: SharedStrategy,
    private readonly random: () => number = Math.random,
  ) {}

  receive(m: OwnerMsg): void {
    switch (m.t) {
      case 'shareJoin': {
        const g = this.addMember(m.key, m.clientId, m.shard, m.online);
        this.flush(g);
        if (m.reqId > 0) this.host.afterRoutes(() => this.host.toShard(m.shard, { t: 'shareJoined', reqId: m.reqId }));
        return;
      }
      case 'shareLeave':
        return this.removeMember(m.key, m.clientId);
      case 'shareState':
        for (const key of m.keys) {
          const g = this.groups.get(key);
          const mb = g?.members.get(m.clientId);
          if (!g || !mb) continue;
          mb.online = m.online;
          if (m.online) this.flush(g);
        }
        return;
      case 'shareBounce':
        return this.onBounce(m);
      case 'shareRequeue': {
        this.host.metrics.inc('shared_redeliveries_total', m.msgs.length);
        const g = this.groups.get(m.key);
        for (const msg of m.msgs) {
          if (g) this.place(g, msg, undefined, m.clientId);
          else this.drop(1);
        }
        return;
      }
      case 'shareCommitted':
        for (const id of m.ids) {
          const t = this.tracked.get(id);
          if (!t) continue;
          this.tracked.delete(id);
          release(t.wait);
        }
        return;
      case 'shareSync':
        return this.onSync(m);
    }
  }

  /** Some group is owned here (publishes need matching against them). */
  get active(): boolean {
    return this.trie.size > 0;
  }

  /** True when a group of this shard is on `filter` (the route stays while one is). */
  hasFilter(filter: string): boolean {
    return this.trie.has(filter);
  }

  /** Every group owned here: [key, filter]. */
  keys(): Array<[string, string]> {
    return [...this.groups.values()].map((g) => [g.key, g.filter]);
  }

  /**
   * A message another node published for group `key` (it picked this node, where the group
   * has members): one member gets it, as for a publish here.
   */
  publishTo(key: string, msg: AppMessage): void {
    const g = this.groups.get(key);
    if (g) this.place(g, msg);
    else this.drop(1);
  }

  /** The filters of the groups owned here (for the route snapshot). */
  *filters(): IterableIterator<string> {
    for (const [f] of this.trie.filters()) yield f;
  }

  get size(): { groups: number; members: number } {
    return { groups: this.groups.size, members: this.memberCount };
  }

  /**
   * A publish routed here: one member of each matching group gets it. `commit` (the
   * publisher waits for durability): called once every member shard committed its copy;
   * `waiting` false means nothing here waits, the caller answers as usual.
   */
  publish(msg: AppMessage, commit?: () => void): { delivered: boolean; waiting: boolean } {
    if (this.trie.size === 0) return { delivered: false, waiting: false };
    // One unit held during the loop, so nothing finishes the wait before every copy is out.
    const wait: CommitWait | undefined = commit && msg.qos > 0 ? { left: 1, done: commit } : undefined;
    let delivered = false;
    this.trie.match(msg.topic, (groups) => {
      for (const g of groups.values()) {
        delivered = true;
        if (wait) wait.left++;
        this.place(g, msg, wait);
      }
    });
    if (!wait || wait.left === 1) return { delivered, waiting: false };
    release(wait);
    return { delivered, waiting: true };
  }

  /** A member shard's thread died: its members get nothing, what it did not confirm goes to others. */
  peerDown(shard: number): void {
    this.down |= 1 << shard;
    for (const [id, t] of [...this.tracked]) {
      if (t.shard !== shard) continue;
      this.tracked.delete(id);
      // It may have arrived before the thread died: at least once, like a QoS 1 resend.
      const g = this.groups.get(t.key);
      if (g) this.place(g, t.msg, t.wait);
      else this.drop(1, t.wait);
    }
  }

  // ------------------------------------------------------------ delivery
  /**
   * Gives `msg` to one member of `g`. `wait` holds one unit for this copy, handed to the
   * tracked delivery or the parked message, or released when the message is dropped.
   * `from`: a requeue, which goes back to that member only if no other one can take it.
   */
  private place(g: Group, msg: AppMessage, wait?: CommitWait, from?: string): void {
    let mb = this.choose(g, msg, from);
    if (!mb && from !== undefined) {
      const orig = g.members.get(from);
      if (orig && !this.isDown(orig)) mb = orig;
    }
    if (!mb) {
      if (g.members.size > 0 && g.parked.length < this.host.maxQueuedMessages) {
        // Every member is on a restarting shard: kept until one is back.
        const p: Parked = { msg };
        if (wait) p.wait = wait;
        if (from !== undefined) p.from = from;
        g.parked.push(p);
        return;
      }
      return this.drop(1, wait);
    }
    this.send(g, mb, msg, wait);
  }

  private send(g: Group, mb: Member, msg: AppMessage, wait?: CommitWait): void {
    this.host.metrics.inc('shared_deliveries_total');
    if (!wait) return this.host.toShard(mb.shard, { t: 'shareDeliver', key: g.key, clientId: mb.clientId, msg });
    const id = this.nextId;
    this.nextId = this.nextId >= 0x3fffffff ? 1 : this.nextId + 1;
    this.tracked.set(id, { key: g.key, msg, shard: mb.shard, wait });
    this.host.toShard(mb.shard, { t: 'shareDeliver', key: g.key, clientId: mb.clientId, msg, id });
  }

  /** Online members first; never one on a restarting shard, `exclude`, or the publisher of a rule-made copy. */
  private choose(g: Group, msg: AppMessage, exclude?: string): Member | undefined {
    const online: Member[] = [];
    const offline: Member[] = [];
    for (const mb of g.members.values()) {
      if (mb.clientId === exclude || this.isDown(mb)) continue;
      // A routing rule's copy is not delivered to the session that published the original.
      if (msg.carbon && msg.origin === mb.clientId) continue;
      (mb.online ? online : offline).push(mb);
    }
    const candidates = online.length > 0 ? online : offline;
    return candidates.length > 0 ? pickMember(this.strategy, candidates, g.pick, msg, this.random) : undefined;
  }

  private isDown(mb: Member): boolean {
    return (this.down & (1 << mb.shard)) !== 0;
  }

  private onBounce(m: Extract<SharedMsg, { t: 'shareBounce' }>): void {
    let wait: CommitWait | undefined;
    if (m.id !== undefined) {
      const t = this.tracked.get(m.id);
      // Unknown: already re-sent elsewhere (the shard was written off) or never tracked.
      if (!t) return;
      this.tracked.delete(m.id);
      wait = t.wait;
    }
    if (m.gone) this.removeMember(m.key, m.clientId);
    const g = this.groups.get(m.key);
    this.host.metrics.inc('shared_redeliveries_total');
    if (!g) return this.drop(1, wait);
    const mb = this.choose(g, m.msg, m.clientId);
    if (mb) this.send(g, mb, m.msg, wait);
    else if (!m.gone && g.members.has(m.clientId)) this.drop(1, wait); // nobody else; the member refused it
    else this.place(g, m.msg, wait, m.clientId);
  }

  /** Messages kept while the members' shards restarted: out again. */
  private flush(g: Group | undefined): void {
    if (!g || g.parked.length === 0) return;
    const parked = g.parked;
    g.parked = [];
    for (const p of parked) this.place(g, p.msg, p.wait, p.from);
  }

  private drop(n: number, wait?: CommitWait): void {
    this.host.metrics.inc('messages_dropped_total{reason="shared_no_member"}', n);
    if (wait) release(wait);
  }

  // ------------------------------------------------------------ membership
  private addMember(key: string, clientId: string, shard: number, online: boolean): Group {
    let g = this.groups.get(key);
    if (!g) {
      g = { key, filter: sharedInnerFilter(key), members: new Map(), pick: newPickState(), parked: [] };
      this.groups.set(key, g);
      let byFilter = this.trie.get(g.filter);
      if (!byFilter) {
        this.trie.set(g.filter, (byFilter = new Map()));
        if (!this.host.hasLocalFilter(g.filter)) this.host.routeAdd([g.filter]);
      }
      byFilter.set(key, g);
      this.host.groupsChanged([[key, g.filter]], []);
    }
    const mb = g.members.get(clientId);
    if (mb) {
      mb.shard = shard;
      mb.online = online;
    } else {
      g.members.set(clientId, { clientId, shard, online });
      this.memberCount++;
    }
    return g;
  }

  private removeMember(key: string, clientId: string): void {
    const g = this.groups.get(key);
    if (!g || !g.members.delete(clientId)) return;
    this.memberCount--;
    if (g.members.size > 0) return;
    // The group ends with its last member [MQTT 5.0 section 4.8.2]: undelivered messages go with it.
    this.groups.delete(key);
    this.host.groupsChanged([], [key]);
    const byFilter = this.trie.get(g.filter);
    byFilter?.delete(key);
    if (byFilter && byFilter.size === 0) {
      this.trie.delete(g.filter);
      if (!this.host.hasLocalFilter(g.filter)) this.host.routeDel([g.filter]);
    }
    for (const p of g.parked) this.drop(1, p.wait);
    g.parked = [];
  }

  /** Every membership of shard `m.shard` for groups owned here: replaces what was known of that shard. */
  private onSync(m: Extract<SharedMsg, { t: 'shareSync' }>): void {
    const listed = new Set<string>();
    // Added first, removed after: a group that stays never loses its route meanwhile.
    for (const e of m.members) {
      listed.add(`${e.key}\u0000${e.clientId}`);
      this.addMember(e.key, e.clientId, m.shard, e.online);
    }
    for (const g of [...this.groups.values()]) {
      for (const mb of [...g.members.values()]) {
        if (mb.shard === m.shard && !listed.has(`${g.key}\u0000${mb.clientId}`)) this.removeMember(g.key, mb.clientId);
      }
    }
    this.down &= ~(1 << m.shard);
    for (const g of this.groups.values()) this.flush(g);
    if (!m.answer) return;
    const n = (this.resyncs.get(m.reqId) ?? 0) + 1;
    if (n < this.host.shardCount) {
      this.resyncs.set(m.reqId, n);
      return;
    }
    this.resyncs.delete(m.reqId);
    // The groups are back: the route snapshot the gateways ask for next has their filters.
    this.host.toCoordinator({ t: 'shareResynced', reqId: m.reqId, shard: this.host.index });
  }
}

function release(w: CommitWait): void {
  if (--w.left === 0) w.done();
}
