/**
 * The shard's journal: turns changes of its persistent sessions into Store writes, and
 * answers `sync` publishers once what they sent is committed.
 *
 * What is written: sessions whose Session Expiry Interval is above 0 (a session that ends
 * with its connection has nothing to keep), and their QoS 1/2 messages. A message body is
 * written once per shard however many sessions get it, and each session's stream holds
 * small records pointing to it (refcounted here; a body goes when its last record goes,
 * so consumed entries are compacted as they are acknowledged).
 *
 * Session records are rewritten at most once per turn (`dirty`), messages as they move:
 *   enqueue -> put record (no packet id) -> send: put record with packet id
 *   -> PUBACK / PUBCOMP: delete record (and the body with its last reference)
 *   -> PUBREC: put record in state 'pubrel' (the body reference is released)
 *
 * Group commit: every write of one turn goes into one LMDB transaction; the commit tokens
 * of the publishes handled in that turn are answered when it is durable.
 */
import type { AppMessage } from '../protocol/messages.js';
import type { DedupEntry, DedupKey, OutboundRecord, SessionRecord, ShardIndex, Store } from '../store/types.js';
import type { InflightEntry } from './inflight.js';
import type { QueuedMessage } from './message-queue.js';
import type { Session } from './session.js';
import { storedMessage } from '../store/message.js';
import { rebuildStream } from './restore.js';

export class Journal {
  /** Body ids and stream positions come from one counter, continued from the store at load. */
  private next = 1;
  private readonly bodyIds = new WeakMap<AppMessage, number>();
  private readonly refs = new Map<number, number>();
  private readonly dirty = new Set<Session>();
  /** Commit tokens to answer per gateway once this turn's writes are durable. */
  private tokens = new Map<number, number[]>();
  /** Evicted sessions with messages queued in this turn (their tails are trimmed once committed). */
  private tails = new Set<Session>();
  /** Something was written this turn. */
  private wrote = false;
  /** Turns with writes not known to be committed yet: [number, when flushed], oldest first. */
  private uncommitted: Array<[number, number]> = [];
  private turns = 0;
  /** Work that must wait until this turn's writes are durable. */
  private after: Array<() => void> = [];
  private scheduled = false;
  /** Inbound QoS 2 messages already taken in, per publisher, by `${packetId}/${part}`. */
  private readonly dedup = new Map<string, Map<string, DedupEntry>>();

  /**
   * `lagMs` null (durability sync): commit tokens are answered once this turn is durable.
   * A number (async): at once, unless the oldest write not yet committed is older than
   * `lagMs`; then they wait for the commit too. That bounds what a crash can lose to the
   * messages acknowledged in the last `lagMs`, and slows publishers down to what the
   * disk takes instead of letting a backlog of writes grow in memory.
   */
  constructor(
    private readonly store: Store,
    private readonly onCommitted: (gw: number, ids: number[]) => void,
    private readonly onError: (err: unknown) => void,
    private readonly lagMs: number | null = null,
  ) {}

  persistent(s: Session): boolean {
    return s.expiry > 0;
  }

  // ------------------------------------------------------------ sessions
  /** The session record changed (connect, subscribe, disconnect...): rewritten at the end of the turn. */
  touch(s: Session): void {
    if (!this.persistent(s) && !s.stored) return;
    this.dirty.add(s);
    this.written();
  }

  /** The session ends: its record, its stream and its body references go. */
  drop(s: Session): void {
    this.dirty.delete(s);
    if (s.evicted) {
      // Its messages are only in the store: read their body ids to release them.
      const seen = new Set<number>();
      for (const r of this.store.loadOutbound(s.clientId, false).outbound) {
        seen.add(r.seq);
        if (r.state !== 'pubrel') this.unref(r.body);
      }
      for (const q of s.evicted.tail) if (!seen.has(q.seq!)) this.unref(q.body);
      s.evicted = null;
    }
    if (s.queueSize > 0) for (const q of s.queue.items()) this.release(q);
    if (s.inflightSize > 0) for (const [, e] of s.inflight.entriesInOrder()) this.release(e);
    if (!s.stored) return; // `stored`: the store may hold a record or message of it
    s.stored = false;
    this.store.deleteSession(s.clientId);
    this.written();
  }

