/** UNSUBSCRIBE: forwarded to the session's shard, which answers UNSUBACK [MQTT-3.10.4-4]. */
import type { IUnsubscribePacket } from 'mqtt-packet';
import { RC } from '../mqtt/reason-codes.js';
import { protocolError, type Handler } from './types.js';

export const handleUnsubscribe: Handler<IUnsubscribePacket> = (st, p) => {
  if (!p.unsubscriptions || p.unsubscriptions.length === 0) return protocolError(st, RC.PROTOCOL_ERROR, 'empty_unsubscribe'); // [MQTT-3.10.3-2]
  return [
    { e: 'shard', msg: { t: 'unsubscribe', connId: st.connId, clientId: st.clientId, packetId: p.messageId!, filters: p.unsubscriptions } },
  ];
};
