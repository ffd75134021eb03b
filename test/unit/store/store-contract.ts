/**
 * The contract every Store must pass (memory, LMDB). Reads go through `reload()`: the store
 * is read back only at start, so a test commits and (for a disk store) reopens first, as a
 * restarted shard would.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import type { AppMessage } from '../../../src/protocol/messages.js';
import type { DedupEntry, DedupKey, OutboundRecord, SessionRecord, ShardState, Store } from '../../../src/store/types.js';

export interface StoreFactory {
  open(): Promise<Store> | Store;
  /** Closes `old` and opens a new instance on the same file (disk stores only). */
  reopen?(old: Store): Promise<Store>;
}

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));

const msg = (topic: string, payload: string | Uint8Array = 'v', extra: Partial<AppMessage> = {}): AppMessage => ({
  topic,
  payload: typeof payload === 'string' ? bytes(payload) : payload,
  qos: 1,
  retain: false,
  ...extra,
});

const session = (clientId: string, extra: Partial<SessionRecord> = {}): SessionRecord => ({
  clientId,
  protocolVersion: 5,
  expiry: 0,
  offlineSince: null,
  receiveMaximum: 65535,
  subs: [],
  presub: [],
  hold: false,
  qos2In: [],
  ...extra,
});

const out = (seq: number, extra: Partial<OutboundRecord> = {}): OutboundRecord => ({ seq, body: 1, qos: 1, retain: false, ...extra });

/** A dedup entry: the key with a message fingerprint and the time it was taken in. */
const dd = (key: DedupKey, fp = 0x1234_5678, at = 1_767_225_600_000): DedupEntry => ({ key, fp, at });

/**
 * Binary fields come back as Buffer or Uint8Array depending on the store; compare them by
 * their bytes so a record can be checked with one toEqual.
 */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

const byClientId = (a: SessionRecord, b: SessionRecord): number => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0);
const sessionsOf = (st: { sessions: SessionRecord[] }): unknown => plain([...st.sessions].sort(byClientId));
const seqsOf = (st: ShardState, clientId: string): number[] | undefined => st.outbound.get(clientId)?.map((r) => r.seq);
/** The dedup keys a store holds, sorted (as JSON). */
const dedupOf = (st: { dedup: DedupEntry[] }): string[] => st.dedup.map((e) => JSON.stringify(e.key)).sort();
/** Whole dedup entries (key, fp, at), sorted by key. */
const entriesOf = (st: { dedup: DedupEntry[] }): DedupEntry[] =>
  [...st.dedup].sort((a, b) => (JSON.stringify(a.key) < JSON.stringify(b.key) ? -1 : 1)).map((e) => ({ key: [...e.key], fp: e.fp, at: e.at }));
const topicsOf = (ms: AppMessage[]): string[] => ms.map((m) => m.topic).sort();

