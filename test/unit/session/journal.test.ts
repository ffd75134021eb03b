/**
 * The shard's journal (src/session/journal.ts) over a MemoryStore, driven through a real
 * ShardActor on an in-thread ActorSystem with fake gateways and coordinator
 * (shard-harness.ts, as in shard-actor.test.ts). A second ShardActor on the same
 * MemoryStore stands for the shard after a restart (restore()).
 */
import { describe, it, expect, afterEach, vi } from 'vitest';
import type { ShardOptions } from '../../../src/session/shard-actor.js';
import { Session } from '../../../src/session/session.js';
import { Journal } from '../../../src/session/journal.js';
import type { QueuedMessage } from '../../../src/session/message-queue.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { messageFingerprint } from '../../../src/store/message.js';
import type { DedupEntry, DedupKey, OutboundRecord, SessionRecord, Store } from '../../../src/store/types.js';
import { gatewayOf, makeConnId } from '../../../src/gateway/conn-id.js';
import type { AppMessage, QoS } from '../../../src/protocol/messages.js';
import {
  cleanups,
  online as onlineFor,
  payloads,
  pubs,
  runCleanups,
  shardHarness,
  tick,
  type ConnectMsg,
  type ShardHarness as Harness,
} from './shard-harness.js';

/** The journal flushes at the end of the turn (setImmediate), then answers after the commit. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await tick();
};

/** Session Expiry "never": no expiry timer is left running after a test. */
const NEVER = 0xffffffff;

afterEach(runCleanups);

/**
 * A shard on `store` (a fresh MemoryStore by default). With `restore`, the sessions in the
 * store are rebuilt before the shard takes any message (as shard-host.ts does); the result
 * is in `restored`. Subscriptions default to Retain Handling 2 (no retained messages).
 */
function harness(o: { opts?: Partial<ShardOptions>; store?: Store; restore?: boolean } = {}) {
  return shardHarness({ store: o.store ?? new MemoryStore(), ...o.opts }, { restore: o.restore, retainHandling: 2 });
}

/** The shard after a restart: a new ShardActor on `store`, restored; its routeAdds have reached the gateways. */
async function restart(store: Store, opts: Partial<ShardOptions> = {}) {
  const h = harness({ store, opts, restore: true });
  await tick();
  return h;
}

/** Connects, subscribes, completes the route handshake and lets the journal commit; returns the connId. */
const online = (h: Harness, clientId: string, filters: Array<[string, QoS]>, over: Partial<ConnectMsg> = {}): Promise<number> =>
  onlineFor(h, clientId, filters, over, settle);

/** A persistent session (expiry never) that subscribed and went offline. */
async function offline(h: Harness, clientId: string, filters: Array<[string, QoS]>): Promise<void> {
  const c = await online(h, clientId, filters, { cleanStart: false, expiry: NEVER });
  h.shard({ t: 'disconnect', connId: c, clientId, publishWill: false, qos2In: [] });
  await settle();
}

const text = (p: Uint8Array): string => Buffer.from(p).toString();

/** What the store holds, read back as a restarting shard would. */
function stored(store: Store) {
  const st = store.loadShard();
  return {
    sessions: new Map(st.sessions.map((s) => [s.clientId, s] as const)),
    outbound: (clientId: string): OutboundRecord[] => st.outbound.get(clientId) ?? [],
    bodies: st.bodies,
    /** The resend-check keys (origin, packet id, part), in store order. */
    dedup: st.dedup.map((e) => e.key),
    /** The whole resend-check entries, with fingerprint and time. */
    dedupEntries: st.dedup,
    /** The body a record points to, as text. */
    body: (r: OutboundRecord): string | undefined => {
      const b = st.bodies.get(r.body);
      return b && text(b.payload);
    },
  };
}

/**
 * A store that behaves like the LMDB one where it matters to the journal, over a
 * MemoryStore: kind 'lmdb' (so afterCommit waits for the commit); writes are visible to
 * reads only once committed (LMDB reads see committed data only); the writes of a turn
 * are committed at its end whether or not commit() is called (as lmdb-js does). With
 * `gated`, commits wait until `release()`, so a test can look at the moment between a
 * turn's writes and their commit.
 */
class DiskLikeStore implements Store {
  readonly kind = 'lmdb' as const;
  private readonly inner = new MemoryStore();
  private pending: Array<(m: MemoryStore) => void> = [];
  private waiting: Array<() => void> = [];
  private autoCommit = false;
  gated = false;
  /** How many times commit() was called (the automatic end-of-turn commits are not counted). */
  commits = 0;

  private w(fn: (m: MemoryStore) => void): void {
    this.pending.push(fn);
    if (this.autoCommit) return;
    this.autoCommit = true;
    setImmediate(() => {
      this.autoCommit = false;
      void this.take();
    });
  }
  putSession(r: SessionRecord): void {
    this.w((m) => m.putSession(r));
  }
  deleteSession(clientId: string): void {
    this.w((m) => m.deleteSession(clientId));
  }
  putOutbound(clientId: string, r: OutboundRecord): void {
    const copy = { ...r };
    this.w((m) => m.putOutbound(clientId, copy));
  }
  deleteOutbound(clientId: string, seq: number): void {
    this.w((m) => m.deleteOutbound(clientId, seq));
  }
  putBody(id: number, msg: AppMessage): void {
    this.w((m) => m.putBody(id, msg));
  }
  deleteBody(id: number): void {
    this.w((m) => m.deleteBody(id));
  }
  putDedup(e: DedupEntry): void {
    this.w((m) => m.putDedup(e));
  }
  deleteDedup(key: DedupKey): void {
    this.w((m) => m.deleteDedup(key));
  }
  loadShard() {
    return this.inner.loadShard();
  }
  loadShardIndex() {
    return this.inner.loadShardIndex();
  }
  loadOutbound(clientId: string, withBodies: boolean) {
    return this.inner.loadOutbound(clientId, withBodies);
  }
  putRetained(msg: AppMessage): void {
    this.w((m) => m.putRetained(msg));
  }
  deleteRetained(topic: string): void {
    this.w((m) => m.deleteRetained(topic));
  }
  loadRetained(): AppMessage[] {
    return this.inner.loadRetained();
  }
  putDoc(name: string, value: unknown): void {
    this.w((m) => m.putDoc(name, value));
  }
  getDoc<T>(name: string): T | undefined {
    return this.inner.getDoc<T>(name);
  }
  commit(): Promise<void> {
    this.commits++;
    return this.take();
  }
  /** Commits what was written so far (at once, or at release() while gated). */
  private take(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const apply = (): void => {
      for (const fn of batch) fn(this.inner);
    };
    if (!this.gated) {
      apply();
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.waiting.push(() => {
        apply();
        resolve();
      }),
    );
  }
  /**
   * Opens the gate: the commits waiting at it complete, in order; writes issued since
   * then are committed too (LMDB commits every write on its own, whether or not anyone
   * asked for a commit).
   */
  release(): void {
    this.gated = false;
    for (const fn of this.waiting.splice(0)) fn();
    const rest = this.pending;
    this.pending = [];
    for (const fn of rest) fn(this.inner);
  }
  stats() {
    return this.inner.stats();
  }
  async close(): Promise<void> {
    await this.commit();
  }
}

