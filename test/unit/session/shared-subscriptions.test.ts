/**
 * Shared subscriptions across shards: two ShardActors (the group's owner and a member
 * shard) on one in-thread ActorSystem, with a fake gateway (it acknowledges routes unless
 * told not to) and a fake coordinator. Owner-side details are in shared-groups.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ActorSystem } from '../../../src/runtime/system.js';
import { ShardActor, type ShardOptions } from '../../../src/session/shard-actor.js';
import { Metrics } from '../../../src/admin/metrics.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { makeConnId } from '../../../src/gateway/conn-id.js';
import { shardOf } from '../../../src/runtime/sharding.js';
import { COORDINATOR, gatewayName, shardName, type CoordinatorMsg, type GatewayMsg, type QoS, type ShardMsg, type SubRequest } from '../../../src/protocol/messages.js';
import type { Store } from '../../../src/store/types.js';
import { pubs, silentLog, tick } from './shard-harness.js';

const SHARDS = 2;
const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
  vi.useRealTimers();
});

/** A name that lands on `shard` (shardOf), made from `base`. */
function on(shard: number, base: string): string {
  for (let i = 0; ; i++) if (shardOf(`${base}${i}`, SHARDS) === shard) return `${base}${i}`;
}
const OWNER = 0;
const MEMBER_SHARD = 1;
/** A group key `$share/{name}N/{filter}` owned by `owner`. */
function groupKey(name: string, filter: string, owner: number): string {
  for (let i = 0; ; i++) if (shardOf(`$share/${name}${i}/${filter}`, SHARDS) === owner) return `$share/${name}${i}/${filter}`;
}
/** A group owned by shard 0, on filter jobs/+. */
const G = groupKey('g', 'jobs/+', OWNER);

interface Sys {
  sys: ActorSystem;
  shards: ShardActor[];
  stores: Store[];
  gw: GatewayMsg[];
  coord: CoordinatorMsg[];
  /** While false the gateway holds its route acknowledgements (release with ackRoutes). */
  autoAck: boolean;
  ackRoutes(): void;
  tell(shard: number, m: ShardMsg): void;
  connect(clientId: string, over?: Partial<Extract<ShardMsg, { t: 'connect' }>>): number;
  subscribe(clientId: string, connId: number, subs: Array<Partial<SubRequest> & { filter: string }>): void;
  /** Like a gateway: to every shard (those without a match ignore it). */
  publish(topic: string, qos: QoS, payload: string, over?: Partial<Extract<ShardMsg, { t: 'publish' }>>): void;
  take(): GatewayMsg[];
  /** Payloads delivered per connection id. */
  byConn(msgs: GatewayMsg[]): Map<number, string[]>;
  restartShard(i: number): ShardActor;
}

