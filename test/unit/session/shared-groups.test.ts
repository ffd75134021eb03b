/**
 * The owner side of shared subscriptions (src/session/shared-groups.ts) against a fake
 * shard: what it sends to member shards, the gateways' routes, the coordinator.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SharedGroups, type GroupHost } from '../../../src/session/shared-groups.js';
import { Metrics } from '../../../src/admin/metrics.js';
import type { AppMessage, CoordinatorMsg, ShardMsg } from '../../../src/protocol/messages.js';
import type { SharedStrategy } from '../../../src/session/shared-strategy.js';

const metricsToClose: Metrics[] = [];
afterEach(() => {
  for (const m of metricsToClose.splice(0)) m.close();
});

interface FakeHost extends GroupHost {
  sent: Array<{ to: number; m: ShardMsg }>;
  coord: CoordinatorMsg[];
  routes: string[];
  local: Set<string>;
  /** Runs what waits for the routes (as if every gateway acknowledged). */
  routed(): void;
  /** Takes the shareDeliver messages sent so far as "clientId@shard:payload". */
  deliveries(): string[];
}

function fakeHost(over: Partial<GroupHost> = {}): FakeHost {
  const metrics = new Metrics('t');
  metricsToClose.push(metrics);
  const pending: Array<() => void> = [];
  const h: FakeHost = {
    index: 0,
    shardCount: 3,
    metrics,
    maxQueuedMessages: 5,
    sent: [],
    coord: [],
    routes: [],
    local: new Set(),
    toShard: (to, m) => void h.sent.push({ to, m }),
    toCoordinator: (m) => void h.coord.push(m),
    routeAdd: (f) => void h.routes.push(...f.map((x) => `+${x}`)),
    routeDel: (f) => void h.routes.push(...f.map((x) => `-${x}`)),
    afterRoutes: (run) => void pending.push(run),
    hasLocalFilter: (f) => h.local.has(f),
    groupsChanged: () => {},
    routed: () => {
      for (const r of pending.splice(0)) r();
    },
    deliveries() {
      const out: string[] = [];
      h.sent = h.sent.filter(({ to, m }) => {
        if (m.t !== 'shareDeliver') return true;
        out.push(`${m.clientId}@${to}:${Buffer.from(m.msg.payload).toString()}`);
        return false;
      });
      return out;
    },
    ...over,
  };
  return h;
}

const msg = (payload: string, over: Partial<AppMessage> = {}): AppMessage => ({ topic: 'jobs/1', payload: Buffer.from(payload), qos: 1, retain: false, ...over });
const G = '$share/g/jobs/+';

function groups(strategy: SharedStrategy = 'round_robin', over: Partial<GroupHost> = {}): { h: FakeHost; g: SharedGroups } {
  const h = fakeHost(over);
  return { h, g: new SharedGroups(h, strategy) };
}

const join = (g: SharedGroups, clientId: string, shard: number, online = true, reqId = 0, key = G) =>
  g.receive({ t: 'shareJoin', key, clientId, shard, online, reqId });

describe('SharedGroups: membership and routes', () => {
  it('the first member routes the inner filter; the join is answered once routed; the last member gone removes the route', () => {
    const { h, g } = groups();
    join(g, 'a', 1, true, 7);
    expect(h.routes).toEqual(['+jobs/+']);
    expect(h.sent).toEqual([]); // not before the gateways acknowledged
    h.routed();
    expect(h.sent).toEqual([{ to: 1, m: { t: 'shareJoined', reqId: 7 } }]);
    join(g, 'b', 2);
    expect(h.routes).toEqual(['+jobs/+']);
    expect(g.size).toEqual({ groups: 1, members: 2 });
    g.receive({ t: 'shareLeave', key: G, clientId: 'a' });
    expect(h.routes).toEqual(['+jobs/+']);
    g.receive({ t: 'shareLeave', key: G, clientId: 'b' });
    expect(h.routes).toEqual(['+jobs/+', '-jobs/+']);
    expect(g.size).toEqual({ groups: 0, members: 0 });
    expect(g.hasFilter('jobs/+')).toBe(false);
  });

  it('two groups on one filter share the route; a local subscriber of the filter keeps it', () => {
    const { h, g } = groups();
    h.local.add('jobs/+');
    join(g, 'a', 1);
    join(g, 'b', 1, true, 0, '$share/other/jobs/+');
    expect(h.routes).toEqual([]); // the shard routes it for its own session already
    expect([...g.filters()]).toEqual(['jobs/+']);
    g.receive({ t: 'shareLeave', key: G, clientId: 'a' });
    g.receive({ t: 'shareLeave', key: '$share/other/jobs/+', clientId: 'b' });
    expect(h.routes).toEqual([]);
  });
});

