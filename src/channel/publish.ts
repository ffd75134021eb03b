/**
 * PUBLISH from a client: validate, authorise, route, acknowledge.
 * QoS 2 uses the spec's method B of "deliver on PUBLISH, remember the packet id until
 * PUBREL": a resent PUBLISH with a remembered id is acknowledged but not routed again
 * [MQTT-4.3.3-9 / MQTT-4.3.3-10 (v5)].
 */
import type { IPublishPacket } from 'mqtt-packet';
import { RC } from '../mqtt/reason-codes.js';
import { validateTopicName } from '../mqtt/topic.js';
import type { AppMessage } from '../protocol/messages.js';
import { seriesByQos } from '../admin/metrics.js';
import { propsFromPublish } from './message-props.js';
import { mqttOf, protocolError, type ChannelEnv, type ChannelState, type Effect, type Handler } from './types.js';
import { ackReasonString } from './problem-info.js';
import { parseImTopic } from '../im/topics.js';
import { checkImPublish } from './im-check.js';
import { messageProblem } from './message-checks.js';

/** Series names per QoS, built once: this runs for every PUBLISH. */
const RECEIVED = seriesByQos('messages_received_total');
const RECEIVED_BYTES = seriesByQos('payload_bytes_received_total');

export const handlePublish: Handler<IPublishPacket> = (st, p, env) => {
  if (p.qos === (3 as number)) return protocolError(st, RC.MALFORMED_PACKET, 'qos3'); // [MQTT-3.3.1-4]
  if (p.properties?.subscriptionIdentifier !== undefined) {
    // Only the server puts Subscription Identifiers in a PUBLISH [MQTT-3.3.4-6].
    return protocolError(st, RC.PROTOCOL_ERROR, 'subscription_identifier_in_publish');
  }
  const mqtt = mqttOf(env);
  if (p.qos > mqtt.maximumQoS) {
    // Above the Maximum QoS of our CONNACK: a Protocol Error, DISCONNECT 0x9B [MQTT-3.2.2-11]
    // (section 3.3.1.2). A 3.1.1 client cannot be told the maximum: it is closed.
    return protocolError(st, RC.QOS_NOT_SUPPORTED, 'qos_not_supported', `QoS ${p.qos} is above the Maximum QoS ${mqtt.maximumQoS}`);
  }
  if (p.retain && !mqtt.retainAvailable) {
    // Retain Available 0: RETAIN 1 is a Protocol Error, DISCONNECT 0x9A [MQTT-3.2.2-14]; 3.1.1 closed (as Mosquitto does).
    return protocolError(st, RC.RETAIN_NOT_SUPPORTED, 'retain_not_supported', 'retained messages are not available (Retain Available is 0)');
  }
  const topicOrError = topicOf(st, p, env);
  if (typeof topicOrError !== 'string') return topicOrError;
  const topic = topicOrError;
  if (validateTopicName(topic, env.limits) !== null) return protocolError(st, RC.TOPIC_NAME_INVALID, 'bad_topic_name');
  if (p.qos > 0 && st.version === 5 && !(p.qos === 2 && st.qos2In.has(p.messageId!)) && st.acksHeld + st.qos2In.size >= env.limits.maxInflight) {
    // More QoS 1 and QoS 2 PUBLISHes unacknowledged than our Receive Maximum
    // [MQTT-3.3.4-7]: those whose PUBACK/PUBREC the gateway still holds (acksHeld) and the
    // QoS 2 ones waiting for PUBREL (qos2In). A resent QoS 2 PUBLISH is not a new one.
    // 3.1.1 has no Receive Maximum to tell the client, so no such limit; its 16-bit packet
    // ids bound the set anyway.
    return protocolError(
      st,
      RC.RECEIVE_MAXIMUM_EXCEEDED,
      'receive_maximum',
      `more than Receive Maximum (${env.limits.maxInflight}) QoS 1 and QoS 2 PUBLISHes unacknowledged`,
    );
  }
  // Clients cannot publish to system topics ($SYS/...): they belong to the broker [MQTT-4.7.2-1].
  const denied = topic.startsWith('$') || !env.acl.canPublish({ username: st.username, clientId: st.clientId }, topic);
  const out: Effect[] = [
    { e: 'count', series: RECEIVED[p.qos]! },
    { e: 'count', series: RECEIVED_BYTES[p.qos]!, n: p.payload.length },
  ];
  if (denied) {
    out.push({ e: 'count', series: 'publish_denied_total' });
    return refuse(st, p, out, RC.NOT_AUTHORIZED, topic.startsWith('$') ? 'topics starting with "$" belong to the broker' : 'not allowed to publish to this topic');
  }
  const bad = st.version === 5 ? messageProblem(p.properties, p.payload, mqtt.validatePayloadFormat) : null;
  if (bad) {
    out.push({ e: 'count', series: `publish_refused_total{reason="${bad.why}"}` });
    out.push({ e: 'log', msg: 'PUBLISH refused', data: { clientId: st.clientId, topic, why: bad.why } });
    // A wildcard Response Topic breaks a MUST of the sender [MQTT-3.3.2-14]: Protocol Error.
    // A QoS 0 message has no acknowledgement to carry 0x99, so the client learns it from
    // the DISCONNECT (section 3.3.2.3.2 allows PUBACK, PUBREC or DISCONNECT).
    if (bad.rc === RC.PROTOCOL_ERROR || p.qos === 0) return protocolError(st, bad.rc, bad.why, bad.text);
    return refuse(st, p, out, bad.rc, bad.text);
  }
  let payload = p.payload as Buffer | Uint8Array;
  const imTopic = env.im ? parseImTopic(topic) : null;
  if (imTopic) {
    // IM topics: IM ACL, payload format and sender identity (IM-PROTOCOL.md section 3).
    const check = checkImPublish(st, env, imTopic, payload);
    if (!check.ok) {
      out.push({ e: 'count', series: check.counter });
      out.push({ e: 'log', msg: 'IM publish refused', data: { clientId: st.clientId, uid: st.im?.uid, topic, why: check.why, detail: check.detail } });
      return refuse(st, p, out, check.rc, check.detail);
    }
    if (check.counter) out.push({ e: 'count', series: check.counter });
    payload = check.payload;
  }
  if (p.qos === 2) {
    const id = p.messageId!;
    if (st.qos2In.has(id)) {
      out.push({ e: 'send', packet: { cmd: 'pubrec', messageId: id } });
      return out;
    }
    // With held acks the id is remembered when the PUBREC goes out (gateway-actor.ts).
    if (!env.holdAcks) st.qos2In.add(id);
  }
  const msg: AppMessage = { topic, payload, qos: p.qos, retain: p.retain, origin: st.clientId, originConn: st.connId };
  if (st.version === 5) {
    const props = propsFromPublish(p.properties);
    if (props) msg.props = props;
  }
  const route: Effect = { e: 'route', msg, from: { uid: st.im?.uid, clientId: st.clientId } };
  if (p.qos > 0) route.ack = { cmd: p.qos === 1 ? 'puback' : 'pubrec', messageId: p.messageId! };
  out.push(route);
  return out;
};

