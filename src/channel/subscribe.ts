/**
 * SUBSCRIBE: every filter is validated and authorised here; the shard records the
 * accepted ones and answers SUBACK once the route table of every gateway knows them.
 *
 * Shared subscriptions `$share/{ShareName}/{filter}` (src/mqtt/shared.ts): a malformed one
 * gets 0x8F [MQTT-4.8.2-1][MQTT-4.8.2-2]; the ACL and the IM ACL judge the filter after
 * the ShareName. They are offered to MQTT 3.1.1 clients too (as EMQX, HiveMQ and
 * Mosquitto do: a 3.1.1 client cannot tell otherwise). With sharedSubscriptions.enabled
 * false they are refused: v5 0x9E Shared Subscriptions not supported, 3.1.1 0x80.
 */
import type { ISubscribePacket } from 'mqtt-packet';
import { RC } from '../mqtt/reason-codes.js';
import { validateTopicFilter } from '../mqtt/topic.js';
import { isSharedFilter, validSharedFilter } from '../mqtt/shared.js';
import type { QoS, SubRequest } from '../protocol/messages.js';
import { mqttOf, protocolError, type ChannelEnv, type ChannelState, type Handler } from './types.js';
import { validSubscriptionId } from './properties.js';
import { imCanSubscribe } from '../im/im-acl.js';
import { isImSuperuser } from './im-check.js';

export const handleSubscribe: Handler<ISubscribePacket> = (st, p, env) => {
  // A SUBSCRIBE with no filter is a protocol violation [MQTT-3.8.3-3].
  if (!p.subscriptions || p.subscriptions.length === 0) return protocolError(st, RC.PROTOCOL_ERROR, 'empty_subscribe');
  const v5 = st.version === 5;
  const mqtt = mqttOf(env);
  if (v5 && !mqtt.subscriptionIdentifiersAvailable && p.properties?.subscriptionIdentifier !== undefined) {
    // Subscription Identifiers Available 0 in our CONNACK: a Protocol Error, DISCONNECT 0xA1 (section 3.2.2.3.12).
    return protocolError(st, RC.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, 'subscription_identifiers_not_supported', 'Subscription Identifiers are not available');
  }
  // It is a Protocol Error to set No Local on a Shared Subscription [MQTT-3.8.3-4].
  if (v5 && env.sharedSubscriptions && p.subscriptions.some((s) => s.nl && validSharedFilter(s.topic, env.limits) !== null))
    return protocolError(st, RC.PROTOCOL_ERROR, 'shared_subscription_no_local');
  const ctx = { username: st.username, clientId: st.clientId };
  const subs: SubRequest[] = p.subscriptions.map((s) => {
    const req: SubRequest = {
      filter: s.topic,
      // Granted at most our Maximum QoS; any Requested QoS is accepted [MQTT-3.2.2-10].
      qos: Math.min(s.qos, mqtt.maximumQoS) as QoS,
      noLocal: v5 ? Boolean(s.nl) : false,
      retainAsPublished: v5 ? Boolean(s.rap) : false,
      retainHandling: v5 ? ((s.rh ?? 0) as 0 | 1 | 2) : 0,
      code: 0,
    };
    // The filter the ACLs judge: for a shared subscription, the one after the ShareName.
    let filter = s.topic;
    if (validateTopicFilter(s.topic, env.limits) !== null) req.code = v5 ? RC.TOPIC_FILTER_INVALID : RC.FAILURE_V3;
    else if (isSharedFilter(s.topic)) {
      const shared = validSharedFilter(s.topic, env.limits);
      if (!env.sharedSubscriptions) req.code = v5 ? RC.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED : RC.FAILURE_V3;
      else if (!shared) req.code = v5 ? RC.TOPIC_FILTER_INVALID : RC.FAILURE_V3;
      else filter = shared.filter;
    }
    // Wildcard Subscription Available 0: such a filter is refused with 0xA2 (section 3.2.2.3.11;
    // the spec also allows closing with DISCONNECT 0xA2; the SUBACK keeps the client's other
    // subscriptions, as for shared subscriptions above). 3.1.1: 0x80.
    if (req.code === 0 && !mqtt.wildcardSubscriptionAvailable && (filter.includes('+') || filter.includes('#')))
      req.code = v5 ? RC.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED : RC.FAILURE_V3;
    if (req.code === 0 && (!env.acl.canSubscribe(ctx, filter) || !imAllows(st, env, filter))) req.code = v5 ? RC.NOT_AUTHORIZED : RC.FAILURE_V3;
    return req;
  });
  const subId = v5 ? (p.properties?.subscriptionIdentifier as number | undefined) : undefined;
  // 1 to 268,435,455 [MQTT-3.8.2.1.2]; a repeated one never gets here (index.ts).
  if (subId !== undefined && !validSubscriptionId(subId)) return protocolError(st, RC.PROTOCOL_ERROR, 'bad_subscription_identifier');
  return [
    { e: 'shard', msg: { t: 'subscribe', connId: st.connId, clientId: st.clientId, packetId: p.messageId!, subs, subId } },
  ];
};

/** The default IM ACL: a filter that may match IM topics must be one the user may read. */
function imAllows(st: ChannelState, env: ChannelEnv, filter: string): boolean {
  if (!env.im || isImSuperuser(st, env)) return true;
  return imCanSubscribe(st.im, filter);
}
