/**
 * The gateway's one mqtt-packet parser (gateway-actor.ts, parseFrame) serves every
 * connection: what one connection sends never leaks into another's packets, a connection
 * whose packet is malformed is closed alone, and each packet is parsed at its own
 * connection's protocol level. Each connection keeps only the start of a packet whose rest
 * has not arrived (framer.ts).
 */
import { describe, it, expect, afterEach } from 'vitest';
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { ConnIO, ConnSink } from '../../../src/transport/connection.js';
import type { ShardMsg } from '../../../src/protocol/messages.js';
import { closeGateways, gatewayEnv, turn } from './gateway-env.js';

afterEach(closeGateways);

type Subscribe = Extract<ShardMsg, { t: 'subscribe' }>;

function harness() {
  const { gw, ref, shard } = gatewayEnv();
  function socket(name: string) {
    const state = { ended: false };
    const io: ConnIO = {
      transport: 'tcp',
      remote: name,
      write: () => {},
      bufferedBytes: () => 0,
      end: () => void (state.ended = true),
      pause: () => {},
      resume: () => {},
    };
    const sink: ConnSink = gw.accept(io)!;
    return { sink, state };
  }
  const bytes = (p: Packet, version: 4 | 5) => mqttPacket.generate(p, { protocolVersion: version });
  const connectPacket = (clientId: string, version: 4 | 5): Packet => ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId, clean: true, keepalive: 0 });
  /** CONNACK for every CONNECT the shard got. */
  async function connackAll(): Promise<void> {
    await turn();
    for (const m of shard) if (m.t === 'connect') ref.tell({ t: 'connack', connId: m.connId, sessionPresent: false, qos2In: [] });
    await turn();
  }
  const subscribes = (clientId: string) => shard.filter((m): m is Subscribe => m.t === 'subscribe' && m.clientId === clientId);
  return { socket, bytes, connectPacket, connackAll, subscribes, shard };
}

describe('gateway: one parser for every connection', () => {
  it('packets split across chunks and interleaved between connections are each parsed whole, at their own level', async () => {
    const h = harness();
    const a = h.socket('a');
    const b = h.socket('b');
    const ca = h.bytes(h.connectPacket('a', 5), 5);
    const cb = h.bytes(h.connectPacket('b', 4), 4);
    // Interleaved halves: each connection keeps its own partial packet.
    a.sink.data(ca.subarray(0, 5));
    b.sink.data(cb.subarray(0, 7));
    a.sink.data(ca.subarray(5));
    b.sink.data(cb.subarray(7));
    await h.connackAll();
    const connects = h.shard.filter((m) => m.t === 'connect').map((m) => (m as Extract<ShardMsg, { t: 'connect' }>).clientId);
    expect(connects.sort()).toEqual(['a', 'b']);

    // A v5 SUBSCRIBE with a Subscription Identifier and No Local, a 3.1.1 one, alternately.
    const sa = h.bytes({ cmd: 'subscribe', messageId: 7, properties: { subscriptionIdentifier: 9 }, subscriptions: [{ topic: 'x/a', qos: 1, nl: true, rap: false, rh: 0 }] }, 5);
    const sb = h.bytes({ cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: 'x/b', qos: 2 }] }, 4);
    a.sink.data(sa.subarray(0, 3));
    b.sink.data(sb);
    a.sink.data(sa.subarray(3));
    await turn();
    const [subA] = h.subscribes('a');
    const [subB] = h.subscribes('b');
    expect(subA).toMatchObject({ packetId: 7, subId: 9, subs: [{ filter: 'x/a', qos: 1, noLocal: true }] });
    expect(subB).toMatchObject({ packetId: 8, subs: [{ filter: 'x/b', qos: 2, noLocal: false }] });
    expect(a.state.ended || b.state.ended).toBe(false);
  });

  it('a malformed packet closes its connection alone; the next packets of others parse as usual', async () => {
    const h = harness();
    const bad = h.socket('bad');
    const good = h.socket('good');
    bad.sink.data(h.bytes(h.connectPacket('bad', 4), 4));
    good.sink.data(h.bytes(h.connectPacket('good', 4), 4));
    await h.connackAll();
    // SUBSCRIBE with QoS 3: mqtt-packet refuses it ("Invalid subscribe QoS").
    const sub = h.bytes({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q', qos: 1 }] }, 4);
    const malformed = Buffer.from(sub);
    malformed[malformed.length - 1] = 3;
    bad.sink.data(malformed);
    expect(bad.state.ended).toBe(true);
    good.sink.data(h.bytes({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'ok', qos: 1 }] }, 4));
    expect(good.state.ended).toBe(false);
    await turn();
    expect(h.subscribes('good')).toMatchObject([{ packetId: 2, subs: [{ filter: 'ok', qos: 1 }] }]);
    expect(h.subscribes('bad')).toEqual([]);
    // A CONNECT of a new connection after the failure: parsed from scratch (the protocol level learnt from it).
    const late = h.socket('late');
    late.sink.data(h.bytes(h.connectPacket('late', 5), 5));
    await turn();
    expect(h.shard.some((m) => m.t === 'connect' && m.clientId === 'late' && m.protocolVersion === 5)).toBe(true);
  });
});
