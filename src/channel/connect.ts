/**
 * CONNECT: validate, then authenticate off the event loop (effect `auth`); the gateway
 * calls `afterAuth` with the result, which opens the session on its shard. CONNACK is
 * sent only when the shard answers (session-ready.ts), so a session that must be
 * resumed or taken over is settled before the client can publish.
 */
import type { IConnectPacket } from 'mqtt-packet';
import { CONNACK_V3, RC } from '../mqtt/reason-codes.js';
import { isSysTopic, validateTopicName } from '../mqtt/topic.js';
import type { AppMessage, WillMessage } from '../protocol/messages.js';
import { propsFromPublish } from './message-props.js';
import type { ImUser } from '../im/im-acl.js';
import { parseImTopic } from '../im/topics.js';
import { checkImPublish } from './im-check.js';
import { HOLD_PREFIX } from '../im/topics.js';
import { expiryCap, protocolError, type ChannelEnv, type ChannelState, type Effect, type Handler } from './types.js';

function refuse(st: ChannelState, v5: number, v3: number, why: string, counter = 'auth_failures_total'): Effect[] {
  st.phase = 'closed';
  return [
    { e: 'send', packet: { cmd: 'connack', sessionPresent: false, ...(st.version === 5 ? { reasonCode: v5 } : { returnCode: v3 }) } },
    { e: 'close', why, counter },
  ];
}

export const handleConnect: Handler<IConnectPacket> = (st, p, env) => {
  // A second CONNECT is a protocol violation [MQTT-3.1.0-2].
  if (st.phase !== 'new') return protocolError(st, RC.PROTOCOL_ERROR, 'second_connect');
  st.version = p.protocolVersion === 5 ? 5 : p.protocolVersion === 3 ? 3 : 4;
  const { limits } = env;
  let clientId = p.clientId ?? '';
  if (clientId.length === 0) {
    // 3.1.1: a zero-length id needs CleanSession=1, else CONNACK 0x02 [MQTT-3.1.3-8];
    // 5.0: the server assigns one and returns it [MQTT-3.1.3-6].
    if (st.version !== 5 && !p.clean) return refuse(st, RC.CLIENT_ID_NOT_VALID, CONNACK_V3.IDENTIFIER_REJECTED, 'empty_client_id');
    clientId = env.newClientId();
    st.assignedClientId = st.version === 5;
  } else if (clientId.length > limits.maxClientIdLength) {
    return refuse(st, RC.CLIENT_ID_NOT_VALID, CONNACK_V3.IDENTIFIER_REJECTED, 'client_id_too_long');
  } else if (clientId.startsWith(HOLD_PREFIX)) {
    // Reserved for the broker's holding sessions (im.presubscribe.holdNewUsers).
    return refuse(st, RC.CLIENT_ID_NOT_VALID, CONNACK_V3.IDENTIFIER_REJECTED, 'reserved_client_id');
  }
  st.clientId = clientId;
  st.username = p.username;
  const cp = p.properties;
  if (st.version === 5 && (cp?.receiveMaximum === 0 || cp?.maximumPacketSize === 0)) {
    // Receive Maximum 0 and Maximum Packet Size 0 are protocol errors [MQTT-3.1.2.11.3/4].
    const why = cp.receiveMaximum === 0 ? 'receive_maximum_zero' : 'maximum_packet_size_zero';
    return refuse(st, RC.PROTOCOL_ERROR, CONNACK_V3.NOT_AUTHORIZED, why, `protocol_errors_total{reason="${why}"}`);
  }
  if (p.will) {
    if (validateTopicName(p.will.topic, limits) !== null)
      return refuse(st, RC.TOPIC_NAME_INVALID, CONNACK_V3.NOT_AUTHORIZED, 'bad_will_topic');
  }
  st.phase = 'auth';
  st.connect = p;
  return [{ e: 'auth', username: p.username, password: p.password }];
};

export type AuthResult = 'ok' | 'bad_credentials' | 'not_authorized';