function makeSys(o: Partial<ShardOptions> = {}, stores: Store[] = Array.from({ length: SHARDS }, () => new MemoryStore())): Sys {
  const sys = new ActorSystem('t', () => 't');
  const gw: GatewayMsg[] = [];
  const coord: CoordinatorMsg[] = [];
  const heldAcks: Array<{ shard: number; seq: number }> = [];
  let counter = 0;
  const s: Sys = {
    sys,
    shards: [],
    stores,
    gw,
    coord,
    autoAck: true,
    ackRoutes() {
      for (const a of heldAcks.splice(0)) sys.ref<ShardMsg>(shardName(a.shard)).tell({ t: 'routeAck', gw: 0, seq: a.seq });
    },
    tell: (shard, m) => sys.ref<ShardMsg>(shardName(shard)).tell(m),
    connect(clientId, over = {}) {
      const connId = makeConnId(++counter, 0);
      s.tell(shardOf(clientId, SHARDS), { t: 'connect', gw: 0, connId, clientId, protocolVersion: 5, cleanStart: true, expiry: 0, receiveMaximum: 65535, ...over });
      return connId;
    },
    subscribe(clientId, connId, subs) {
      s.tell(shardOf(clientId, SHARDS), {
        t: 'subscribe',
        connId,
        clientId,
        packetId: 1,
        subs: subs.map((x) => ({ qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, code: 0, ...x })),
      });
    },
    publish(topic, qos, payload, over = {}) {
      for (let i = 0; i < SHARDS; i++) s.tell(i, { t: 'publish', msg: { topic, payload: Buffer.from(payload), qos, retain: false }, ...over });
    },
    take: () => gw.splice(0),
    byConn(msgs) {
      const out = new Map<number, string[]>();
      for (const p of pubs(msgs)) {
        const l = out.get(p.connId) ?? [];
        l.push(Buffer.from(p.msg.payload).toString());
        out.set(p.connId, l);
      }
      return out;
    },
    restartShard(i) {
      const a = newShard(i);
      a.restore();
      sys.spawn(shardName(i), a);
      s.shards[i] = a;
      return a;
    },
  };
  sys.spawn<GatewayMsg>(gatewayName(0), {
    receive(m) {
      gw.push(m);
      if (m.t !== 'routeAdd') return;
      if (s.autoAck) s.tell(m.shard, { t: 'routeAck', gw: 0, seq: m.seq });
      else heldAcks.push({ shard: m.shard, seq: m.seq });
    },
  });
  sys.spawn<CoordinatorMsg>(COORDINATOR, { receive: (m) => void coord.push(m) });
  const newShard = (index: number): ShardActor => {
    const metrics = new Metrics(`shard${index}`);
    closers.push(() => metrics.close());
    return new ShardActor(
      {
        index,
        gateways: 1,
        shards: SHARDS,
        maxInflight: 10,
        maxQueuedMessages: 100,
        maxSubscriptionsPerClient: 50,
        maxSessions: 1000,
        maxAnonymousSessions: 1000,
        im: false,
        store: stores[index]!,
        evictAfterMs: null,
        dedupMaxAgeMs: 3_600_000,
        asyncLagMs: null,
        ...o,
      },
      sys,
      metrics,
      silentLog,
    );
  };
  for (let i = 0; i < SHARDS; i++) {
    const a = newShard(i);
    a.restore();
    s.shards.push(a);
    sys.spawn(shardName(i), a);
  }
  return s;
}

/** Connected and subscribed, SUBACK received; returns the connId. */
async function member(s: Sys, clientId: string, filter = G, over: Partial<Extract<ShardMsg, { t: 'connect' }>> = {}, qos: QoS = 1): Promise<number> {
  const c = s.connect(clientId, over);
  s.subscribe(clientId, c, [{ filter, qos }]);
  await tick();
  await tick();
  const got = s.take();
  expect(got.some((m) => m.t === 'suback' && m.connId === c)).toBe(true);
  return c;
}

