/**
 * Messages waiting for a session: while it is offline, or beyond its inflight window.
 * Bounded (limits.maxQueuedMessages): when full, the new message is refused and the
 * caller counts it as dropped with reason `queue_full`, so memory per session is capped.
 * A ring of slots keeps shift() O(1) without reallocating.
 */
import type { AppMessage, QoS } from '../protocol/messages.js';

export interface QueuedMessage {
  msg: AppMessage;
  qos: QoS;
  retain: boolean;
  subIds?: number[];
  /** Came from this shared subscription (`$share/...`): given back to the group if never delivered (shared-member.ts). */
  share?: string;
  /** Position in the session's stored stream and the stored body (persistent sessions; journal.ts). */
  seq?: number;
  body?: number;
}

/** The slots of every empty queue: never written (push grows a queue before writing). */
const NO_SLOTS: (QueuedMessage | undefined)[] = [];

export class MessageQueue {
  /** Made on the first message (grow): an idle session's queue costs no array. */
  private slots: (QueuedMessage | undefined)[] = NO_SLOTS;
  private head = 0;
  private count = 0;
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.count;
  }

  /** Returns false (and stores nothing) when the queue is full. */
  push(m: QueuedMessage): boolean {
    if (this.count >= this.capacity) return false;
    if (this.count === this.slots.length) this.grow();
    this.slots[(this.head + this.count) % this.slots.length] = m;
    this.count++;
    return true;
  }

  /**
   * Puts older messages in front (a holding session's hand-over). What does not fit is
   * not stored; returns how many of `ms` were dropped (the newest of them).
   */
  prepend(ms: readonly QueuedMessage[]): number {
    const room = Math.max(0, this.capacity - this.count);
    const rest: QueuedMessage[] = [];
    for (let m = this.shift(); m; m = this.shift()) rest.push(m);
    for (const m of ms.slice(0, room)) this.push(m);
    for (const m of rest) this.push(m);
    return ms.length - Math.min(room, ms.length);
  }

  shift(): QueuedMessage | undefined {
    if (this.count === 0) return undefined;
    const m = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.slots.length;
    // Drained: the slots go (an idle session keeps no array once its messages are out).
    if (--this.count === 0) this.clear();
    return m;
  }

  /** The waiting messages, oldest first (the queue is not changed). */
  *items(): IterableIterator<QueuedMessage> {
    for (let i = 0; i < this.count; i++) yield this.slots[(this.head + i) % this.slots.length]!;
  }

  clear(): void {
    this.slots = NO_SLOTS;
    this.head = 0;
    this.count = 0;
  }

  private grow(): void {
    const n = Math.min(this.capacity, Math.max(8, this.slots.length * 2));
    const next: (QueuedMessage | undefined)[] = new Array(n);
    for (let i = 0; i < this.count; i++) next[i] = this.slots[(this.head + i) % this.slots.length];
    this.slots = next;
    this.head = 0;
  }
}