describe('Journal: what is written', () => {
  it('a persistent session (expiry > 0) and its queued QoS 1 message are in the store after the turn', async () => {
    const h = harness();
    await offline(h, 'p1', [['t/#', 1]]);
    h.publish('t/1', 1, 'hello');
    await settle();
    const s = stored(h.store);
    const rec = s.sessions.get('p1');
    expect(rec).toMatchObject({ clientId: 'p1', protocolVersion: 5, expiry: NEVER, hold: false, qos2In: [], presub: [] });
    expect(rec!.subs).toEqual([['t/#', { qos: 1, noLocal: false, retainAsPublished: false }]]);
    expect(typeof rec!.offlineSince).toBe('number'); // offline: expiry counts from then
    const out = s.outbound('p1');
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ qos: 1, retain: false });
    expect(out[0]!.packetId).toBeUndefined(); // queued, never sent
    expect(s.body(out[0]!)).toBe('hello');
    expect(s.bodies.get(out[0]!.body)).toMatchObject({ topic: 't/1', qos: 1 });
  });

  it('the session record is written at the end of the turn, not before', async () => {
    const h = harness();
    h.connect('p1', { cleanStart: false, expiry: NEVER });
    await Promise.resolve(); // the shard handled connect (microtask), the turn is not over
    await Promise.resolve();
    expect(h.actor.sessions.has('p1')).toBe(true);
    expect(stored(h.store).sessions.has('p1')).toBe(false);
    await settle();
    expect(stored(h.store).sessions.get('p1')).toMatchObject({ clientId: 'p1', offlineSince: null }); // online
  });

  it('a clean session (expiry 0) writes nothing, online or offline-bound', async () => {
    const h = harness({ opts: { maxInflight: 1 } });
    const c = await online(h, 'c1', [['t/#', 2]]);
    h.publish('t/1', 1, 'a'); // inflight
    h.publish('t/2', 2, 'b'); // queued behind the window
    await settle();
    expect(pubs(h.take())).toHaveLength(1);
    expect(h.store.stats().entries).toBe(0);
    h.shard({ t: 'disconnect', connId: c, clientId: 'c1', publishWill: false, qos2In: [3] });
    await settle();
    expect(h.store.stats().entries).toBe(0);
    expect(h.actor.sessions.has('c1')).toBe(false);
  });

  it('QoS 0 is never stored (a QoS 0 message, or a QoS 0 subscription)', async () => {
    const h = harness({ opts: { maxInflight: 1 } });
    const c = await online(h, 'p1', [['t/#', 1], ['z', 0]], { cleanStart: false, expiry: NEVER });
    h.publish('t/1', 1, 'fills the window');
    h.publish('t/2', 1, 'queued');
    h.publish('t/3', 0, 'qos0'); // goes out at once, never queued for a live session
    h.publish('z', 2, 'downgraded to 0'); // QoS 0 subscription
    await settle();
    const got = pubs(h.take());
    expect(got.map((p) => [text(p.msg.payload), p.qos])).toEqual([
      ['fills the window', 1],
      ['qos0', 0],
      ['downgraded to 0', 0],
    ]);
    const s = stored(h.store);
    expect(s.outbound('p1').map((r) => s.body(r))).toEqual(['fills the window', 'queued']);
    expect(s.outbound('p1').every((r) => r.qos === 1)).toBe(true);
    expect([...s.bodies.values()].map((b) => text(b.payload)).sort()).toEqual(['fills the window', 'queued']);
    // Offline: QoS 0 is dropped, not stored.
    h.shard({ t: 'disconnect', connId: c, clientId: 'p1', publishWill: false, qos2In: [] });
    h.publish('t/4', 0, 'dropped');
    await settle();
    expect(stored(h.store).outbound('p1')).toHaveLength(2);
    expect(h.metrics.get('messages_dropped_total{reason="offline_qos0"}')).toBe(1);
  });

  it('a message sent to a live persistent session is stored with its packet id; PUBACK deletes record and body', async () => {
    const h = harness();
    const c = await online(h, 'p1', [['t/#', 1]], { cleanStart: false, expiry: NEVER });
    h.publish('t/1', 1, 'a');
    await settle();
    const [p] = pubs(h.take());
    let s = stored(h.store);
    expect(s.outbound('p1')).toEqual([{ seq: expect.any(Number), body: expect.any(Number), qos: 1, retain: false, packetId: p!.packetId, state: 'publish' }]);
    expect(s.body(s.outbound('p1')[0]!)).toBe('a');
    h.ack('p1', c, 'puback', p!.packetId);
    await settle();
    s = stored(h.store);
    expect(s.outbound('p1')).toEqual([]);
    expect(s.bodies.size).toBe(0);
    expect(s.sessions.has('p1')).toBe(true);
  });

  it('a queued record gets its packet id when the queue is pumped (resume), keeping its seq and body', async () => {
    const h = harness();
    await offline(h, 'p1', [['t/#', 1]]);
    h.publish('t/1', 1, 'a');
    await settle();
    const [before] = stored(h.store).outbound('p1');
    expect(before!.packetId).toBeUndefined();
    const c2 = h.connect('p1', { cleanStart: false, expiry: NEVER });
    await settle();
    const [p] = pubs(h.take());
    expect(p).toMatchObject({ connId: c2, dup: false });
    const [after] = stored(h.store).outbound('p1');
    expect(after).toMatchObject({ seq: before!.seq, body: before!.body, packetId: p!.packetId, state: 'publish' });
  });

  it('a message for two persistent sessions stores ONE body with two records; the body goes only after both acknowledged', async () => {
    const h = harness();
    const ca = await online(h, 'a', [['t/#', 1]], { cleanStart: false, expiry: NEVER });
    const cb = await online(h, 'b', [['t/#', 1]], { cleanStart: false, expiry: NEVER });
    h.publish('t/1', 1, 'shared');
    await settle();
    const got = pubs(h.take());
    const pa = got.find((p) => p.connId === ca)!;
    const pb = got.find((p) => p.connId === cb)!;
    let s = stored(h.store);
    expect(s.bodies.size).toBe(1);
    const [ra] = s.outbound('a');
    const [rb] = s.outbound('b');
    expect(ra!.body).toBe(rb!.body);
    expect(ra!.seq).not.toBe(rb!.seq);
    expect(s.body(ra!)).toBe('shared');

    h.ack('a', ca, 'puback', pa.packetId);
    await settle();
    s = stored(h.store);
    expect(s.outbound('a')).toEqual([]);
    expect(s.outbound('b')).toHaveLength(1);
    expect(s.bodies.has(rb!.body)).toBe(true); // b still points to it

    h.ack('b', cb, 'puback', pb.packetId);
    await settle();
    s = stored(h.store);
    expect(s.outbound('b')).toEqual([]);
    expect(s.bodies.size).toBe(0);
  });

  it('the shared body also survives one session ending (clean start) while another still holds it', async () => {
    const h = harness();
    await offline(h, 'a', [['t/#', 1]]);
    await offline(h, 'b', [['t/#', 1]]);
    h.publish('t/1', 1, 'shared');
    await settle();
    expect(stored(h.store).bodies.size).toBe(1);
    h.connect('a', { cleanStart: true, expiry: 0 }); // a's session and its records go
    await settle();
    const s = stored(h.store);
    expect(s.sessions.has('a')).toBe(false);
    expect(s.outbound('a')).toEqual([]);
    expect(s.outbound('b')).toHaveLength(1);
    expect(s.body(s.outbound('b')[0]!)).toBe('shared');
  });

  it('PUBREC turns the record into state pubrel and releases the body; PUBCOMP deletes the record', async () => {
    const h = harness();
    const c = await online(h, 'p1', [['t/#', 2]], { cleanStart: false, expiry: NEVER });
    h.publish('t/1', 2, 'q2');
    await settle();
    const [p] = pubs(h.take());
    const [r0] = stored(h.store).outbound('p1');
    expect(r0).toMatchObject({ qos: 2, packetId: p!.packetId, state: 'publish' });
    h.ack('p1', c, 'pubrec', p!.packetId);
    await settle();
    expect(h.take()).toEqual([{ t: 'deliver', connId: c, out: [{ k: 'pubrel', packetId: p!.packetId }] }]);
    let s = stored(h.store);
    expect(s.outbound('p1')).toEqual([{ seq: r0!.seq, body: 0, qos: 2, retain: false, packetId: p!.packetId, state: 'pubrel' }]);
    expect(s.bodies.size).toBe(0); // delivered: the body is no longer needed
    h.ack('p1', c, 'pubcomp', p!.packetId);
    await settle();
    s = stored(h.store);
    expect(s.outbound('p1')).toEqual([]);
    expect(s.bodies.size).toBe(0);
  });

  it('destroy (clean start) deletes the session and its records', async () => {
    const h = harness();
    await offline(h, 'p1', [['t/#', 2]]);
    h.publish('t/1', 1, 'a');
    h.publish('t/2', 2, 'b');
    await settle();
    let s = stored(h.store);
    expect(s.sessions.has('p1')).toBe(true);
    expect(s.outbound('p1')).toHaveLength(2);
    const c2 = h.connect('p1', { cleanStart: true, expiry: 0 });
    await settle();
    expect(h.take()).toContainEqual({ t: 'connack', connId: c2, sessionPresent: false, qos2In: [] });
    s = stored(h.store);
    expect(s.sessions.has('p1')).toBe(false);
    expect(s.outbound('p1')).toEqual([]);
    expect(s.bodies.size).toBe(0);
    expect(h.store.stats().entries).toBe(0);
  });

  it('a clean start with a new expiry writes a fresh session: none of the old records stay', async () => {
    const h = harness();
    await offline(h, 'p1', [['t/#', 1]]);
    h.publish('t/1', 1, 'old');
    await settle();
    h.connect('p1', { cleanStart: true, expiry: NEVER });
    await settle();
    const s = stored(h.store);
    expect(s.sessions.get('p1')).toMatchObject({ subs: [], offlineSince: null });
    expect(s.outbound('p1')).toEqual([]);
    expect(s.bodies.size).toBe(0);
  });

  it('session expiry deletes the session and its records', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const h = harness();
    const c = await online(h, 'p1', [['t/#', 1]], { cleanStart: false, expiry: 10 });
    h.shard({ t: 'disconnect', connId: c, clientId: 'p1', publishWill: false, qos2In: [] });
    h.publish('t/1', 1, 'a');
    await settle();
    expect(stored(h.store).outbound('p1')).toHaveLength(1);
    vi.advanceTimersByTime(10_000);
    await settle();
    expect(h.metrics.get('sessions_expired_total')).toBe(1);
    expect(h.store.stats().entries).toBe(0);
  });

  it('subscribe, unsubscribe and the inbound QoS 2 ids of a disconnect are written to the session record', async () => {
    const h = harness();
    const c = await online(h, 'p1', [['a', 1], ['b', 2]], { cleanStart: false, expiry: NEVER });
    expect(stored(h.store).sessions.get('p1')!.subs.map(([f, o]) => [f, o.qos])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
    h.shard({ t: 'unsubscribe', connId: c, clientId: 'p1', packetId: 2, filters: ['a'] });
    await settle();
    expect(stored(h.store).sessions.get('p1')!.subs.map(([f]) => f)).toEqual(['b']);
    h.shard({ t: 'disconnect', connId: c, clientId: 'p1', publishWill: false, qos2In: [4, 5] });
    await settle();
    expect(stored(h.store).sessions.get('p1')).toMatchObject({ qos2In: [4, 5], offlineSince: expect.any(Number) });
  });
});

