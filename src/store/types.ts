/**
 * The Store: what a shard or the coordinator keeps across restarts. Each owner (every
 * shard, the coordinator) has its own store instance and is its only writer, so a store
 * needs no locking and no cross-thread protocol.
 *
 * Memory is authoritative while the broker runs: the store is a journal of the state's
 * changes, read back only at start (and when a crashed shard thread restarts). Writes
 * are fire-and-forget calls that never block the event loop; `commit()` resolves once
 * every write issued before it is durable, which is what the `sync` durability mode
 * waits for before acknowledging a publisher (group commit: the writes of one turn share
 * one transaction).
 *
 * Record shapes are plain data (msgpack-encodable): a record written by one version is
 * read by the next, so changing a shape means bumping STORE_FORMAT and migrating.
 */
import type { AppMessage, SubOptions, WillMessage } from '../protocol/messages.js';

/** Version of the record shapes below; written in each store's meta data. */
export const STORE_FORMAT = 1;

/** A session, without its messages (see OutboundRecord). */
export interface SessionRecord {
  clientId: string;
  username?: string;
  /** IM identity of the owner, if an IM user. */
  uid?: string;
  ns?: string;
  protocolVersion: 3 | 4 | 5;
  /** Session Expiry Interval, seconds (0xFFFFFFFF = never). */
  expiry: number;
  /** When the session went offline (ms since the epoch); null: it was online when written. */
  offlineSince: number | null;
  will?: WillMessage;
  receiveMaximum: number;
  /** Subscriptions with their options (and Subscription Identifier). */
  subs: Array<[string, SubOptions]>;
  /** Filters the broker holds on the user's behalf (pre-subscription). */
  presub: string[];
  /** A holding session (im.presubscribe.holdNewUsers). */
  hold: boolean;
  /** Inbound QoS 2 packet ids awaiting PUBREL [MQTT-4.3.3-3]. */
  qos2In: number[];
}

/**
 * One message in a session's outbound stream: waiting in the queue (no packet id yet) or
 * inflight (sent, unacknowledged, with its packet id [MQTT-4.4.0-1]). Entries are ordered
 * by `seq`, which is the order the client must see them in.
 */
export interface OutboundRecord {
  seq: number;
  /** The message body, stored once per shard however many sessions get it. */
  body: number;
  qos: 1 | 2;
  retain: boolean;
  subIds?: number[];
  /** Came from this shared subscription (`$share/...`, absent for records written before shared subscriptions). */
  share?: string;
  packetId?: number;
  /** 'pubrel': PUBREC received and PUBREL sent, waiting for PUBCOMP (the body is done). */
  state?: 'publish' | 'pubrel';
}

/**
 * An inbound QoS 2 message a shard took in, so a PUBLISH resent after a crash is not
 * delivered twice: the publisher's client id, its packet id, and which part (0 = the
 * message, n = the n-th copy a routing rule made of it).
 */
export type DedupKey = [origin: string, packetId: number, part: number];

/**
 * A dedup key with a fingerprint of the message (topic and payload) and when it was
 * taken in: a later message that reuses the packet id with other content is new even if
 * the release of the old one was lost (a shard restarting when the PUBREL came), and
 * entries older than any session can live are purged.
 */
export interface DedupEntry {
  key: DedupKey;
  fp: number;
  at: number;
}

/** Everything a shard wrote, as read back at start. */
export interface ShardState {
  sessions: SessionRecord[];
  /** Per client id, in `seq` order. */
  outbound: Map<string, OutboundRecord[]>;
  bodies: Map<number, AppMessage>;
  /** Inbound QoS 2 messages already taken in: (publisher client id, packet id, part). */
  dedup: DedupEntry[];
}

/**
 * What a shard reads at start: sessions and their outbound records, but no message
 * bodies (only their ids, to count references): offline sessions keep their messages on
 * disk until their client comes back (`loadOutbound`), so a restart with many queued
 * messages is quick and costs no memory for them.
 */
export interface ShardIndex {
  sessions: SessionRecord[];
  outbound: Map<string, OutboundRecord[]>;
  bodyIds: number[];
  dedup: DedupEntry[];
}

export interface StoreStats {
  /** Bytes the store occupies (LMDB: used pages; memory: 0, nothing on disk). */
  bytes: number;
  entries: number;
}

export interface Store {
  readonly kind: 'memory' | 'lmdb';

  // ---- a shard's sessions
  putSession(r: SessionRecord): void;
  /** Deletes the session and every outbound record of it. */
  deleteSession(clientId: string): void;
  putOutbound(clientId: string, r: OutboundRecord): void;
  deleteOutbound(clientId: string, seq: number): void;
  putBody(id: number, msg: AppMessage): void;
  deleteBody(id: number): void;
  putDedup(e: DedupEntry): void;
  deleteDedup(key: DedupKey): void;
  /** Everything, bodies included (tests, and moving sessions to a new shard count). */
  loadShard(): ShardState;
  loadShardIndex(): ShardIndex;
  /** One session's outbound records in `seq` order, with the bodies they point to (if asked). */
  loadOutbound(clientId: string, withBodies: boolean): { outbound: OutboundRecord[]; bodies: Map<number, AppMessage> };

  // ---- the coordinator's state
  /** Stores or replaces the retained message of `msg.topic`. */
  putRetained(msg: AppMessage): void;
  deleteRetained(topic: string): void;
  loadRetained(): AppMessage[];
  /** Small named documents (the IM state, the store's own meta data). */
  putDoc(name: string, value: unknown): void;
  getDoc<T>(name: string): T | undefined;

  /** Resolves once every write issued before the call is durable. */
  commit(): Promise<void>;
  stats(): StoreStats;
  /** Commits what is pending and releases the store. */
  close(): Promise<void>;
}
