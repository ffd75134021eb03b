/** The shard answered `connect`: CONNACK (with v5 properties) and go live, or refuse. */
import mqttPacket, { type IConnackPacket } from 'mqtt-packet';
import { CONNACK_V3, RC } from '../mqtt/reason-codes.js';
import { mqttOf, type ChannelEnv, type ChannelState, type Effect } from './types.js';
import { SmallSet } from '../runtime/small-collections.js';

export function sessionReady(st: ChannelState, sessionPresent: boolean, qos2In: number[], env: ChannelEnv): Effect[] {
  if (st.phase !== 'connecting') return [];
  st.phase = 'connected';
  st.qos2In = new SmallSet(qos2In);
  const packet: IConnackPacket = { cmd: 'connack', sessionPresent };
  if (st.version === 5) {
    const mqtt = mqttOf(env);
    packet.reasonCode = 0;
    // What this server accepts (config `limits` and `mqtt`; docs/mqtt5.md), each enforced
    // by the handlers: publish.ts, subscribe.ts, connect.ts.
    packet.properties = {
      receiveMaximum: env.limits.maxInflight,
      maximumPacketSize: env.limits.maxPacketSize,
      retainAvailable: mqtt.retainAvailable,
      wildcardSubscriptionAvailable: mqtt.wildcardSubscriptionAvailable,
      subscriptionIdentifiersAvailable: mqtt.subscriptionIdentifiersAvailable,
      sharedSubscriptionAvailable: env.sharedSubscriptions === true,
      topicAliasMaximum: mqtt.topicAliasMaximum,
    };
    // Maximum QoS is 0 or 1 on the wire; absent means 2 [MQTT-3.2.2-9].
    if (mqtt.maximumQoS < 2) packet.properties.maximumQoS = mqtt.maximumQoS as 0 | 1;
    if (st.assignedClientId) packet.properties.assignedClientIdentifier = st.clientId; // [MQTT-3.2.2-16]
    if (st.serverKeepAlive !== undefined) packet.properties.serverKeepAlive = st.serverKeepAlive;
    if (st.expiryCapped) packet.properties.sessionExpiryInterval = st.sessionExpiry;
    if (st.enhanced) {
      // Enhanced authentication: the CONNECT's method, and the method's final data (e.g.
      // the SCRAM server-final-message) [MQTT-4.12.0-5]; never without one [MQTT-4.12.0-6].
      packet.properties.authenticationMethod = st.enhanced.method;
      if (st.enhanced.finalData !== undefined) packet.properties.authenticationData = st.enhanced.finalData;
      st.enhanced.finalData = undefined;
    }
    if (st.requestResponseInfo && mqtt.responseInformation !== null) {
      // Only to a client that asked (Request Response Information 1) [MQTT-3.1.2-28], and not
      // if it would make the CONNACK exceed the client's Maximum Packet Size (section 3.2.2.3.15).
      const info = mqtt.responseInformation.replaceAll('{clientid}', st.clientId);
      const size = mqttPacket.generate({ ...packet, properties: { ...packet.properties, responseInformation: info } }, { protocolVersion: 5 }).length;
      if (size <= st.maxPacketSizeOut) packet.properties.responseInformation = info;
    }
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
        ? { cmd: 'connack', sessionPresent: false, reasonCode: RC.NOT_AUTHORIZED, properties: { reasonString: 'the client id names a session of another user' } }
        : { cmd: 'connack', sessionPresent: false, returnCode: CONNACK_V3.NOT_AUTHORIZED };
    return [{ e: 'send', packet }, { e: 'close', why: 'session_owned_by_another_user', counter: 'auth_failures_total{reason="session_owner"}' }];
  }
  const packet: IConnackPacket =
    st.version === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode: RC.QUOTA_EXCEEDED, properties: { reasonString: 'no room for another session on this server' } }
      : { cmd: 'connack', sessionPresent: false, returnCode: CONNACK_V3.SERVER_UNAVAILABLE };
  return [{ e: 'send', packet }, { e: 'close', why: 'max_sessions' }];
}
