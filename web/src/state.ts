/**
 * The client's state and the pure reducer that changes it: conversations built from the
 * messages that arrive (inbox, carbons of what my other devices sent, groups), local sends
 * and their acknowledgements, unread counts, presence and uploads.
 *
 * Decisions:
 * - Messages are shown in arrival order, not by their TS: the broker delivers one topic's
 *   messages in order (offline ones too), while TS comes from each sender's clock and has
 *   one-second resolution.
 * - A message carries a client-made `id` in its Content (an extra member, which the
 *   protocol allows): the same message can arrive twice (a QoS 1 resend, my own group
 *   message coming back, history restored from storage), and is shown once.
 * - A carbon (my message, copied by the broker's routing rule to my own inbox) does not
 *   say whom it was for, so the web client also writes the destination topic as `to`.
 *   A carbon without `to` (sent by another client) lands in the conversation with myself.
 * - Unread counts are per device: a message counts when it is not mine and its
 *   conversation is not the one on screen in a visible tab.
 */
import { parseImTopic, type ImContentItem, type ImMessage } from '../../src/im/index.js';

export type ConvId = string;
export type ConnectionStatus = 'connecting' | 'online' | 'offline' | 'replaced';

export interface Me {
  uid: string;
  ns: string;
  groups: string[];
}

export interface ChatMessage {
  id: string;
  conv: ConvId;
  sender: string;
  /** Seconds since the epoch (the payload's TS). */
  ts: number;
  media: number;
  items: ImContentItem[];
  mine: boolean;
  /** sending: waiting for PUBACK; sent: acknowledged, or my message from another device. */
  status: 'sending' | 'sent' | 'failed' | 'received';
  error?: string;
}

export interface Conversation {
  id: ConvId;
  kind: 'user' | 'group';
  /** The other user's uid, or the group id. */
  peer: string;
  messages: ChatMessage[];
  unread: number;
  /** Order of the last activity (state.clock), for sorting the list. */
  last: number;
}

export interface Contact {
  uid: string;
  online: boolean;
  devices: number;
  /** Milliseconds, from the presence message. */
  since?: number;
}

export interface Upload {
  id: string;
  conv: ConvId;
  name: string;
  size: number;
  loaded: number;
  error?: string;
}

export interface State {
  me: Me;
  contacts: Record<string, Contact>;
  conversations: Record<ConvId, Conversation>;
  active: ConvId | null;
  visible: boolean;
  connection: ConnectionStatus;
  uploads: Upload[];
  /** Counts events, to order conversations by their last activity. */
  clock: number;
}

export type Action =
  | { type: 'incoming'; topic: string; msg: ImMessage }
  | { type: 'presence'; uid: string; online: boolean; devices: number; since?: number }
  | { type: 'send'; message: ChatMessage }
  | { type: 'ack'; conv: ConvId; id: string; error?: string }
  | { type: 'open'; conv: ConvId | null }
  | { type: 'visible'; visible: boolean }
  | { type: 'connection'; status: ConnectionStatus }
  | { type: 'uploadStart'; upload: Upload }
  | { type: 'uploadProgress'; id: string; loaded: number }
  | { type: 'uploadEnd'; id: string; error?: string }
  | { type: 'uploadDismiss'; id: string }
  | { type: 'restore'; conversations: Conversation[] };

export const userConv = (uid: string): ConvId => `u:${uid}`;
export const groupConv = (gid: string): ConvId => `g:${gid}`;

/** The kind and peer of a conversation id. */
export function convParts(id: ConvId): { kind: 'user' | 'group'; peer: string } {
  return { kind: id.startsWith('g:') ? 'group' : 'user', peer: id.slice(2) };
}

/** Longest history kept per conversation in memory (and in storage). */
export const MAX_MESSAGES = 500;

export function initialState(me: Me, directory: string[]): State {
  const contacts: Record<string, Contact> = {};
  for (const uid of directory) if (uid !== me.uid) contacts[uid] = { uid, online: false, devices: 0 };
  const conversations: Record<ConvId, Conversation> = {};
  for (const g of me.groups) conversations[groupConv(g)] = emptyConv(groupConv(g), 0);
  return { me, contacts, conversations, active: null, visible: true, connection: 'connecting', uploads: [], clock: 0 };
}

function emptyConv(id: ConvId, last: number): Conversation {
  return { id, ...convParts(id), messages: [], unread: 0, last };
}

