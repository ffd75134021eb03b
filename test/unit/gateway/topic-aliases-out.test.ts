/**
 * Issue 9 item 2: Topic Aliases from the server to a client (MQTT 5.0 section 3.3.2.3.4).
 * The per-connection map (src/gateway/topic-aliases-out.ts) checked against a model of the
 * receiving client, and the encoders' Topic Alias property checked against mqtt-packet.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { OutboundTopicAliases } from '../../../src/gateway/topic-aliases-out.js';
import { encodePublishFast, toPacket } from '../../../src/gateway/encode.js';

/** One PUBLISH as the gateway would send it: resolve, then assign once "written". */
function send(map: OutboundTopicAliases, topic: string, written = true): { topic: string; alias: number } {
  const a = map.resolve(topic);
  if (a > 0) return { topic: '', alias: a };
  if (written) map.assign(topic, -a);
  return { topic, alias: -a };
}

const parse = (buf: Buffer, version: 4 | 5 = 5): IPublishPacket => {
  const parser = mqttPacket.parser({ protocolVersion: version });
  const out: Packet[] = [];
  parser.on('packet', (p: Packet) => out.push(p));
  parser.parse(buf);
  expect(out).toHaveLength(1);
  return out[0] as IPublishPacket;
};

describe('OutboundTopicAliases', () => {
  it('section 3.3.2.3.4: the first PUBLISH of a topic sets an alias with the topic, the next ones carry the alias alone', () => {
    const m = new OutboundTopicAliases(3);
    expect(send(m, 'sensors/a')).toEqual({ topic: 'sensors/a', alias: 1 });
    expect(send(m, 'sensors/a')).toEqual({ topic: '', alias: 1 });
    expect(send(m, 'sensors/b')).toEqual({ topic: 'sensors/b', alias: 2 });
    expect(send(m, 'sensors/a')).toEqual({ topic: '', alias: 1 });
    expect(send(m, 'sensors/b')).toEqual({ topic: '', alias: 2 });
    expect(m.size).toBe(2);
  });

  it('[MQTT-3.3.2-8][MQTT-3.3.2-11] aliases run 1..max, never 0 nor above the maximum', () => {
    const m = new OutboundTopicAliases(4);
    const used = new Set<number>();
    for (let i = 0; i < 50; i++) used.add(send(m, `topic/${i % 9}`).alias);
    expect([...used].sort()).toEqual([1, 2, 3, 4]);
    expect(m.size).toBe(4);
  });

  it('when full, the least recently used topic gives up its alias (the topic is sent again with it)', () => {
    const m = new OutboundTopicAliases(2);
    send(m, 'topic/a'); // 1
    send(m, 'topic/b'); // 2
    send(m, 'topic/a'); // a is now more recent than b
    expect(send(m, 'topic/c')).toEqual({ topic: 'topic/c', alias: 2 }); // b's alias
    expect(send(m, 'topic/a')).toEqual({ topic: '', alias: 1 });
    expect(send(m, 'topic/b')).toEqual({ topic: 'topic/b', alias: 2 }); // c was the LRU
    expect(send(m, 'topic/b')).toEqual({ topic: '', alias: 2 });
  });

  it('a maximum of 1: every new topic takes alias 1 over', () => {
    const m = new OutboundTopicAliases(1);
    expect(send(m, 'topic/a')).toEqual({ topic: 'topic/a', alias: 1 });
    expect(send(m, 'topic/b')).toEqual({ topic: 'topic/b', alias: 1 });
    expect(send(m, 'topic/b')).toEqual({ topic: '', alias: 1 });
    expect(send(m, 'topic/a')).toEqual({ topic: 'topic/a', alias: 1 });
  });

  it('a PUBLISH that is not written (too large, say) leaves no mapping behind: the next one sets it', () => {
    const m = new OutboundTopicAliases(2);
    expect(send(m, 'topic/a', false)).toEqual({ topic: 'topic/a', alias: 1 });
    expect(m.size).toBe(0);
    expect(send(m, 'topic/a')).toEqual({ topic: 'topic/a', alias: 1 });
    expect(send(m, 'topic/a')).toEqual({ topic: '', alias: 1 });
  });

  it('refuses an assignment resolve did not offer (a bug, not a state to send from)', () => {
    const m = new OutboundTopicAliases(2);
    expect(() => m.assign('topic/a', 2)).toThrow(/next unused/);
    m.assign('topic/a', 1);
    m.assign('topic/b', 2);
    expect(() => m.assign('topic/c', 2)).toThrow(/least recently used/);
  });

  it('[MQTT-3.3.2-10] a client mapping aliases as the spec says always gets every topic right (random streams, drops, any maximum)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 11 }), fc.boolean()), { maxLength: 300 }),
        (max, stream) => {
          const m = new OutboundTopicAliases(max);
          // The receiver's side: alias -> topic, set by a PUBLISH with both, read by one with an empty topic.
          const client = new Map<number, string>();
          for (const [t, dropped] of stream) {
            const topic = `topic/${t}`;
            const p = send(m, topic, !dropped);
            expect(p.alias).toBeGreaterThanOrEqual(1);
            expect(p.alias).toBeLessThanOrEqual(max);
            if (dropped) continue; // never reached the client
            if (p.topic !== '') client.set(p.alias, p.topic);
            expect(client.get(p.alias)).toBe(topic);
          }
          expect(m.size).toBeLessThanOrEqual(max);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('encoders with a Topic Alias', () => {
  it('encodePublishFast with an alias equals mqtt-packet.generate with the Topic Alias property (topic or empty, QoS 0-2, any size)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(''), fc.string({ minLength: 1, maxLength: 200, unit: 'grapheme' }).filter((t) => !t.includes('+') && !t.includes('#'))),
        fc.uint8Array({ maxLength: 20000 }),
        fc.constantFrom(0, 1, 2),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 65535 }),
        fc.boolean(),
        fc.boolean(),
        (topic, payload, qos, id, alias, dup, retain) => {
          const mine = encodePublishFast(topic, payload, qos, id, dup, retain, true, false, alias)!;
          const ref = mqttPacket.generate(
            { cmd: 'publish', topic, payload: Buffer.from(payload), qos: qos as 0 | 1 | 2, messageId: qos > 0 ? id : undefined, dup, retain, properties: { topicAlias: alias } },
            { protocolVersion: 5 },
          );
          expect(mine.equals(ref)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the alias makes the packet 3 bytes longer than without, and is parsed back', () => {
    const plain = encodePublishFast('sensors/a', Buffer.from('x'), 1, 7, false, false, true, false)!;
    const set = encodePublishFast('sensors/a', Buffer.from('x'), 1, 7, false, false, true, false, 5)!;
    const use = encodePublishFast('', Buffer.from('x'), 1, 7, false, false, true, false, 5)!;
    expect(set.length).toBe(plain.length + 3);
    expect(use.length).toBe(plain.length + 3 - 'sensors/a'.length);
    expect(parse(set)).toMatchObject({ topic: 'sensors/a', messageId: 7, properties: { topicAlias: 5 } });
    expect(parse(use)).toMatchObject({ topic: '', messageId: 7, properties: { topicAlias: 5 } });
  });

  it('toPacket adds the Topic Alias next to the message properties and Subscription Identifiers (the slow path)', () => {
    const msg = { topic: 'sensors/a', payload: Buffer.from('x'), qos: 1 as const, retain: false, props: { contentType: 'text/plain' } };
    const o = { k: 'pub' as const, msg, qos: 1 as const, packetId: 3, dup: false, retain: false, subIds: [4] };
    const set = parse(mqttPacket.generate(toPacket(o, 5, 2, 'sensors/a'), { protocolVersion: 5 }));
    expect(set).toMatchObject({ topic: 'sensors/a', properties: { topicAlias: 2, contentType: 'text/plain', subscriptionIdentifier: 4 } });
    const use = parse(mqttPacket.generate(toPacket(o, 5, 2, ''), { protocolVersion: 5 }));
    expect(use).toMatchObject({ topic: '', properties: { topicAlias: 2, contentType: 'text/plain' } });
    // Without an alias nothing changes.
    expect(toPacket(o, 5)).toMatchObject({ topic: 'sensors/a', properties: { contentType: 'text/plain', subscriptionIdentifier: 4 } });
    expect((toPacket(o, 5) as IPublishPacket).properties?.topicAlias).toBeUndefined();
  });
});
