/** The part of an application message a store keeps. */
import type { AppMessage } from '../protocol/messages.js';

/**
 * Connection ids and routing marks mean nothing after a restart; the publisher's client
 * id stays (No Local of a resent message still needs it).
 */
export function storedMessage(m: AppMessage): AppMessage {
  const b: AppMessage = { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain };
  if (m.props) b.props = m.props;
  if (m.origin !== undefined) b.origin = m.origin;
  return b;
}

/** FNV-1a over the topic and the payload: tells a resend from a new message with the same packet id. */
export function messageFingerprint(topic: string, payload: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) h = Math.imul(h ^ topic.charCodeAt(i), 0x01000193);
  for (let i = 0; i < payload.length; i++) h = Math.imul(h ^ payload[i]!, 0x01000193);
  return h >>> 0;
}