describe('SharedGroups: delivery', () => {
  it('[MQTT 4.8.2] each message goes to exactly one member of each matching group', () => {
    const { h, g } = groups();
    join(g, 'a', 1);
    join(g, 'b', 2);
    join(g, 'x', 1, true, 0, '$share/h/jobs/#');
    for (let i = 0; i < 4; i++) g.publish(msg(`m${i}`));
    expect(h.deliveries().sort()).toEqual(['a@1:m0', 'a@1:m2', 'b@2:m1', 'b@2:m3', 'x@1:m0', 'x@1:m1', 'x@1:m2', 'x@1:m3'].sort());
    expect(g.publish(msg('none', { topic: 'other' }))).toEqual({ delivered: false, waiting: false });
    expect(h.deliveries()).toEqual([]);
  });

  it('online members first; with none online, an offline one gets it (its session queues it)', () => {
    const { h, g } = groups();
    join(g, 'a', 1, false);
    join(g, 'b', 2, true);
    g.publish(msg('1'));
    g.publish(msg('2'));
    expect(h.deliveries()).toEqual(['b@2:1', 'b@2:2']);
    g.receive({ t: 'shareState', clientId: 'b', keys: [G], online: false });
    g.publish(msg('3'));
    g.publish(msg('4'));
    // Both offline now: shared between them.
    expect(h.deliveries().map((d) => d.split('@')[0]).sort()).toEqual(['a', 'b']);
  });

  it('sticky keeps one member while it is online', () => {
    const { h, g } = groups('sticky');
    join(g, 'a', 1);
    join(g, 'b', 2);
    for (let i = 0; i < 5; i++) g.publish(msg(`${i}`));
    const got = h.deliveries();
    const who = got[0]!.split('@')[0]!;
    expect(got.every((d) => d.startsWith(`${who}@`))).toBe(true);
    g.receive({ t: 'shareState', clientId: who, keys: [G], online: false });
    g.publish(msg('x'));
    expect(h.deliveries()[0]!.startsWith(`${who}@`)).toBe(false);
  });

  it('a routing rule copy does not go to the member that published the original', () => {
    const { h, g } = groups();
    join(g, 'a', 1);
    join(g, 'b', 2);
    for (let i = 0; i < 3; i++) g.publish(msg(`${i}`, { origin: 'a', carbon: true }));
    expect(h.deliveries()).toEqual(['b@2:0', 'b@2:1', 'b@2:2']);
  });

  it('a bounce (member gone) removes the member and gives the message to another one', () => {
    const { h, g } = groups();
    join(g, 'a', 1);
    join(g, 'b', 2);
    g.publish(msg('1'));
    expect(h.deliveries()).toEqual(['a@1:1']);
    g.receive({ t: 'shareBounce', key: G, clientId: 'a', msg: msg('1'), gone: true });
    expect(h.deliveries()).toEqual(['b@2:1']);
    expect(g.size.members).toBe(1);
    g.receive({ t: 'shareBounce', key: G, clientId: 'b', msg: msg('1'), gone: true });
    expect(h.deliveries()).toEqual([]);
    expect(h.metrics.get('messages_dropped_total{reason="shared_no_member"}')).toBe(1);
    expect(h.routes).toEqual(['+jobs/+', '-jobs/+']);
  });

  it('a requeue goes to other members; to the same member when it is alone', () => {
    const { h, g } = groups();
    join(g, 'a', 1);
    join(g, 'b', 2);
    join(g, 'c', 0);
    g.receive({ t: 'shareRequeue', key: G, clientId: 'a', msgs: [msg('1'), msg('2'), msg('3')] });
    const got = h.deliveries();
    expect(got).toHaveLength(3);
    expect(got.some((d) => d.startsWith('a@'))).toBe(false);
    g.receive({ t: 'shareLeave', key: G, clientId: 'b' });
    g.receive({ t: 'shareLeave', key: G, clientId: 'c' });
    g.receive({ t: 'shareRequeue', key: G, clientId: 'a', msgs: [msg('4')] });
    expect(h.deliveries()).toEqual(['a@1:4']);
    expect(h.metrics.get('shared_redeliveries_total')).toBe(4);
  });
});