describe('Journal: a stored session resumed with Session Expiry 0 (unpersist)', () => {
  it('its record and messages leave the store at the end of the turn; its messages stay in memory and are delivered', async () => {
    const h = harness();
    await offline(h, 'p1', [['t/#', 1]]);
    h.publish('t/1', 1, 'kept in memory');
    await settle();
    expect(stored(h.store).sessions.has('p1')).toBe(true);
    expect(stored(h.store).outbound('p1')).toHaveLength(1);

    const c2 = h.connect('p1', { cleanStart: false, expiry: 0 });
    await Promise.resolve(); // the shard handled connect (microtask), the turn is not over
    await Promise.resolve();
    expect(h.actor.sessions.get('p1')!.expiry).toBe(0);
    expect(stored(h.store).sessions.has('p1')).toBe(true); // not before the end of the turn
    await settle();
    const got = h.take();
    expect(got[0]).toEqual({ t: 'connack', connId: c2, sessionPresent: true, qos2In: [] });
    expect(payloads(got)).toEqual(['kept in memory']);
    const s = stored(h.store);
    expect(s.sessions.has('p1')).toBe(false);
    expect(s.outbound('p1')).toEqual([]);
    expect(s.bodies.size).toBe(0);
    expect(h.store.stats().entries).toBe(0);
    expect(h.actor.sessions.get('p1')!.stored).toBe(false);

    // From now on nothing of it is written: a new message, its PUBACK, the disconnect.
    const [p] = pubs(got);
    h.ack('p1', c2, 'puback', p!.packetId);
    h.publish('t/2', 1, 'live');
    await settle();
    expect(payloads(h.take())).toEqual(['live']);
    expect(h.store.stats().entries).toBe(0);
  });

  it('a restart from that store no longer has the session', async () => {
    const store = new MemoryStore();
    const h1 = harness({ store });
    await offline(h1, 'p1', [['t/#', 1]]);
    h1.publish('t/1', 1, 'a');
    await settle();
    // Before the resume a restart would bring it back...
    const before = await restart(store);
    expect(before.restored).toEqual({ sessions: 1, messages: 1, expired: 0 });
    cleanups.push(() => before.actor.sessions.get('p1')?.clearTimers());

    h1.connect('p1', { cleanStart: false, expiry: 0 });
    await settle();
    // ... after it, nothing: the session ends with its connection [MQTT-3.1.2-23 with expiry 0].
    const after = await restart(store);
    expect(after.restored).toEqual({ sessions: 0, messages: 0, expired: 0 });
    expect(after.actor.sessions.has('p1')).toBe(false);
    expect(after.take()).toEqual([]); // no routes for its subscription
  });
});