export function describeStoreContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await factory.open();
    });
    afterEach(async () => {
      await store.close();
    });

    /** Commits and, for a disk store, reopens it: what the next start reads back. */
    async function reload(): Promise<Store> {
      await store.commit();
      if (factory.reopen) store = await factory.reopen(store);
      return store;
    }

    describe('sessions', () => {
      it('putSession then loadShard returns every field of a full MQTT 5 session', async () => {
        const full = session('full', {
          username: 'alice',
          uid: 'u-1',
          ns: 'acme',
          protocolVersion: 5,
          expiry: 0xffffffff,
          offlineSince: null,
          will: {
            msg: msg('last/will', new Uint8Array([0, 1, 2, 0xfe, 0xff]), {
              qos: 2,
              retain: true,
              origin: 'full',
              props: {
                payloadFormatIndicator: true,
                expiresAt: 1_767_225_600_123,
                contentType: 'application/octet-stream',
                responseTopic: 'reply/here',
                correlationData: new Uint8Array([9, 8, 7, 0]),
                userProperties: { a: '1', multi: ['x', 'y'], 'ü': 'ñ' },
              },
            }),
            delay: 30,
          },
          receiveMaximum: 20,
          subs: [
            ['a/+', { qos: 1, noLocal: true, retainAsPublished: false, subId: 7 }],
            ['b/#', { qos: 2, noLocal: false, retainAsPublished: true }],
          ],
          presub: ['im/u-1/#', 'im/acme/all'],
          hold: true,
          qos2In: [1, 65535, 300],
        });
        // A v3.1.1 session with the optional fields absent and a numeric offlineSince.
        const minimal = session('minimal', { protocolVersion: 4, expiry: 0, offlineSince: 1_767_225_600_000, receiveMaximum: 1 });
        store.putSession(full);
        store.putSession(minimal);
        const st = (await reload()).loadShard();
        expect(sessionsOf(st)).toEqual(plain([full, minimal]));
        const got = st.sessions.find((s) => s.clientId === 'full')!;
        expect(got.will!.msg.payload).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(got.will!.msg.payload)).toEqual(Buffer.from([0, 1, 2, 0xfe, 0xff]));
        expect(got.will!.msg.props!.correlationData).toBeInstanceOf(Uint8Array);
        expect(got.expiry).toBe(0xffffffff);
        expect(got.offlineSince).toBeNull();
        const min = st.sessions.find((s) => s.clientId === 'minimal')!;
        expect(min.offlineSince).toBe(1_767_225_600_000);
        expect(min.will).toBeUndefined();
        expect(min.username).toBeUndefined();
      });

      it('a second putSession for the same client id replaces the first', async () => {
        store.putSession(session('c', { username: 'old', subs: [['x', { qos: 0, noLocal: false, retainAsPublished: false }]] }));
        store.putSession(session('other'));
        await reload();
        const next = session('c', { username: 'new', offlineSince: 42, qos2In: [5] });
        store.putSession(next);
        const st = (await reload()).loadShard();
        expect(st.sessions).toHaveLength(2);
        expect(plain(st.sessions.find((s) => s.clientId === 'c'))).toEqual(plain(next));
      });

      it("deleteSession removes the session and all its outbound records, not other sessions' records", async () => {
        // 'ab' shares the prefix of 'a': a key-range delete must not reach it.
        for (const id of ['a', 'ab', 'b']) {
          store.putSession(session(id));
          for (const seq of [1, 2, 3]) store.putOutbound(id, out(seq));
        }
        await reload();
        store.deleteSession('a');
        const st = (await reload()).loadShard();
        expect(st.sessions.map((s) => s.clientId).sort()).toEqual(['ab', 'b']);
        expect(st.outbound.has('a')).toBe(false);
        expect(seqsOf(st, 'ab')).toEqual([1, 2, 3]);
        expect(seqsOf(st, 'b')).toEqual([1, 2, 3]);
      });

      it('deleteSession removes outbound records written in the same turn: a re-created session starts empty', async () => {
        store.putSession(session('c', { username: 'old' }));
        store.putOutbound('c', out(1));
        await reload();
        // Clean start: the old session goes, a new one of the same client id comes.
        store.putOutbound('c', out(2));
        store.putOutbound('c', out(3));
        store.deleteSession('c');
        store.putSession(session('c', { username: 'new' }));
        const st = (await reload()).loadShard();
        expect(st.sessions.map((s) => s.username)).toEqual(['new']);
        expect(st.outbound.get('c') ?? []).toEqual([]);
      });

      it('deleteSession removes outbound records whose commit is still in flight', async () => {
        store.putSession(session('c'));
        store.putOutbound('c', out(1));
        const committed = store.commit();
        await new Promise((resolve) => setImmediate(resolve)); // a later turn, before the commit is done
        store.deleteSession('c');
        store.putSession(session('c', { username: 'new' }));
        await committed;
        const st = (await reload()).loadShard();
        expect(st.sessions.map((s) => s.username)).toEqual(['new']);
        expect(st.outbound.get('c') ?? []).toEqual([]);
      });
    });

    describe('outbound', () => {
      it('loadShard returns outbound records per client id in numeric seq order (seqs up to 2**40)', async () => {
        store.putSession(session('a'));
        store.putSession(session('b'));
        // Out of order, and in an order where a string sort would differ from a numeric one.
        const seqs = [2 ** 40, 5, 2 ** 33, 1, 1000, 2 ** 32 + 1, 256, 0, 2 ** 32, 99];
        for (const seq of seqs) {
          store.putOutbound('a', out(seq, { body: seq }));
          store.putOutbound('b', out(seq + 1, { body: seq + 1, qos: 2 }));
        }
        const st = (await reload()).loadShard();
        const sorted = [...seqs].sort((x, y) => x - y);
        expect(seqsOf(st, 'a')).toEqual(sorted);
        expect(seqsOf(st, 'b')).toEqual(sorted.map((s) => s + 1));
        expect(st.outbound.get('a')!.map((r) => r.body)).toEqual(sorted);
        expect(st.outbound.get('b')!.every((r) => r.qos === 2)).toBe(true);
      });

      it('a putOutbound with the same seq replaces the record: queued -> inflight -> pubrel', async () => {
        store.putSession(session('c'));
        store.putOutbound('c', out(10, { body: 3, qos: 2 }));
        store.putOutbound('c', out(11, { body: 4 }));
        let st = (await reload()).loadShard();
        expect(st.outbound.get('c')![0]!.packetId).toBeUndefined();

        const inflight = out(10, { body: 3, qos: 2, retain: true, subIds: [1, 268_435_455], packetId: 7, state: 'publish' });
        store.putOutbound('c', inflight);
        st = (await reload()).loadShard();
        expect(st.outbound.get('c')).toEqual([inflight, out(11, { body: 4 })]);

        const pubrel = { ...inflight, state: 'pubrel' as const };
        store.putOutbound('c', pubrel);
        st = (await reload()).loadShard();
        expect(st.outbound.get('c')).toEqual([pubrel, out(11, { body: 4 })]);
      });

      it('deleteOutbound removes one record and keeps the others', async () => {
        store.putSession(session('c'));
        store.putSession(session('d'));
        for (const seq of [1, 2, 3]) {
          store.putOutbound('c', out(seq));
          store.putOutbound('d', out(seq));
        }
        await reload();
        store.deleteOutbound('c', 2);
        store.deleteOutbound('c', 99); // unknown seq: nothing happens
        store.deleteOutbound('nobody', 1);
        const st = (await reload()).loadShard();
        expect(seqsOf(st, 'c')).toEqual([1, 3]);
        expect(seqsOf(st, 'd')).toEqual([1, 2, 3]);
      });
    });

    describe('loadShardIndex / loadOutbound', () => {
      it('loadShardIndex returns what loadShard does, with body ids instead of bodies', async () => {
        store.putSession(session('a', { username: 'ua' }));
        store.putSession(session('b'));
        store.putOutbound('a', out(2, { body: 20 }));
        store.putOutbound('a', out(1, { body: 10 }));
        store.putBody(10, msg('t/10'));
        store.putBody(20, msg('t/20'));
        store.putDedup(dd(['pub', 1, 0], 77, 1_700_000_000_123));
        const s = await reload();
        const full = s.loadShard();
        const index = s.loadShardIndex();
        expect(sessionsOf(index)).toEqual(sessionsOf(full));
        expect(index.outbound).toEqual(full.outbound);
        expect([...index.bodyIds].sort((x, y) => x - y)).toEqual([10, 20]);
        expect(index.dedup).toEqual(full.dedup);
        expect(entriesOf(index)).toEqual([dd(['pub', 1, 0], 77, 1_700_000_000_123)]);
      });

      it("loadOutbound returns one session's records in seq order, with their bodies only when asked", async () => {
        store.putSession(session('a'));
        store.putSession(session('ab'));
        for (const seq of [2 ** 40, 3, 1]) store.putOutbound('a', out(seq, { body: seq === 1 ? 7 : 8 }));
        store.putOutbound('ab', out(5, { body: 9 }));
        store.putBody(7, msg('t/7', 'seven'));
        store.putBody(8, msg('t/8', 'eight'));
        store.putBody(9, msg('t/9'));
        const s = await reload();

        const bare = s.loadOutbound('a', false);
        expect(bare.outbound.map((r) => r.seq)).toEqual([1, 3, 2 ** 40]);
        expect(bare.bodies.size).toBe(0);

        const withBodies = s.loadOutbound('a', true);
        expect(withBodies.outbound).toEqual(bare.outbound);
        expect([...withBodies.bodies.keys()].sort()).toEqual([7, 8]);
        expect(Buffer.from(withBodies.bodies.get(7)!.payload).toString()).toBe('seven');

        const none = s.loadOutbound('nobody', true);
        expect(none.outbound).toEqual([]);
        expect(none.bodies.size).toBe(0);
      });
    });

    describe('bodies', () => {
      it('putBody round-trips message bodies byte for byte', async () => {
        const all = new Uint8Array(256).map((_, i) => i);
        const big = new Uint8Array(256 * 1024).map((_, i) => (i * 31) & 0xff);
        const bodies = new Map<number, AppMessage>([
          [1, msg('t/all', all, { qos: 2, origin: 'pub', props: { correlationData: new Uint8Array([0, 0, 1]), userProperties: { k: 'v' } } })],
          [2, msg('t/empty', new Uint8Array(0), { retain: true })],
          [3, msg('t/big', big, { carbon: true, origin: 'x' })],
          [2 ** 40, msg('t/text', 'héllo 🚀')],
        ]);
        for (const [id, m] of bodies) store.putBody(id, m);
        const st = (await reload()).loadShard();
        expect([...st.bodies.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 2 ** 40]);
        for (const [id, m] of bodies) {
          const got = st.bodies.get(id)!;
          expect(got.payload).toBeInstanceOf(Uint8Array);
          expect(Buffer.compare(Buffer.from(got.payload), Buffer.from(m.payload))).toBe(0);
          expect(plain(got)).toEqual(plain(m));
        }
      });

      it('deleteBody removes one body and keeps the others', async () => {
        store.putBody(1, msg('a'));
        store.putBody(2, msg('b'));
        await reload();
        store.deleteBody(1);
        store.deleteBody(77); // unknown id: nothing happens
        const st = (await reload()).loadShard();
        expect([...st.bodies.keys()]).toEqual([2]);
        expect(st.bodies.get(2)!.topic).toBe('b');
      });

      it('many sessions reference one body id, stored once', async () => {
        store.putBody(42, msg('fan/out', 'shared'));
        for (let i = 0; i < 50; i++) {
          store.putSession(session(`s${i}`));
          store.putOutbound(`s${i}`, out(1, { body: 42 }));
        }
        let st = (await reload()).loadShard();
        expect(st.bodies.size).toBe(1);
        expect(st.outbound.size).toBe(50);
        for (const list of st.outbound.values()) expect(list.map((r) => r.body)).toEqual([42]);

        // Deleting one session's record leaves the body for the others.
        store.deleteSession('s0');
        st = (await reload()).loadShard();
        expect(st.outbound.size).toBe(49);
        expect(Buffer.from(st.bodies.get(42)!.payload).toString()).toBe('shared');
      });
    });

    describe('dedup', () => {
      it('putDedup / deleteDedup: deleting one key keeps the others', async () => {
        const keys: DedupKey[] = [
          ['pub', 1, 0],
          ['pub', 1, 1],
          ['pub', 2, 0],
          ['other', 1, 0],
        ];
        for (const k of keys) store.putDedup(dd(k));
        expect(dedupOf((await reload()).loadShard())).toEqual(keys.map((k) => JSON.stringify(k)).sort());
        store.deleteDedup(['pub', 1, 0]);
        store.deleteDedup(['pub', 9, 0]); // unknown: nothing happens
        expect(dedupOf((await reload()).loadShard())).toEqual(keys.slice(1).map((k) => JSON.stringify(k)).sort());
      });

      it('fp and at round-trip per entry (full uint32 fingerprints, ms timestamps), in loadShard and loadShardIndex', async () => {
        const entries: DedupEntry[] = [
          dd(['pub', 1, 0], 0, 0),
          dd(['pub', 1, 1], 0xffffffff, 1_767_225_600_123),
          dd(['pub', 65535, 0], 0x8000_0000, 2 ** 42),
          dd(['other', 7, 3], 1, Date.now()),
        ];
        for (const e of entries) store.putDedup(e);
        const s = await reload();
        const expected = entriesOf({ dedup: entries });
        expect(entriesOf(s.loadShard())).toEqual(expected);
        expect(entriesOf(s.loadShardIndex())).toEqual(expected);
        for (const e of s.loadShard().dedup) {
          expect(typeof e.fp).toBe('number');
          expect(typeof e.at).toBe('number');
        }
      });

      it('a second putDedup for the same key replaces the entry (a new message reusing the packet id)', async () => {
        store.putDedup(dd(['pub', 5, 0], 111, 1000));
        store.putDedup(dd(['pub', 6, 0], 222, 2000));
        await reload();
        store.putDedup(dd(['pub', 5, 0], 333, 3000));
        const st = (await reload()).loadShard();
        expect(st.dedup).toHaveLength(2);
        expect(entriesOf(st)).toEqual([dd(['pub', 5, 0], 333, 3000), dd(['pub', 6, 0], 222, 2000)]);
        // Replaced in the same turn as well: the last write wins.
        store.putDedup(dd(['pub', 6, 0], 444, 4000));
        store.putDedup(dd(['pub', 6, 0], 555, 5000));
        expect(entriesOf((await reload()).loadShard())).toEqual([dd(['pub', 5, 0], 333, 3000), dd(['pub', 6, 0], 555, 5000)]);
      });

      it('long (5000 chars) and unicode origins come back exactly as written', async () => {
        const origins = ['o'.repeat(5000), 'o'.repeat(4999) + 'p', 'é'.repeat(200), 'é'.repeat(201), '🚀'.repeat(1500), '日本語クライアント'];
        for (const [i, o] of origins.entries()) {
          store.putDedup(dd([o, 65535, 0], i, 1000 + i));
          store.putDedup(dd([o, 1, 2], 100 + i, 2000 + i));
        }
        let st = (await reload()).loadShard();
        expect(st.dedup).toHaveLength(origins.length * 2);
        expect(dedupOf(st)).toEqual(origins.flatMap((o) => [[o, 65535, 0], [o, 1, 2]]).map((k) => JSON.stringify(k)).sort());
        // Each long (hashed) key keeps its own fp and at.
        for (const [i, o] of origins.entries()) {
          expect(st.dedup.find((e) => e.key[0] === o && e.key[1] === 65535)).toMatchObject({ fp: i, at: 1000 + i });
          expect(st.dedup.find((e) => e.key[0] === o && e.key[1] === 1)).toMatchObject({ fp: 100 + i, at: 2000 + i });
        }

        for (const o of origins) store.deleteDedup([o, 65535, 0]);
        st = (await reload()).loadShard();
        expect(dedupOf(st)).toEqual(origins.map((o) => JSON.stringify([o, 1, 2])).sort());
      });
    });

    describe('long client ids', () => {
      it('60,000-char client ids work for sessions and outbound records', async () => {
        // Two long ids differing only at the end: each needs its own key.
        const long1 = 'c'.repeat(60_000);
        const long2 = 'c'.repeat(59_999) + 'd';
        for (const id of [long1, long2]) {
          store.putSession(session(id, { username: id.slice(-1) }));
          for (const seq of [3, 1, 2]) store.putOutbound(id, out(seq));
        }
        let st = (await reload()).loadShard();
        expect(st.sessions.map((s) => s.clientId).sort()).toEqual([long1, long2]);
        expect(st.sessions.find((s) => s.clientId === long2)!.username).toBe('d');
        expect(seqsOf(st, long1)).toEqual([1, 2, 3]);
        expect(seqsOf(st, long2)).toEqual([1, 2, 3]);

        store.deleteOutbound(long2, 2);
        store.deleteSession(long1);
        st = (await reload()).loadShard();
        expect(st.sessions.map((s) => s.clientId)).toEqual([long2]);
        expect(st.outbound.has(long1)).toBe(false);
        expect(seqsOf(st, long2)).toEqual([1, 3]);
      });
    });

    describe('retained', () => {
      it('putRetained keeps one message per topic: a new one replaces the old', async () => {
        store.putRetained(msg('a/b', 'one', { retain: true }));
        store.putRetained(msg('a', 'x', { retain: true }));
        await reload();
        store.putRetained(msg('a/b', 'two', { retain: true, qos: 2 }));
        const got = (await reload()).loadRetained();
        expect(topicsOf(got)).toEqual(['a', 'a/b']);
        const ab = got.find((m) => m.topic === 'a/b')!;
        expect(Buffer.from(ab.payload).toString()).toBe('two');
        expect(ab.qos).toBe(2);
      });

      it('deleteRetained removes one topic and keeps the others', async () => {
        for (const t of ['a', 'a/b', 'c']) store.putRetained(msg(t));
        await reload();
        store.deleteRetained('a/b');
        store.deleteRetained('nothing/here');
        expect(topicsOf((await reload()).loadRetained())).toEqual(['a', 'c']);
      });

      it('a 65,000-byte topic works (put, replace, delete)', async () => {
        const long = 't/' + 'x'.repeat(64_998);
        const longUnicode = 'ü/'.repeat(300); // 900 bytes in 600 chars
        expect(Buffer.byteLength(long)).toBe(65_000);
        store.putRetained(msg(long, 'one'));
        store.putRetained(msg(longUnicode, 'u'));
        store.putRetained(msg('short', 's'));
        await reload();
        store.putRetained(msg(long, 'two'));
        let got = (await reload()).loadRetained();
        expect(topicsOf(got)).toEqual([long, longUnicode, 'short'].sort());
        expect(Buffer.from(got.find((m) => m.topic === long)!.payload).toString()).toBe('two');

        store.deleteRetained(long);
        got = (await reload()).loadRetained();
        expect(topicsOf(got)).toEqual([longUnicode, 'short'].sort());
      });
    });

    describe('docs', () => {
      it('putDoc / getDoc round-trip a nested object; a later putDoc replaces it', async () => {
        const doc = { users: [{ uid: 'u1', groups: ['g1', 'g2'], meta: { n: 1, ok: true, none: null } }], version: 3, nested: { deep: { deeper: [1, [2, 3]] } } };
        store.putDoc('im', doc);
        expect((await reload()).getDoc('im')).toEqual(doc);
        store.putDoc('im', { version: 4 });
        expect((await reload()).getDoc('im')).toEqual({ version: 4 });
      });

      it('getDoc of an unknown name is undefined', async () => {
        expect(store.getDoc('no-such-doc')).toBeUndefined();
        expect((await reload()).getDoc('no-such-doc')).toBeUndefined();
      });
    });

    describe('commit and durability', () => {
      it('commit() resolves, with and without pending writes, also when called concurrently', async () => {
        await expect(store.commit()).resolves.toBeUndefined();
        store.putBody(1, msg('a'));
        const first = store.commit();
        store.putBody(2, msg('b'));
        await expect(Promise.all([first, store.commit()])).resolves.toEqual([undefined, undefined]);
      });

      it('after commit() and a reopen everything written is there', async () => {
        store.putSession(session('c', { username: 'u', subs: [['t/#', { qos: 1, noLocal: false, retainAsPublished: false, subId: 3 }]] }));
        store.putOutbound('c', out(1, { body: 9 }));
        store.putOutbound('c', out(2, { body: 9, packetId: 4 }));
        store.putBody(9, msg('t/x', new Uint8Array([1, 2, 3])));
        store.putDedup(dd(['pub', 7, 0], 42, 1_767_225_600_999));
        store.putRetained(msg('t/r', 'kept', { retain: true }));
        store.putDoc('im', { a: 1 });
        const s = await reload();
        const st = s.loadShard();
        expect(st.sessions.map((x) => x.clientId)).toEqual(['c']);
        expect(st.sessions[0]!.subs[0]![1].subId).toBe(3);
        expect(st.outbound.get('c')).toEqual([out(1, { body: 9 }), out(2, { body: 9, packetId: 4 })]);
        expect(Buffer.from(st.bodies.get(9)!.payload)).toEqual(Buffer.from([1, 2, 3]));
        expect(st.dedup).toEqual([dd(['pub', 7, 0], 42, 1_767_225_600_999)]);
        expect(topicsOf(s.loadRetained())).toEqual(['t/r']);
        expect(s.getDoc('im')).toEqual({ a: 1 });
      });

      it('a burst of 10,000 putOutbound in one turn, then one commit(), is all there after reopen', async () => {
        const n = 10_000;
        store.putSession(session('a'));
        store.putSession(session('b'));
        for (let i = n - 1; i >= 0; i--) store.putOutbound(i % 2 ? 'a' : 'b', out(i, { body: i }));
        const st = (await reload()).loadShard();
        const a = st.outbound.get('a')!;
        const b = st.outbound.get('b')!;
        expect(a.length + b.length).toBe(n);
        expect(a.map((r) => r.seq)).toEqual(Array.from({ length: n / 2 }, (_, i) => 2 * i + 1));
        expect(b.map((r) => r.seq)).toEqual(Array.from({ length: n / 2 }, (_, i) => 2 * i));
      });
    });

    describe('stats', () => {
      it('stats().entries grows with puts and shrinks after deletes', async () => {
        await store.commit();
        const base = store.stats();
        expect(base.entries).toBeGreaterThanOrEqual(0);

        store.putSession(session('c'));
        for (const seq of [1, 2, 3]) store.putOutbound('c', out(seq));
        store.putBody(1, msg('a'));
        store.putDedup(dd(['p', 1, 0]));
        store.putRetained(msg('r'));
        store.putDoc('d', { x: 1 });
        await store.commit();
        const grown = store.stats();
        expect(grown.entries).toBe(base.entries + 8);
        if (store.kind === 'lmdb') expect(grown.bytes).toBeGreaterThan(0);
        else expect(grown.bytes).toBe(0);

        store.deleteSession('c');
        store.deleteBody(1);
        store.deleteDedup(['p', 1, 0]);
        store.deleteRetained('r');
        await store.commit();
        expect(store.stats().entries).toBe(base.entries + 1); // the doc
      });
    });

    describe('close', () => {
      it('close() commits pending writes: a reopen after it keeps the data', async () => {
        store.putSession(session('c'));
        store.putOutbound('c', out(1));
        store.putDoc('d', { v: 1 });
        // No commit(): close() must do it.
        if (factory.reopen) store = await factory.reopen(store);
        else await store.close();
        const st = store.loadShard();
        expect(st.sessions.map((s) => s.clientId)).toEqual(['c']);
        expect(seqsOf(st, 'c')).toEqual([1]);
        expect(store.getDoc('d')).toEqual({ v: 1 });
      });
    });
  });
}
