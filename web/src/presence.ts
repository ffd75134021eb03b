/** The broker's retained presence messages: `/{ns}/im/p/{uid}` with `{uid, online, devices, ts}` (docs/im.md section 7). */
import { parseImTopic, presenceTopic } from '../../src/im/index.js';

export interface Presence {
  uid: string;
  online: boolean;
  devices: number;
  since?: number;
}

/** The filter that follows everyone in a namespace. */
export const presenceFilter = (ns: string): string => presenceTopic(ns, '+');

/** The presence a message tells, or null when the topic is not a presence topic of `ns`. */
export function parsePresence(ns: string, topic: string, payload: Uint8Array): Presence | null {
  const t = parseImTopic(topic);
  if (t === null || t.kind !== 'p' || t.ns !== ns) return null;
  // An empty retained message clears the topic: nobody is known to be there.
  if (payload.length === 0) return { uid: t.id, online: false, devices: 0 };
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return null;
  }
  if (body === null || typeof body !== 'object') return null;
  const b = body as Record<string, unknown>;
  const devices = typeof b['devices'] === 'number' && b['devices'] >= 0 ? b['devices'] : 0;
  const online = b['online'] === true;
  const p: Presence = { uid: t.id, online, devices: online ? devices : 0 };
  if (typeof b['ts'] === 'number') p.since = b['ts'];
  return p;
}