describe('Journal: evicted sessions (messages only in the store)', () => {
  it('messages queued while evicted go to the store only; a reconnect reloads them all, in order', async () => {
    const h = harness();
    await offline(h, 'p1', [['t', 1]]);
    h.publish('t', 1, 'a');
    h.publish('t', 1, 'b');
    await settle();
    const s = h.actor.sessions.get('p1')!;
    h.actor.journal.evict(s);
    expect(s.queue.size).toBe(0);
    expect(s.evicted).toEqual({ queued: 2, inflight: 0, tail: [] });
    expect(s.queuedCount).toBe(2);

    // Through the shard while evicted: queuedEvicted.
    h.publish('t', 1, 'c');
    h.publish('t', 1, 'd');
    await settle();
    expect(s.queue.size).toBe(0); // not in memory
    expect(s.evicted!.queued).toBe(4);
    expect(s.evicted!.tail).toEqual([]); // committed: no longer needed in memory
    const st = stored(h.store);
    expect(st.outbound('p1').map((r) => st.body(r))).toEqual(['a', 'b', 'c', 'd']);
    expect(st.outbound('p1').every((r) => r.packetId === undefined)).toBe(true);

    const c2 = h.connect('p1', { cleanStart: false, expiry: NEVER });
    await settle();
    const got = h.take();
    expect(got[0]).toEqual({ t: 'connack', connId: c2, sessionPresent: true, qos2In: [] });
    const ps = pubs(got);
    expect(ps.map((p) => [text(p.msg.payload), p.dup])).toEqual([
      ['a', false],
      ['b', false],
      ['c', false],
      ['d', false],
    ]);
    expect(s.evicted).toBeNull();
    for (const p of ps) h.ack('p1', c2, 'puback', p.packetId);
    await settle();
    const end = stored(h.store);
    expect(end.outbound('p1')).toEqual([]);
    expect(end.bodies.size).toBe(0);
    expect(end.sessions.has('p1')).toBe(true);
  });

  it('messages queued while evicted that are not committed yet (evicted.tail) come back after the stored ones, each once', async () => {
    const store = new DiskLikeStore();
    const h = harness({ store });
    await offline(h, 'p1', [['t', 1]]);
    h.publish('t', 1, 'a');
    await settle();
    const s = h.actor.sessions.get('p1')!;
    h.actor.journal.evict(s);
    h.publish('t', 1, 'b');
    await settle();
    expect(s.evicted!.tail).toEqual([]); // b is committed

    store.gated = true;
    h.publish('t', 1, 'c');
    h.publish('t', 1, 'd');
    await settle();
    // Written but not committed: the store does not show them yet, memory keeps them.
    expect(s.evicted!.tail.map((q) => text(q.msg.payload))).toEqual(['c', 'd']);
    expect(s.evicted!.queued).toBe(4);
    let st = stored(store);
    expect(st.outbound('p1').map((r) => st.body(r))).toEqual(['a', 'b']);

    const c2 = h.connect('p1', { cleanStart: false, expiry: NEVER });
    await settle();
    const got = h.take();
    expect(got[0]).toEqual({ t: 'connack', connId: c2, sessionPresent: true, qos2In: [] });
    const ps = pubs(got);
    expect(ps.map((p) => text(p.msg.payload))).toEqual(['a', 'b', 'c', 'd']);
    expect(new Set(ps.map((p) => p.packetId)).size).toBe(4);

    // Once committed, the store has all four, in order, under the packet ids they went out with.
    store.release();
    await settle();
    st = stored(store);
    expect(st.outbound('p1').map((r) => [st.body(r), r.packetId, r.state])).toEqual(ps.map((p) => [text(p.msg.payload), p.packetId, 'publish']));
    for (const p of ps) h.ack('p1', c2, 'puback', p.packetId);
    await settle();
    await store.commit();
    st = stored(store);
    expect(st.outbound('p1')).toEqual([]);
    expect(st.bodies.size).toBe(0);
  });

  it('a message both committed and still in evicted.tail (its commit callback not run yet) is reloaded once', async () => {
    const store = new DiskLikeStore();
    const h = harness({ store });
    await offline(h, 'p1', [['t', 1]]);
    const s = h.actor.sessions.get('p1')!;
    h.actor.journal.evict(s);
    store.gated = true;
    h.publish('t', 1, 'x');
    await settle();
    expect(s.evicted!.tail).toHaveLength(1);
    // What reload() finds: the record in the store and in the tail at the same time.
    const seen: Array<{ tail: number; inStore: number }> = [];
    const reload = h.actor.journal.reload.bind(h.actor.journal);
    vi.spyOn(h.actor.journal, 'reload').mockImplementation((x) => {
      seen.push({ tail: x.evicted?.tail.length ?? -1, inStore: store.loadOutbound('p1', false).outbound.length });
      return reload(x);
    });
    // The connect is handled (microtask) before the commit's callback trims the tail.
    const c2 = h.connect('p1', { cleanStart: false, expiry: NEVER });
    store.release();
    await settle();
    expect(seen).toEqual([{ tail: 1, inStore: 1 }]);
    const got = h.take();
    expect(got[0]).toEqual({ t: 'connack', connId: c2, sessionPresent: true, qos2In: [] });
    expect(payloads(got)).toEqual(['x']);
    expect(s.inflight.size).toBe(1);
    expect(s.queue.size).toBe(0);
  });
});

describe('Journal: PUBREL after the commit [MQTT-4.3.3-5]', () => {
  it('to a stored QoS 2 session PUBREL goes only once its pubrel state is committed', async () => {
    const store = new DiskLikeStore();
    const h = harness({ store });
    const c = await online(h, 'p1', [['t', 2]], { cleanStart: false, expiry: NEVER });
    h.publish('t', 2, 'q2');
    await settle();
    const [p] = pubs(h.take());
    expect(stored(store).outbound('p1')).toMatchObject([{ packetId: p!.packetId, state: 'publish' }]);

    store.gated = true;
    const commits = store.commits;
    h.ack('p1', c, 'pubrec', p!.packetId);
    await settle();
    expect(store.commits).toBe(commits + 1); // the turn asked for its commit...
    expect(h.take()).toEqual([]); // ... and PUBREL waits for it
    expect(stored(store).outbound('p1')).toMatchObject([{ state: 'publish' }]);

    store.release();
    await settle();
    expect(h.take()).toEqual([{ t: 'deliver', connId: c, out: [{ k: 'pubrel', packetId: p!.packetId }] }]);
    expect(stored(store).outbound('p1')).toEqual([{ seq: expect.any(Number), body: 0, qos: 2, retain: false, packetId: p!.packetId, state: 'pubrel' }]);
  });

  it('to a session that is not stored (expiry 0) PUBREL goes at once', async () => {
    const store = new DiskLikeStore();
    const h = harness({ store });
    const c = await online(h, 'c1', [['t', 2]]);
    h.publish('t', 2, 'q2');
    await settle();
    const [p] = pubs(h.take());
    store.gated = true; // a commit would never come
    h.ack('c1', c, 'pubrec', p!.packetId);
    await settle();
    expect(h.take()).toEqual([{ t: 'deliver', connId: c, out: [{ k: 'pubrel', packetId: p!.packetId }] }]);
    store.release();
    expect(store.stats().entries).toBe(0);
  });

  it('a connection gone before the commit gets no PUBREL; the resume sends it', async () => {
    const store = new DiskLikeStore();
    const h = harness({ store });
    const c = await online(h, 'p1', [['t', 2]], { cleanStart: false, expiry: NEVER });
    h.publish('t', 2, 'q2');
    await settle();
    const [p] = pubs(h.take());
    store.gated = true;
    h.ack('p1', c, 'pubrec', p!.packetId);
    h.shard({ t: 'disconnect', connId: c, clientId: 'p1', publishWill: false, qos2In: [] });
    await settle();
    store.release();
    await settle();
    expect(h.take()).toEqual([]);
    const c2 = h.connect('p1', { cleanStart: false, expiry: NEVER });
    await settle();
    expect(h.take()).toEqual([
      { t: 'connack', connId: c2, sessionPresent: true, qos2In: [] },
      { t: 'deliver', connId: c2, out: [{ k: 'pubrel', packetId: p!.packetId }] },
    ]);
  });
});

