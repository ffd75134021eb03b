/**
 * What nodes send each other to move a session (docs/cluster.md, "Sessions across
 * nodes"): claims on one subject every node hears (`{prefix}.claim`), everything else on
 * the subject of the node it is for (`{prefix}.n.{node}`). Batched: one NATS message per
 * turn and destination carries every item of that turn. Plain msgpack, checked on arrival
 * like the message envelope (wire.ts).
 */
import { pack, unpack } from 'msgpackr';
import { PROTOCOL_VERSION, type AppMessage, type ClaimAnswer, type SessionMessages } from '../protocol/messages.js';
import { checkMessage, WireError } from './wire.js';

export interface ClaimItem {
  /** Numbered by the claiming node; with its name, unique in the cluster. */
  id: number;
  clientId: string;
  /** The connecting user (uid, else username): another user's session is not handed over. */
  owner?: string;
  clean: boolean;
}

export type DirectItem =
  /** A node's answer to claim `id` of the receiver. */
  | { k: 'answer'; id: number; answer: ClaimAnswer }
  /** The receiver's session for claim `id` of the sender: hand it over (`take`) or drop it. */
  | { k: 'finish'; id: number; clientId: string; take: boolean }
  /** The messages of the session for claim `id` of the receiver; `more`: further parts follow. */
  | { k: 'moved'; id: number; state: SessionMessages; more: boolean }
  /** A message published on the sender for shared subscription group `key`, which has members on the receiver (`id` unused, 0). */
  | { k: 'share'; id: number; key: string; msg: AppMessage };

export interface ClaimBatch {
  v: number;
  from: string;
  claims: ClaimItem[];
}

export interface DirectBatch {
  v: number;
  from: string;
  items: DirectItem[];
}

export const encodeClaims = (from: string, claims: ClaimItem[]): Uint8Array => pack({ v: PROTOCOL_VERSION, from, claims } satisfies ClaimBatch);
export const encodeDirect = (from: string, items: DirectItem[]): Uint8Array => pack({ v: PROTOCOL_VERSION, from, items } satisfies DirectBatch);

function open(data: Uint8Array): Record<string, unknown> {
  let b: unknown;
  try {
    b = unpack(data);
  } catch (err) {
    throw new WireError(`undecodable batch: ${(err as Error).message}`);
  }
  if (b === null || typeof b !== 'object') throw new WireError('not a batch');
  const r = b as Record<string, unknown>;
  if (r.v !== PROTOCOL_VERSION) throw new WireError(`protocol version ${String(r.v)}, this node speaks ${PROTOCOL_VERSION}`);
  if (typeof r.from !== 'string' || r.from.length === 0) throw new WireError('batch without a sender');
  return r;
}

export function decodeClaims(data: Uint8Array): ClaimBatch {
  const r = open(data);
  const claims = r.claims;
  if (!Array.isArray(claims)) throw new WireError('malformed claims');
  for (const c of claims as Partial<ClaimItem>[])
    if (!c || typeof c.id !== 'number' || typeof c.clientId !== 'string' || typeof c.clean !== 'boolean' || (c.owner !== undefined && typeof c.owner !== 'string'))
      throw new WireError('malformed claim');
  return r as unknown as ClaimBatch;
}

export function decodeDirect(data: Uint8Array): DirectBatch {
  const r = open(data);
  const items = r.items;
  if (!Array.isArray(items)) throw new WireError('malformed items');
  for (const i of items as Array<Partial<DirectItem> & Record<string, unknown>>) {
    if (!i || typeof i.id !== 'number') throw new WireError('malformed item');
    if (i.k === 'answer') {
      const a = i.answer as Partial<ClaimAnswer> | undefined;
      if (!a || typeof a.node !== 'string' || typeof a.has !== 'boolean') throw new WireError('malformed answer');
    } else if (i.k === 'finish') {
      if (typeof i.clientId !== 'string' || typeof i.take !== 'boolean') throw new WireError('malformed finish');
    } else if (i.k === 'share') {
      if (typeof i.key !== 'string') throw new WireError('malformed share');
      checkMessage(i.msg);
    } else if (i.k === 'moved') {
      const s = i.state as Partial<SessionMessages> | undefined;
      if (!s || !Array.isArray(s.inflight) || !Array.isArray(s.queue) || typeof i.more !== 'boolean') throw new WireError('malformed hand-over');
    } else throw new WireError(`unknown item ${String(i.k)}`);
  }
  return r as unknown as DirectBatch;
}

/**
 * Splits a session's messages into parts of about `maxBytes` (NATS refuses a message over
 * its max_payload): inflight ones in the first part, the queue in order after them.
 */
export function splitMessages(state: SessionMessages, maxBytes: number): SessionMessages[] {
  const size = (m: { msg: { topic: string; payload: Uint8Array } }): number => m.msg.topic.length + m.msg.payload.length + 128;
  const parts: SessionMessages[] = [];
  let cur: SessionMessages = { inflight: [], queue: [] };
  let bytes = 0;
  const room = (n: number): void => {
    if (bytes > 0 && bytes + n > maxBytes) {
      parts.push(cur);
      cur = { inflight: [], queue: [] };
      bytes = 0;
    }
    bytes += n;
  };
  for (const e of state.inflight) {
    room(size(e));
    cur.inflight.push(e);
  }
  for (const q of state.queue) {
    room(size(q));
    cur.queue.push(q);
  }
  parts.push(cur);
  return parts;
}
