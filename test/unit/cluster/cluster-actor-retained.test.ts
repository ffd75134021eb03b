/**
 * The cluster link's side of shared retained messages (cluster-actor.ts `retained`,
 * `onMembership` options): a retained message still goes on `{prefix}.r` for live
 * delivery and also into the bucket; a held PUBACK waits for the bucket's answer, never
 * longer; non-retained messages keep the flush path; membership changes are reported.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { ClusterActor } from '../../../src/cluster/cluster-actor.js';
import type { MembershipEvent } from '../../../src/cluster/membership.js';
import { Metrics } from '../../../src/admin/metrics.js';
import { ActorSystem } from '../../../src/runtime/system.js';
import { COORDINATOR, gatewayName, shardName, type AppMessage } from '../../../src/protocol/messages.js';
import { MemoryNats } from './memory-bus.js';

const tick = () => new Promise((r) => setImmediate(r));

function node(nats: MemoryNats, name: string, put: (m: AppMessage) => Promise<void> | undefined, events: MembershipEvent[] = []) {
  const system = new ActorSystem('main', () => 'main');
  const got: Record<string, Array<{ t: string } & Record<string, unknown>>> = {};
  for (const actor of [shardName(0), gatewayName(0), COORDINATOR]) {
    got[actor] = [];
    system.spawn(actor, { receive: (m: { t: string }) => got[actor]!.push(m as never) });
  }
  const metrics = new Metrics(name);
  const actor = new ClusterActor(
    { node: name, prefix: 'sb', gateways: 1, shards: 1, heartbeatMs: 20, deadAfterMs: 60, retained: { put }, onMembership: (e) => events.push(e) },
    nats.connect(),
    system,
    metrics,
    pino({ level: 'silent' }),
  );
  const ref = system.spawn('cluster', actor);
  return { ref, got, close: () => (actor.close(), metrics.close()) };
}

const msg = (topic: string, retain: boolean): AppMessage => ({ topic, payload: Buffer.from('x'), qos: 1, retain });

describe('ClusterActor with a shared retained bucket', () => {
  it('puts a retained message in the bucket besides {prefix}.r; its held ack waits for the bucket', async () => {
    const nats = new MemoryNats();
    const puts: AppMessage[] = [];
    let answer!: () => void;
    const a = node(nats, 'a', (m) => (puts.push(m), new Promise<void>((r) => (answer = r))));
    const b = node(nats, 'b', () => undefined);
    a.ref.tell({ t: 'forward', msg: msg('r/1', true), gw: 0, ack: 7 });
    await tick();
    await tick();
    expect(puts.map((m) => m.topic)).toEqual(['r/1']);
    expect(b.got[COORDINATOR]!.map((m) => m.t)).toEqual(['retain']); // live, on sb.r
    expect(a.got[gatewayName(0)]).toEqual([]);
    answer();
    await tick();
    expect(a.got[gatewayName(0)]).toEqual([{ t: 'committed', ids: [7] }]);
    // Not retained (or not shared: put says undefined): the flush path as before.
    a.ref.tell({ t: 'forward', msg: msg('m/1', false), gw: 0, ack: 8 });
    await tick();
    await tick();
    expect(puts).toHaveLength(1);
    expect(a.got[gatewayName(0)]).toContainEqual({ t: 'committed', ids: [8] });
    a.close();
    b.close();
  });

  it('reports membership changes', async () => {
    const nats = new MemoryNats();
    const events: MembershipEvent[] = [];
    const a = node(nats, 'a', () => undefined, events);
    const b = node(nats, 'b', () => undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toContainEqual({ kind: 'joined', node: 'b' });
    b.close();
    await new Promise((r) => setTimeout(r, 200));
    expect(events).toContainEqual({ kind: 'gone', node: 'b' });
    a.close();
  });
});
