/**
 * limits.queueFullPolicy hold, gateway side: PUBACK/PUBREC are held until the shards
 * answer the publish's token, with durability memory too; an MQTT 3.1.1 publisher (no
 * Receive Maximum to respect) is not read while limits.maxInflight of its acks are held,
 * and read again once one is released; a v5 publisher keeps being read (Receive Maximum
 * bounds it). A new gateway generation numbers its tokens apart from the previous one's.
 *
 * A real GatewayActor on an in-thread ActorSystem, fake sockets (ConnIO) and a fake shard.
 */
import { afterEach, describe, expect, it } from 'vitest';
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { GatewayOptions } from '../../../src/gateway/gateway-actor.js';
import { firstAckId } from '../../../src/gateway/pending-acks.js';
import type { ConnIO } from '../../../src/transport/connection.js';
import type { ShardMsg } from '../../../src/protocol/messages.js';
import { closeGateways, gatewayEnv, parsePackets, turn } from './gateway-env.js';

const MAX_INFLIGHT = 3;

afterEach(closeGateways);

/** The gateway of gateway-env.ts with queueFullPolicy hold (unless `over` says otherwise). */
function harness(over: Partial<GatewayOptions> = {}) {
  const { gw, ref, shard, metrics } = gatewayEnv({
    env: { limits: { maxInflight: MAX_INFLIGHT }, holdAcks: true },
    gateway: { queueFullPolicy: 'hold', ...over },
  });
  // Every topic is routed to shard 0.
  ref.tell({ t: 'routeAdd', shard: 0, filters: ['#'], seq: 1 });

  async function connect(clientId: string, version: 4 | 5) {
    const written: Buffer[] = [];
    const io = { paused: false, pauses: 0, resumes: 0 };
    const conn: ConnIO = {
      transport: 'tcp',
      remote: clientId,
      write: (b) => void written.push(b),
      bufferedBytes: () => 0,
      end: () => {},
      pause: () => {
        io.paused = true;
        io.pauses++;
      },
      resume: () => {
        io.paused = false;
        io.resumes++;
      },
    };
    const sink = gw.accept(conn)!;
    const send = (p: Packet) => sink.data(mqttPacket.generate(p, { protocolVersion: version }));
    send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId, clean: true, keepalive: 0 });
    await turn();
    const m = shard.find((x): x is Extract<ShardMsg, { t: 'connect' }> => x.t === 'connect' && x.clientId === clientId)!;
    ref.tell({ t: 'connack', connId: m.connId, sessionPresent: false, qos2In: [] });
    await turn();
    const packets = (cmd: string): Packet[] => parsePackets(written, version).filter((p) => p.cmd === cmd);
    const publish = (id: number) => send({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, dup: false, retain: false, messageId: id });
    return { io, send, publish, packets };
  }

  /** The tokens of the publishes the shard got, in order. */
  const tokens = (): number[] => shard.flatMap((m) => (m.t === 'publish' && m.ack !== undefined ? [m.ack] : []));
  return { ref, shard, metrics, connect, tokens };
}

describe('gateway: queueFullPolicy hold', () => {
  it('durability memory: the PUBACK waits for the shard\'s answer to the publish\'s token', async () => {
    const h = harness();
    const p = await h.connect('p', 5);
    p.publish(1);
    await turn();
    expect(h.tokens()).toHaveLength(1);
    expect(p.packets('puback')).toEqual([]);
    h.ref.tell({ t: 'committed', ids: h.tokens() });
    await turn();
    await turn();
    expect(p.packets('puback').map((a) => a.messageId)).toEqual([1]);
  });

  it('drop with durability memory (the default): PUBACK at once, no token', async () => {
    const h = harness({ queueFullPolicy: 'drop' });
    const p = await h.connect('p', 5);
    p.publish(1);
    await turn();
    await turn();
    expect(h.tokens()).toEqual([]);
    expect(p.packets('puback').map((a) => a.messageId)).toEqual([1]);
  });

  it('an MQTT 3.1.1 publisher is not read while limits.maxInflight of its acks are held, and read again once one is released', async () => {
    const h = harness();
    const p = await h.connect('p', 4);
    for (let i = 1; i < MAX_INFLIGHT; i++) p.publish(i);
    await turn();
    expect(p.io.paused).toBe(false);
    p.publish(MAX_INFLIGHT);
    await turn();
    expect(p.io.paused).toBe(true);
    expect(h.metrics.get('publishers_paused_held_acks_total')).toBe(1);
    h.ref.tell({ t: 'committed', ids: [h.tokens()[0]!] });
    await turn();
    await turn();
    expect(p.packets('puback').map((a) => a.messageId)).toEqual([1]);
    expect(p.io.paused).toBe(false);
    expect(p.io.resumes).toBe(1);
  });

  it('[MQTT-4.9.0-3] a v5 publisher is not paused: its Receive Maximum bounds it and its other packets are answered', async () => {
    const h = harness();
    const p = await h.connect('p', 5);
    for (let i = 1; i <= MAX_INFLIGHT; i++) p.publish(i);
    await turn();
    expect(p.io.paused).toBe(false);
    p.send({ cmd: 'pingreq' });
    await turn();
    await turn();
    expect(p.packets('pingresp')).toHaveLength(1);
    expect(p.packets('puback')).toEqual([]);
  });

  it('a restarted gateway generation numbers its tokens apart from the previous one\'s (late answers from parked messages)', async () => {
    expect(firstAckId(0)).toBe(1);
    expect(firstAckId(1)).toBe(1 + 0x1000000);
    expect(firstAckId(63)).toBeLessThan(0x3fffffff);
    const h = harness({ generation: 2 });
    const p = await h.connect('p', 5);
    p.publish(1);
    await turn();
    expect(h.tokens()).toEqual([firstAckId(2)]);
  });
});
