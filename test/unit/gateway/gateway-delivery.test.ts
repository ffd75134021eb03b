/**
 * Issue 9 item 8 (bugs found by fuzzing), gateway side: a packet built from shard data
 * that cannot be encoded costs that packet only. It is counted
 * (`messages_dropped_total{reason="encode_error"}`), logged once, acknowledged back to the
 * shard when the shard would otherwise keep it inflight, and never stops the other
 * deliveries of the batch, the connection of others, or the actor (no "actor failed on a
 * message"). Also: a bug met on one connection's input closes that connection alone.
 *
 * A real GatewayActor on an in-thread ActorSystem, fake sockets (ConnIO) and a fake shard.
 */
import { describe, it, expect, afterEach } from 'vitest';
import mqttPacket, { type Packet, type IPublishPacket } from 'mqtt-packet';
import type { ChannelEnv } from '../../../src/channel/index.js';
import { allowAll } from '../channel/channel-env.js';
import type { ConnIO } from '../../../src/transport/connection.js';
import type { AppMessage, ShardMsg } from '../../../src/protocol/messages.js';
import { closeGateways, gatewayEnv, parsePackets, turn } from './gateway-env.js';

afterEach(closeGateways);

interface FakeConn {
  connId: number;
  version: 3 | 4 | 5;
  ended: boolean;
  /** Times the gateway resumed reading this socket. */
  resumed: number;
  /** Every packet the gateway wrote to this socket, parsed. */
  packets(): Packet[];
  /** Feeds bytes as if they came from the socket. */
  send(p: Packet): void;
}

/** The gateway of gateway-env.ts; `errors`: what it logged with `log.error`. */
function harness(over: { acl?: ChannelEnv['acl'] } = {}) {
  const { sys, gw, ref, shard, metrics, errors } = gatewayEnv({ env: { acl: over.acl ?? allowAll } });

  /** A socket that sent CONNECT (authentication done, nothing answered yet). */
  async function open(clientId: string, version: 3 | 4 | 5 = 5): Promise<FakeConn> {
    const written: Buffer[] = [];
    let ended = false;
    let resumed = 0;
    const io: ConnIO = {
      transport: 'tcp',
      remote: clientId,
      write: (b) => void written.push(b),
      bufferedBytes: () => 0,
      end: () => void (ended = true),
      pause: () => {},
      resume: () => void resumed++,
    };
    const sink = gw.accept(io)!;
    const send = (p: Packet) => sink.data(mqttPacket.generate(p, { protocolVersion: version }));
    send({ cmd: 'connect', protocolId: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version, clientId, clean: true, keepalive: 0 });
    await turn(); // authentication (a promise), then the shard's `connect`
    return {
      connId: 0,
      version,
      get ended() {
        return ended;
      },
      get resumed() {
        return resumed;
      },
      packets() {
        return parsePackets(written, version);
      },
      send,
    };
  }

  /** A connected client (CONNACK received). */
  async function connect(clientId: string, version: 3 | 4 | 5 = 5): Promise<FakeConn> {
    const c = await open(clientId, version);
    const m = shard.find((x): x is Extract<ShardMsg, { t: 'connect' }> => x.t === 'connect' && x.clientId === clientId)!;
    c.connId = m.connId;
    ref.tell({ t: 'connack', connId: m.connId, sessionPresent: false, qos2In: [] });
    await turn();
    return c;
  }

  const publishes = (c: FakeConn) => c.packets().filter((p): p is IPublishPacket => p.cmd === 'publish');
  const acksToShard = () => shard.filter((m): m is Extract<ShardMsg, { t: 'ack' }> => m.t === 'ack');
  return { sys, gw, ref, shard, metrics, errors, open, connect, publishes, acksToShard };
}

const msg = (over: Partial<AppMessage> = {}): AppMessage => ({ topic: 'a/b', payload: Buffer.from('hi'), qos: 1, retain: false, ...over });
/** What the shard sent before the fix for a SUBSCRIBE with its Subscription Identifier twice. */
const BAD_SUB_IDS = [[2, 2], [2, 2]] as unknown as number[];

