/**
 * Seeded generator of MQTT 3.1 / 3.1.1 / 5.0 client packets for the fuzz test
 * (test/integration/34-fuzz.test.ts): valid packets encoded by hand (so that properties,
 * flags and lengths are fully under control), then mutated: bit flips, truncations,
 * Remaining Length rewrites, random and duplicated property ids, invalid UTF-8, reserved
 * flags, oversized variable byte integers, random packet types.
 *
 * Everything comes from one `Rng` (mulberry32): the same seed gives the same packets.
 */
import { packet, str, u16, u32, varint } from './packets.js';

/** mulberry32: small, fast, good enough to fuzz, and replayable from its 32-bit seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** 0 <= n < max. */
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

export type Version = 3 | 4 | 5;

// ------------------------------------------------------------------ encoding primitives
// test/helpers/packets.ts; varint stays exported here for the fuzz test's own packets.
export { varint };

// ------------------------------------------------------------------ v5 properties
type PropType = 'byte' | 'int16' | 'int32' | 'varint' | 'string' | 'binary' | 'pair';

/** MQTT 5.0 section 2.2.2.2: identifier -> type. */
export const PROPERTY_TYPES: Record<number, PropType> = {
  0x01: 'byte', // Payload Format Indicator
  0x02: 'int32', // Message Expiry Interval
  0x03: 'string', // Content Type
  0x08: 'string', // Response Topic
  0x09: 'binary', // Correlation Data
  0x0b: 'varint', // Subscription Identifier
  0x11: 'int32', // Session Expiry Interval
  0x12: 'string', // Assigned Client Identifier
  0x13: 'int16', // Server Keep Alive
  0x15: 'string', // Authentication Method
  0x16: 'binary', // Authentication Data
  0x17: 'byte', // Request Problem Information
  0x18: 'int32', // Will Delay Interval
  0x19: 'byte', // Request Response Information
  0x1a: 'string', // Response Information
  0x1c: 'string', // Server Reference
  0x1f: 'string', // Reason String
  0x21: 'int16', // Receive Maximum
  0x22: 'int16', // Topic Alias Maximum
  0x23: 'int16', // Topic Alias
  0x24: 'byte', // Maximum QoS
  0x25: 'byte', // Retain Available
  0x26: 'pair', // User Property
  0x27: 'int32', // Maximum Packet Size
  0x28: 'byte', // Wildcard Subscription Available
  0x29: 'byte', // Subscription Identifier Available
  0x2a: 'byte', // Shared Subscription Available
};

/** The properties a client may send in each packet (the others are fuzzed in too, rarely). */
const PROPS_FOR: Record<string, number[]> = {
  connect: [0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26],
  will: [0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26],
  publish: [0x01, 0x02, 0x03, 0x08, 0x09, 0x26],
  subscribe: [0x0b, 0x26],
  unsubscribe: [0x26],
  ack: [0x1f, 0x26],
  disconnect: [0x11, 0x1f, 0x26],
  auth: [0x15, 0x16, 0x1f, 0x26],
};

/** Strings, sometimes hostile: invalid UTF-8, U+0000, UTF-16 surrogates, long ones. */
export function fuzzString(r: Rng, base = 'x'): Buffer {
  switch (r.int(10)) {
    case 0:
      return Buffer.from([0xc0, 0xaf, 0xff, 0xfe]); // invalid UTF-8
    case 1:
      return Buffer.from(`${base}\u0000nul`);
    case 2:
      return Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]); // an encoded UTF-16 surrogate
    case 3:
      return Buffer.from('');
    case 4:
      return Buffer.from('é'.repeat(r.range(1, 300)));
    case 5:
      return Buffer.from('\uFEFF' + base); // BOM
    case 6:
      return Buffer.from('__proto__');
    default:
      return Buffer.from(`${base}${r.int(1000)}`);
  }
}

