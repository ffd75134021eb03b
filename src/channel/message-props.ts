/**
 * v5 message properties the broker passes through unchanged [MQTT-3.3.2-...]: payload
 * format indicator, content type, response topic, correlation data, user properties;
 * Message Expiry Interval is kept as an absolute time and sent on as what remains of it
 * [MQTT-3.3.2-6].
 */
import type { IPublishPacket } from 'mqtt-packet';
import type { MessageProps } from '../protocol/messages.js';

type PublishProps = NonNullable<IPublishPacket['properties']>;

export function propsFromPublish(p: PublishProps | undefined, now = Date.now()): MessageProps | undefined {
  if (!p) return undefined;
  const out: MessageProps = {};
  let any = false;
  if (p.payloadFormatIndicator !== undefined) (out.payloadFormatIndicator = p.payloadFormatIndicator), (any = true);
  if (p.messageExpiryInterval !== undefined) (out.expiresAt = now + p.messageExpiryInterval * 1000), (any = true);
  if (p.contentType !== undefined) (out.contentType = p.contentType), (any = true);
  if (p.responseTopic !== undefined) (out.responseTopic = p.responseTopic), (any = true);
  if (p.correlationData !== undefined) (out.correlationData = p.correlationData), (any = true);
  if (p.userProperties !== undefined) (out.userProperties = p.userProperties), (any = true);
  return any ? out : undefined;
}

export function propsToPublish(m: MessageProps | undefined, subIds: number[] | undefined, now = Date.now()): PublishProps | undefined {
  if (!m && !subIds) return undefined;
  const out: PublishProps = {};
  if (m) {
    if (m.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = m.payloadFormatIndicator;
    if (m.expiresAt !== undefined) out.messageExpiryInterval = Math.max(0, Math.ceil((m.expiresAt - now) / 1000));
    if (m.contentType !== undefined) out.contentType = m.contentType;
    if (m.responseTopic !== undefined) out.responseTopic = m.responseTopic;
    if (m.correlationData !== undefined) out.correlationData = Buffer.from(m.correlationData);
    if (m.userProperties !== undefined) out.userProperties = m.userProperties;
  }
  if (subIds && subIds.length > 0) out.subscriptionIdentifier = subIds.length === 1 ? subIds[0]! : subIds;
  return out;
}
