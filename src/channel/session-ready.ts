/** The shard answered `connect`: CONNACK (with v5 properties) and go live, or refuse. */
import type { IConnackPacket } from 'mqtt-packet';
import { CONNACK_V3, RC } from '../mqtt/reason-codes.js';
import type { ChannelEnv, ChannelState, Effect } from './types.js';

export function sessionReady(st: ChannelState, sessionPresent: boolean, qos2In: number[], env: ChannelEnv): Effect[] {
  if (st.phase !== 'connecting') return [];
  st.phase = 'connected';
  st.qos2In = new Set(qos2In);
  const packet: IConnackPacket = { cmd: 'connack', sessionPresent };
  if (st.version === 5) {
    packet.reasonCode = 0;
    packet.properties = {
      receiveMaximum: env.limits.maxInflight,
      maximumPacketSize: env.limits.maxPacketSize,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      sharedSubscriptionAvailable: false,
      topicAliasMaximum: 0,
    };
    if (st.assignedClientId) packet.properties.assignedClientIdentifier = st.clientId; // [MQTT-3.2.2-16]
    if (st.serverKeepAlive !== undefined) packet.properties.serverKeepAlive = st.serverKeepAlive;
    if (st.expiryCapped) packet.properties.sessionExpiryInterval = st.sessionExpiry;
  } else {
    packet.returnCode = 0;
  }
  return [{ e: 'send', packet }];
}

/** The shard could not open a session (limits.maxSessions): v5 0x97 Quota exceeded, 3.1.1 0x03. */
export function sessionRefused(st: ChannelState, why: 'quota' | 'owner' = 'quota'): Effect[] {
  if (st.phase !== 'connecting') return [];
  st.phase = 'closed';
  if (why === 'owner') {
    // The client id names another user's session: resuming or taking it over would hand
    // that user's messages to this one.
    const packet: IConnackPacket =
      st.version === 5
        ? { cmd: 'connack', sessionPresent: false, reasonCode: RC.NOT_AUTHORIZED }
        : { cmd: 'connack', sessionPresent: false, returnCode: CONNACK_V3.NOT_AUTHORIZED };
    return [{ e: 'send', packet }, { e: 'close', why: 'session_owned_by_another_user', counter: 'auth_failures_total{reason="session_owner"}' }];
  }
  const packet: IConnackPacket =
    st.version === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode: RC.QUOTA_EXCEEDED }
      : { cmd: 'connack', sessionPresent: false, returnCode: CONNACK_V3.SERVER_UNAVAILABLE };
  return [{ e: 'send', packet }, { e: 'close', why: 'max_sessions' }];
}