/** The message id a payload carries (the web client's `id` member), if usable. */
export function contentId(msg: ImMessage): string | undefined {
  const id = msg.content['id'];
  return typeof id === 'string' && id.length > 0 && id.length <= 64 ? id : undefined;
}

/**
 * Which conversation a message on `topic` belongs to, from my point of view; null when it
 * is none of mine (another namespace, presence, a topic the IM scheme does not know).
 */
export function conversationOf(me: Me, topic: string, msg: ImMessage): ConvId | null {
  const t = parseImTopic(topic);
  if (t === null || t.ns !== me.ns) return null;
  if (t.kind === 'g') return groupConv(t.id);
  if (t.kind !== 'u') return null;
  if (t.id !== me.uid) return msg.sender === me.uid ? userConv(t.id) : null;
  if (msg.sender !== me.uid) return userConv(msg.sender);
  // My own message on my inbox: a carbon of what another of my devices sent.
  const to = msg.content['to'];
  const dest = typeof to === 'string' ? parseImTopic(to) : null;
  if (dest !== null && dest.ns === me.ns) {
    if (dest.kind === 'u') return userConv(dest.id);
    if (dest.kind === 'g') return groupConv(dest.id);
  }
  return userConv(me.uid);
}

function withConv(s: State, id: ConvId): Record<ConvId, Conversation> {
  return s.conversations[id] ? s.conversations : { ...s.conversations, [id]: emptyConv(id, s.clock) };
}

function append(conv: Conversation, m: ChatMessage, clock: number, unread: boolean): Conversation {
  const messages = conv.messages.length >= MAX_MESSAGES ? conv.messages.slice(conv.messages.length - MAX_MESSAGES + 1) : conv.messages.slice();
  messages.push(m);
  return { ...conv, messages, unread: conv.unread + (unread ? 1 : 0), last: clock };
}

/** Is this conversation in front of the user right now? */
const onScreen = (s: State, conv: ConvId): boolean => s.visible && s.active === conv;

export function reduce(s: State, a: Action): State {
  switch (a.type) {
    case 'incoming': {
      const conv = conversationOf(s.me, a.topic, a.msg);
      if (conv === null) return s;
      // Without an id (another client's message) it cannot be matched again: one of its own.
      const id = contentId(a.msg) ?? `x${s.clock + 1}-${a.msg.ts}`;
      const existing = s.conversations[conv]?.messages.find((m) => m.id === id);
      if (existing) {
        // My own group message coming back before its PUBACK: it is through.
        if (existing.mine && existing.status === 'sending') return reduce(s, { type: 'ack', conv, id });
        return s;
      }
      const mine = a.msg.sender === s.me.uid;
      const m: ChatMessage = {
        id,
        conv,
        sender: a.msg.sender,
        ts: a.msg.ts,
        media: a.msg.media,
        items: a.msg.content.con,
        mine,
        status: mine ? 'sent' : 'received',
      };
      const clock = s.clock + 1;
      const conversations = withConv(s, conv);
      return {
        ...s,
        clock,
        conversations: { ...conversations, [conv]: append(conversations[conv]!, m, clock, !mine && !onScreen(s, conv)) },
      };
    }
    case 'send': {
      const clock = s.clock + 1;
      const conversations = withConv(s, a.message.conv);
      return { ...s, clock, conversations: { ...conversations, [a.message.conv]: append(conversations[a.message.conv]!, a.message, clock, false) } };
    }
    case 'ack': {
      const conv = s.conversations[a.conv];
      const i = conv?.messages.findIndex((m) => m.id === a.id) ?? -1;
      if (!conv || i < 0) return s;
      const messages = conv.messages.slice();
      const m = messages[i]!;
      messages[i] = a.error === undefined ? { ...m, status: 'sent', error: undefined } : { ...m, status: 'failed', error: a.error };
      return { ...s, conversations: { ...s.conversations, [a.conv]: { ...conv, messages } } };
    }
    case 'presence': {
      if (a.uid === s.me.uid) return s;
      const c: Contact = { uid: a.uid, online: a.online, devices: a.devices, ...(a.since !== undefined ? { since: a.since } : {}) };
      return { ...s, contacts: { ...s.contacts, [a.uid]: c } };
    }
    case 'open': {
      if (a.conv === null) return { ...s, active: null };
      const conversations = withConv(s, a.conv);
      const conv = conversations[a.conv]!;
      return { ...s, active: a.conv, conversations: s.visible && conv.unread > 0 ? { ...conversations, [a.conv]: { ...conv, unread: 0 } } : conversations };
    }
    case 'visible': {
      const next = { ...s, visible: a.visible };
      const conv = a.visible && s.active !== null ? s.conversations[s.active] : undefined;
      if (!conv || conv.unread === 0) return next;
      return { ...next, conversations: { ...s.conversations, [conv.id]: { ...conv, unread: 0 } } };
    }
    case 'connection':
      return { ...s, connection: a.status };
    case 'uploadStart':
      return { ...s, uploads: [...s.uploads, a.upload] };
    case 'uploadProgress':
      return { ...s, uploads: s.uploads.map((u) => (u.id === a.id ? { ...u, loaded: Math.max(u.loaded, a.loaded) } : u)) };
    case 'uploadEnd':
      return {
        ...s,
        // A failed upload stays, with its error, until the user dismisses it (uploadDismiss).
        uploads: a.error === undefined ? s.uploads.filter((u) => u.id !== a.id) : s.uploads.map((u) => (u.id === a.id ? { ...u, error: a.error } : u)),
      };
    case 'uploadDismiss':
      return { ...s, uploads: s.uploads.filter((u) => u.id !== a.id) };
    case 'restore': {
      const conversations = { ...s.conversations };
      let clock = s.clock;
      for (const c of a.conversations) {
        const known = conversations[c.id];
        // Restored history goes before whatever arrived since the page loaded.
        const ids = new Set(known?.messages.map((m) => m.id));
        const older = c.messages.filter((m) => !ids.has(m.id));
        const messages = [...older, ...(known?.messages ?? [])].slice(-MAX_MESSAGES);
        clock = Math.max(clock, c.last);
        conversations[c.id] = { ...c, ...(known ? { unread: known.unread + c.unread } : {}), messages, last: Math.max(c.last, known?.last ?? 0) };
      }
      return { ...s, conversations, clock };
    }
  }
}

