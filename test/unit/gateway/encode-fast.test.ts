/** The hand-written PUBLISH encoder must produce exactly mqtt-packet's bytes [MQTT-3.3.1]. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { encodePublishFast } from '../../../src/gateway/encode.js';

describe('encodePublishFast', () => {
  it('equals mqtt-packet.generate for PUBLISH without properties (3.1.1 and 5.0, QoS 0-2, DUP, RETAIN, any size)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 300, unit: 'grapheme' }).filter((t) => !t.includes('+') && !t.includes('#')),
        fc.uint8Array({ maxLength: 20000 }),
        fc.constantFrom(0, 1, 2),
        fc.integer({ min: 1, max: 65535 }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom(4, 5),
        (topic, payload, qos, id, dup, retain, version) => {
          const mine = encodePublishFast(topic, payload, qos, id, dup, retain, version === 5, false)!;
          const ref = mqttPacket.generate(
            { cmd: 'publish', topic, payload: Buffer.from(payload), qos: qos as 0 | 1 | 2, messageId: qos > 0 ? id : undefined, dup, retain },
            { protocolVersion: version as 4 | 5 },
          );
          expect(mine.equals(ref)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('declines MQTT 5 messages that carry properties (the generic encoder writes them)', () => {
    expect(encodePublishFast('t', Buffer.from('x'), 0, 0, false, false, true, true)).toBeUndefined();
    expect(encodePublishFast('t', Buffer.from('x'), 0, 0, false, false, false, true)).toBeInstanceOf(Buffer);
  });
});
