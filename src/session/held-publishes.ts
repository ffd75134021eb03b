/**
 * Lossless flow control (`limits.queueFullPolicy: hold`): a QoS 1/2 message that finds a
 * session's queue full is parked beyond it, and its publisher's PUBACK/PUBREC waits until
 * the message entered the queue, instead of being acknowledged and dropped.
 *
 * The publisher's gateway holds the ack until this shard answers the publish's token
 * (`committed`, pending-acks.ts); the shard answers once an `AckWait` counted every copy
 * of the publish down to zero. A parked copy keeps one unit of it until it is admitted
 * to the queue (the subscriber acknowledged something, its client came back...), so a
 * fast publisher slows to what the slowest of its subscribers takes: its acks come back
 * at that pace and its window (v5 Receive Maximum, a client's inflight limit) does the
 * rest. The shared subscription owner counts its members' commits the same way
 * (shared-groups.ts); this is that idea one step further, down to the queue.
 *
 * Bounded: at most `maxPerSession` parked per session (one more is dropped and counted
 * `queue_full`, as with `drop`), and none longer than `maxAgeMs`: then it is dropped
 * (`hold_timeout`) and its publisher answered, so a subscriber that never reads cannot stop
 * a publisher for ever. Order: once a session has parked messages, every later QoS 1/2
 * message for it parks behind them, so they enter the queue first. A session that ends
 * drops its parked messages (`session_ended`) and answers their publishers.
 */
import type { Metrics } from '../admin/metrics.js';
import type { QueuedMessage } from './message-queue.js';
import type { Session } from './session.js';

/** A publish whose publisher waits: `left` copies still to place, then `done` (answer its token). */
export interface AckWait {
  left: number;
  done: () => void;
}

/** One unit for the caller, held while the copies of the publish are placed. */
export function newWait(done: () => void): AckWait {
  return { left: 1, done };
}

export function releaseWait(w: AckWait): void {
  if (--w.left === 0) w.done();
}

interface Parked {
  q: QueuedMessage;
  wait?: AckWait;
  /** When it was parked (ms since the epoch). */
  at: number;
}

/**
 * A session's parked messages, oldest first. Taking from the front is O(1) (a head index,
 * the array compacted now and then): a slow subscriber's line can be thousands long and
 * gives up one message per acknowledgement.
 */
class Line {
  private items: Parked[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  first(): Parked | undefined {
    return this.items[this.head];
  }

  push(p: Parked): void {
    this.items.push(p);
  }

  shift(): Parked {
    const p = this.items[this.head]!;
    this.items[this.head++] = undefined as unknown as Parked;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return p;
  }

  all(): Parked[] {
    return this.items.slice(this.head);
  }

  replace(keep: Parked[]): void {
    this.items = keep;
    this.head = 0;
  }
}

/** What parking needs of its shard (the ShardActor). */
export interface HeldHost {
  readonly metrics: Metrics;
  /** Puts `q` into the session's queue (and its journal); false when there is no room. */
  admit(s: Session, q: QueuedMessage): boolean;
}

export class HeldPublishes {
  private readonly bySession = new Map<Session, Line>();
  private count = 0;
  private sweep?: NodeJS.Timeout;

  constructor(
    private readonly host: HeldHost,
    private readonly maxPerSession: number,
    private readonly maxAgeMs: number,
  ) {}

  /** Messages parked over every session (the `messages_held` gauge). */
  get size(): number {
    return this.count;
  }

  /** The session has parked messages: a later QoS 1/2 message must park behind them. */
  has(s: Session): boolean {
    return this.bySession.has(s);
  }

