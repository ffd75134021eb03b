/**
 * MQTT 5 properties of what a client sends, as mqtt-packet's parser leaves them.
 *
 * - A property that appears more than once becomes an array. Apart from User Property,
 *   every property a client may send is single ("It is a Protocol Error to include the
 *   ... more than once", MQTT 5.0 section 3, each property; a list of Subscription
 *   Identifiers exists only in a server's PUBLISH [MQTT-3.3.4-3]).
 * - A value cut short by the end of the packet is not an error for the parser: it leaves
 *   null (string, binary, User Property), -1 (two- and four-byte integers) or false
 *   (variable byte integer) in its place. That is a Malformed Packet [MQTT-1.5.4-1...].
 *
 * Left in, either would travel as if it were the value: a SUBSCRIBE's Subscription
 * Identifier [2,2], or a PUBLISH's User Property {k: null}, made every later delivery to
 * a subscriber fail to encode. Such a packet is refused instead.
 */
import { RC } from '../mqtt/reason-codes.js';

export interface PropertyError {
  reason: number;
  why: 'duplicate_property' | 'malformed_property';
}

export function propertyError(props: object | undefined): PropertyError | undefined {
  if (!props) return undefined;
  for (const [name, value] of Object.entries(props)) {
    if (name === 'userProperties') {
      if (!validUserProperties(value)) return { reason: RC.MALFORMED_PACKET, why: 'malformed_property' };
    } else if (Array.isArray(value)) return { reason: RC.PROTOCOL_ERROR, why: 'duplicate_property' };
    else if (value === null || value === undefined || value === -1 || (name === 'subscriptionIdentifier' && value === false))
      return { reason: RC.MALFORMED_PACKET, why: 'malformed_property' };
  }
  return undefined;
}

/** name -> string, or the list of strings of a name given several times. */
function validUserProperties(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  for (const x of Object.values(v)) {
    if (typeof x === 'string') continue;
    if (!Array.isArray(x) || !x.every((s) => typeof s === 'string')) return false;
  }
  return true;
}

/** Subscription Identifier range: 1 to 268,435,455; 0 is a Protocol Error [MQTT-3.8.2.1.2]. */
export function validSubscriptionId(id: unknown): id is number {
  return typeof id === 'number' && Number.isInteger(id) && id >= 1 && id <= 268_435_455;
}
