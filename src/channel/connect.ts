/**
 * CONNECT: validate, then authenticate off the event loop (effect `auth`); the gateway
 * calls `afterAuth` with the result, which opens the session on its shard. CONNACK is
 * sent only when the shard answers (session-ready.ts), so a session that must be
 * resumed or taken over is settled before the client can publish.
 */
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet';
import { CONNACK_V3, RC } from '../mqtt/reason-codes.js';
import { isSysTopic, validateTopicName } from '../mqtt/topic.js';
import type { AppMessage, WillMessage } from '../protocol/messages.js';
import { propsFromPublish } from './message-props.js';
import type { ImUser } from '../im/im-acl.js';
import { parseImTopic } from '../im/topics.js';
import { checkImPublish } from './im-check.js';
import { HOLD_PREFIX } from '../im/topics.js';
import { expiryCap, mqttOf, protocolError, type ChannelEnv, type ChannelState, type Effect, type Handler } from './types.js';
import { reasonName } from './problem-info.js';
import { propertyError } from './properties.js';
import { messageProblem } from './message-checks.js';

/**
 * A refused CONNECT: CONNACK with the reason (v5: and a Reason String saying why, which
 * Request Problem Information 0 does not forbid on CONNACK [MQTT-3.1.2-29]; the gateway
 * leaves it out if it would exceed the client's Maximum Packet Size [MQTT-3.2.2-19]), then
 * the close [MQTT-3.2.2-7].
 */
export function refuse(
  st: ChannelState,
  v5: number,
  v3: number,
  why: string,
  counter = 'auth_failures_total',
  text?: string,
  props?: IConnackPacket['properties'],
): Effect[] {
  st.phase = 'closed';
  const packet: IConnackPacket =
    st.version === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode: v5, properties: { ...props, reasonString: text ?? `${reasonName(v5)}: ${why.replace(/_/g, ' ')}` } }
      : { cmd: 'connack', sessionPresent: false, returnCode: v3 };
  return [
    { e: 'send', packet },
    { e: 'close', why, counter },
  ];
}

