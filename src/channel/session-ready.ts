/** The shard opened the session: send CONNACK (with v5 properties) and go live. */
import type { IConnackPacket } from 'mqtt-packet';
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