  /**
   * A stored session that now ends with its connection (a resume with Session Expiry 0):
   * nothing of it may come back after a crash. Its messages stay in memory, unjournaled.
   */
  private unpersist(s: Session): void {
    if (!s.stored) return;
    if (s.queueSize > 0) for (const q of s.queue.items()) this.release(q);
    if (s.inflightSize > 0) for (const [, e] of s.inflight.entriesInOrder()) this.release(e);
    s.stored = false;
    this.store.deleteSession(s.clientId);
  }

  private record(s: Session): SessionRecord {
    const r: SessionRecord = {
      clientId: s.clientId,
      protocolVersion: s.protocolVersion,
      expiry: s.expiry,
      offlineSince: s.binding ? null : (s.offlineSince ?? Date.now()),
      receiveMaximum: s.receiveMaximum,
      subs: [...s.subs],
      presub: [...s.presub],
      hold: s.hold,
      qos2In: s.qos2In,
    };
    if (s.username !== undefined) r.username = s.username;
    if (s.uid !== undefined) r.uid = s.uid;
    if (s.ns !== undefined) r.ns = s.ns;
    if (s.will) r.will = { msg: storedMessage(s.will.msg), delay: s.will.delay };
    return r;
  }

  // ------------------------------------------------------------ messages
  /** A QoS 1/2 message joined the session's queue. */
  queued(s: Session, q: QueuedMessage): void {
    if (q.qos === 0 || !this.persistent(s)) return;
    q.seq = this.next++;
    q.body = this.ref(q.msg);
    s.stored = true;
    this.store.putOutbound(s.clientId, { seq: q.seq, body: q.body, qos: q.qos, retain: q.retain, ...(q.subIds ? { subIds: q.subIds } : {}), ...(q.share !== undefined ? { share: q.share } : {}) });
    this.written();
  }

  /** A message for an evicted (offline, on disk) session: written, not kept in memory. */
  queuedEvicted(s: Session, q: QueuedMessage): void {
    q.seq = this.next++;
    q.body = this.ref(q.msg);
    this.store.putOutbound(s.clientId, { seq: q.seq, body: q.body, qos: q.qos as 1 | 2, retain: q.retain, ...(q.subIds ? { subIds: q.subIds } : {}), ...(q.share !== undefined ? { share: q.share } : {}) });
    s.evicted!.queued++;
    // Kept until committed: the store reads only what is committed (reload, drop).
    s.evicted!.tail.push(q);
    this.tails.add(s);
    this.written();
  }

  /**
   * An offline session's messages leave memory (they are all in the store already): it
   * then costs its record and subscriptions, not its queue. `reload` brings them back.
   */
  evict(s: Session): void {
    let queued = 0;
    // Size checks first: reading `queue`/`inflight` makes them, and an evicted session is
    // the idle kind that should keep neither.
    if (s.queueSize > 0) {
      for (const q of s.queue.items()) if (q.seq !== undefined) queued++;
      s.queue.clear();
    }
    const inflight = s.inflightSize;
    // The body references stay counted: the store's records still point to the bodies.
    // (The shard evicts only after a commit, so every record of the session is durable.)
    if (inflight > 0) s.inflight.clear();
    s.evicted = { queued, inflight, tail: [] };
  }

  /**
   * The client is back: its messages come back from the store, in order, under their
   * packet ids. Returns how many no longer fit the queue (its limit was lowered): dropped.
   */
  reload(s: Session): number {
    if (!s.evicted) return 0;
    const tail = s.evicted.tail;
    s.evicted = null;
    this.tails.delete(s);
    const { outbound, bodies } = this.store.loadOutbound(s.clientId, true);
    // Already counted (evict kept them; restore counted them): only map the new objects.
    for (const [id, msg] of bodies) this.bodyIds.set(msg, id);
    // Queued since the eviction and not committed yet: after what the store has, in order.
    const have = new Set(outbound.map((r) => r.seq));
    for (const q of tail) {
      if (have.has(q.seq!)) continue;
      outbound.push({ seq: q.seq!, body: q.body!, qos: q.qos as 1 | 2, retain: q.retain, ...(q.subIds ? { subIds: q.subIds } : {}), ...(q.share !== undefined ? { share: q.share } : {}) });
      bodies.set(q.body!, q.msg);
    }
    let dropped = 0;
    rebuildStream(s, outbound, bodies, (r) => {
      dropped++;
      this.store.deleteOutbound(s.clientId, r.seq);
      if (r.state !== 'pubrel') this.unref(r.body);
      this.written();
    });
    return dropped;
  }