/** `im`: the IM identity of an authenticated uid (resolved by the gateway with the coordinator's directory). */
export function afterAuth(st: ChannelState, result: AuthResult, env: ChannelEnv, im?: ImUser): Effect[] {
  const p = st.connect;
  st.connect = undefined;
  if (st.phase !== 'auth' || !p) return [];
  if (result === 'bad_credentials')
    return refuse(st, RC.BAD_USERNAME_OR_PASSWORD, CONNACK_V3.BAD_USERNAME_OR_PASSWORD, 'bad_credentials');
  if (result === 'not_authorized') return refuse(st, RC.NOT_AUTHORIZED, CONNACK_V3.NOT_AUTHORIZED, 'not_authorized');
  const { limits } = env;
  if (im) st.im = im;
  const ctx = { username: st.username, clientId: st.clientId };
  let will: WillMessage | undefined;
  if (p.will) {
    // The will is published under the connecting client's rights, checked now; like a
    // PUBLISH (publish.ts), it may not go to a system topic ($SYS/...), which belong to the broker.
    if (isSysTopic(p.will.topic) || !env.acl.canPublish(ctx, p.will.topic))
      return refuse(st, RC.NOT_AUTHORIZED, CONNACK_V3.NOT_AUTHORIZED, 'will_not_authorized');
    const props = p.will.properties;
    const msg: AppMessage = {
      topic: p.will.topic,
      payload: typeof p.will.payload === 'string' ? Buffer.from(p.will.payload) : (p.will.payload ?? Buffer.alloc(0)),
      qos: (p.will.qos ?? 0) as 0 | 1 | 2,
      retain: p.will.retain ?? false,
      origin: st.clientId,
    };
    const imTopic = env.im ? parseImTopic(msg.topic) : null;
    if (imTopic) {
      // A will on an IM topic is an IM message like any other: same ACL, format and sender checks.
      const check = checkImPublish(st, env, imTopic, msg.payload);
      if (!check.ok) return refuse(st, check.rc, CONNACK_V3.NOT_AUTHORIZED, `will_${check.why}`, check.counter);
      msg.payload = check.payload;
    }
    const mp = propsFromPublish(props);
    if (mp) msg.props = mp;
    will = { msg, delay: props?.willDelayInterval ?? 0 };
  }
  const cp = p.properties;
  if (st.version === 5) {
    const asked = cp?.sessionExpiryInterval ?? 0;
    st.sessionExpiry = Math.min(asked, expiryCap(st, limits));
    st.expiryCapped = st.sessionExpiry !== asked;
    st.receiveMaximum = cp?.receiveMaximum ?? 65535;
    st.maxPacketSizeOut = cp?.maximumPacketSize ?? 268435455;
  } else {
    // 3.1.1: CleanSession=0 sessions last until the configured maximum expiry.
    st.sessionExpiry = p.clean ? 0 : expiryCap(st, limits);
  }
  st.keepalive = p.keepalive ?? 0;
  if (st.version === 5 && (st.keepalive > limits.maxKeepAlive || (st.keepalive === 0 && limits.maxKeepAlive < 65535))) {
    // v5 lets the server impose its keepalive (Server Keep Alive) [MQTT-3.2.2-21].
    st.keepalive = limits.maxKeepAlive;
    st.serverKeepAlive = limits.maxKeepAlive;
  }
  st.shard = env.shardOf(st.clientId);
  st.phase = 'connecting';
  return [
    {
      e: 'shard',
      msg: {
        t: 'connect',
        gw: 0, // filled in by the gateway, which knows its index
        connId: st.connId,
        clientId: st.clientId,
        username: st.username,
        protocolVersion: st.version,
        cleanStart: p.clean ?? true,
        expiry: st.sessionExpiry,
        receiveMaximum: st.receiveMaximum,
        will,
        ...(st.im ? { uid: st.im.uid, ns: st.im.ns } : {}),
      },
    },
  ];
}
