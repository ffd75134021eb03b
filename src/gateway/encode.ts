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
