/** The hand parser of the hot packets must agree with mqtt-packet wherever it answers. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { parseHotPacket } from '../../../src/mqtt/fast-parse.js';

function reference(buf: Buffer, version: 4 | 5): Packet {
  const parser = mqttPacket.parser({ protocolVersion: version });
  let out: Packet | undefined;
  parser.on('packet', (p: Packet) => (out = p));
  parser.on('error', (e: Error) => {
    throw e;
  });
  parser.parse(buf);
  return out!;
}

const pick = (p: Record<string, unknown>) => {
  const { cmd, topic, qos, dup, retain, messageId, reasonCode } = p;
  const payload = p.payload == null ? undefined : Buffer.from(p.payload as Buffer).toString('hex');
  return JSON.parse(JSON.stringify({ cmd, topic: topic ?? undefined, qos, dup, retain, messageId, reasonCode, payload }));
};

describe('parseHotPacket', () => {
  it('[MQTT-3.3.1] PUBLISH without properties parses exactly like mqtt-packet (3.1.1 and 5.0)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 200, unit: 'grapheme' }),
        fc.uint8Array({ maxLength: 3000 }),
        fc.constantFrom(0, 1, 2),
        fc.integer({ min: 1, max: 65535 }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom(4, 5),
        (topic, payload, qos, id, dup, retain, version) => {
          const v = version as 4 | 5;
          const buf = mqttPacket.generate(
            { cmd: 'publish', topic, payload: Buffer.from(payload), qos: qos as 0 | 1 | 2, messageId: qos > 0 ? id : undefined, dup, retain },
            { protocolVersion: v },
          );
          const mine = parseHotPacket(buf, v);
          expect(mine).toBeDefined();
          expect(pick(mine as unknown as Record<string, unknown>)).toEqual(pick(reference(buf, v) as unknown as Record<string, unknown>));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('acknowledgements with just a packet id parse like mqtt-packet; v5 Success is implied [MQTT-3.4.2.1]', () => {
    for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) {
      for (const v of [4, 5] as const) {
        const buf = mqttPacket.generate({ cmd, messageId: 4242 } as Packet, { protocolVersion: v });
        const mine = parseHotPacket(buf, v);
        if (buf.length === 4) expect(pick(mine as unknown as Record<string, unknown>)).toEqual(pick(reference(buf, v) as unknown as Record<string, unknown>));
        else expect(mine).toBeUndefined();
      }
    }
  });

  it('leaves everything unusual to mqtt-packet: QoS 3, PUBLISH with properties, reason codes, other packets', () => {
    const qos3 = Buffer.from([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]);
    expect(parseHotPacket(qos3, 4)).toBeUndefined();
    const withProps = mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { contentType: 'a' } }, { protocolVersion: 5 });
    expect(parseHotPacket(withProps, 5)).toBeUndefined();
    const rc = mqttPacket.generate({ cmd: 'puback', messageId: 1, reasonCode: 0x10 } as Packet, { protocolVersion: 5 });
    expect(parseHotPacket(rc, 5)).toBeUndefined();
    expect(parseHotPacket(Buffer.from([0xe0, 0x00]), 4)).toBeUndefined(); // DISCONNECT
    expect(parseHotPacket(Buffer.from([0x41, 0x02, 0x00, 0x01]), 4)).toBeUndefined(); // PUBACK with reserved flags
    expect(parseHotPacket(Buffer.from([0x30, 0x01, 0x00]), 4)).toBeUndefined(); // truncated topic length
  });
});

describe('parseHotPacket: PINGREQ', () => {
  it('[MQTT-3.12] PINGREQ (0xC0 0x00) is a hot packet; with a non-zero length it is not', () => {
    expect(parseHotPacket(Buffer.from([0xc0, 0x00]), 4)).toEqual({ cmd: 'pingreq' });
    expect(parseHotPacket(Buffer.from([0xc0, 0x01, 0x00]), 4)).toBeUndefined();
  });
});