function propValue(r: Rng, type: PropType, id: number): Buffer {
  switch (type) {
    case 'byte':
      return Buffer.from([r.chance(0.8) ? r.int(2) : r.int(256)]);
    case 'int16':
      return u16(r.chance(0.2) ? 0 : r.chance(0.5) ? r.range(1, 100) : r.int(65536));
    case 'int32':
      return u32(r.chance(0.2) ? 0 : r.chance(0.5) ? r.range(1, 3600) : r.int(0x100000000));
    case 'varint': {
      if (id === 0x0b && r.chance(0.1)) return Buffer.from([0x00]); // Subscription Identifier 0
      if (r.chance(0.1)) return Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]); // five bytes
      return varint(r.chance(0.7) ? r.range(1, 10) : r.range(1, 268_435_455));
    }
    case 'string':
      return str(fuzzString(r, 'p'));
    case 'binary':
      return str(r.bytes(r.int(20)));
    case 'pair':
      return Buffer.concat([str(fuzzString(r, 'k')), str(fuzzString(r, 'v'))]);
  }
}

/**
 * A properties block for `kind`: some of the allowed properties, and sometimes a
 * duplicated one, one meant for another packet, or an unknown identifier.
 */
export function fuzzProps(r: Rng, kind: keyof typeof PROPS_FOR, forced: Buffer[] = []): Buffer {
  const props: Buffer[] = [...forced];
  const allowed = PROPS_FOR[kind]!;
  const n = r.chance(0.4) ? 0 : r.range(1, 4);
  for (let i = 0; i < n; i++) {
    let id = r.pick(allowed);
    if (r.chance(0.1)) id = Number(r.pick(Object.keys(PROPERTY_TYPES))); // valid id, wrong packet
    props.push(Buffer.concat([Buffer.from([id]), propValue(r, PROPERTY_TYPES[id]!, id)]));
  }
  // The same property twice (a protocol error, except User Property).
  if (props.length > 0 && r.chance(0.15)) props.push(r.pick(props));
  if (r.chance(0.05)) {
    // an identifier that does not exist, with a plausible value after it
    const unknown = r.pick([0x00, 0x04, 0x0a, 0x20, 0x2b, 0x7f, 0x80, 0xff]);
    props.push(Buffer.concat([Buffer.from([unknown]), r.bytes(r.int(4))]));
  }
  const body = Buffer.concat(props);
  if (r.chance(0.03)) return Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]), body]); // oversized length
  return Buffer.concat([varint(body.length), body]);
}

/** A property duplicated on purpose: the same identifier twice, same value. */
export function duplicated(id: number, value: Buffer): Buffer[] {
  return [Buffer.from([id]), value, Buffer.from([id]), value];
}

// ------------------------------------------------------------------ packets
export interface ConnectOpts {
  clientId: string;
  clean?: boolean;
  keepalive?: number;
  will?: { topic: string; payload: Buffer; qos: number; retain: boolean };
  username?: string;
  password?: Buffer;
}

export function connect(r: Rng, v: Version, o: ConnectOpts): Buffer {
  const name = v === 3 ? 'MQIsdp' : 'MQTT';
  let flags = o.clean === false ? 0 : 0x02;
  if (o.will) flags |= 0x04 | ((o.will.qos & 3) << 3) | (o.will.retain ? 0x20 : 0);
  if (o.username !== undefined) flags |= 0x80;
  if (o.password !== undefined) flags |= 0x40;
  const parts = [str(name), Buffer.from([v, flags]), u16(o.keepalive ?? 0)];
  if (v === 5) parts.push(fuzzProps(r, 'connect'));
  parts.push(str(o.clientId));
  if (o.will) {
    if (v === 5) parts.push(fuzzProps(r, 'will'));
    parts.push(str(o.will.topic), str(o.will.payload));
  }
  if (o.username !== undefined) parts.push(str(o.username));
  if (o.password !== undefined) parts.push(str(o.password));
  return packet(0x10, Buffer.concat(parts));
}

export function publish(r: Rng, v: Version, topic: string | Buffer, payload: Buffer, qos: number, id: number, o: { retain?: boolean; dup?: boolean; props?: Buffer } = {}): Buffer {
  const first = 0x30 | (o.dup ? 8 : 0) | ((qos & 3) << 1) | (o.retain ? 1 : 0);
  const parts = [str(topic)];
  if (qos > 0) parts.push(u16(id));
  if (v === 5) parts.push(o.props ?? fuzzProps(r, 'publish'));
  parts.push(payload);
  return packet(first, Buffer.concat(parts));
}