describe('shared subscriptions across shards', () => {
  it('the group key is owned by shard 0, its members live on their own shards', () => {
    expect(shardOf(G, SHARDS)).toBe(OWNER);
    expect(G.endsWith('/jobs/+')).toBe(true);
  });

  it('the SUBACK waits until the owner\'s route for the group is acknowledged by the gateways', async () => {
    const s = makeSys();
    s.autoAck = false;
    const id = on(MEMBER_SHARD, 'm');
    const c = s.connect(id);
    await tick();
    s.ackRoutes();
    await tick();
    s.take();
    s.subscribe(id, c, [{ filter: G, qos: 1 }]);
    await tick();
    const got = s.take();
    expect(got).toEqual([{ t: 'routeAdd', shard: OWNER, filters: ['jobs/+'], seq: 1 }]); // from the owner, not the member's shard
    s.ackRoutes();
    await tick();
    expect(s.take()).toEqual([{ t: 'suback', connId: c, packetId: 1, codes: [1] }]);
    expect(s.shards[OWNER]!.groups.size).toEqual({ groups: 1, members: 1 });
    expect(s.shards[MEMBER_SHARD]!.sessions.get(id)!.subs.has(G)).toBe(true);
  });

  it('[MQTT 4.8.2] each message to exactly one member; a normal subscriber and a second group get every message', async () => {
    const s = makeSys();
    const a = await member(s, on(MEMBER_SHARD, 'a'));
    const b = await member(s, on(OWNER, 'b'));
    const other = await member(s, on(MEMBER_SHARD, 'o'), groupKey('other', 'jobs/#', MEMBER_SHARD));
    const plain = await member(s, on(MEMBER_SHARD, 'p'), 'jobs/+');
    for (let i = 0; i < 6; i++) s.publish('jobs/1', 1, `m${i}`);
    await tick();
    const got = s.byConn(s.take());
    expect([...(got.get(a) ?? []), ...(got.get(b) ?? [])].sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(got.get(a)).toHaveLength(3); // round robin
    expect(got.get(other)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(got.get(plain)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
  });

  it('a delivery takes the member\'s granted QoS and its subscription identifier', async () => {
    const s = makeSys();
    const id = on(MEMBER_SHARD, 'q');
    const c = s.connect(id);
    s.tell(MEMBER_SHARD, { t: 'subscribe', connId: c, clientId: id, packetId: 1, subId: 42, subs: [{ filter: G, qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0, code: 0 }] });
    await tick();
    s.take();
    s.publish('jobs/1', 2, 'x');
    await tick();
    const p = pubs(s.take());
    expect(p).toHaveLength(1);
    expect(p[0]).toMatchObject({ connId: c, qos: 0, subIds: [42], retain: false });
  });

  it('no retained messages are requested for a shared subscription [MQTT 5.0 3.3.1.3]', async () => {
    const s = makeSys();
    await member(s, on(MEMBER_SHARD, 'r'));
    expect(s.coord.filter((m) => m.t === 'retainedRequest')).toEqual([]);
    await member(s, on(MEMBER_SHARD, 'n'), 'jobs/+');
    expect(s.coord.filter((m) => m.t === 'retainedRequest')).toHaveLength(1);
  });

  it('a member that loses its connection with unacknowledged QoS 1 messages: another member gets them; QoS 2 once sent stays [MQTT-4.8.2-4]', async () => {
    const s = makeSys();
    const aId = on(MEMBER_SHARD, 'lost');
    const a = await member(s, aId, G, {}, 2);
    const b = await member(s, on(OWNER, 'keep'), G, {}, 2);
    for (let i = 0; i < 4; i++) s.publish('jobs/1', 1, `q1-${i}`);
    s.publish('jobs/1', 2, 'q2-a'); // round robin: a gets q1-0, q1-2, q2-a
    await tick();
    const first = s.byConn(s.take());
    expect(first.get(a)).toEqual(['q1-0', 'q1-2', 'q2-a']);
    expect(first.get(b)).toEqual(['q1-1', 'q1-3']);
    // a never acknowledges and its connection is lost; its session stays (expiry 0 ends it: same result).
    s.tell(MEMBER_SHARD, { t: 'disconnect', connId: a, clientId: aId, publishWill: true, qos2In: [] });
    await tick();
    expect(s.byConn(s.take()).get(b)).toEqual(['q1-0', 'q1-2']);
    expect(s.shards[MEMBER_SHARD]!.metrics.get('shared_given_back_total')).toBe(2);
  });

  it('a persistent member offline keeps its QoS 2 inflight message and gets it again on resume; its QoS 1 went to the other member', async () => {
    const s = makeSys();
    const aId = on(MEMBER_SHARD, 'pers');
    const a = await member(s, aId, G, { cleanStart: false, expiry: 600 }, 2);
    const b = await member(s, on(OWNER, 'other'), G, {}, 2);
    s.publish('jobs/1', 2, 'two'); // -> a
    s.publish('jobs/1', 1, 'x'); // -> b
    s.publish('jobs/1', 1, 'one'); // -> a
    await tick();
    s.take();
    s.tell(MEMBER_SHARD, { t: 'disconnect', connId: a, clientId: aId, publishWill: false, qos2In: [] });
    await tick();
    expect(s.byConn(s.take()).get(b)).toEqual(['one']);
    const a2 = s.connect(aId, { cleanStart: false, expiry: 600 });
    await tick();
    const back = pubs(s.take()).filter((p) => p.connId === a2);
    expect(back.map((p) => [Buffer.from(p.msg.payload).toString(), p.dup])).toEqual([['two', true]]);
  });

  it('with no other member, what a member gives back comes back to it (nothing is lost)', async () => {
    const s = makeSys();
    const aId = on(MEMBER_SHARD, 'alone');
    const a = await member(s, aId, G, { cleanStart: false, expiry: 600 });
    s.publish('jobs/1', 1, 'm1');
    await tick();
    s.take();
    s.tell(MEMBER_SHARD, { t: 'disconnect', connId: a, clientId: aId, publishWill: false, qos2In: [] });
    await tick();
    const sess = s.shards[MEMBER_SHARD]!.sessions.get(aId)!;
    expect(sess.queue.size).toBe(1);
    const a2 = s.connect(aId, { cleanStart: false, expiry: 600 });
    await tick();
    expect(s.byConn(s.take()).get(a2)).toEqual(['m1']);
  });

  it('unsubscribe and session end leave the group; the last member gone removes the owner\'s route', async () => {
    const s = makeSys();
    const aId = on(MEMBER_SHARD, 'u');
    const a = await member(s, aId);
    const bId = on(MEMBER_SHARD, 'v');
    const b = await member(s, bId);
    s.tell(MEMBER_SHARD, { t: 'unsubscribe', connId: a, clientId: aId, packetId: 2, filters: [G] });
    await tick();
    expect(s.take()).toContainEqual({ t: 'unsuback', connId: a, packetId: 2, codes: [0] });
    expect(s.shards[OWNER]!.groups.size).toEqual({ groups: 1, members: 1 });
    s.tell(MEMBER_SHARD, { t: 'disconnect', connId: b, clientId: bId, publishWill: false, qos2In: [] }); // expiry 0: the session ends
    await tick();
    expect(s.take()).toContainEqual({ t: 'routeDel', shard: OWNER, filters: ['jobs/+'] });
    expect(s.shards[OWNER]!.groups.size).toEqual({ groups: 0, members: 0 });
  });

  it('a member gone when its delivery arrives bounces it to another member', async () => {
    const s = makeSys();
    const aId = on(MEMBER_SHARD, 'b1');
    await member(s, aId);
    const b = await member(s, on(OWNER, 'b2'));
    // The session vanishes without its leave reaching the owner yet (as when a delivery is on its way).
    s.shards[MEMBER_SHARD]!.sessions.delete(aId);
    s.publish('jobs/1', 1, 'p0');
    s.publish('jobs/1', 1, 'p1');
    await tick();
    expect(s.byConn(s.take()).get(b)?.sort()).toEqual(['p0', 'p1']); // a bounced one comes later
    expect(s.shards[OWNER]!.groups.size.members).toBe(1);
  });

  it('durability: the publisher\'s commit waits for the member shard (answered once its copy is durable)', async () => {
    const s = makeSys();
    await member(s, on(MEMBER_SHARD, 'd'));
    s.tell(OWNER, { t: 'publish', msg: { topic: 'jobs/1', payload: Buffer.from('x'), qos: 1, retain: false, originConn: makeConnId(99, 0) }, ack: 5 });
    await tick();
    await tick();
    expect(s.take().filter((m) => m.t === 'committed')).toEqual([{ t: 'committed', ids: [5] }]);
    expect(s.shards[OWNER]!.metrics.get('shared_deliveries_total')).toBe(1);
  });

  it('the SUBACK of a shared subscription keeps its place: a later UNSUBACK of the client waits for it, other clients do not', async () => {
    const s = makeSys();
    s.autoAck = false;
    const id = on(MEMBER_SHARD, 'ord');
    const c = s.connect(id);
    await tick();
    s.ackRoutes();
    await tick();
    s.take();
    s.subscribe(id, c, [{ filter: G }]);
    s.tell(MEMBER_SHARD, { t: 'unsubscribe', connId: c, clientId: id, packetId: 2, filters: [G] });
    // Another client of the same shard is not held up by it.
    const other = on(MEMBER_SHARD, 'free');
    const c2 = s.connect(other);
    await tick();
    expect(s.take().filter((m) => m.t === 'connack' || m.t === 'suback' || m.t === 'unsuback')).toEqual([{ t: 'connack', connId: c2, sessionPresent: false, qos2In: [] }]);
    s.ackRoutes();
    await tick();
    expect(s.take().filter((m) => m.t === 'suback' || m.t === 'unsuback')).toEqual([
      { t: 'suback', connId: c, packetId: 1, codes: [1] },
      { t: 'unsuback', connId: c, packetId: 2, codes: [0] },
    ]);
  });

  it('a persistent member\'s shared subscription survives a restart: the groups are rebuilt from the members (shareResync)', async () => {
    const s = makeSys();
    const id = on(MEMBER_SHARD, 'dur');
    const c = await member(s, id, G, { cleanStart: false, expiry: 3600 });
    s.tell(MEMBER_SHARD, { t: 'disconnect', connId: c, clientId: id, publishWill: false, qos2In: [] });
    await tick();
    await tick(); // journal flush
    // A new broker on the same stores: sessions restored, then the coordinator's resync.
    const s2 = makeSys({}, s.stores);
    expect(s2.shards[OWNER]!.groups.size.groups).toBe(0);
    for (let i = 0; i < SHARDS; i++) s2.tell(i, { t: 'shareResync', reqId: 1, owner: null });
    await tick();
    expect(s2.coord.filter((m) => m.t === 'shareResynced')).toEqual([
      { t: 'shareResynced', reqId: 1, shard: 0 },
      { t: 'shareResynced', reqId: 1, shard: 1 },
    ]);
    expect(s2.shards[OWNER]!.groups.size).toEqual({ groups: 1, members: 1 });
    s2.tell(OWNER, { t: 'routeSync', gw: 0 });
    await tick();
    expect(s2.take()).toContainEqual({ t: 'routeSnapshot', shard: OWNER, filters: ['jobs/+'] });
    s2.publish('jobs/1', 1, 'while-offline');
    await tick();
    const c2 = s2.connect(id, { cleanStart: false, expiry: 3600 });
    await tick();
    expect(s2.byConn(s2.take()).get(c2)).toEqual(['while-offline']);
  });

  it('the owner\'s thread restarts: the members\' shards send it their memberships again', async () => {
    const s = makeSys();
    const a = await member(s, on(MEMBER_SHARD, 'x'));
    s.tell(MEMBER_SHARD, { t: 'peerDown', shard: OWNER });
    s.restartShard(OWNER); // memory store: nothing of its own comes back
    expect(s.shards[OWNER]!.groups.size.groups).toBe(0);
    for (let i = 0; i < SHARDS; i++) s.tell(i, { t: 'shareResync', reqId: 3, owner: OWNER });
    await tick();
    expect(s.coord.filter((m) => m.t === 'shareResynced')).toEqual([{ t: 'shareResynced', reqId: 3, shard: OWNER }]);
    expect(s.shards[OWNER]!.groups.size).toEqual({ groups: 1, members: 1 });
    s.take();
    s.publish('jobs/1', 1, 'after');
    await tick();
    expect(s.byConn(s.take()).get(a)).toEqual(['after']);
  });

  it('a SUBACK waits at most 10 s for an owner that never answers', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = makeSys();
    const id = on(MEMBER_SHARD, 'late');
    const c = s.connect(id);
    await tick();
    s.take();
    s.tell(MEMBER_SHARD, { t: 'peerDown', shard: OWNER });
    s.sys.spawn<ShardMsg>(shardName(OWNER), { receive: () => {} }); // an owner that answers nothing
    s.subscribe(id, c, [{ filter: G }]);
    await tick();
    expect(s.take()).toEqual([]);
    vi.advanceTimersByTime(10_000);
    await tick();
    expect(s.take()).toEqual([{ t: 'suback', connId: c, packetId: 1, codes: [1] }]);
  });
});
