/**
 * A session: what the broker keeps for one client id between connections
 * [MQTT-3.1.2-4]: subscriptions, messages waiting or inflight, inbound QoS 2 packet ids
 * awaiting PUBREL, the will, and the expiry. Owned by exactly one shard.
 */
import type { SubOptions, WillMessage } from '../protocol/messages.js';
import { Inflight } from './inflight.js';
import { MessageQueue, type QueuedMessage } from './message-queue.js';
import type { LongTimer } from './long-timeout.js';
import { SmallMap, SmallSet } from '../runtime/small-collections.js';

/**
 * The qos2In of a session that has none, shared (never changed in place: a session's list
 * is replaced as a whole, by a disconnect or a restore).
 */
const NO_QOS2_IN: number[] = [];

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

const CONNACK_PENDING = 1;
const PRESENT = 2;
const HOLD = 4;
const ANONYMOUS = 8;
const STORED = 16;

export class Session {
  readonly clientId: string;
  username?: string;
  protocolVersion: 3 | 4 | 5 = 4;
  /** Filter -> options; usually one entry (an IM user's inbox), kept without a Map (small-collections.ts). */
  readonly subs = new SmallMap<string, SubOptions>();
  /** Made on first use (`inflight`, `queue`): an idle session has neither. */
  private window: Inflight | null = null;
  private waiting: MessageQueue | null = null;
  private readonly queueCapacity: number;
  /** The live connection, or null while the session is offline. */
  binding: Binding | null = null;
  will?: WillMessage;
  /** Seconds after disconnect until the session is discarded; 0 = at disconnect. */
  expiry = 0;
  receiveMaximum = 65535;
  qos2In: number[] = NO_QOS2_IN;
  expiryTimer?: LongTimer;
  willTimer?: LongTimer;
  /** IM identity of the user this session belongs to (absent: not an IM user). */
  uid?: string;
  ns?: string;
  /** Filters the broker subscribed on the user's behalf (pre-subscription). */
  readonly presub = new SmallSet<string>();
  /** A pre-subscription request in flight: CONNACK waits for it. */
  presubReq?: number;
  /** connackPending, present, hold, anonymous, stored: one number, not five fields (see the accessors). */
  private flags = 0;
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
    this.queueCapacity = queueCapacity;
  }

  /** QoS 1/2 messages sent and not acknowledged (made on first use). */
  get inflight(): Inflight {
    return (this.window ??= new Inflight());
  }

  /** Messages waiting for the window or for the client (made on first use). */
  get queue(): MessageQueue {
    return (this.waiting ??= new MessageQueue(this.queueCapacity));
  }

  /** inflight.size, without making the window. */
  get inflightSize(): number {
    return this.window === null ? 0 : this.window.size;
  }

  /** queue.size, without making the queue. */
  get queueSize(): number {
    return this.waiting === null ? 0 : this.waiting.size;
  }

  /** queue.capacity (limits.maxQueuedMessages), without making the queue. */
  get queueLimit(): number {
    return this.queueCapacity;
  }

  /** Bound, but CONNACK not yet sent: deliveries wait in the queue. */
  get connackPending(): boolean {
    return (this.flags & CONNACK_PENDING) !== 0;
  }
  set connackPending(v: boolean) {
    this.flag(CONNACK_PENDING, v);
  }

  /** Counted in the user's presence (online device). */
  get present(): boolean {
    return (this.flags & PRESENT) !== 0;
  }
  set present(v: boolean) {
    this.flag(PRESENT, v);
  }

  /** A holding session (im.presubscribe.holdNewUsers): keeps messages for a user's first session. */
  get hold(): boolean {
    return (this.flags & HOLD) !== 0;
  }
  set hold(v: boolean) {
    this.flag(HOLD, v);
  }

  /** Counted against limits.maxAnonymousSessions. */
  get anonymous(): boolean {
    return (this.flags & ANONYMOUS) !== 0;
  }
  set anonymous(v: boolean) {
    this.flag(ANONYMOUS, v);
  }

  /** The store may hold a record or a message of this session (see journal.ts). */
  get stored(): boolean {
    return (this.flags & STORED) !== 0;
  }
  set stored(v: boolean) {
    this.flag(STORED, v);
  }

  private flag(bit: number, v: boolean): void {
    this.flags = v ? this.flags | bit : this.flags & ~bit;
  }

  /** Messages waiting, in memory or (evicted) in the store. */
  get queuedCount(): number {
    return this.evicted ? this.evicted.queued : this.queueSize;
  }

  get inflightCount(): number {
    return this.evicted ? this.evicted.inflight : this.inflightSize;
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
