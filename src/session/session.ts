/**
 * A session: what the broker keeps for one client id between connections
 * [MQTT-3.1.2-4]: subscriptions, messages waiting or inflight, inbound QoS 2 packet ids
 * awaiting PUBREL, the will, and the expiry. Owned by exactly one shard.
 */
import type { SubOptions, WillMessage } from '../protocol/messages.js';
import { Inflight } from './inflight.js';
import { MessageQueue, type QueuedMessage } from './message-queue.js';
import type { LongTimer } from './long-timeout.js';

/** What memory keeps of an evicted session's messages (see journal.ts). */
export interface Evicted {
  queued: number;
  inflight: number;
  /** Queued while evicted and perhaps not committed yet: a reload before the commit reads them here. */
  tail: QueuedMessage[];
}

export interface Binding {
  gw: number;
  connId: number;
}

export class Session {
  readonly clientId: string;
  username?: string;
  protocolVersion: 3 | 4 | 5 = 4;
  readonly subs = new Map<string, SubOptions>();
  readonly inflight = new Inflight();
  readonly queue: MessageQueue;
  /** The live connection, or null while the session is offline. */
  binding: Binding | null = null;
  will?: WillMessage;
  /** Seconds after disconnect until the session is discarded; 0 = at disconnect. */
  expiry = 0;
  receiveMaximum = 65535;
  qos2In: number[] = [];
  expiryTimer?: LongTimer;
  willTimer?: LongTimer;
  /** IM identity of the user this session belongs to (absent: not an IM user). */
  uid?: string;
  ns?: string;
  /** Filters the broker subscribed on the user's behalf (pre-subscription). */
  presub = new Set<string>();
  /** A pre-subscription request in flight: CONNACK waits for it. */
  presubReq?: number;
  /** Bound, but CONNACK not yet sent: deliveries wait in the queue. */
  connackPending = false;
  /** Counted in the user's presence (online device). */
  present = false;
  /** A holding session (im.presubscribe.holdNewUsers): keeps messages for a user's first session. */
  hold = false;
  /** Counted against limits.maxAnonymousSessions. */
  anonymous = false;
  /** The store may hold a record or a message of this session (see journal.ts). */
  stored = false;
  /** When the connection went away (ms since the epoch); kept so expiry survives a restart. */
  offlineSince?: number;
  /**
   * Offline with its messages only in the store (journal.ts, `evict`): the queue and the
   * inflight window are empty in memory and these count what the store holds. Null while
   * the messages are in memory.
   */
  evicted: Evicted | null = null;

  constructor(clientId: string, queueCapacity: number) {
    this.clientId = clientId;
    this.queue = new MessageQueue(queueCapacity);
  }

  /** Messages waiting, in memory or (evicted) in the store. */
  get queuedCount(): number {
    return this.evicted ? this.evicted.queued : this.queue.size;
  }

  get inflightCount(): number {
    return this.evicted ? this.evicted.inflight : this.inflight.size;
  }

  isBoundTo(connId: number): boolean {
    return this.binding !== null && this.binding.connId === connId;
  }

  clearTimers(): void {
    this.expiryTimer?.cancel();
    this.willTimer?.cancel();
    this.expiryTimer = undefined;
    this.willTimer = undefined;
  }
}