describe('gateway: a delivery that cannot be encoded', () => {
  it('costs only that recipient of a deliverGroup (first in the group), acked to the shard as discarded', async () => {
    const h = harness();
    const bad = await h.connect('bad');
    const b5 = await h.connect('b5');
    const b4 = await h.connect('b4', 4);
    const b5ids = await h.connect('b5ids');
    h.ref.tell({
      t: 'deliverGroup',
      msg: msg(),
      items: [
        { connId: bad.connId, qos: 1, packetId: 11, retain: false, subIds: BAD_SUB_IDS },
        { connId: b5.connId, qos: 1, packetId: 12, retain: false },
        { connId: b4.connId, qos: 0, packetId: 0, retain: false },
        { connId: b5ids.connId, qos: 1, packetId: 13, retain: false, subIds: [2] },
      ],
    });
    await turn();
    expect(h.publishes(bad)).toEqual([]);
    expect(h.publishes(b5).map((p) => [p.qos, p.messageId])).toEqual([[1, 12]]);
    expect(h.publishes(b4).map((p) => p.qos)).toEqual([0]);
    expect(h.publishes(b5ids).map((p) => p.properties?.subscriptionIdentifier)).toEqual([2]);
    expect(h.metrics.get('messages_dropped_total{reason="encode_error"}')).toBe(1);
    // Like a message too large for the client: the shard frees its inflight slot.
    expect(h.acksToShard()).toEqual([{ t: 'ack', connId: bad.connId, clientId: 'bad', kind: 'pubcomp', packetId: 11 }]);
    expect(h.sys.actorErrors).toBe(0);
    expect(h.errors).toHaveLength(1);
    expect(String((h.errors[0]!.err as Error).cause)).toContain('Invalid subscriptionIdentifier: 2,2');
    expect(bad.ended).toBe(false); // its connection stays: the next message may well be fine
  });

  it('costs only that packet of a deliver batch: the next PUBLISH and the PUBREL go out', async () => {
    const h = harness();
    const c = await h.connect('c');
    h.ref.tell({
      t: 'deliver',
      connId: c.connId,
      out: [
        { k: 'pub', msg: msg(), qos: 1, packetId: 1, dup: true, retain: false, subIds: BAD_SUB_IDS },
        { k: 'pub', msg: msg({ payload: Buffer.from('ok') }), qos: 1, packetId: 2, dup: true, retain: false, subIds: [2] },
        { k: 'pubrel', packetId: 3 },
      ],
    });
    await turn();
    expect(c.packets().map((p) => [p.cmd, (p as { messageId?: number }).messageId])).toEqual([
      ['connack', undefined],
      ['publish', 2],
      ['pubrel', 3],
    ]);
    expect(h.acksToShard()).toEqual([{ t: 'ack', connId: c.connId, clientId: 'c', kind: 'pubcomp', packetId: 1 }]);
    expect(h.sys.actorErrors).toBe(0);
  });

  it('a QoS 0 fan-out of an unencodable message: each v5 copy dropped and counted (no ack), v3.1.1 copies sent, one log line', async () => {
    const h = harness();
    const v5 = await Promise.all(Array.from({ length: 50 }, (_, i) => h.connect(`v5-${i}`)));
    const v4 = await h.connect('v4', 4);
    // Properties a client could not have sent (the channel refuses them now): unencodable.
    const m = msg({ qos: 0, props: { userProperties: { k: null as unknown as string } } });
    h.ref.tell({ t: 'deliverGroup', msg: m, items: [...v5, v4].map((c) => ({ connId: c.connId, qos: 0 as const, packetId: 0, retain: false })) });
    await turn();
    expect(v5.every((c) => h.publishes(c).length === 0)).toBe(true);
    expect(h.publishes(v4).map((p) => p.payload.toString())).toEqual(['hi']);
    expect(h.metrics.get('messages_dropped_total{reason="encode_error"}')).toBe(50);
    expect(h.acksToShard()).toEqual([]);
    expect(h.errors).toHaveLength(1);
    expect(h.sys.actorErrors).toBe(0);
  });

  it('a SUBACK that cannot be encoded closes that connection only (it would wait for ever)', async () => {
    const h = harness();
    const a = await h.connect('a');
    const b = await h.connect('b');
    h.ref.tell({ t: 'suback', connId: a.connId, packetId: 1, codes: ['x' as unknown as number] });
    h.ref.tell({ t: 'suback', connId: b.connId, packetId: 1, codes: [1] });
    h.ref.tell({ t: 'deliver', connId: b.connId, out: [{ k: 'pub', msg: msg(), qos: 1, packetId: 5, dup: false, retain: false }] });
    await turn();
    expect(a.ended).toBe(true);
    expect(a.packets().map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual([
      ['connack', 0],
      ['disconnect', 0x80],
    ]);
    expect(b.ended).toBe(false);
    expect(b.packets().map((p) => p.cmd)).toEqual(['connack', 'suback', 'publish']);
    expect(h.metrics.get('internal_errors_total{op="encode_suback"}')).toBe(1);
    expect(h.sys.actorErrors).toBe(0);
  });

  it('a PUBREL that cannot be encoded is discarded at the shard like its message', async () => {
    const h = harness();
    const c = await h.connect('c');
    h.ref.tell({ t: 'deliver', connId: c.connId, out: [{ k: 'pubrel', packetId: undefined as unknown as number }, { k: 'pubrel', packetId: 4 }] });
    await turn();
    expect(c.packets().map((p) => p.cmd)).toEqual(['connack', 'pubrel']);
    expect(h.acksToShard()).toMatchObject([{ kind: 'pubcomp', connId: c.connId }]);
    expect(c.ended).toBe(false);
  });
});

describe('gateway: a bug met on one connection input', () => {
  it('closes that connection alone; the others and the gateway go on', async () => {
    const h = harness({
      acl: {
        canPublish: (_ctx, topic) => {
          if (topic === 'boom') throw new Error('acl bug');
          return true;
        },
        canSubscribe: () => true,
      },
    });
    const a = await h.connect('a');
    const b = await h.connect('b', 4);
    expect(() => a.send({ cmd: 'publish', topic: 'boom', payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false })).not.toThrow();
    await turn();
    expect(a.ended).toBe(true);
    expect(a.packets().at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x80 });
    expect(h.metrics.get('internal_errors_total{op="packet"}')).toBe(1);
    // The shard hears of the lost connection (its will goes out).
    expect(h.shard.filter((m) => m.t === 'disconnect').map((m) => (m as { clientId: string }).clientId)).toEqual(['a']);
    b.send({ cmd: 'pingreq' });
    await turn();
    expect(b.ended).toBe(false);
    expect(b.packets().map((p) => p.cmd)).toEqual(['connack', 'pingresp']);
  });
});

describe('gateway: connections waiting for a restarting shard', () => {
  it('one that closes while its waiting packets replay does not leave the others waiting (paused)', async () => {
    const h = harness();
    h.ref.tell({ t: 'shardDown', shard: 0 });
    await turn();
    // A: its session opening waits for the shard, then two more CONNECTs (protocol errors) wait behind it.
    const a = await h.open('a');
    const again = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'a', clean: true, keepalive: 0 } as const;
    a.send(again);
    a.send(again);
    // B: its session opening waits too.
    const b = await h.open('b');
    expect(h.shard.filter((m) => m.t === 'connect')).toEqual([]);
    h.ref.tell({ t: 'routeSnapshot', shard: 0, filters: [] }); // the shard is back
    await turn();
    expect(a.ended).toBe(true); // second_connect
    expect(h.shard.filter((m) => m.t === 'connect').map((m) => (m as { clientId: string }).clientId)).toEqual(['a', 'b']);
    expect(b.resumed).toBe(1);
    expect(b.ended).toBe(false);
  });
});