/**
 * The PUBLISH's topic: its Topic Name or, for v5, what its Topic Alias stands for (MQTT 5.0
 * section 3.3.2.3.4). An alias with a Topic Name sets or replaces the mapping; with an empty
 * one it is looked up. Mappings live in the channel state, so they end with the connection
 * [MQTT-3.3.2-7]; every alias from 1 to mqtt.topicAliasMaximum is accepted [MQTT-3.3.2-12].
 */
function topicOf(st: ChannelState, p: IPublishPacket, env: ChannelEnv): string | Effect[] {
  const alias = st.version === 5 ? p.properties?.topicAlias : undefined;
  if (alias === undefined) {
    // An empty Topic Name without a Topic Alias is a Protocol Error (section 3.3.2.1); for
    // 3.1.1 it is an invalid topic [MQTT-4.7.3-1] (validateTopicName).
    if (p.topic.length === 0 && st.version === 5)
      return protocolError(st, RC.PROTOCOL_ERROR, 'empty_topic_name', 'a PUBLISH with an empty Topic Name needs a Topic Alias');
    return p.topic;
  }
  const max = mqttOf(env).topicAliasMaximum;
  if (alias === 0 || alias > max) {
    // 0 is never valid [MQTT-3.3.2-8], nor one above the Topic Alias Maximum of our CONNACK
    // (0: none at all) [MQTT-3.3.2-9][MQTT-3.2.2-17][MQTT-3.2.2-18]: DISCONNECT 0x94.
    const text = alias === 0 ? 'Topic Alias 0 is not permitted' : `Topic Alias ${alias} is above the Topic Alias Maximum (${max})`;
    return protocolError(st, RC.TOPIC_ALIAS_INVALID, 'topic_alias_invalid', text);
  }
  if (p.topic.length === 0) {
    const known = st.topicAliases?.get(alias);
    // An alias this connection never mapped: a Protocol Error (0x82).
    if (known === undefined) return protocolError(st, RC.PROTOCOL_ERROR, 'topic_alias_unknown', `Topic Alias ${alias} has no topic on this connection`);
    return known;
  }
  (st.topicAliases ??= new Map()).set(alias, p.topic);
  return p.topic;
}

/**
 * A refused PUBLISH: 5.0 answers with the reason code (and a reason string); 3.1.1 has
 * no negative acknowledgement, so the message is dropped and still acknowledged, which
 * keeps the client's inflight window moving.
 */
function refuse(st: ChannelState, p: IPublishPacket, out: Effect[], rc: number, reasonString?: string): Effect[] {
  const v5 = st.version === 5;
  // PUBACK/PUBREC with a Reason String: fixed header (2-5) + id (2) + code (1) + property
  // length (1-4) + the property (3 + UTF-8 bytes). It is left out when the packet would
  // exceed the client's Maximum Packet Size [MQTT-3.4.2-2][MQTT-3.5.2-2], or when the client
  // asked for no problem information [MQTT-3.1.2-29] (problem-info.ts).
  const reason = v5 ? ackReasonString(st, reasonString, 9) : undefined;
  const fields = v5 ? { reasonCode: rc, ...(reason !== undefined ? { properties: { reasonString: reason } } : {}) } : { reasonCode: RC.SUCCESS };
  if (p.qos === 1) out.push({ e: 'send', packet: { cmd: 'puback', messageId: p.messageId, ...fields } });
  else if (p.qos === 2) out.push({ e: 'send', packet: { cmd: 'pubrec', messageId: p.messageId, ...fields } });
  return out;
}