/** Sum of the unread counts (the tab title shows it). */
export function totalUnread(s: State): number {
  let n = 0;
  for (const c of Object.values(s.conversations)) n += c.unread;
  return n;
}

export interface ListEntry {
  conv: ConvId;
  kind: 'user' | 'group';
  peer: string;
  online: boolean;
  unread: number;
  preview: string;
}

/** A one-line summary of a message for the conversation list. */
export function previewOf(m: ChatMessage | undefined): string {
  if (!m) return '';
  const item = m.items[0];
  if (!item) return '';
  const prefix = m.mine ? 'You: ' : '';
  switch (item.ty) {
    case 0:
      return prefix + item.co;
    case 1:
      return `${prefix}Photo`;
    case 2:
      return `${prefix}Audio`;
    case 3:
      return `${prefix}Video`;
    default:
      return prefix + (typeof item.fn?.name === 'string' ? item.fn.name : 'File');
  }
}

/**
 * The conversation list: my groups first, then people (everyone in the directory, anyone
 * whose presence or messages I have seen), most recent activity first, then online
 * people, then by name. The conversation with myself is listed only once it has messages.
 */
export function listEntries(s: State): ListEntry[] {
  const ids = new Set<ConvId>(Object.keys(s.conversations));
  for (const uid of Object.keys(s.contacts)) ids.add(userConv(uid));
  for (const g of s.me.groups) ids.add(groupConv(g));
  const entries: Array<ListEntry & { last: number }> = [];
  for (const id of ids) {
    const { kind, peer } = convParts(id);
    const conv = s.conversations[id];
    if (kind === 'user' && peer === s.me.uid && !conv?.messages.length) continue;
    entries.push({
      conv: id,
      kind,
      peer,
      online: kind === 'user' && (s.contacts[peer]?.online ?? false),
      unread: conv?.unread ?? 0,
      preview: previewOf(conv?.messages[conv.messages.length - 1]),
      last: conv?.messages.length ? conv.last : -1,
    });
  }
  entries.sort((a, b) => {
    if (a.kind !== b.kind) return a.kind === 'group' ? -1 : 1;
    if (a.last !== b.last) return b.last - a.last;
    if (a.online !== b.online) return a.online ? -1 : 1;
    return a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0;
  });
  return entries.map(({ last: _last, ...e }) => e);
}
