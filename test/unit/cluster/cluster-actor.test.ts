/**
 * The cluster link (src/cluster/cluster-actor.ts) over an in-memory NATS: interest as
 * refcounted subscriptions, route acks after the flush, forwarding, no echo, retained
 * messages to every node, shard restarts.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { ClusterActor } from '../../../src/cluster/cluster-actor.js';
import { Metrics } from '../../../src/admin/metrics.js';
import { ActorSystem } from '../../../src/runtime/system.js';
import { COORDINATOR, gatewayName, shardName, type AppMessage } from '../../../src/protocol/messages.js';
import { MemoryNats } from './memory-bus.js';

const tick = () => new Promise((r) => setImmediate(r));

function node(nats: MemoryNats, name: string) {
  const system = new ActorSystem('main', () => 'main');
  const got: Record<string, Array<{ t: string } & Record<string, unknown>>> = {};
  for (const actor of [shardName(0), shardName(1), gatewayName(0), COORDINATOR]) {
    got[actor] = [];
    system.spawn(actor, { receive: (m: { t: string }) => got[actor]!.push(m as never) });
  }
  const bus = nats.connect();
  const metrics = new Metrics(name);
  const actor = new ClusterActor({ node: name, prefix: 'sb', gateways: 1, shards: 2 }, bus, system, metrics, pino({ level: 'silent' }));
  const ref = system.spawn('cluster', actor);
  // The subjects of interest (membership, session takeover and shared group subjects aside).
  const subjects = () => bus.subjects.filter((x) => !['sb.hb', 'sb.claim', 'sb.sg'].includes(x) && !x.startsWith('sb.n.'));
  return { actor, ref, got, bus, subjects, metrics, close: () => (actor.close(), metrics.close()) };
}

const msg = (topic: string, over: Partial<AppMessage> = {}): AppMessage => ({ topic, payload: Buffer.from('x'), qos: 1, retain: false, ...over });

describe('ClusterActor', () => {
  it('asks every shard for its routes at start, like a gateway (index = gateway count)', async () => {
    const a = node(new MemoryNats(), 'a');
    await tick();
    expect(a.got[shardName(0)]).toEqual([{ t: 'routeSync', gw: 1 }]);
    expect(a.got[shardName(1)]).toEqual([{ t: 'routeSync', gw: 1 }]);
    a.close();
  });

  it('subscribes once per subject however many shards and filters share it, acks routeAdd after the flush, unsubscribes with the last', async () => {
    const a = node(new MemoryNats(), 'a');
    a.ref.tell({ t: 'routeAdd', shard: 0, filters: ['x/#', 'x'], seq: 1 });
    a.ref.tell({ t: 'routeAdd', shard: 1, filters: ['x'], seq: 4 });
    await tick();
    await tick();
    expect(a.subjects().sort()).toEqual(['sb.m.x', 'sb.m.x.>', 'sb.r']);
    expect(a.got[shardName(0)]).toContainEqual({ t: 'routeAck', gw: 1, seq: 1 });
    expect(a.got[shardName(1)]).toContainEqual({ t: 'routeAck', gw: 1, seq: 4 });
    a.ref.tell({ t: 'routeDel', shard: 0, filters: ['x'] });
    await tick();
    expect(a.actor.subscriptionCount).toBe(2); // x still wanted by shard 1 and by x/#
    a.ref.tell({ t: 'routeDel', shard: 0, filters: ['x/#'] });
    a.ref.tell({ t: 'routeDel', shard: 1, filters: ['x'] });
    await tick();
    expect(a.subjects()).toEqual(['sb.r']);
    a.close();
  });

  it('forwards to the nodes that want the topic, routes to the right local shards, never echoes', async () => {
    const nats = new MemoryNats();
    const a = node(nats, 'a');
    const b = node(nats, 'b');
    b.ref.tell({ t: 'routeAdd', shard: 1, filters: ['chat/+'], seq: 1 });
    a.ref.tell({ t: 'routeAdd', shard: 0, filters: ['chat/+'], seq: 1 });
    await tick();
    a.ref.tell({ t: 'forward', msg: { ...msg('chat/1'), originConn: 77 }, gw: 0, ack: 9 });
    await tick();
    await tick();
    const pubs = b.got[shardName(1)]!.filter((m) => m.t === 'publish');
    expect(pubs).toHaveLength(1);
    // The publisher's connection id means nothing on another node.
    expect((pubs[0]!.msg as AppMessage).originConn).toBeUndefined();
    expect(b.got[shardName(0)]!.filter((m) => m.t === 'publish')).toHaveLength(0);
    // Not back to node a, although it wants chat/+ too (its gateway delivered it locally).
    expect(a.got[shardName(0)]!.filter((m) => m.t === 'publish')).toHaveLength(0);
    // The publisher's held ack is released once NATS has it.
    expect(a.got[gatewayName(0)]).toContainEqual({ t: 'committed', ids: [9] });
    a.close();
    b.close();
  });

  it('a retained message goes to every node: kept by its coordinator, routed where wanted', async () => {
    const nats = new MemoryNats();
    const a = node(nats, 'a');
    const b = node(nats, 'b');
    a.ref.tell({ t: 'forward', msg: msg('r/1', { retain: true }) });
    await tick();
    await tick();
    expect(b.got[COORDINATOR]!.map((m) => m.t)).toEqual(['retain']);
    expect(b.got[shardName(0)]!.filter((m) => m.t === 'publish')).toHaveLength(0);
    a.close();
    b.close();
  });

  it('a shard that died loses its subscriptions; when back it is asked for its routes', async () => {
    const a = node(new MemoryNats(), 'a');
    a.ref.tell({ t: 'routeAdd', shard: 1, filters: ['s/1'], seq: 1 });
    await tick();
    a.ref.tell({ t: 'shardDown', shard: 1 });
    await tick();
    expect(a.subjects()).toEqual(['sb.r']);
    a.ref.tell({ t: 'shardUp', shard: 1 });
    a.ref.tell({ t: 'routeSnapshot', shard: 1, filters: ['s/2'] });
    await tick();
    expect(a.got[shardName(1)]!.filter((m) => m.t === 'routeSync')).toHaveLength(2);
    expect(a.subjects().sort()).toEqual(['sb.m.s.2', 'sb.r']);
    a.close();
  });

  it('nodes hear each other\'s heartbeats (cluster_nodes)', async () => {
    const nats = new MemoryNats();
    const a = node(nats, 'a');
    const b = node(nats, 'b');
    a.actor['beat']();
    b.actor['beat']();
    await tick();
    expect(a.actor.members().map((n) => n.node)).toEqual(['b']);
    expect(b.actor.members().map((n) => n.node)).toEqual(['a']);
    expect(a.metrics.get('cluster_nodes')).toBe(2);
    a.close();
    b.close();
  });

  it('drops and counts what it cannot decode or what speaks another protocol version', async () => {
    const nats = new MemoryNats();
    const a = node(nats, 'a');
    a.ref.tell({ t: 'routeAdd', shard: 0, filters: ['#'], seq: 1 });
    await tick();
    const other = nats.connect();
    other.publish('sb.m.z', Buffer.from([0xc1, 0x00]));
    other.publish('sb.m.z', (await import('msgpackr')).pack({ v: 999, from: 'x', msg: msg('z') }));
    await tick();
    await tick();
    expect(a.metrics.get('cluster_errors_total{op="decode"}')).toBe(2);
    expect(a.got[shardName(0)]!.filter((m) => m.t === 'publish')).toHaveLength(0);
    a.close();
  });
});
