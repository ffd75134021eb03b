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
import { protocolError, type ChannelState, type Effect, type Handler } from './types.js';
import { parseImTopic } from '../im/topics.js';
import { checkImPublish } from './im-check.js';

/** Series names per QoS, built once: this runs for every PUBLISH. */
const RECEIVED = seriesByQos('messages_received_total');
const RECEIVED_BYTES = seriesByQos('payload_bytes_received_total');

export const handlePublish: Handler<IPublishPacket> = (st, p, env) => {
  if (p.qos === (3 as number)) return protocolError(st, RC.MALFORMED_PACKET, 'qos3'); // [MQTT-3.3.1-4]
  if (p.properties?.topicAlias !== undefined) {
    // We advertise Topic Alias Maximum 0, so any alias is invalid [MQTT-3.2.2-17/3.3.2-8].
    return protocolError(st, RC.TOPIC_ALIAS_INVALID, 'topic_alias');
  }
  const topic = p.topic;
  if (validateTopicName(topic, env.limits) !== null) return protocolError(st, RC.TOPIC_NAME_INVALID, 'bad_topic_name');
  // Clients cannot publish to system topics ($SYS/...): they belong to the broker [MQTT-4.7.2-1].
  const denied = topic.startsWith('$') || !env.acl.canPublish({ username: st.username, clientId: st.clientId }, topic);
  const out: Effect[] = [
    { e: 'count', series: RECEIVED[p.qos]! },
    { e: 'count', series: RECEIVED_BYTES[p.qos]!, n: p.payload.length },
  ];
  if (denied) {
    out.push({ e: 'count', series: 'publish_denied_total' });
    return refuse(st, p, out, RC.NOT_AUTHORIZED);
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
    if (st.version === 5 && st.qos2In.size >= env.limits.maxInflight) {
      // More unreleased QoS 2 messages than our Receive Maximum [MQTT-3.3.4-7]. 3.1.1 has
      // no Receive Maximum to tell the client, so no such limit; its 16-bit packet ids
      // bound the set anyway.
      return protocolError(st, RC.RECEIVE_MAXIMUM_EXCEEDED, 'receive_maximum');
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
 * A refused PUBLISH: 5.0 answers with the reason code (and a reason string); 3.1.1 has
 * no negative acknowledgement, so the message is dropped and still acknowledged, which
 * keeps the client's inflight window moving.
 */
function refuse(st: ChannelState, p: IPublishPacket, out: Effect[], rc: number, reasonString?: string): Effect[] {
  const v5 = st.version === 5;
  // PUBACK/PUBREC with a Reason String: fixed header (2-5) + id (2) + code (1) + property
  // length (1-4) + the property (3 + UTF-8 bytes). It is left out when the packet would
  // exceed the client's Maximum Packet Size [MQTT-3.4.2-2][MQTT-3.5.2-2].
  const withReason = reasonString !== undefined && 16 + Buffer.byteLength(reasonString) <= st.maxPacketSizeOut;
  const fields = v5 ? { reasonCode: rc, ...(withReason ? { properties: { reasonString } } : {}) } : { reasonCode: RC.SUCCESS };
  if (p.qos === 1) out.push({ e: 'send', packet: { cmd: 'puback', messageId: p.messageId, ...fields } });
  else if (p.qos === 2) out.push({ e: 'send', packet: { cmd: 'pubrec', messageId: p.messageId, ...fields } });
  return out;
}
