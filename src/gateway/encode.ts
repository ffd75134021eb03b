/** Outbound packets of the shard's `deliver` as mqtt-packet objects for one connection. */
import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { Outbound } from '../protocol/messages.js';
import { propsToPublish } from '../channel/message-props.js';

/**
 * `alias` > 0 (v5 only): the PUBLISH carries that Topic Alias, and `topic` as its Topic
 * Name: the message's topic when the alias is being set, '' when the client knows it
 * (topic-aliases-out.ts).
 */
export function toPacket(o: Outbound, version: 3 | 4 | 5, alias = 0, topic?: string): Packet {
  if (o.k === 'pubrel') return { cmd: 'pubrel', messageId: o.packetId };
  const p: IPublishPacket = {
    cmd: 'publish',
    topic: topic ?? o.msg.topic,
    payload: asBuffer(o.msg.payload),
    qos: o.qos,
    dup: o.dup,
    retain: o.retain,
  };
  if (o.qos > 0) p.messageId = o.packetId;
  if (version === 5) {
    const props = propsToPublish(o.msg.props, o.subIds);
    if (alias > 0) p.properties = { ...props, topicAlias: alias };
    else if (props) p.properties = props;
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
 * subscription ids, no passthrough properties) other than a Topic Alias. mqtt-packet's
 * generic generator costs several times more per packet, and a fan-out encodes the same
 * QoS 0 packet once for thousands of sockets. Returns undefined when the message needs
 * properties. `alias` > 0 (v5 only): the Topic Alias property, with `topic` the message's
 * topic (setting the alias) or '' (using it; MQTT 5.0 section 3.3.2.3.4).
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
  alias = 0,
): Buffer | undefined {
  if (v5 && hasProps) return undefined;
  const topicLen = Buffer.byteLength(topic);
  const aliased = v5 && alias > 0;
  // v5: Property Length (one byte: 0 or 3), then Topic Alias = 0x23 and a Two Byte Integer.
  const rem = 2 + topicLen + (qos > 0 ? 2 : 0) + (v5 ? (aliased ? 4 : 1) : 0) + payload.length;
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
  if (aliased) {
    buf[o++] = 3;
    buf[o++] = 0x23;
    buf.writeUInt16BE(alias, o);
    o += 2;
  } else if (v5) buf[o++] = 0; // property length 0
  buf.set(payload, o);
  return buf;
}
