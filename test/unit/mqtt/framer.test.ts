import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { Framer, type FrameError } from '../../../src/mqtt/framer.js';

const BIG = 268435455 + 5;

/** Pushes every chunk; returns the frames (copied) and the first error. */
function run(framer: Framer, chunks: Buffer[]): { frames: Buffer[]; err: FrameError | null } {
  const frames: Buffer[] = [];
  for (const c of chunks) {
    const err = framer.push(c, (f) => frames.push(Buffer.from(f)));
    if (err) return { frames, err };
  }
  return { frames, err: null };
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.min(Math.max(c, 0), buf.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

const gen = (p: Packet, protocolVersion = 4): Buffer => mqttPacket.generate(p, { protocolVersion });

// Random packets, with payload sizes that give 1-, 2- and 3-byte Remaining Lengths.
const topicArb = fc.stringMatching(/^[a-z]{1,6}(\/[a-z0-9]{1,6}){0,3}$/);
const payloadArb = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 140 }) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 100, maxLength: 400 }) },
  { weight: 1, arbitrary: fc.integer({ min: 16_380, max: 17_000 }).map((n) => new Uint8Array(n)) },
);
const idArb = fc.integer({ min: 1, max: 65535 });
const packetArb: fc.Arbitrary<Packet> = fc.oneof(
  fc.record({ topic: topicArb, payload: payloadArb, qos: fc.constantFrom(0, 1, 2), retain: fc.boolean(), id: idArb }).map(
    ({ topic, payload, qos, retain, id }): Packet => ({
      cmd: 'publish',
      topic,
      payload: Buffer.from(payload),
      qos: qos as 0 | 1 | 2,
      retain,
      dup: false,
      ...(qos > 0 ? { messageId: id } : {}),
    }),
  ),
  fc.constant<Packet>({ cmd: 'pingreq' }),
  idArb.map((messageId): Packet => ({ cmd: 'puback', messageId })),
  idArb.map((messageId): Packet => ({ cmd: 'pubrel', messageId })),
  fc.record({ id: idArb, topics: fc.array(topicArb, { minLength: 1, maxLength: 4 }) }).map(
    ({ id, topics }): Packet => ({ cmd: 'subscribe', messageId: id, subscriptions: topics.map((topic) => ({ topic, qos: 1 as const })) }),
  ),
  fc.string({ minLength: 1, maxLength: 23 }).map(
    (clientId): Packet => ({ cmd: 'connect', clientId, protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30 }),
  ),
  fc.constant<Packet>({ cmd: 'disconnect' }),
);