describe('Journal: commit tokens (durability sync)', () => {
  it('a publish with ack 7 makes the shard answer committed [7] to the publisher\'s gateway, also when no session matched', async () => {
    const h = harness({ opts: { gateways: 3 } });
    const originConn = makeConnId(41, 2);
    expect(gatewayOf(originConn)).toBe(2);
    h.publish('nobody/listens', 1, 'x', { originConn, origin: 'pub' }, { ack: 7 });
    await settle();
    expect(h.gw[2]).toEqual([{ t: 'committed', ids: [7] }]);
    expect(h.gw[0]).toEqual([]);
    expect(h.gw[1]).toEqual([]);
  });

  it('the answer comes after the turn\'s writes are committed, one message per gateway with every token of the turn', async () => {
    let release!: () => void;
    const commits: Array<{ entries: number }> = [];
    class SlowStore extends MemoryStore {
      override commit(): Promise<void> {
        commits.push({ entries: this.stats().entries });
        return new Promise((r) => (release = r));
      }
    }
    const store = new SlowStore();
    const h = harness({ store, opts: { gateways: 2 } });
    await offline(h, 'p1', [['t/#', 1]]);
    commits.length = 0;
    h.publish('t/1', 1, 'a', { originConn: makeConnId(1, 1), origin: 'x' }, { ack: 7 });
    h.publish('t/2', 1, 'b', { originConn: makeConnId(2, 1), origin: 'y' }, { ack: 8 });
    h.publish('t/3', 1, 'c', { originConn: makeConnId(3, 0), origin: 'z' }, { ack: 9 });
    await settle();
    // One commit for the turn, covering the three queued records and their bodies.
    expect(commits).toHaveLength(1);
    expect(stored(store).outbound('p1')).toHaveLength(3);
    expect(h.gw[1]!.filter((m) => m.t === 'committed')).toEqual([]);
    release();
    await settle();
    expect(h.gw[1]!.filter((m) => m.t === 'committed')).toEqual([{ t: 'committed', ids: [7, 8] }]);
    expect(h.gw[0]!.filter((m) => m.t === 'committed')).toEqual([{ t: 'committed', ids: [9] }]);
  });

  it('a failed commit is never answered (counted as store_errors_total)', async () => {
    class FailingStore extends MemoryStore {
      override commit(): Promise<void> {
        return Promise.reject(new Error('disk full'));
      }
    }
    const h = harness({ store: new FailingStore() });
    h.publish('t', 1, 'x', { originConn: makeConnId(1, 0) }, { ack: 3 });
    await settle();
    expect(h.gw[0]!.filter((m) => m.t === 'committed')).toEqual([]);
    expect(h.metrics.get('store_errors_total')).toBe(1);
  });

  it('a publish without ack (durability async/memory) or without originConn is not answered', async () => {
    const h = harness();
    h.publish('t', 1, 'x', { originConn: makeConnId(1, 0) });
    h.publish('t', 1, 'y', {}, { ack: 4 }); // broker-made: nobody to answer
    await settle();
    expect(h.gw[0]!.filter((m) => m.t === 'committed')).toEqual([]);
  });
});