describe('SharedGroups: durability sync (the publisher waits for the members\' commits)', () => {
  it('the commit runs once every member shard confirmed its copy', () => {
    const { h, g } = groups();
    join(g, 'a', 1);
    join(g, 'x', 2, true, 0, '$share/h/jobs/1');
    let committed = 0;
    const r = g.publish(msg('1'), () => committed++);
    expect(r).toEqual({ delivered: true, waiting: true });
    const ids = h.sent.flatMap(({ m }) => (m.t === 'shareDeliver' ? [m.id!] : []));
    expect(ids).toHaveLength(2);
    g.receive({ t: 'shareCommitted', ids: [ids[0]!] });
    expect(committed).toBe(0);
    g.receive({ t: 'shareCommitted', ids: [ids[1]!, ids[1]!] });
    expect(committed).toBe(1);
  });

  it('QoS 0, or nothing matched: nothing waits', () => {
    const { g } = groups();
    join(g, 'a', 1);
    let committed = 0;
    expect(g.publish(msg('0', { qos: 0 }), () => committed++)).toEqual({ delivered: true, waiting: false });
    expect(g.publish(msg('1', { topic: 'x' }), () => committed++)).toEqual({ delivered: false, waiting: false });
    expect(committed).toBe(0);
  });

  it('a bounced tracked copy keeps the publisher waiting until the next member confirms', () => {
    const { h, g } = groups();
    join(g, 'a', 1);
    join(g, 'b', 2);
    let committed = 0;
    g.publish(msg('1'), () => committed++);
    const first = h.sent.pop()!.m as Extract<ShardMsg, { t: 'shareDeliver' }>;
    g.receive({ t: 'shareBounce', key: G, clientId: first.clientId, msg: first.msg, id: first.id!, gone: true });
    const second = h.sent.pop()!.m as Extract<ShardMsg, { t: 'shareDeliver' }>;
    expect(second.clientId).not.toBe(first.clientId);
    expect(committed).toBe(0);
    g.receive({ t: 'shareCommitted', ids: [second.id!] });
    expect(committed).toBe(1);
  });
});

describe('SharedGroups: restarts', () => {
  it('a restarting member shard gets nothing; its unconfirmed copies go to others; all down -> kept until it is back', () => {
    const { h, g } = groups();
    join(g, 'a', 1);
    join(g, 'b', 2);
    let committed = 0;
    g.publish(msg('1'), () => committed++); // -> a (round robin)
    expect(h.deliveries()).toEqual(['a@1:1']);
    g.peerDown(1);
    expect(h.deliveries()).toEqual(['b@2:1']); // unconfirmed by shard 1: given to b
    g.publish(msg('2'));
    expect(h.deliveries()).toEqual(['b@2:2']);
    g.peerDown(2);
    g.publish(msg('3'));
    expect(h.deliveries()).toEqual([]); // parked: every member is on a restarting shard
    // Shard 2 is back with b (a shareSync replaces what was known of it).
    g.receive({ t: 'shareSync', reqId: 1, shard: 2, members: [{ key: G, clientId: 'b', online: false }], answer: false });
    // 1 again (shard 2 had not confirmed it either), then 3; the publisher of 1 still waits for it.
    expect(h.deliveries()).toEqual(['b@2:1', 'b@2:3']);
    expect(committed).toBe(0);
  });

  it('shareSync replaces a shard\'s members (the routes of groups that stay are untouched) and is answered once every shard\'s came', () => {
    const { h, g } = groups();
    join(g, 'a', 1);
    join(g, 'gone', 1, true, 0, '$share/old/x');
    expect(h.routes).toEqual(['+jobs/+', '+x']);
    g.receive({ t: 'shareSync', reqId: 9, shard: 1, members: [{ key: G, clientId: 'a', online: false }], answer: true });
    expect(h.routes).toEqual(['+jobs/+', '+x', '-x']);
    expect(g.size).toEqual({ groups: 1, members: 1 });
    g.receive({ t: 'shareSync', reqId: 9, shard: 2, members: [{ key: G, clientId: 'b', online: true }], answer: true });
    expect(h.coord).toEqual([]);
    g.receive({ t: 'shareSync', reqId: 9, shard: 0, members: [], answer: true });
    expect(h.coord).toEqual([{ t: 'shareResynced', reqId: 9, shard: 0 }]);
    g.publish(msg('1'));
    expect(h.deliveries()).toEqual(['b@2:1']); // the online one
  });
});
