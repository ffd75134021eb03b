/**
 * Raw MQTT bytes, encoded by hand (so lengths, flags and properties are fully under
 * control): for the fuzz generator (test/helpers/fuzz.ts), the malformed-input test and
 * the v5 property tests that feed bytes through the real parser; and `publishPacket`, a
 * PUBLISH object for mqtt-packet and the raw client.
 */
import type { IPublishPacket } from 'mqtt-packet';

/** An MQTT variable byte integer (Remaining Length, property lengths, Subscription Identifier). */
export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

export const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** A UTF-8 string or binary data: two-byte length, then the bytes. */
export const str = (s: string | Buffer): Buffer => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u16(b.length), b]);
};

/** Fixed header byte, then the body with its Remaining Length. */
export function packet(first: number, body: Buffer | readonly number[]): Buffer {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([Buffer.from([first]), varint(b.length), b]);
}

/** A v5 property block: its length, then the properties (each an identifier and its value). */
export function properties(...p: ReadonlyArray<Buffer | readonly number[]>): Buffer {
  const body = Buffer.concat(p.map((x) => (Buffer.isBuffer(x) ? x : Buffer.from(x))));
  return Buffer.concat([varint(body.length), body]);
}

/** A PUBLISH as mqtt-packet (and the raw client) take it: QoS 0, payload "x", unless `over` says otherwise. */
export const publishPacket = (topic: string, over: Partial<IPublishPacket> = {}): IPublishPacket => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from('x'),
  qos: 0,
  dup: false,
  retain: false,
  ...over,
});
