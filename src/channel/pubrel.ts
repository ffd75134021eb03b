/** PUBREL from a client: release the QoS 2 packet id and answer PUBCOMP [MQTT-4.3.3-11]. */
import type { IPubrelPacket } from 'mqtt-packet';
import { RC } from '../mqtt/reason-codes.js';
import type { Handler } from './types.js';

export const handlePubrel: Handler<IPubrelPacket> = (st, p) => {
  const known = st.qos2In.delete(p.messageId!);
  // v5 reports an unknown id with 0x92; 3.1.1 just completes the flow.
  const reasonCode = !known && st.version === 5 ? RC.PACKET_ID_NOT_FOUND : undefined;
  return [
    // Also for an unknown id: after a crash the id may be unknown here and still held by a
    // shard that took the message in (its resend check, journal.ts).
    { e: 'released', packetId: p.messageId! },
    { e: 'send', packet: { cmd: 'pubcomp', messageId: p.messageId, ...(reasonCode ? { reasonCode } : {}) } },
  ];
};
