/**
 * SUBSCRIBE: every filter is validated and authorised here; the shard records the
 * accepted ones and answers SUBACK once the route table of every gateway knows them.
 */
import type { ISubscribePacket } from 'mqtt-packet';
import { RC } from '../mqtt/reason-codes.js';
import { validateTopicFilter } from '../mqtt/topic.js';
import type { QoS, SubRequest } from '../protocol/messages.js';
import { protocolError, type ChannelEnv, type ChannelState, type Handler } from './types.js';
import { imCanSubscribe } from '../im/im-acl.js';
import { isImSuperuser } from './im-check.js';

export const handleSubscribe: Handler<ISubscribePacket> = (st, p, env) => {
  // A SUBSCRIBE with no filter is a protocol violation [MQTT-3.8.3-3].
  if (!p.subscriptions || p.subscriptions.length === 0) return protocolError(st, RC.PROTOCOL_ERROR, 'empty_subscribe');
  const v5 = st.version === 5;
  const ctx = { username: st.username, clientId: st.clientId };
  const subs: SubRequest[] = p.subscriptions.map((s) => {
    const req: SubRequest = {
      filter: s.topic,
      qos: s.qos as QoS,
      noLocal: v5 ? Boolean(s.nl) : false,
      retainAsPublished: v5 ? Boolean(s.rap) : false,
      retainHandling: v5 ? ((s.rh ?? 0) as 0 | 1 | 2) : 0,
      code: 0,
    };
    if (validateTopicFilter(s.topic, env.limits) !== null) req.code = v5 ? RC.TOPIC_FILTER_INVALID : RC.FAILURE_V3;
    else if (v5 && s.topic.startsWith('$share/')) req.code = RC.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED;
    else if (!env.acl.canSubscribe(ctx, s.topic) || !imAllows(st, env, s.topic)) req.code = v5 ? RC.NOT_AUTHORIZED : RC.FAILURE_V3;
    return req;
  });
  const subId = v5 ? (p.properties?.subscriptionIdentifier as number | undefined) : undefined;
  return [
    { e: 'shard', msg: { t: 'subscribe', connId: st.connId, clientId: st.clientId, packetId: p.messageId!, subs, subId } },
  ];
};

/** The default IM ACL: a filter that may match IM topics must be one the user may read. */
function imAllows(st: ChannelState, env: ChannelEnv, filter: string): boolean {
  if (!env.im || isImSuperuser(st, env)) return true;
  return imCanSubscribe(st.im, filter);
}
