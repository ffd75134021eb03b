/**
 * PUBACK, PUBREC and PUBCOMP from a client acknowledge messages the broker sent; the
 * session that owns the inflight window lives on the shard, so they are forwarded.
 * A v5 PUBREC with an error reason ends the QoS 2 flow [MQTT-4.3.3-4 (v5)]: the shard
 * treats it like PUBCOMP.
 */
import type { IPubackPacket, IPubcompPacket, IPubrecPacket } from 'mqtt-packet';
import type { Handler } from './types.js';

export const handlePuback: Handler<IPubackPacket | IPubrecPacket | IPubcompPacket> = (st, p) => {
  const failedPubrec = p.cmd === 'pubrec' && (p.reasonCode ?? 0) >= 0x80;
  const kind = failedPubrec ? 'pubcomp' : p.cmd;
  return [{ e: 'shard', msg: { t: 'ack', connId: st.connId, clientId: st.clientId, kind, packetId: p.messageId! } }];
};