describe('Journal: inbound QoS 2 resend check (dedup)', () => {
  const dedup = (packetId: number, part = 0) => ({ dedup: { packetId, part } });

  it('[MQTT-4.3.3-10] a QoS 2 publish is delivered once; the same again is dropped (counted) until released', async () => {
    const h = harness();
    await online(h, 's1', [['t', 2]]);
    h.publish('t', 2, 'm', { origin: 'p' }, dedup(5));
    await settle();
    expect(payloads(h.take())).toEqual(['m']);
    expect(stored(h.store).dedup).toEqual([['p', 5, 0]]);

    h.publish('t', 2, 'm', { origin: 'p' }, dedup(5)); // resent after a crash
    await settle();
    expect(payloads(h.take())).toEqual([]);
    expect(h.metrics.get('messages_duplicate_dropped_total')).toBe(1);

    // Another part of the same publish (a rule copy) and another publisher are different messages.
    h.publish('t', 2, 'copy', { origin: 'p' }, dedup(5, 1));
    h.publish('t', 2, 'other', { origin: 'q' }, dedup(5));
    await settle();
    expect(payloads(h.take())).toEqual(['copy', 'other']);

    h.shard({ t: 'released', origin: 'p', packetId: 5 });
    await settle();
    expect(stored(h.store).dedup).toEqual([['q', 5, 0]]);
    h.publish('t', 2, 'new', { origin: 'p' }, dedup(5)); // the id carries a new message now
    await settle();
    expect(payloads(h.take())).toEqual(['new']);
    expect(h.metrics.get('messages_duplicate_dropped_total')).toBe(1);
  });

  it('released with packetId null releases every id of that origin only', async () => {
    const h = harness();
    await online(h, 's1', [['t', 2]]);
    h.publish('t', 2, 'a', { origin: 'p' }, dedup(5));
    h.publish('t', 2, 'b', { origin: 'p' }, dedup(6));
    h.publish('t', 2, 'c', { origin: 'p' }, dedup(5, 1));
    h.publish('t', 2, 'd', { origin: 'q' }, dedup(5));
    await settle();
    expect(payloads(h.take())).toEqual(['a', 'b', 'c', 'd']);
    h.shard({ t: 'released', origin: 'p', packetId: null }); // p started a new session
    await settle();
    expect(stored(h.store).dedup).toEqual([['q', 5, 0]]);
    h.publish('t', 2, 'a', { origin: 'p' }, dedup(5));
    h.publish('t', 2, 'b', { origin: 'p' }, dedup(6));
    h.publish('t', 2, 'c', { origin: 'p' }, dedup(5, 1));
    h.publish('t', 2, 'd', { origin: 'q' }, dedup(5));
    await settle();
    expect(payloads(h.take())).toEqual(['a', 'b', 'c']);
    expect(h.metrics.get('messages_duplicate_dropped_total')).toBe(1);
  });

  it('the same publisher and packet id with other content is a new message: delivered, and its entry replaces the old one', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_767_225_600_000);
    const h = harness();
    await online(h, 's1', [['t/#', 2]]);
    h.publish('t/1', 2, 'm', { origin: 'p' }, dedup(5));
    await settle();
    expect(payloads(h.take())).toEqual(['m']);
    expect(stored(h.store).dedupEntries).toEqual([{ key: ['p', 5, 0], fp: messageFingerprint('t/1', Buffer.from('m')), at: 1_767_225_600_000 }]);

    // The release of 'm' was lost (a shard restarting when the PUBREL came): the publisher
    // reuses id 5 for other messages, which must not be taken for resends.
    vi.setSystemTime(1_767_225_601_000);
    h.publish('t/1', 2, 'n', { origin: 'p' }, dedup(5)); // other payload
    await settle();
    expect(payloads(h.take())).toEqual(['n']);
    expect(stored(h.store).dedupEntries).toEqual([{ key: ['p', 5, 0], fp: messageFingerprint('t/1', Buffer.from('n')), at: 1_767_225_601_000 }]);
    vi.setSystemTime(1_767_225_602_000);
    h.publish('t/2', 2, 'n', { origin: 'p' }, dedup(5)); // other topic, same payload
    await settle();
    expect(payloads(h.take())).toEqual(['n']);
    expect(stored(h.store).dedupEntries).toEqual([{ key: ['p', 5, 0], fp: messageFingerprint('t/2', Buffer.from('n')), at: 1_767_225_602_000 }]);
    expect(h.metrics.get('messages_duplicate_dropped_total')).toBe(0);

    // A resend of the newest one is still caught; the replaced 'm' is not remembered any more.
    h.publish('t/2', 2, 'n', { origin: 'p' }, dedup(5));
    await settle();
    expect(payloads(h.take())).toEqual([]);
    expect(h.metrics.get('messages_duplicate_dropped_total')).toBe(1);
    h.publish('t/1', 2, 'm', { origin: 'p' }, dedup(5));
    await settle();
    expect(payloads(h.take())).toEqual(['m']);
    expect(stored(h.store).dedup).toEqual([['p', 5, 0]]);
  });

  it('after a restart, same key with other content is delivered, same content is not', async () => {
    const store = new MemoryStore();
    const h1 = harness({ store });
    await offline(h1, 's1', [['t', 2]]);
    h1.publish('t', 2, 'm', { origin: 'p' }, dedup(5));
    await settle();
    const h2 = await restart(store);
    h2.ackRoutes();
    h2.publish('t', 2, 'other', { origin: 'p' }, dedup(5));
    await settle();
    expect(h2.actor.sessions.get('s1')!.queuedCount).toBe(2);
    expect(h2.metrics.get('messages_duplicate_dropped_total')).toBe(0);
    h2.publish('t', 2, 'other', { origin: 'p' }, dedup(5));
    await settle();
    expect(h2.actor.sessions.get('s1')!.queuedCount).toBe(2);
    expect(h2.metrics.get('messages_duplicate_dropped_total')).toBe(1);
    expect(stored(store).dedupEntries).toEqual([{ key: ['p', 5, 0], fp: messageFingerprint('t', Buffer.from('other')), at: expect.any(Number) }]);
  });

  it('a duplicate is still answered when it carries a commit token', async () => {
    const h = harness();
    await online(h, 's1', [['t', 2]]);
    const originConn = makeConnId(9, 0);
    h.publish('t', 2, 'm', { origin: 'p', originConn }, { ...dedup(5), ack: 1 });
    await settle();
    h.take();
    h.publish('t', 2, 'm', { origin: 'p', originConn }, { ...dedup(5), ack: 2 });
    await settle();
    expect(h.take()).toEqual([{ t: 'committed', ids: [2] }]);
  });

  it('a message no session on the shard wanted is not remembered', async () => {
    const h = harness();
    h.publish('t', 2, 'm', { origin: 'p' }, dedup(5));
    await settle();
    expect(stored(h.store).dedup).toEqual([]);
  });

  it('the resend check survives a restart (restore)', async () => {
    const store = new MemoryStore();
    const h1 = harness({ store });
    await offline(h1, 's1', [['t', 2]]);
    h1.publish('t', 2, 'm', { origin: 'p' }, dedup(5));
    await settle();
    const h2 = await restart(store);
    h2.ackRoutes();
    h2.publish('t', 2, 'm', { origin: 'p' }, dedup(5));
    await settle();
    expect(h2.actor.sessions.get('s1')!.queuedCount).toBe(1); // the restored copy only
    expect(h2.metrics.get('messages_duplicate_dropped_total')).toBe(1);
  });
});

