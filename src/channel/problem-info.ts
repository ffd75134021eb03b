/**
 * Reason Strings: every negative acknowledgement and every server DISCONNECT says why,
 * in words, as a v5 Reason String (MQTT 5.0 sections 3.2.2.3.9, 3.4.2.2.2, 3.9.2.1.1...).
 *
 * - It is optional and left out when it would make the packet larger than the client's
 *   Maximum Packet Size [MQTT-3.2.2-19][MQTT-3.4.2-2][MQTT-3.9.2-1][MQTT-3.14.2-3] (the
 *   gateway also drops it from any packet it cannot otherwise fit, gateway-actor write()).
 * - A client that sets Request Problem Information to 0 gets none on packets other than
 *   PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29]: PUBACK, PUBREC, SUBACK and UNSUBACK
 *   then carry only their reason codes.
 */
import { RC } from '../mqtt/reason-codes.js';
import type { ChannelState } from './types.js';

/** The reason codes' names (MQTT 5.0 section 2.4), for Reason Strings and logs. */
const NAMES: Record<number, string> = {
  [RC.UNSPECIFIED_ERROR]: 'Unspecified error',
  [RC.MALFORMED_PACKET]: 'Malformed Packet',
  [RC.PROTOCOL_ERROR]: 'Protocol Error',
  [RC.IMPLEMENTATION_SPECIFIC]: 'Implementation specific error',
  [RC.UNSUPPORTED_PROTOCOL_VERSION]: 'Unsupported Protocol Version',
  [RC.CLIENT_ID_NOT_VALID]: 'Client Identifier not valid',
  [RC.BAD_USERNAME_OR_PASSWORD]: 'Bad User Name or Password',
  [RC.NOT_AUTHORIZED]: 'Not authorized',
  [RC.SERVER_UNAVAILABLE]: 'Server unavailable',
  [RC.SERVER_BUSY]: 'Server busy',
  [RC.SERVER_SHUTTING_DOWN]: 'Server shutting down',
  [RC.BAD_AUTHENTICATION_METHOD]: 'Bad authentication method',
  [RC.KEEP_ALIVE_TIMEOUT]: 'Keep Alive timeout',
  [RC.SESSION_TAKEN_OVER]: 'Session taken over',
  [RC.TOPIC_FILTER_INVALID]: 'Topic Filter invalid',
  [RC.TOPIC_NAME_INVALID]: 'Topic Name invalid',
  [RC.PACKET_ID_NOT_FOUND]: 'Packet Identifier not found',
  [RC.RECEIVE_MAXIMUM_EXCEEDED]: 'Receive Maximum exceeded',
  [RC.TOPIC_ALIAS_INVALID]: 'Topic Alias invalid',
  [RC.PACKET_TOO_LARGE]: 'Packet too large',
  [RC.QUOTA_EXCEEDED]: 'Quota exceeded',
  [RC.ADMINISTRATIVE_ACTION]: 'Administrative action',
  [RC.PAYLOAD_FORMAT_INVALID]: 'Payload format invalid',
  [RC.RETAIN_NOT_SUPPORTED]: 'Retain not supported',
  [RC.QOS_NOT_SUPPORTED]: 'QoS not supported',
  [RC.USE_ANOTHER_SERVER]: 'Use another server',
  [RC.SERVER_MOVED]: 'Server moved',
  [RC.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED]: 'Shared Subscriptions not supported',
  [RC.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED]: 'Subscription Identifiers not supported',
  [RC.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED]: 'Wildcard Subscriptions not supported',
};

export function reasonName(code: number): string {
  return NAMES[code] ?? `reason 0x${code.toString(16).padStart(2, '0')}`;
}

/**
 * The Reason String of a PUBACK/PUBREC/SUBACK/UNSUBACK, or undefined when it must not be
 * sent: the client asked for no problem information [MQTT-3.1.2-29], or the packet with
 * it would exceed the client's Maximum Packet Size. `fixed`: the packet's size without
 * any property, an upper bound.
 */
export function ackReasonString(st: ChannelState, text: string | undefined, fixed: number): string | undefined {
  if (text === undefined || st.version !== 5 || !st.requestProblemInfo) return undefined;
  // Property Length (up to 4 bytes) + identifier (1) + string length (2) + the UTF-8 bytes.
  return fixed + 7 + Buffer.byteLength(text) <= st.maxPacketSizeOut ? text : undefined;
}

/**
 * The Reason String of a SUBACK or UNSUBACK: which filters (1-based, in packet order) were
 * refused and why, e.g. "refused: filter 2: Not authorized; filters 1, 3: Wildcard
 * Subscriptions not supported". Undefined when every code is a success (< 0x80) or the
 * Reason String must not be sent (ackReasonString).
 */
export function subackReasonString(st: ChannelState, codes: readonly number[]): string | undefined {
  if (st.version !== 5 || !st.requestProblemInfo) return undefined;
  const byCode = new Map<number, number[]>();
  codes.forEach((code, i) => {
    if (code < 0x80) return;
    let list = byCode.get(code);
    if (!list) byCode.set(code, (list = []));
    list.push(i + 1);
  });
  if (byCode.size === 0) return undefined;
  const parts = [...byCode].map(([code, idx]) => `${idx.length === 1 ? 'filter' : 'filters'} ${idx.join(', ')}: ${reasonName(code)}`);
  // Fixed header (up to 5) + packet id (2) + one byte per code.
  return ackReasonString(st, `refused: ${parts.join('; ')}`, 7 + codes.length);
}
