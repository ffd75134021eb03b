/**
 * DISCONNECT from a client: a normal disconnect discards the will [MQTT-3.14.4-3] unless
 * v5 reason 0x04 asks for it; v5 may change the Session Expiry Interval, but not from 0
 * to non-zero [MQTT-3.14.2-2].
 */
import type { IDisconnectPacket } from 'mqtt-packet';
import { RC } from '../mqtt/reason-codes.js';
import { expiryCap, protocolError, type Effect, type Handler } from './types.js';

export const handleDisconnect: Handler<IDisconnectPacket> = (st, p, env) => {
  let expiry: number | undefined;
  const asked = p.properties?.sessionExpiryInterval;
  if (st.version === 5 && asked !== undefined) {
    if (st.sessionExpiry === 0 && asked !== 0) return protocolError(st, RC.PROTOCOL_ERROR, 'expiry_after_zero');
    expiry = Math.min(asked, expiryCap(st, env.limits));
  }
  const publishWill = st.version === 5 && p.reasonCode === RC.DISCONNECT_WITH_WILL;
  st.phase = 'closed';
  const out: Effect[] = [
    {
      e: 'shard',
      msg: { t: 'disconnect', connId: st.connId, clientId: st.clientId, publishWill, expiry, qos2In: [...st.qos2In] },
    },
    { e: 'close', why: 'client_disconnect' },
  ];
  return out;
};