  /** A message went out with a packet id (from the queue, or straight to a live client). */
  sent(s: Session, e: InflightEntry, packetId: number): void {
    if (e.seq === undefined) {
      if (!this.persistent(s)) return;
      e.seq = this.next++;
      e.body = this.ref(e.msg);
      s.stored = true;
    }
    this.store.putOutbound(s.clientId, this.outRecord(e, packetId));
    this.written();
  }

  /** PUBREC: the message is delivered; only its packet id waits for PUBCOMP. */
  released(s: Session, e: InflightEntry, packetId: number): void {
    if (e.seq === undefined) return;
    this.unref(e.body);
    e.body = undefined;
    this.store.putOutbound(s.clientId, this.outRecord(e, packetId));
    this.written();
  }

  /** PUBACK / PUBCOMP, or a queued message that expired: the record goes. */
  done(s: Session, e: { seq?: number; body?: number }): void {
    if (e.seq === undefined) return;
    this.store.deleteOutbound(s.clientId, e.seq);
    this.release(e);
    this.written();
  }

  private release(e: { seq?: number; body?: number }): void {
    this.unref(e.body);
    e.body = undefined;
    e.seq = undefined;
  }

  private outRecord(e: InflightEntry, packetId: number): OutboundRecord {
    const r: OutboundRecord = { seq: e.seq!, body: e.body ?? 0, qos: e.qos as 1 | 2, retain: e.retain, packetId, state: e.state };
    if (e.subIds) r.subIds = e.subIds;
    if (e.share !== undefined) r.share = e.share;
    return r;
  }

  private ref(msg: AppMessage): number {
    let id = this.bodyIds.get(msg);
    const n = id === undefined ? 0 : (this.refs.get(id) ?? 0);
    if (n === 0) {
      // First reference (or the first again after the body was released): write it.
      if (id === undefined) this.bodyIds.set(msg, (id = this.next++));
      this.store.putBody(id, storedMessage(msg));
    }
    this.refs.set(id!, n + 1);
    return id!;
  }

  private unref(id: number | undefined): void {
    if (id === undefined || id === 0) return;
    const n = (this.refs.get(id) ?? 1) - 1;
    if (n > 0) {
      this.refs.set(id, n);
      return;
    }
    this.refs.delete(id);
    this.store.deleteBody(id);
  }

  /**
   * The queue was reordered (a holding session's messages put in front): its stored
   * stream is renumbered so that a restart replays it in the same order.
   */
  requeue(s: Session): void {
    if (!this.persistent(s)) return;
    for (const q of s.queue.items()) {
      if (q.qos === 0) continue;
      if (q.seq !== undefined) this.store.deleteOutbound(s.clientId, q.seq);
      else q.body = this.ref(q.msg);
      q.seq = this.next++;
      this.store.putOutbound(s.clientId, { seq: q.seq, body: q.body!, qos: q.qos, retain: q.retain, ...(q.subIds ? { subIds: q.subIds } : {}), ...(q.share !== undefined ? { share: q.share } : {}) });
    }
    this.written();
  }

  // ------------------------------------------------------------ inbound QoS 2 (resend after a crash)
  /** True when this shard took in the same message (same key and content) already. */
  isDuplicate(key: DedupKey, fp: number): boolean {
    return this.dedup.get(key[0])?.get(`${key[1]}/${key[2]}`)?.fp === fp;
  }

  /** A QoS 2 message was taken in: a resend of it (same publisher, packet id, content) is not delivered again. */
  takenIn(key: DedupKey, fp: number): void {
    let m = this.dedup.get(key[0]);
    if (!m) this.dedup.set(key[0], (m = new Map()));
    const e = { key, fp, at: Date.now() };
    m.set(`${key[1]}/${key[2]}`, e);
    this.store.putDedup(e);
    this.written();
  }

  /** PUBREL from the publisher (null: a new session): it will not resend that packet id [MQTT-4.3.3-10]. */
  releaseInbound(origin: string, packetId: number | null): void {
    const m = this.dedup.get(origin);
    if (!m) return;
    for (const [k, e] of m) {
      if (packetId !== null && e.key[1] !== packetId) continue;
      m.delete(k);
      this.store.deleteDedup(e.key);
    }
    if (m.size === 0) this.dedup.delete(origin);
    this.written();
  }

