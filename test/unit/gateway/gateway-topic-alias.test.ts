/**
 * Issue 9 item 2, gateway side: who is sent Topic Aliases and in which bytes. A real
 * GatewayActor on an in-thread ActorSystem, fake sockets (ConnIO) and a fake shard; the
 * deliveries are what a shard sends (`deliver`, `deliverGroup`).
 */
import { describe, it, expect, afterEach } from 'vitest';
import mqttPacket, { type IConnectPacket, type IPublishPacket } from 'mqtt-packet';
import type { MqttConfig } from '../../../src/config/schema.js';
import type { ConnIO } from '../../../src/transport/connection.js';
import type { AppMessage, ShardMsg } from '../../../src/protocol/messages.js';
import { closeGateways, gatewayEnv, parsePackets, turn } from './gateway-env.js';

/** Deliveries handled and their writes flushed (the flush is a setImmediate of its own). */
const settle = async (): Promise<void> => {
  await turn();
  await turn();
};

afterEach(closeGateways);

interface FakeConn {
  connId: number;
  /** Every buffer the gateway handed to the socket. */
  writes: Buffer[];
  publishes(): IPublishPacket[];
  /** Closes the socket as if the peer went away. */
  drop(): void;
}

/** The gateway of gateway-env.ts with the `mqtt` config section `mqtt` (over its defaults). */
function harness(mqtt: Partial<MqttConfig> = {}) {
  const { gw, ref, shard, metrics } = gatewayEnv({ env: { mqtt } });

  /** A connected client (CONNACK written); `props`: its CONNECT properties. */
  async function connect(clientId: string, version: 4 | 5 = 5, props?: IConnectPacket['properties']): Promise<FakeConn> {
    const writes: Buffer[] = [];
    let closed: (() => void) | undefined;
    const io: ConnIO = {
      transport: 'tcp',
      remote: clientId,
      write: (b) => void writes.push(b),
      bufferedBytes: () => 0,
      end: () => {},
      pause: () => {},
      resume: () => {},
    };
    const sink = gw.accept(io)!;
    closed = () => sink.closed();
    const connect: IConnectPacket = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId, clean: true, keepalive: 0 };
    if (props) connect.properties = props;
    sink.data(mqttPacket.generate(connect, { protocolVersion: version }));
    await turn(); // authentication (a promise), then the shard's `connect`
    const m = shard.filter((x): x is Extract<ShardMsg, { t: 'connect' }> => x.t === 'connect' && x.clientId === clientId).at(-1)!;
    ref.tell({ t: 'connack', connId: m.connId, sessionPresent: false, qos2In: [] });
    await turn();
    return {
      connId: m.connId,
      writes,
      publishes() {
        return parsePackets(writes, version).filter((p): p is IPublishPacket => p.cmd === 'publish');
      },
      drop: () => closed?.(),
    };
  }

  /** One QoS 0 message to each connection, as one deliverGroup. */
  function fanOut(m: AppMessage, conns: FakeConn[]): void {
    ref.tell({ t: 'deliverGroup', msg: m, items: conns.map((c) => ({ connId: c.connId, qos: 0 as const, packetId: 0, retain: false })) });
  }
  function deliver(c: FakeConn, m: AppMessage, over: { qos?: 0 | 1 | 2; packetId?: number; dup?: boolean; subIds?: number[] } = {}): void {
    const qos = over.qos ?? 0;
    ref.tell({ t: 'deliver', connId: c.connId, out: [{ k: 'pub', msg: m, qos, packetId: over.packetId ?? (qos > 0 ? 1 : 0), dup: over.dup ?? false, retain: false, subIds: over.subIds }] });
  }
  return { metrics, shard, connect, fanOut, deliver };
}

const msg = (topic: string, payload = 'hi', over: Partial<AppMessage> = {}): AppMessage => ({ topic, payload: Buffer.from(payload), qos: 0, retain: false, ...over });
/** What each PUBLISH said: its Topic Name and Topic Alias. */
const shape = (ps: IPublishPacket[]) => ps.map((p) => [p.topic, p.properties?.topicAlias]);