/** PUBACK, PUBREC, PUBREL or PUBCOMP. */
export function ack(r: Rng, v: Version, type: 4 | 5 | 6 | 7, id: number): Buffer {
  const first = (type << 4) | (type === 6 ? 0x02 : 0);
  if (v !== 5 || r.chance(0.5)) return packet(first, u16(id));
  return packet(first, Buffer.concat([u16(id), Buffer.from([r.pick([0, 0, 0x10, 0x80, 0x92, r.int(256)])]), fuzzProps(r, 'ack')]));
}

export function subscribe(r: Rng, v: Version, id: number, subs: Array<{ filter: string | Buffer; opts: number }>, props?: Buffer): Buffer {
  const parts = [u16(id)];
  if (v === 5) parts.push(props ?? fuzzProps(r, 'subscribe'));
  for (const s of subs) parts.push(str(s.filter), Buffer.from([s.opts]));
  return packet(0x82, Buffer.concat(parts));
}

export function unsubscribe(r: Rng, v: Version, id: number, filters: Array<string | Buffer>): Buffer {
  const parts = [u16(id)];
  if (v === 5) parts.push(fuzzProps(r, 'unsubscribe'));
  for (const f of filters) parts.push(str(f));
  return packet(0xa2, Buffer.concat(parts));
}

export function disconnect(r: Rng, v: Version): Buffer {
  if (v !== 5 || r.chance(0.3)) return Buffer.from([0xe0, 0x00]);
  return packet(0xe0, Buffer.concat([Buffer.from([r.pick([0, 0, 0x04, 0x80, r.int(256)])]), fuzzProps(r, 'disconnect')]));
}

export function auth(r: Rng): Buffer {
  return packet(0xf0, Buffer.concat([Buffer.from([r.pick([0, 0x18, 0x19])]), fuzzProps(r, 'auth')]));
}

// ------------------------------------------------------------------ mutations
export const MUTATIONS = ['bitflip', 'truncate', 'length', 'flags', 'type', 'splice', 'varint', 'garbage'] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** Offset of the body: after the type byte and the Remaining Length. */
function headerEnd(b: Buffer): number {
  let i = 1;
  while (i < b.length && i < 5 && b[i]! & 0x80) i++;
  return Math.min(i + 1, b.length);
}

export function mutate(r: Rng, b: Buffer, m: Mutation): Buffer {
  const out = Buffer.from(b);
  switch (m) {
    case 'bitflip': {
      for (let k = r.range(1, 4); k > 0; k--) {
        const i = r.int(out.length);
        out[i] = out[i]! ^ (1 << r.int(8));
      }
      return out;
    }
    case 'truncate':
      return out.subarray(0, r.int(out.length));
    case 'length': {
      // The body as is, with another Remaining Length (shorter, longer, zero).
      const body = out.subarray(headerEnd(out));
      const len = r.pick([0, 1, Math.max(0, body.length - 1), body.length + 1, r.int(body.length + 16), r.int(300)]);
      return Buffer.concat([out.subarray(0, 1), varint(len), body]);
    }
    case 'flags':
      out[0] = (out[0]! & 0xf0) | r.int(16); // reserved flag bits, QoS 3, DUP on QoS 0
      return out;
    case 'type':
      out[0] = (r.int(16) << 4) | (out[0]! & 0x0f); // any packet type, 0 and 15 included
      return out;
    case 'splice': {
      // Overwrite, insert or delete a few bytes in the body (property ids and lengths live there).
      const at = r.range(Math.min(headerEnd(out), out.length), out.length);
      const k = r.int(3);
      if (k === 0) return Buffer.concat([out.subarray(0, at), r.bytes(r.range(1, 4)), out.subarray(at)]);
      if (k === 1) return Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + r.range(1, 4)))]);
      for (let i = at; i < Math.min(out.length, at + 3); i++) out[i] = r.int(256);
      return out;
    }
    case 'varint': {
      // Remaining Length with a fifth continuation byte, or a non-minimal encoding.
      const body = out.subarray(headerEnd(out));
      const head = r.chance(0.5) ? Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]) : Buffer.from([(body.length & 0x7f) | 0x80, 0x80, 0x00]);
      return Buffer.concat([out.subarray(0, 1), head, body]);
    }
    case 'garbage':
      return r.bytes(r.range(1, 64));
  }
}
