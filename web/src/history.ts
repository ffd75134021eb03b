/**
 * Chat history kept in the browser (localStorage, one entry per device), so that a reload
 * or a closed tab does not empty the conversations: the broker keeps only what a device
 * has not received yet. Pure (de)serialisation here; main.ts does the storing.
 */
import { MAX_MESSAGES, convParts, type ChatMessage, type Conversation, type State } from './state.js';

interface Saved {
  v: 1;
  conversations: Conversation[];
}

/** The storage key of a device's history. */
export const historyKey = (clientId: string): string => `switchboard:history:${clientId}`;

/** Messages per conversation kept in storage (localStorage holds a few MB per origin). */
export const SAVED_MESSAGES = 200;

export function serializeHistory(s: State): string {
  const conversations = Object.values(s.conversations)
    .filter((c) => c.messages.length > 0)
    .map((c) => ({ ...c, messages: c.messages.slice(-SAVED_MESSAGES) }));
  const saved: Saved = { v: 1, conversations };
  return JSON.stringify(saved);
}

const STATUSES: ReadonlySet<unknown> = new Set(['sending', 'sent', 'failed', 'received']);

function isMessage(m: unknown): m is ChatMessage {
  if (m === null || typeof m !== 'object') return false;
  const r = m as Record<string, unknown>;
  return (
    typeof r['id'] === 'string' &&
    typeof r['conv'] === 'string' &&
    typeof r['sender'] === 'string' &&
    typeof r['ts'] === 'number' &&
    typeof r['media'] === 'number' &&
    typeof r['mine'] === 'boolean' &&
    STATUSES.has(r['status']) &&
    Array.isArray(r['items']) &&
    (r['items'] as unknown[]).every((i) => i !== null && typeof i === 'object' && typeof (i as Record<string, unknown>)['ty'] === 'number' && typeof (i as Record<string, unknown>)['co'] === 'string')
  );
}

/**
 * Conversations from stored text; anything malformed is left out rather than trusted.
 * A message still "sending" when the page went away may or may not have reached the
 * broker (the MQTT client's queue died with the page): it is shown as unconfirmed.
 */
export function parseHistory(text: string | null): Conversation[] {
  if (text === null) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return [];
  }
  const saved = raw as Partial<Saved> | null;
  if (saved?.v !== 1 || !Array.isArray(saved.conversations)) return [];
  const out: Conversation[] = [];
  for (const c of saved.conversations as unknown[]) {
    if (c === null || typeof c !== 'object') continue;
    const r = c as Record<string, unknown>;
    const id = r['id'];
    if (typeof id !== 'string' || !/^[ug]:/.test(id) || !Array.isArray(r['messages'])) continue;
    const messages = (r['messages'] as unknown[])
      .filter(isMessage)
      .filter((m) => m.conv === id)
      .slice(-MAX_MESSAGES)
      .map((m): ChatMessage => (m.status === 'sending' ? { ...m, status: 'failed', error: 'not confirmed before the page closed' } : m));
    const unread = typeof r['unread'] === 'number' && r['unread'] >= 0 ? Math.floor(r['unread']) : 0;
    const last = typeof r['last'] === 'number' ? r['last'] : 0;
    out.push({ id, ...convParts(id), messages, unread, last });
  }
  return out;
}
