/** Messages this device sends: the IM payload (through the SDK) and its local copy. */
import { encodeImPayload, groupTopic, inboxTopic, ImKind, type ImContentItem, type ImMessage } from '../../src/im/index.js';
import { convParts, type ChatMessage, type ConvId, type Me } from './state.js';

/** 16 random characters (96 bits): unique enough to tell messages apart across devices. */
export function newMessageId(random: (a: Uint8Array) => Uint8Array = (a) => crypto.getRandomValues(a)): string {
  const bytes = random(new Uint8Array(12));
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_');
}

/** The topic a conversation's messages are published on. */
export function topicOf(me: Me, conv: ConvId): string {
  const { kind, peer } = convParts(conv);
  return kind === 'group' ? groupTopic(me.ns, peer) : inboxTopic(me.ns, peer);
}

export interface Outgoing {
  topic: string;
  payload: Uint8Array;
  chat: ChatMessage;
}

/**
 * One message to a conversation. Content carries two members beside `con` (state.ts says
 * why): `id`, and `to`, the topic it was published on.
 */
export function outgoing(me: Me, conv: ConvId, items: ImContentItem[], media: number, id: string, nowMs: number): Outgoing {
  const topic = topicOf(me, conv);
  const msg: ImMessage = { sender: me.uid, ts: Math.floor(nowMs / 1000), kind: ImKind.P2P, media, content: { con: items, id, to: topic } };
  return {
    topic,
    payload: encodeImPayload(msg),
    chat: { id, conv, sender: me.uid, ts: msg.ts, media, items, mine: true, status: 'sending' },
  };
}