describe('Journal: restore()', () => {
  it('rebuilds sessions, subscriptions, queued and inflight messages; a resume resends under the same packet ids with DUP', async () => {
    const store = new MemoryStore();
    const h1 = harness({ store, opts: { maxInflight: 2 } });
    const c1 = await online(h1, 'p1', [['t/#', 2]], { cleanStart: false, expiry: NEVER });
    h1.publish('t/a', 1, 'a');
    h1.publish('t/b', 2, 'b');
    h1.publish('t/c', 1, 'c'); // beyond the window: queued
    await settle();
    const [pa, pb] = pubs(h1.take());
    expect([pa, pb].map((p) => text(p!.msg.payload))).toEqual(['a', 'b']);
    h1.ack('p1', c1, 'pubrec', pb!.packetId); // b: PUBREL sent, waiting for PUBCOMP
    h1.shard({ t: 'disconnect', connId: c1, clientId: 'p1', publishWill: false, qos2In: [9] });
    await settle();
    const before = stored(store).outbound('p1');
    expect(before.map((r) => [r.packetId, r.state])).toEqual([
      [pa!.packetId, 'publish'],
      [pb!.packetId, 'pubrel'],
      [undefined, undefined],
    ]);

    // The restart: a new shard on the same store.
    const h2 = await restart(store, { maxInflight: 2 });
    // Messages: a and b (inflight, b past PUBREC) and c (queued).
    expect(h2.restored).toEqual({ sessions: 1, messages: 3, expired: 0 });
    const s = h2.actor.sessions.get('p1')!;
    expect(s.binding).toBeNull();
    expect(s.expiry).toBe(NEVER);
    expect(s.qos2In).toEqual([9]);
    expect([...s.subs]).toEqual([['t/#', { qos: 2, noLocal: false, retainAsPublished: false }]]);
    // In memory, or still only in the store until the client is back (evicted): counted either way.
    expect(s.inflightCount).toBe(2);
    expect(s.queuedCount).toBe(1);
    // Its subscriptions are routes again.
    expect(h2.take()).toEqual([{ t: 'routeAdd', shard: 0, filters: ['t/#'], seq: 1 }]);
    h2.ackRoutes();

    // A publish to a restored subscription queues (the session is offline).
    h2.publish('t/d', 1, 'd');
    await settle();
    expect(s.queuedCount).toBe(2);
    const after = stored(store).outbound('p1');
    expect(after).toHaveLength(4);
    // New stream positions and bodies continue after the stored ones (nothing overwritten).
    const d = after[3]!;
    expect(d.seq).toBeGreaterThan(Math.max(...before.map((r) => r.seq), ...before.map((r) => r.body)));
    expect(stored(store).body(d)).toBe('d');
    expect(stored(store).body(after[0]!)).toBe('a');
    expect(stored(store).body(after[2]!)).toBe('c');

    // Resume: the inflight entries first, with DUP and their old ids, then the queue.
    const c2 = h2.connect('p1', { cleanStart: false, expiry: NEVER });
    await settle();
    const got = h2.take();
    expect(got[0]).toEqual({ t: 'connack', connId: c2, sessionPresent: true, qos2In: [9] });
    // Back in the window under the packet ids they were sent with; c and d wait in the queue.
    expect(text(s.inflight.get(pa!.packetId)!.msg.payload)).toBe('a');
    expect(s.inflight.get(pa!.packetId)!.state).toBe('publish');
    expect(s.inflight.get(pb!.packetId)!.state).toBe('pubrel');
    expect(s.queue.size).toBe(2);
    expect(got.slice(1)).toEqual([
      { t: 'deliver', connId: c2, out: [{ k: 'pub', msg: expect.objectContaining({ topic: 't/a' }), qos: 1, packetId: pa!.packetId, dup: true, retain: false, subIds: undefined }] },
      { t: 'deliver', connId: c2, out: [{ k: 'pubrel', packetId: pb!.packetId }] },
    ]);
    h2.ack('p1', c2, 'puback', pa!.packetId);
    h2.ack('p1', c2, 'pubcomp', pb!.packetId);
    await settle();
    const next = pubs(h2.take());
    expect(next.map((p) => [text(p.msg.payload), p.dup])).toEqual([
      ['c', false],
      ['d', false],
    ]);
    expect(new Set([pa!.packetId, pb!.packetId, ...next.map((p) => p.packetId)]).size).toBe(4);
    // The acknowledged ones left the store; c and d are inflight with their packet ids.
    const end = stored(store);
    expect(end.outbound('p1').map((r) => [end.body(r), r.packetId])).toEqual(next.map((p) => [text(p.msg.payload), p.packetId]));
    expect([...end.bodies.values()].map((b) => text(b.payload)).sort()).toEqual(['c', 'd']);
  });

  it('restores the session record fields (username, uid, will, hold, presub) as written', async () => {
    const store = new MemoryStore();
    const will = { msg: { topic: 'w', payload: Buffer.from('bye'), qos: 1 as QoS, retain: false, origin: 'p1' }, delay: 100_000 };
    const h1 = harness({ store });
    const c = h1.connect('p1', { cleanStart: false, expiry: NEVER, username: 'alice', protocolVersion: 4, receiveMaximum: 20, will });
    await settle();
    h1.shard({ t: 'disconnect', connId: c, clientId: 'p1', publishWill: true, qos2In: [] });
    await settle();
    const h2 = await restart(store);
    cleanups.push(() => h2.actor.sessions.get('p1')?.clearTimers());
    const s = h2.actor.sessions.get('p1')!;
    expect(s).toMatchObject({ username: 'alice', protocolVersion: 4, receiveMaximum: 20, expiry: NEVER, hold: false });
    expect(s.will).toMatchObject({ delay: 100_000, msg: { topic: 'w', qos: 1, origin: 'p1' } });
    expect(text(s.will!.msg.payload)).toBe('bye');
    expect(s.willTimer).toBeDefined(); // the delay is still running
    expect(h2.metrics.get('wills_published_total')).toBe(0);
  });

  it('a session that was online when the shard died comes back offline and its will is due [MQTT-3.1.2-8]', async () => {
    const store = new MemoryStore();
    const will = { msg: { topic: 'w', payload: Buffer.from('lost'), qos: 1 as QoS, retain: false, origin: 'p1' }, delay: 0 };
    const h1 = harness({ store });
    await online(h1, 'p1', [['x', 1]], { cleanStart: false, expiry: NEVER, will });
    expect(stored(store).sessions.get('p1')!.offlineSince).toBeNull();
    const h2 = await restart(store);
    const s = h2.actor.sessions.get('p1')!;
    expect(s.binding).toBeNull();
    expect(s.offlineSince).toEqual(expect.any(Number));
    expect(h2.metrics.get('wills_published_total')).toBe(1);
    expect(s.will).toBeUndefined();
  });

  it('expired sessions are purged at restore (with their records and bodies) and counted', async () => {
    const store = new MemoryStore();
    const gone: SessionRecord = {
      clientId: 'old',
      protocolVersion: 5,
      expiry: 10,
      offlineSince: Date.now() - 3_600_000, // offline for an hour, expiry 10 s
      receiveMaximum: 65535,
      subs: [['old/#', { qos: 1, noLocal: false, retainAsPublished: false }]],
      presub: [],
      hold: false,
      qos2In: [],
    };
    store.putSession(gone);
    store.putBody(100, { topic: 'old/1', payload: Buffer.from('stale'), qos: 1, retain: false });
    store.putOutbound('old', { seq: 101, body: 100, qos: 1, retain: false });
    // A session that is still within its expiry, sharing nothing with the expired one.
    const h1 = harness({ store });
    await offline(h1, 'keep', [['k', 1]]);
    h1.publish('k', 1, 'kept');
    await settle();

    const h2 = await restart(store);
    expect(h2.restored).toEqual({ sessions: 1, messages: 1, expired: 1 });
    expect(h2.metrics.get('sessions_expired_total')).toBe(1);
    expect(h2.actor.sessions.has('old')).toBe(false);
    expect(h2.actor.sessions.get('keep')!.queuedCount).toBe(1);
    // No route for the purged session's subscription.
    expect(h2.gw[0]!.filter((m) => m.t === 'routeAdd').flatMap((m) => (m.t === 'routeAdd' ? m.filters : []))).toEqual(['k']);
    await settle();
    const s = stored(store);
    expect(s.sessions.has('old')).toBe(false);
    expect(s.outbound('old')).toEqual([]);
    expect(s.bodies.has(100)).toBe(false);
    expect([...s.bodies.values()].map((b) => text(b.payload))).toEqual(['kept']);
  });

  it('a body no record points to (a crash between two writes) is compacted at restore', async () => {
    const store = new MemoryStore();
    store.putBody(7, { topic: 'orphan', payload: Buffer.from('x'), qos: 1, retain: false });
    const h = await restart(store);
    expect(h.restored).toEqual({ sessions: 0, messages: 0, expired: 0 });
    await settle();
    expect(store.stats().entries).toBe(0);
  });

  it('a shared body restored for two sessions stays until both acknowledged', async () => {
    const store = new MemoryStore();
    const h1 = harness({ store });
    await offline(h1, 'a', [['t', 1]]);
    await offline(h1, 'b', [['t', 1]]);
    h1.publish('t', 1, 'shared');
    await settle();
    expect(stored(store).bodies.size).toBe(1);

    const h2 = await restart(store);
    h2.ackRoutes();
    const ca = h2.connect('a', { cleanStart: false, expiry: NEVER });
    await settle();
    const [pa] = pubs(h2.take());
    h2.ack('a', ca, 'puback', pa!.packetId);
    await settle();
    expect(stored(store).bodies.size).toBe(1); // b still points to it
    const cb = h2.connect('b', { cleanStart: false, expiry: NEVER });
    await settle();
    const [pb] = pubs(h2.take());
    expect(text(pb!.msg.payload)).toBe('shared');
    h2.ack('b', cb, 'puback', pb!.packetId);
    await settle();
    expect(stored(store).bodies.size).toBe(0);
  });

  it('queued messages beyond a lowered queue limit are dropped (counted) and deleted by the time the client is back', async () => {
    const store = new MemoryStore();
    const h1 = harness({ store });
    await offline(h1, 'p1', [['t', 1]]);
    for (const m of ['m0', 'm1', 'm2']) h1.publish('t', 1, m);
    await settle();
    const h2 = await restart(store, { maxQueuedMessages: 2 });
    expect(h2.restored).toMatchObject({ sessions: 1, expired: 0 });
    h2.ackRoutes();
    h2.connect('p1', { cleanStart: false, expiry: NEVER });
    await settle();
    expect(payloads(h2.take())).toEqual(['m0', 'm1']);
    expect(h2.metrics.get('messages_dropped_total{reason="queue_full"}')).toBe(1);
    const s = stored(store);
    expect(s.outbound('p1').map((r) => s.body(r))).toEqual(['m0', 'm1']);
    expect(s.bodies.size).toBe(2);
  });
});