  /** Entries older than any session can live (their release was lost): purged. */
  purgeInbound(olderThan: number): number {
    let n = 0;
    for (const [origin, m] of this.dedup) {
      for (const [k, e] of m) {
        if (e.at >= olderThan) continue;
        m.delete(k);
        this.store.deleteDedup(e.key);
        n++;
      }
      if (m.size === 0) this.dedup.delete(origin);
    }
    if (n > 0) this.written();
    return n;
  }

  // ------------------------------------------------------------ commit
  /** Answer `token` to gateway `gw` once everything written so far is durable. */
  commitToken(gw: number, token: number): void {
    let list = this.tokens.get(gw);
    if (!list) this.tokens.set(gw, (list = []));
    list.push(token);
    this.schedule();
  }

  /**
   * Runs `fn` once everything written so far is durable (at once on the memory store).
   * A PUBREL waits for this: once a client saw it, the broker must never resend that
   * PUBLISH, so the 'pubrel' state has to be committed first [MQTT-4.3.3-5].
   */
  afterCommit(fn: () => void): void {
    if (this.store.kind === 'memory') return fn();
    this.after.push(fn);
    this.schedule();
  }

  /** A write was issued: it belongs to this turn's transaction. */
  private written(): void {
    this.wrote = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  /** End of turn: rewrite dirty sessions, then answer the turn's tokens after the commit. */
  readonly flush = (): void => {
    this.scheduled = false;
    for (const s of this.dirty) {
      if (this.persistent(s)) {
        this.store.putSession(this.record(s));
        s.stored = true;
        this.wrote = true;
      } else this.unpersist(s);
    }
    this.dirty.clear();
    const wrote = this.wrote;
    this.wrote = false;
    if (wrote) this.uncommitted.push([++this.turns, Date.now()]);
    if (this.tokens.size === 0 && this.after.length === 0 && this.tails.size === 0 && !wrote) return;
    const tokens = this.tokens;
    const after = this.after;
    const tails = this.tails;
    const upTo = this.next - 1;
    const turn = this.turns;
    this.tokens = new Map();
    this.after = [];
    this.tails = new Set();
    // async: answered now while the store keeps up (see the constructor).
    const now = this.lagMs !== null && (this.uncommitted.length === 0 || Date.now() - this.uncommitted[0]![1] <= this.lagMs);
    if (now) for (const [gw, ids] of tokens) this.onCommitted(gw, ids);
    this.store.commit().then(
      () => {
        if (this.uncommitted.length > 0 && this.uncommitted[0]![0] <= turn) this.uncommitted = this.uncommitted.filter(([t]) => t > turn);
        if (!now) for (const [gw, ids] of tokens) this.onCommitted(gw, ids);
        for (const fn of after) fn();
        for (const s of tails) if (s.evicted) s.evicted.tail = s.evicted.tail.filter((q) => q.seq! > upTo);
      },
      // Not answered: the publishers are never told a message is safe that is not.
      (err: unknown) => this.onError(err),
    );
  };

  // ------------------------------------------------------------ start
  /**
   * Reads the store's index back (no bodies: restored sessions start evicted); the shard
   * rebuilds its sessions from it. Body references are counted from the records.
   */
  load(): ShardIndex {
    const index = this.store.loadShardIndex();
    let max = 0;
    for (const id of index.bodyIds) if (id > max) max = id;
    for (const list of index.outbound.values()) for (const r of list) if (r.seq > max) max = r.seq;
    this.next = max + 1;
    for (const e of index.dedup) {
      let m = this.dedup.get(e.key[0]);
      if (!m) this.dedup.set(e.key[0], (m = new Map()));
      m.set(`${e.key[1]}/${e.key[2]}`, e);
    }
    return index;
  }

  /** A restored record points to this body. */
  countRef(id: number): void {
    this.refs.set(id, (this.refs.get(id) ?? 0) + 1);
  }

  /** Bodies no record points to any more (their sessions were purged): compacted at load. */
  compactBodies(bodyIds: readonly number[]): number {
    let n = 0;
    for (const id of bodyIds) {
      if (this.refs.has(id)) continue;
      this.store.deleteBody(id);
      n++;
    }
    if (n > 0) this.written();
    return n;
  }

  get pending(): number {
    return this.dirty.size;
  }
}