describe('Framer', () => {
  it('passes whole packets through one by one', () => {
    const packets = [
      gen({ cmd: 'pingreq' }),
      gen({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 1, messageId: 3, retain: false, dup: false }),
      gen({ cmd: 'disconnect' }),
    ];
    const { frames, err } = run(new Framer(BIG), [Buffer.concat(packets)]);
    expect(err).toBeNull();
    expect(frames).toEqual(packets);
  });

  it('handles a split at every byte offset of a multi-packet stream', () => {
    const packets = [
      gen({ cmd: 'connect', clientId: 'c1', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 10 }),
      gen({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(200, 7), qos: 0, retain: false, dup: false }), // 2-byte length
      gen({ cmd: 'pingreq' }), // zero remaining length
      gen({ cmd: 'publish', topic: 'x/y', payload: Buffer.alloc(17_000, 1), qos: 2, messageId: 9, retain: true, dup: false }), // 3-byte length
      gen({ cmd: 'puback', messageId: 65535 }),
    ];
    const stream = Buffer.concat(packets);
    for (let k = 0; k <= stream.length; k++) {
      const { frames, err } = run(new Framer(BIG), splitAt(stream, [k]));
      expect(err).toBeNull();
      if (!frames.every((f, i) => f.equals(packets[i]!)) || frames.length !== packets.length) {
        throw new Error(`wrong frames when split at ${k}`);
      }
    }
  });

  it('handles one byte per chunk', () => {
    const packets = [
      gen({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(300, 3), qos: 1, messageId: 1, retain: false, dup: false }),
      gen({ cmd: 'pingreq' }),
    ];
    const stream = Buffer.concat(packets);
    const chunks = Array.from(stream, (b) => Buffer.from([b]));
    const { frames, err } = run(new Framer(BIG), chunks);
    expect(err).toBeNull();
    expect(frames).toEqual(packets);
  });

  it('property: random packets, concatenated and split at random points, come out as the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(packetArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (packets, rawCuts) => {
          const bufs = packets.map((p) => gen(p));
          const stream = Buffer.concat(bufs);
          const cuts = rawCuts.map((c) => c % (stream.length + 1));
          const { frames, err } = run(new Framer(BIG), splitAt(stream, cuts));
          expect(err).toBeNull();
          expect(frames.length).toBe(bufs.length);
          frames.forEach((f, i) => expect(f.equals(bufs[i]!)).toBe(true));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps a partial packet until the rest arrives and emits nothing early', () => {
    const pkt = gen({ cmd: 'publish', topic: 't', payload: Buffer.alloc(50, 1), qos: 0, retain: false, dup: false });
    const f = new Framer(BIG);
    const frames: Buffer[] = [];
    expect(f.push(pkt.subarray(0, 10), (x) => frames.push(Buffer.from(x)))).toBeNull();
    expect(frames).toHaveLength(0);
    expect(f.push(pkt.subarray(10), (x) => frames.push(Buffer.from(x)))).toBeNull();
    expect(frames).toEqual([pkt]);
  });

  describe('too_large', () => {
    it('accepts a packet of exactly maxPacketSize bytes and refuses one byte more', () => {
      const pkt = gen({ cmd: 'publish', topic: 't', payload: Buffer.alloc(100, 1), qos: 0, retain: false, dup: false });
      expect(run(new Framer(pkt.length), [pkt]).err).toBeNull();
      expect(run(new Framer(pkt.length - 1), [pkt]).err).toBe('too_large');
    });

    it('refuses as soon as the fixed header is known, without buffering the body', () => {
      const pkt = gen({ cmd: 'publish', topic: 't', payload: Buffer.alloc(10_000, 1), qos: 0, retain: false, dup: false });
      const frames: Buffer[] = [];
      const f = new Framer(1000);
      // Only the type byte and the first length byte: not yet known.
      expect(f.push(pkt.subarray(0, 2), (x) => frames.push(x))).toBeNull();
      // The second (last) length byte completes the header: too large.
      expect(f.push(pkt.subarray(2, 3), (x) => frames.push(x))).toBe('too_large');
      expect(frames).toHaveLength(0);
    });

    it('refuses a declared 256 MB packet from its 5-byte header alone', () => {
      const f = new Framer(1024 * 1024);
      expect(f.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), () => {})).toBe('too_large');
    });

    it('emits the frames before an oversized packet, then reports it', () => {
      const ok = gen({ cmd: 'pingreq' });
      const big = gen({ cmd: 'publish', topic: 't', payload: Buffer.alloc(500), qos: 0, retain: false, dup: false });
      const { frames, err } = run(new Framer(100), [Buffer.concat([ok, big])]);
      expect(frames).toEqual([ok]);
      expect(err).toBe('too_large');
    });
  });

  describe('bad_length', () => {
    it('[MQTT-1.5.5-1] a Remaining Length of more than 4 bytes is malformed', () => {
      const frames: Buffer[] = [];
      expect(new Framer(BIG).push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), (x) => frames.push(x))).toBe('bad_length');
      expect(frames).toHaveLength(0);
    });

    it('[MQTT-1.5.5-1] is detected from the 4th length byte, before a 5th arrives', () => {
      expect(new Framer(BIG).push(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80]), () => {})).toBe('bad_length');
    });

    it('[MQTT-1.5.5-1] is detected when the header is split across chunks', () => {
      const f = new Framer(BIG);
      expect(f.push(Buffer.from([0x30, 0xff]), () => {})).toBeNull();
      expect(f.push(Buffer.from([0xff]), () => {})).toBeNull();
      expect(f.push(Buffer.from([0xff, 0xff, 0x01]), () => {})).toBe('bad_length');
    });

    it('the largest 4-byte Remaining Length (268,435,455) is not malformed', () => {
      // Incomplete packet, so no frame and no error.
      expect(new Framer(BIG).push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), () => {})).toBeNull();
    });

    it('reports bad_length after the good frames before it', () => {
      const ok = gen({ cmd: 'pingreq' });
      const { frames, err } = run(new Framer(BIG), [Buffer.concat([ok, Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01])])]);
      expect(frames).toEqual([ok]);
      expect(err).toBe('bad_length');
    });
  });
});
