/**
 * Checks of a v5 message's properties against its content, for a PUBLISH and a will:
 * - Response Topic: a Topic Name, so no wildcards [MQTT-3.3.2-14] (and not empty, which
 *   no subscriber could publish to). The broker passes it on unaltered [MQTT-3.3.2-15], so
 *   it refuses one that no responder could ever use instead of handing it on.
 * - Payload Format Indicator 1 says the payload is UTF-8; a receiver MAY check it and
 *   answer 0x99 Payload format invalid (section 3.3.2.3.2). Checked unless
 *   mqtt.validatePayloadFormat is false: subscribers that trust the indicator (browsers
 *   decoding text) never see a lie from another client.
 */
import { isUtf8 } from 'node:buffer';
import type { IPublishPacket } from 'mqtt-packet';
import { RC } from '../mqtt/reason-codes.js';

type MessageProperties = IPublishPacket['properties'];

export interface MessageProblem {
  rc: number;
  why: string;
  text: string;
}

export function messageProblem(props: MessageProperties, payload: Uint8Array | string | undefined, validatePayloadFormat: boolean): MessageProblem | null {
  if (!props) return null;
  const rt = props.responseTopic;
  if (rt !== undefined && (rt.length === 0 || rt.includes('+') || rt.includes('#'))) {
    return { rc: RC.PROTOCOL_ERROR, why: 'bad_response_topic', text: 'a Response Topic must be a topic name without wildcards' };
  }
  // mqtt-packet reads the one-byte indicator as a boolean (1 = UTF-8).
  if (validatePayloadFormat && props.payloadFormatIndicator === true && typeof payload !== 'string' && payload !== undefined && !isUtf8(payload)) {
    return { rc: RC.PAYLOAD_FORMAT_INVALID, why: 'payload_format_invalid', text: 'Payload Format Indicator is 1 but the payload is not valid UTF-8' };
  }
  return null;
}