describe('gateway: Topic Aliases to clients', () => {
  it('[MQTT-3.1.2-26] a fan-out: the client that allows aliases gets its own bytes (topic + alias, then the alias alone); the others share one buffer', async () => {
    const h = harness();
    const aliased = await h.connect('aliased', 5, { topicAliasMaximum: 4 });
    const plainA = await h.connect('plain-a', 5);
    const plainB = await h.connect('plain-b', 5);
    const v4 = await h.connect('v4', 4);
    for (let i = 0; i < 3; i++) {
      h.fanOut(msg('sensors/kitchen/temperature', `m${i}`), [aliased, plainA, plainB, v4]);
      await settle();
    }
    expect(shape(aliased.publishes())).toEqual([
      ['sensors/kitchen/temperature', 1],
      ['', 1],
      ['', 1],
    ]);
    expect(aliased.publishes().map((p) => String(p.payload))).toEqual(['m0', 'm1', 'm2']);
    for (const c of [plainA, plainB, v4]) expect(shape(c.publishes())).toEqual([0, 1, 2].map(() => ['sensors/kitchen/temperature', undefined]));
    // The shared fast path: one encoding handed to both non-aliased v5 sockets (last 3 writes).
    for (let i = 1; i <= 3; i++) expect(plainA.writes.at(-i)).toBe(plainB.writes.at(-i));
    expect(h.metrics.get('topic_aliases_sent_total{kind="new"}')).toBe(1);
    expect(h.metrics.get('topic_aliases_sent_total{kind="reused"}')).toBe(2);
  });

  it('[MQTT-3.1.2-27] no alias for a client that announced no Topic Alias Maximum, or 0, nor for MQTT 3.1.1', async () => {
    const h = harness();
    const none = await h.connect('none', 5);
    const zero = await h.connect('zero', 5, { topicAliasMaximum: 0 });
    const v4 = await h.connect('v4', 4);
    for (const c of [none, zero, v4]) {
      h.deliver(c, msg('sensors/kitchen/temperature'));
      h.deliver(c, msg('sensors/kitchen/temperature'), { qos: 1, packetId: 2, subIds: [3] });
    }
    await settle();
    for (const c of [none, zero, v4]) {
      expect(c.publishes()).toHaveLength(2);
      expect(c.publishes().every((p) => p.topic === 'sensors/kitchen/temperature' && p.properties?.topicAlias === undefined)).toBe(true);
    }
  });

  it('mqtt.topicAliasMaximumOut bounds the client\'s maximum, and 0 turns aliases off', async () => {
    const h = harness({ topicAliasMaximumOut: 2 });
    const c = await h.connect('c', 5, { topicAliasMaximum: 100 });
    for (const t of ['topic/aaa', 'topic/bbb', 'topic/ccc']) h.deliver(c, msg(t));
    await settle();
    expect(shape(c.publishes())).toEqual([
      ['topic/aaa', 1],
      ['topic/bbb', 2],
      ['topic/ccc', 1], // the LRU topic's alias, taken over
    ]);
    expect(h.metrics.get('topic_aliases_sent_total{kind="replaced"}')).toBe(1);

    const off = harness({ topicAliasMaximumOut: 0 });
    const d = await off.connect('d', 5, { topicAliasMaximum: 100 });
    off.deliver(d, msg('topic/aaa'));
    off.deliver(d, msg('topic/aaa'));
    await settle();
    expect(shape(d.publishes())).toEqual([
      ['topic/aaa', undefined],
      ['topic/aaa', undefined],
    ]);
  });

  it('topics under 6 characters get no alias (nothing to gain) and keep the shared fan-out bytes', async () => {
    const h = harness();
    const a = await h.connect('a', 5, { topicAliasMaximum: 4 });
    const b = await h.connect('b', 5);
    h.fanOut(msg('a/b/c'), [a, b]);
    await settle();
    h.fanOut(msg('a/b/c'), [a, b]);
    await settle();
    expect(shape(a.publishes())).toEqual([
      ['a/b/c', undefined],
      ['a/b/c', undefined],
    ]);
    expect(a.writes.at(-1)).toBe(b.writes.at(-1));
  });

  it('QoS 1 with Subscription Identifiers and message properties (the generic encoder) carries the alias too', async () => {
    const h = harness();
    const c = await h.connect('c', 5, { topicAliasMaximum: 4 });
    const m = msg('sensors/kitchen/temperature', 'x', { qos: 1, props: { contentType: 'text/plain' } });
    h.deliver(c, m, { qos: 1, packetId: 1, subIds: [7] });
    h.deliver(c, m, { qos: 1, packetId: 2, subIds: [7] });
    await settle();
    expect(c.publishes().map((p) => [p.topic, p.messageId, p.properties])).toEqual([
      ['sensors/kitchen/temperature', 1, { contentType: 'text/plain', subscriptionIdentifier: 7, topicAlias: 1 }],
      ['', 2, { contentType: 'text/plain', subscriptionIdentifier: 7, topicAlias: 1 }],
    ]);
  });

  it('[MQTT-3.1.2-25] a PUBLISH too large for the client sets no alias: the next one of that topic carries the topic again', async () => {
    const h = harness();
    const c = await h.connect('c', 5, { topicAliasMaximum: 4, maximumPacketSize: 100 });
    h.deliver(c, msg('sensors/kitchen/temperature', 'x'.repeat(200)), { qos: 1, packetId: 1 });
    h.deliver(c, msg('sensors/kitchen/temperature', 'small'));
    h.deliver(c, msg('sensors/kitchen/temperature', 'small'));
    await settle();
    expect(shape(c.publishes())).toEqual([
      ['sensors/kitchen/temperature', 1],
      ['', 1],
    ]);
    expect(h.metrics.get('messages_dropped_total{reason="client_max_packet_size"}')).toBe(1);
    expect(h.shard.filter((m) => m.t === 'ack')).toEqual([{ t: 'ack', connId: c.connId, clientId: 'c', kind: 'pubcomp', packetId: 1 }]);
  });

  it('[MQTT-3.1.2-25] the size checked is that of the bytes written: the 3 bytes of a new alias never drop a message that fits without it', async () => {
    const h = harness();
    const topic = 'sensors/kitchen/temperature';
    // Plain QoS 0 PUBLISH: 1 + 1 (remaining length) + 2 + topic + 1 (property length) + payload.
    const payload = 'p'.repeat(100 - (5 + topic.length));
    const c = await h.connect('c', 5, { topicAliasMaximum: 4, maximumPacketSize: 100 });
    h.deliver(c, msg(topic, payload)); // exactly 100 bytes plain, 103 with topic + alias: sent plain
    h.deliver(c, msg(topic, 'small')); // sets the alias
    h.deliver(c, msg(topic, payload)); // alias alone: 100 - topic + 3 bytes
    await settle();
    expect(shape(c.publishes())).toEqual([
      [topic, undefined],
      [topic, 1],
      ['', 1],
    ]);
    // Their sizes (mqtt-packet writes the same bytes, encode-fast.test.ts): 100 plain, 40
    // with the topic and the alias ("small"), 76 with the alias alone.
    expect(c.publishes().map((p) => mqttPacket.generate(p, { protocolVersion: 5 }).length)).toEqual([100, 40, 76]);
    expect(h.metrics.get('messages_dropped_total{reason="client_max_packet_size"}')).toBe(0);
  });

  it('[MQTT-3.3.2-7] a new connection starts with no aliases: a resend (DUP) carries the topic again', async () => {
    const h = harness();
    const first = await h.connect('c', 5, { topicAliasMaximum: 4 });
    h.deliver(first, msg('sensors/kitchen/temperature'), { qos: 1, packetId: 1 });
    h.deliver(first, msg('sensors/kitchen/temperature'), { qos: 1, packetId: 2 });
    await settle();
    expect(shape(first.publishes())).toEqual([
      ['sensors/kitchen/temperature', 1],
      ['', 1],
    ]);
    first.drop();
    const second = await h.connect('c', 5, { topicAliasMaximum: 4 });
    h.deliver(second, msg('sensors/kitchen/temperature'), { qos: 1, packetId: 2, dup: true });
    await settle();
    expect(second.publishes().map((p) => [p.topic, p.properties?.topicAlias, p.dup])).toEqual([['sensors/kitchen/temperature', 1, true]]);
  });
});