export const handleConnect: Handler<IConnectPacket> = (st, p, env) => {
  // A second CONNECT is a protocol violation [MQTT-3.1.0-2].
  if (st.phase !== 'new') return protocolError(st, RC.PROTOCOL_ERROR, 'second_connect');
  st.version = p.protocolVersion === 5 ? 5 : p.protocolVersion === 3 ? 3 : 4;
  const { limits } = env;
  const mqtt = mqttOf(env);
  // Known before any CONNACK, so that a refusal's Reason String respects it too.
  const mps = p.properties?.maximumPacketSize;
  if (st.version === 5 && typeof mps === 'number' && mps > 0) st.maxPacketSizeOut = mps;
  if (mqtt.serverReference !== null) {
    // Server redirection (MQTT 5.0 section 4.11): v5 clients are told where to go, with
    // 0x9C Use another server (temporary) or 0x9D Server moved (permanent); 3.1.1 cannot
    // be told, and gets 0x03 Server unavailable.
    const code = mqtt.serverMoved ? RC.SERVER_MOVED : RC.USE_ANOTHER_SERVER;
    const text = `${reasonName(code)}: ${mqtt.serverReference}`;
    return refuse(st, code, CONNACK_V3.SERVER_UNAVAILABLE, 'server_reference', 'connections_rejected_total{reason="server_reference"}', text, {
      serverReference: mqtt.serverReference,
    });
  }
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
  const bad = st.version === 5 ? (propertyError(cp) ?? propertyError(p.will?.properties)) : undefined;
  if (bad) {
    // A repeated or truncated property (properties.ts).
    return refuse(st, bad.reason, CONNACK_V3.NOT_AUTHORIZED, bad.why, `protocol_errors_total{reason="${bad.why}"}`);
  }
  if (st.version === 5 && (cp?.receiveMaximum === 0 || cp?.maximumPacketSize === 0)) {
    // Receive Maximum 0 and Maximum Packet Size 0 are protocol errors [MQTT-3.1.2.11.3/4].
    const why = cp.receiveMaximum === 0 ? 'receive_maximum_zero' : 'maximum_packet_size_zero';
    return refuse(st, RC.PROTOCOL_ERROR, CONNACK_V3.NOT_AUTHORIZED, why, `protocol_errors_total{reason="${why}"}`);
  }
  if (p.will) {
    if (validateTopicName(p.will.topic, limits) !== null)
      return refuse(st, RC.TOPIC_NAME_INVALID, CONNACK_V3.NOT_AUTHORIZED, 'bad_will_topic');
    const qos = p.will.qos ?? 0;
    if (qos > mqtt.maximumQoS) {
      // A will QoS above our Maximum QoS: CONNACK 0x9B [MQTT-3.2.2-12].
      const text = `Will QoS ${qos} is above the Maximum QoS ${mqtt.maximumQoS}`;
      return refuse(st, RC.QOS_NOT_SUPPORTED, CONNACK_V3.NOT_AUTHORIZED, 'will_qos_not_supported', 'connections_rejected_total{reason="will_qos"}', text);
    }
    if (p.will.retain && !mqtt.retainAvailable) {
      // A retained will without Retain Available: CONNACK 0x9A [MQTT-3.2.2-13].
      const text = 'retained messages are not available (Retain Available is 0)';
      return refuse(st, RC.RETAIN_NOT_SUPPORTED, CONNACK_V3.NOT_AUTHORIZED, 'will_retain_not_supported', 'connections_rejected_total{reason="will_retain"}', text);
    }
    // The will's Response Topic and Payload Format Indicator, checked as for a PUBLISH
    // (message-checks.ts): CONNACK 0x82 or 0x99 [MQTT-3.3.2-14] (section 3.1.3.2.3).
    const badWill = st.version === 5 ? messageProblem(p.will.properties, p.will.payload, mqtt.validatePayloadFormat) : null;
    if (badWill) return refuse(st, badWill.rc, CONNACK_V3.NOT_AUTHORIZED, `will_${badWill.why}`, `connections_rejected_total{reason="will_${badWill.why}"}`, `will: ${badWill.text}`);
  }
  const method = st.version === 5 ? cp?.authenticationMethod : undefined;
  if (method === undefined && cp?.authenticationData !== undefined) {
    // Authentication Data without an Authentication Method (section 3.1.2.11.10).
    const why = 'auth_data_without_method';
    return refuse(st, RC.PROTOCOL_ERROR, CONNACK_V3.NOT_AUTHORIZED, why, `protocol_errors_total{reason="${why}"}`, 'Protocol Error: Authentication Data without an Authentication Method');
  }
  if (method !== undefined) {
    // Enhanced authentication (section 4.12, src/channel/auth.ts). A method this server
    // does not offer: CONNACK 0x8C, then the close [MQTT-4.12.0-1].
    const offered = env.enhancedAuth?.methods;
    if (!offered?.has(method)) {
      const text = `Bad authentication method: not supported here${offered?.size ? ` (offered: ${[...offered].join(', ')})` : ''}`;
      return refuse(st, RC.BAD_AUTHENTICATION_METHOD, CONNACK_V3.NOT_AUTHORIZED, 'bad_authentication_method', 'auth_failures_total{reason="bad_method"}', text);
    }
    st.phase = 'auth';
    st.connect = p;
    st.enhanced = { method, turn: 'server', reauth: false, steps: 0 };
    return [{ e: 'authExchange', method, data: cp?.authenticationData, start: true }];
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
  const mqtt = mqttOf(env);
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
      if (!check.ok) return refuse(st, check.rc, CONNACK_V3.NOT_AUTHORIZED, `will_${check.why}`, check.counter, `will: ${check.detail}`);
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
    // Aliases we may send: none unless the client announced a maximum [MQTT-3.1.2-27],
    // never above it [MQTT-3.1.2-26], within our own bound (mqtt.topicAliasMaximumOut).
    st.topicAliasMaxOut = Math.min(cp?.topicAliasMaximum ?? 0, mqtt.topicAliasMaximumOut);
    // mqtt-packet reads these one-byte properties as booleans. Request Problem Information
    // defaults to 1, Request Response Information to 0 (sections 3.1.2.11.6/7).
    st.requestProblemInfo = cp?.requestProblemInformation !== false;
    st.requestResponseInfo = cp?.requestResponseInformation === true;
  } else {
    // 3.1.1: CleanSession=0 sessions last until the configured maximum expiry.
    st.sessionExpiry = p.clean ? 0 : expiryCap(st, limits);
  }
  st.keepalive = p.keepalive ?? 0;
  if (st.version === 5 && mqtt.serverKeepAlive !== null) {
    // mqtt.serverKeepAlive: imposed on every v5 client, within limits.maxKeepAlive [MQTT-3.2.2-21].
    st.keepalive = Math.min(mqtt.serverKeepAlive, limits.maxKeepAlive);
    st.serverKeepAlive = st.keepalive;
  } else if (st.version === 5 && (st.keepalive > limits.maxKeepAlive || (st.keepalive === 0 && limits.maxKeepAlive < 65535))) {
    // v5 lets the server impose its keepalive (Server Keep Alive) [MQTT-3.2.2-21]; without
    // it the client's is used [MQTT-3.2.2-22].
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