describe('Journal: used directly', () => {
  const committed: Array<[number, number[]]> = [];
  const journal = (store: MemoryStore) =>
    new Journal(
      store,
      (gw, ids) => void committed.push([gw, ids]),
      (err) => {
        throw err;
      },
    );

  it('touch on a clean session that was never stored writes nothing; a persistent one is written at flush', () => {
    const store = new MemoryStore();
    const j = journal(store);
    const clean = new Session('c', 10);
    j.touch(clean);
    expect(j.pending).toBe(0);
    const p = new Session('p', 10);
    p.expiry = 60;
    j.touch(p);
    expect(j.pending).toBe(1);
    j.flush();
    expect(j.pending).toBe(0);
    expect(p.stored).toBe(true);
    expect(store.loadShard().sessions.map((r) => r.clientId)).toEqual(['p']);
  });

  it('queued() ignores QoS 0 and clean sessions', () => {
    const store = new MemoryStore();
    const j = journal(store);
    const msg: AppMessage = { topic: 't', payload: Buffer.from('x'), qos: 1, retain: false };
    const clean = new Session('c', 10);
    j.queued(clean, { msg, qos: 1, retain: false });
    const p = new Session('p', 10);
    p.expiry = 60;
    const q0: QueuedMessage = { msg, qos: 0, retain: false };
    j.queued(p, q0);
    expect(q0.seq).toBeUndefined();
    expect(store.stats().entries).toBe(0);
    const q1: QueuedMessage = { msg, qos: 1, retain: false };
    j.queued(p, q1);
    expect(q1.seq).toEqual(expect.any(Number));
    expect(store.stats().entries).toBe(2); // one body, one record
  });

  it('commitToken: answered per gateway after the flush of the turn and the store commit', async () => {
    committed.length = 0;
    const j = journal(new MemoryStore());
    j.commitToken(2, 7);
    j.commitToken(2, 8);
    j.commitToken(0, 1);
    expect(committed).toEqual([]);
    await tick(); // end of turn: flush, then the commit resolves
    await tick();
    expect(committed).toEqual([
      [2, [7, 8]],
      [0, [1]],
    ]);
  });

  it('isDuplicate is true only for a key taken in with the same fingerprint; takenIn writes key, fp and time', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(5_000);
    const store = new MemoryStore();
    const j = journal(store);
    const fpA = messageFingerprint('t', Buffer.from('a'));
    const fpB = messageFingerprint('t', Buffer.from('b'));
    expect(fpA).not.toBe(fpB);
    expect(j.isDuplicate(['p', 1, 0], fpA)).toBe(false);
    j.takenIn(['p', 1, 0], fpA);
    expect(j.isDuplicate(['p', 1, 0], fpA)).toBe(true);
    expect(j.isDuplicate(['p', 1, 0], fpB)).toBe(false);
    expect(j.isDuplicate(['p', 1, 1], fpA)).toBe(false);
    expect(j.isDuplicate(['q', 1, 0], fpA)).toBe(false);
    expect(store.loadShard().dedup).toEqual([{ key: ['p', 1, 0], fp: fpA, at: 5_000 }]);
    // Other content under the same key replaces the entry.
    vi.setSystemTime(6_000);
    j.takenIn(['p', 1, 0], fpB);
    expect(j.isDuplicate(['p', 1, 0], fpA)).toBe(false);
    expect(j.isDuplicate(['p', 1, 0], fpB)).toBe(true);
    expect(store.loadShard().dedup).toEqual([{ key: ['p', 1, 0], fp: fpB, at: 6_000 }]);
  });

  it('purgeInbound(olderThan) drops the entries taken in before that time, in memory and in the store', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const store = new MemoryStore();
    const j = journal(store);
    const fp = messageFingerprint('t', Buffer.from('x'));
    vi.setSystemTime(1_000);
    j.takenIn(['p', 1, 0], fp);
    vi.setSystemTime(2_000);
    j.takenIn(['p', 2, 0], fp);
    j.takenIn(['q', 1, 0], fp);
    vi.setSystemTime(3_000);
    j.takenIn(['p', 3, 0], fp);
    j.takenIn(['r', 1, 0], fp);

    expect(j.purgeInbound(1_000)).toBe(0); // only strictly older ones
    expect(j.purgeInbound(2_001)).toBe(3);
    for (const k of [['p', 1, 0], ['p', 2, 0], ['q', 1, 0]] as DedupKey[]) expect(j.isDuplicate(k, fp), JSON.stringify(k)).toBe(false);
    for (const k of [['p', 3, 0], ['r', 1, 0]] as DedupKey[]) expect(j.isDuplicate(k, fp), JSON.stringify(k)).toBe(true);
    const left = store.loadShard().dedup.map((e) => [e.key, e.at]);
    expect(left).toHaveLength(2);
    expect(left).toEqual(expect.arrayContaining([[['p', 3, 0], 3_000], [['r', 1, 0], 3_000]]));
    expect(j.purgeInbound(2_001)).toBe(0);
    expect(j.purgeInbound(Number.MAX_SAFE_INTEGER)).toBe(2);
    expect(store.loadShard().dedup).toEqual([]);
  });

  it('entries read back at start keep fingerprint and time: checked and purged like new ones', () => {
    const store = new MemoryStore();
    store.putDedup({ key: ['p', 1, 0], fp: 7, at: 1_000 });
    store.putDedup({ key: ['p', 2, 0], fp: 8, at: 5_000 });
    const j = journal(store);
    expect(j.load().dedup).toHaveLength(2);
    expect(j.isDuplicate(['p', 1, 0], 7)).toBe(true);
    expect(j.isDuplicate(['p', 1, 0], 8)).toBe(false);
    expect(j.isDuplicate(['p', 2, 0], 8)).toBe(true);
    expect(j.purgeInbound(2_000)).toBe(1);
    expect(j.isDuplicate(['p', 1, 0], 7)).toBe(false);
    expect(j.isDuplicate(['p', 2, 0], 8)).toBe(true);
    expect(store.loadShard().dedup).toEqual([{ key: ['p', 2, 0], fp: 8, at: 5_000 }]);
  });

  it('drop() of a stored session deletes its record and releases the bodies it referenced', () => {
    const store = new MemoryStore();
    const j = journal(store);
    const msg: AppMessage = { topic: 't', payload: Buffer.from('x'), qos: 1, retain: false };
    const p = new Session('p', 10);
    p.expiry = 60;
    j.touch(p);
    j.flush();
    const q: QueuedMessage = { msg, qos: 1, retain: false };
    p.queue.push(q);
    j.queued(p, q);
    j.drop(p);
    expect(store.stats().entries).toBe(0);
    expect(p.stored).toBe(false);
  });
});
