/**
 * The hot packets parsed by hand: PUBLISH without MQTT 5 properties, and the one-field
 * acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP with no reason code or Success).
 * They are most of the traffic, and mqtt-packet's general parser (a buffer list, a state
 * machine, debug calls) costs several times more per packet. Anything else, or anything
 * unusual (QoS 3, wrong flags, properties, reason codes), returns undefined and goes to
 * mqtt-packet, which remains the one place that reports malformed packets.
 *
 * `frame` is exactly one packet: the Framer cut it and checked its Remaining Length.
 */
import type { IPingreqPacket, IPublishPacket, IPubackPacket, IPubcompPacket, IPubrecPacket, IPubrelPacket } from 'mqtt-packet';

export type HotPacket = IPublishPacket | IPubackPacket | IPubrecPacket | IPubrelPacket | IPubcompPacket | IPingreqPacket;

/** PINGREQ: the keepalive of every idle connection [MQTT-3.12]. */
const PINGREQ: IPingreqPacket = Object.freeze({ cmd: 'pingreq' }) as IPingreqPacket;

const ACK: Record<number, 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'> = { 0x40: 'puback', 0x50: 'pubrec', 0x62: 'pubrel', 0x70: 'pubcomp' };

export function parseHotPacket(frame: Buffer, version: 3 | 4 | 5): HotPacket | undefined {
  const b0 = frame[0]!;
  if (b0 === 0xc0 && frame.length === 2 && frame[1] === 0) return PINGREQ;
  // Remaining Length: the Framer guarantees 1..4 well-formed bytes.
  let rl = 0;
  let mul = 1;
  let pos = 1;
  for (;;) {
    const b = frame[pos++]!;
    rl += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) break;
  }
  if (b0 >> 4 === 3) {
    const qos = (b0 >> 1) & 3;
    if (qos === 3) return undefined; // [MQTT-3.3.1-4]: mqtt-packet reports it
    const end = pos + rl;
    if (end - pos < 2) return undefined;
    const topicLen = frame.readUInt16BE(pos);
    pos += 2;
    if (pos + topicLen > end) return undefined;
    const topic = frame.toString('utf8', pos, pos + topicLen);
    pos += topicLen;
    let messageId: number | undefined;
    if (qos > 0) {
      if (pos + 2 > end) return undefined;
      messageId = frame.readUInt16BE(pos);
      pos += 2;
    }
    if (version === 5) {
      // Property Length 0 only; a PUBLISH with properties takes the general parser.
      if (pos >= end || frame[pos] !== 0) return undefined;
      pos++;
    }
    const p: IPublishPacket = {
      cmd: 'publish',
      retain: (b0 & 1) !== 0,
      qos: qos as 0 | 1 | 2,
      dup: (b0 & 8) !== 0,
      topic,
      payload: frame.subarray(pos, end),
    };
    if (messageId !== undefined) p.messageId = messageId;
    return p;
  }
  const cmd = ACK[b0];
  // Exactly a packet id (v5: Success may be implied by a Remaining Length of 2 [MQTT-3.4.2.1]).
  if (cmd === undefined || rl !== 2) return undefined;
  // PUBREL's required flags 0b0010 read as QoS 1, as mqtt-packet reports them.
  const p = { cmd, messageId: frame.readUInt16BE(pos), retain: false, qos: (b0 >> 1) & 3, dup: false } as HotPacket;
  if (version === 5) (p as IPubackPacket).reasonCode = 0;
  return p;
}