  /**
   * Parks `q` behind the session's parked messages; its publisher (`wait`) is answered
   * once it entered the queue. False when the session's overflow is full (the caller drops it).
   */
  park(s: Session, q: QueuedMessage, wait: AckWait | undefined): boolean {
    let list = this.bySession.get(s);
    if (list && list.length >= this.maxPerSession) return false;
    if (!list) {
      if (this.maxPerSession === 0) return false;
      this.bySession.set(s, (list = new Line()));
    }
    const p: Parked = { q, at: Date.now() };
    if (wait) {
      wait.left++;
      p.wait = wait;
    }
    list.push(p);
    this.count++;
    this.host.metrics.inc('messages_held_total');
    this.startSweep();
    return true;
  }

  /**
   * Moves parked messages into the session's queue while it has room, oldest first, and
   * answers their publishers. True when at least one moved (the caller pumps again).
   */
  refill(s: Session): boolean {
    const list = this.bySession.get(s);
    if (!list) return false;
    const moved: AckWait[] = [];
    let n = 0;
    for (let p = list.first(); p && this.host.admit(s, p.q); p = list.first()) {
      list.shift();
      n++;
      if (p.wait) moved.push(p.wait);
    }
    if (n === 0) return false;
    this.forget(s, list, n);
    for (const w of moved) releaseWait(w);
    return true;
  }

  /**
   * Takes parked messages out (all, or those `pick` wants) for a hand-over elsewhere (a
   * shared subscription group, a holding session's successor), oldest first; their
   * publishers are answered, as for a queued message handed over.
   */
  take(s: Session, pick: (q: QueuedMessage) => boolean = () => true): QueuedMessage[] {
    const list = this.bySession.get(s);
    if (!list) return [];
    const out: Parked[] = [];
    const keep: Parked[] = [];
    for (const p of list.all()) (pick(p.q) ? out : keep).push(p);
    if (out.length === 0) return [];
    list.replace(keep);
    this.forget(s, list, out.length);
    for (const p of out) if (p.wait) releaseWait(p.wait);
    return out.map((p) => p.q);
  }

  /** The session ends: its parked messages are dropped (counted with `reason`), their publishers answered. */
  drop(s: Session, reason: string): void {
    const list = this.bySession.get(s);
    if (!list) return;
    this.bySession.delete(s);
    const all = list.all();
    this.count -= all.length;
    this.host.metrics.inc(`messages_dropped_total{reason="${reason}"}`, all.length);
    for (const p of all) if (p.wait) releaseWait(p.wait);
    this.stopSweepIfIdle();
  }

  /** Graceful stop: no timer may outlive the shard. */
  close(): void {
    clearInterval(this.sweep);
    this.sweep = undefined;
  }

  /** `n` of the session's parked messages left its list (which is `list` now). */
  private forget(s: Session, list: Line, n: number): void {
    this.count -= n;
    if (list.length === 0) this.bySession.delete(s);
    this.stopSweepIfIdle();
  }

  /** Parked longer than maxAgeMs: dropped (hold_timeout), their publishers answered. */
  private expire(): void {
    const limit = Date.now() - this.maxAgeMs;
    let n = 0;
    const answer: AckWait[] = [];
    for (const [s, list] of [...this.bySession]) {
      // Oldest first: only the head of each list can be due.
      let i = 0;
      for (let p = list.first(); p && p.at <= limit; p = list.first()) {
        list.shift();
        i++;
        if (p.wait) answer.push(p.wait);
      }
      if (i === 0) continue;
      n += i;
      if (list.length === 0) this.bySession.delete(s);
    }
    if (n === 0) return;
    this.count -= n;
    this.host.metrics.inc('messages_dropped_total{reason="hold_timeout"}', n);
    for (const w of answer) releaseWait(w);
    this.stopSweepIfIdle();
  }

  /** The sweep runs only while something is parked (a tenth of the bound, 50 ms..1 s). */
  private startSweep(): void {
    if (this.sweep) return;
    this.sweep = setInterval(() => this.expire(), Math.min(1000, Math.max(50, Math.floor(this.maxAgeMs / 10))));
    this.sweep.unref();
  }

  private stopSweepIfIdle(): void {
    if (this.count > 0 || !this.sweep) return;
    clearInterval(this.sweep);
    this.sweep = undefined;
  }
}
