/** Outbound packets of the shard's `deliver` as mqtt-packet objects for one connection. */
import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { Outbound } from '../protocol/messages.js';
import { propsToPublish } from '../channel/message-props.js';

export function toPacket(o: Outbound, version: 3 | 4 | 5): Packet {
  if (o.k === 'pubrel') return { cmd: 'pubrel', messageId: o.packetId };
  const p: IPublishPacket = {
    cmd: 'publish',
    topic: o.msg.topic,
    payload: asBuffer(o.msg.payload),
    qos: o.qos,
    dup: o.dup,
    retain: o.retain,
  };
  if (o.qos > 0) p.messageId = o.packetId;
  if (version === 5) {
    const props = propsToPublish(o.msg.props, o.subIds);
    if (props) p.properties = props;
  }
  return p;
}

/** msgpackr hands binary over as Uint8Array; mqtt-packet wants a Buffer (a view, not a copy). */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

/**
 * PUBLISH encoded by hand for the common case: no MQTT 5 properties to send (no
 * subscription ids, no passthrough properties). mqtt-packet's generic generator costs
 * several times more per packet, and a fan-out encodes the same QoS 0 packet once for
 * thousands of sockets. Returns undefined when the message needs properties.
 */
export function encodePublishFast(
  topic: string,
  payload: Uint8Array,
  qos: number,
  packetId: number,
  dup: boolean,
  retain: boolean,
  v5: boolean,
  hasProps: boolean,
): Buffer | undefined {
  if (v5 && hasProps) return undefined;
  const topicLen = Buffer.byteLength(topic);
  const rem = 2 + topicLen + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + payload.length;
  const buf = Buffer.allocUnsafe(1 + varintSize(rem) + rem);
  let o = 0;
  // Fixed header: type 3, DUP, QoS, RETAIN [MQTT-3.3.1].
  buf[o++] = 0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0);
  let x = rem;
  do {
    let b = x & 0x7f;
    x >>>= 7;
    if (x > 0) b |= 0x80;
    buf[o++] = b;
  } while (x > 0);
  buf.writeUInt16BE(topicLen, o);
  o += 2;
  o += buf.write(topic, o, 'utf8');
  if (qos > 0) {
    buf.writeUInt16BE(packetId, o);
    o += 2;
  }
  if (v5) buf[o++] = 0; // property length 0
  buf.set(payload, o);
  return buf;
}
