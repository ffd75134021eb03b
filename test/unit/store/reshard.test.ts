/**
 * reshardIfNeeded (src/store/reshard.ts): a data dir written with another shard count has
 * its sessions moved, with their messages, to the store of the shard each belongs to now
 * (shardOf(clientId, count)), before any shard starts. Real LmdbStores under a temporary
 * store dir; the coordinator's store (which keeps the layout) lives beside them, as
 * coordinator.mdb does in `{dataDir}/store/`.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppMessage } from '../../../src/protocol/messages.js';
import { shardOf } from '../../../src/runtime/sharding.js';
import { LmdbStore } from '../../../src/store/lmdb-store.js';
import { reshardIfNeeded, type Layout } from '../../../src/store/reshard.js';
import type { DedupEntry, OutboundRecord, SessionRecord, Store } from '../../../src/store/types.js';

const log = pino({ level: 'silent' });

/** One message of a session's stream as the client must see it (ids and seqs aside). */
interface Msg {
  /** Null: a QoS 2 message past PUBREC ('pubrel'), whose body is gone. */
  body: { topic: string; payload: Uint8Array } | null;
  /** All sessions of one old store that have this set point to one body there. */
  shared?: boolean;
  qos: 1 | 2;
  retain: boolean;
  packetId?: number;
  state?: 'publish' | 'pubrel';
  subIds?: number[];
}

interface Fixture {
  record: SessionRecord;
  stream: Msg[];
}

const OLD_SHARDS = 2;
const SHARED = { topic: 'fan/out', payload: new Uint8Array(Buffer.from('shared by many')) };

/** Every byte value, and a few per session, so a payload that is moved wrongly shows. */
const binary = (i: number): Uint8Array => new Uint8Array([i, 0, 255, ...Array.from({ length: 256 }, (_, k) => (k * 7 + i) & 0xff)]);

function fixtures(): Fixture[] {
  const ids = [...Array.from({ length: 14 }, (_, i) => `dev-${i}`), 'José/📱', 'x'.repeat(500)]; // 500 chars: a hashed LMDB key
  return ids.map((clientId, i) => {
    const record: SessionRecord = {
      clientId,
      username: i % 2 ? `user-${i}` : undefined,
      protocolVersion: i % 3 === 0 ? 4 : 5,
      expiry: 0xffffffff,
      offlineSince: 1_767_225_600_000 + i,
      receiveMaximum: 10 + i,
      subs: [[`t/${i}/#`, { qos: 2, noLocal: false, retainAsPublished: i % 2 === 0, subId: i + 1 }]],
      presub: i % 4 === 0 ? [`im/${i}`] : [],
      hold: false,
      qos2In: [i + 1],
    };
    if (record.username === undefined) delete record.username;
    const stream: Msg[] =
      i % 5 === 4
        ? [] // a session with nothing waiting
        : [
            { body: SHARED, shared: true, qos: 1, retain: false },
            { body: { topic: `t/${i}/bin`, payload: binary(i) }, qos: 2, retain: false, packetId: 10 + i, state: 'publish', subIds: [i + 1] },
            { body: null, qos: 2, retain: false, packetId: 100 + i, state: 'pubrel' },
            { body: { topic: `t/${i}/text`, payload: new Uint8Array(Buffer.from(`m-${i} héllo`)) }, qos: 1, retain: true },
            { body: SHARED, shared: true, qos: 2, retain: false, subIds: [1, 2] },
          ];
    return { record, stream };
  });
}

/** Per old store: the dedup entries written there. */
const DEDUP: DedupEntry[][] = [
  [{ key: ['pubA', 1, 0], fp: 11, at: 1000 }],
  [
    { key: ['pubB', 2, 1], fp: 22, at: 2000 },
    { key: ['pubC', 65535, 0], fp: 0xffffffff, at: 3000 },
  ],
];
const ALL_DEDUP = DEDUP.flat();

let dir: string;
let storeDir: string;
let coord: LmdbStore;

const shardPath = (j: number, under = storeDir): string => join(under, `shard-${j}.mdb`);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sb-reshard-'));
  storeDir = join(dir, 'store');
  coord = new LmdbStore({ path: join(storeDir, 'coordinator.mdb'), fsync: true });
});

afterEach(async () => {
  await coord.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Writes `fx` into shard-0.mdb..shard-{n-1}.mdb under `under` as a shard would: each
 * session in the store of shardOf(clientId, n); seqs interleaved over the sessions of a
 * store and body ids numbered per store, with one shared body per store.
 */
async function seed(fx: Fixture[], n = OLD_SHARDS, under = storeDir): Promise<void> {
  const stores = Array.from({ length: n }, (_, j) => new LmdbStore({ path: shardPath(j, under), fsync: true }));
  const next = new Array<number>(n).fill(500);
  const sharedId = new Array<number>(n).fill(0);
  const mine = (j: number) => fx.filter((f) => shardOf(f.record.clientId, n) === j);
  for (let j = 0; j < n; j++) {
    const s = stores[j]!;
    for (const f of mine(j)) s.putSession(f.record);
    // Interleaved: message k of every session, then message k+1: seqs of one session are not contiguous.
    for (let k = 0; k < 5; k++) {
      for (const f of mine(j)) {
        const m = f.stream[k];
        if (!m) continue;
        let body = 0;
        if (m.body && m.shared) {
          if (sharedId[j] === 0) s.putBody((sharedId[j] = next[j]++), message(m.body, m.qos));
          body = sharedId[j]!;
        } else if (m.body) s.putBody((body = next[j]++), message(m.body, m.qos));
        const r: OutboundRecord = { seq: (next[j] += 3), body, qos: m.qos, retain: m.retain };
        if (m.packetId !== undefined) r.packetId = m.packetId;
        if (m.state !== undefined) r.state = m.state;
        if (m.subIds) r.subIds = m.subIds;
        s.putOutbound(f.record.clientId, r);
      }
    }
    for (const e of DEDUP[j] ?? []) s.putDedup(e);
  }
  for (const s of stores) await s.close();
}

const message = (b: { topic: string; payload: Uint8Array }, qos: 1 | 2): AppMessage => ({ topic: b.topic, payload: b.payload, qos, retain: false, origin: 'publisher' });

/** Reads every shard store under storeDir (read-only use; closed before returning). */
async function readAll(n: number): Promise<Array<ReturnType<Store['loadShard']>>> {
  const out: Array<ReturnType<Store['loadShard']>> = [];
  for (let j = 0; j < n; j++) {
    const s = new LmdbStore({ path: shardPath(j), fsync: true });
    out.push(s.loadShard());
    await s.close();
  }
  return out;
}

/** Binary fields as hex: records compare with one toEqual whether they come back as Buffer or Uint8Array. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

const shardFiles = (): string[] => readdirSync(storeDir).filter((f) => f.startsWith('shard-')).sort();
const expectedFiles = (n: number): string[] => Array.from({ length: n }, (_, j) => [`shard-${j}.mdb`, `shard-${j}.mdb-lock`]).flat().sort();
const sortDedup = (es: DedupEntry[]): DedupEntry[] => [...es].map((e) => ({ key: [...e.key], fp: e.fp, at: e.at }) as DedupEntry).sort((a, b) => (JSON.stringify(a.key) < JSON.stringify(b.key) ? -1 : 1));

/**
 * The store dir holds exactly the stores of `n` shards and each session is in the store of
 * shardOf(clientId, n), nowhere else, with its stream in order and byte-equal bodies.
 * `maxShared`: how many copies of the shared body a store may hold (one per store it came
 * from: 2 after one step from the 2-shard fixture).
 */
async function expectLayout(fx: Fixture[], n: number, maxShared = OLD_SHARDS): Promise<void> {
  expect(shardFiles()).toEqual(expectedFiles(n));
  expect(existsSync(join(storeDir, 'reshard-new'))).toBe(false);
  expect(existsSync(join(storeDir, 'reshard-old'))).toBe(false);
  expect(coord.getDoc<Layout>('layout')).toEqual({ shards: n });
  const states = await readAll(n);
  for (const [j, st] of states.entries()) {
    const want = fx.filter((f) => shardOf(f.record.clientId, n) === j);
    expect(st.sessions.map((s) => s.clientId).sort(), `shard ${j} of ${n}`).toEqual(want.map((f) => f.record.clientId).sort());
    const referenced = new Set<number>();
    const sharedIds = new Set<number>();
    for (const f of want) {
      const id = f.record.clientId;
      expect(plain(st.sessions.find((s) => s.clientId === id)), id).toEqual(plain(f.record));
      const records = st.outbound.get(id) ?? [];
      // In the order the client must see them (seq order), each as it was.
      const got = records.map((r): Msg => {
        const m: Msg = { body: null, qos: r.qos, retain: r.retain };
        if (r.state !== 'pubrel') {
          const b = st.bodies.get(r.body);
          expect(b, `${id}: body ${r.body}`).toBeDefined();
          m.body = { topic: b!.topic, payload: b!.payload };
          referenced.add(r.body);
        }
        if (r.packetId !== undefined) m.packetId = r.packetId;
        if (r.state !== undefined) m.state = r.state;
        if (r.subIds !== undefined) m.subIds = r.subIds;
        return m;
      });
      expect(plain(got), id).toEqual(plain(f.stream.map(({ shared: _, ...m }) => m)));
      const seqs = records.map((r) => r.seq);
      expect(seqs, id).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
      // The shared records of one session point to one body (not a copy per record).
      const mineShared = new Set(records.filter((_, k) => f.stream[k]!.shared).map((r) => r.body));
      expect(mineShared.size, id).toBeLessThanOrEqual(1);
      for (const b of mineShared) sharedIds.add(b);
    }
    // Payloads byte for byte (plain() above compares hex; this checks the type too).
    for (const b of st.bodies.values()) expect(b.payload).toBeInstanceOf(Uint8Array);
    // A body shared in an old store is shared again (stored once per old store it came from), and no body is left over.
    expect(sharedIds.size).toBeLessThanOrEqual(maxShared);
    expect([...st.bodies.keys()].sort()).toEqual([...referenced].sort());
    // Which new shard had subscribers of an inbound QoS 2 message is unknown: every store keeps every key.
    expect(sortDedup(st.dedup), `dedup of shard ${j}`).toEqual(sortDedup(ALL_DEDUP));
  }
}

describe('reshardIfNeeded', () => {
  it('the fixture spreads over every shard of 1, 2 and 3', () => {
    const fx = fixtures();
    for (const n of [2, 3]) for (let j = 0; j < n; j++) expect(fx.some((f) => shardOf(f.record.clientId, n) === j), `${j} of ${n}`).toBe(true);
    // Some sessions change shard from 2 to 3, some do not.
    expect(fx.some((f) => shardOf(f.record.clientId, 2) !== shardOf(f.record.clientId, 3))).toBe(true);
    expect(fx.some((f) => shardOf(f.record.clientId, 2) === shardOf(f.record.clientId, 3))).toBe(true);
  });

  it('the first call records the layout; the same count again leaves the stores as they are', async () => {
    const fx = fixtures();
    await seed(fx);
    const before = await readAll(OLD_SHARDS);
    await reshardIfNeeded(storeDir, 2, coord, log);
    expect(coord.getDoc<Layout>('layout')).toEqual({ shards: 2 });
    expect(shardFiles()).toEqual(expectedFiles(2));
    // Not rewritten: same seqs and body ids as written.
    expect(plain(await readAll(OLD_SHARDS))).toEqual(plain(before));
    await reshardIfNeeded(storeDir, 2, coord, log);
    expect(plain(await readAll(OLD_SHARDS))).toEqual(plain(before));
  });

  it('2 -> 3: every session moves to the store of shardOf(clientId, 3) with its stream, bodies and the dedup keys', async () => {
    const fx = fixtures();
    await seed(fx);
    await reshardIfNeeded(storeDir, 2, coord, log);
    await reshardIfNeeded(storeDir, 3, coord, log);
    await expectLayout(fx, 3);
    // The coordinator's own store beside them is untouched.
    expect(existsSync(join(storeDir, 'coordinator.mdb'))).toBe(true);
  });

  it('2 -> 1: everything ends in shard-0.mdb; shard-1.mdb and its lock file are gone', async () => {
    const fx = fixtures();
    await seed(fx);
    await reshardIfNeeded(storeDir, 2, coord, log);
    await reshardIfNeeded(storeDir, 1, coord, log);
    await expectLayout(fx, 1);
    expect(existsSync(shardPath(1))).toBe(false);
    expect(existsSync(`${shardPath(1)}-lock`)).toBe(false);
  });

  it('2 -> 3 -> 1 -> 2: a chain of changes loses and duplicates nothing', async () => {
    const fx = fixtures();
    await seed(fx);
    await reshardIfNeeded(storeDir, 2, coord, log);
    // Copies of the shared body per store: one per copy in each store it came from (2 after
    // 2 -> 3, then at most 3 x 2 after 3 -> 1, then 1 x 6 after 1 -> 2).
    let maxShared = 1;
    let from = OLD_SHARDS;
    for (const n of [3, 1, 2]) {
      await reshardIfNeeded(storeDir, n, coord, log);
      maxShared *= from;
      await expectLayout(fx, n, maxShared);
      from = n;
    }
  });

  it('a resharded store can be resharded without the layout doc: the count is taken from the files', async () => {
    const fx = fixtures();
    await seed(fx); // no layout recorded: an older version's data dir
    expect(coord.getDoc('layout')).toBeUndefined();
    await reshardIfNeeded(storeDir, 3, coord, log);
    await expectLayout(fx, 3);
  });

  it('a leftover reshard-old/ without reshard-new/complete is rolled back (old files restored), then resharded', async () => {
    const fx = fixtures();
    await seed(fx);
    await reshardIfNeeded(storeDir, 2, coord, log);
    // A run towards 3 shards died after moving the old files aside and putting (some of)
    // the new ones in place, before it recorded the layout: the new set is not trusted.
    const oldDir = join(storeDir, 'reshard-old');
    mkdirSync(oldDir);
    for (const f of shardFiles()) renameSync(join(storeDir, f), join(oldDir, f));
    const bogus: Fixture[] = [{ record: { ...fx[0]!.record, clientId: 'bogus' }, stream: [] }];
    await seed(bogus, 3); // a new set that is not the right one
    mkdirSync(join(storeDir, 'reshard-new'));
    writeFileSync(join(storeDir, 'reshard-new', 'junk'), 'partial');
    expect(shardFiles()).toEqual(expectedFiles(3));

    await reshardIfNeeded(storeDir, 3, coord, log);
    await expectLayout(fx, 3); // the original sessions, nothing of the bogus set
  });

  it('a leftover reshard-old/ is rolled back also when the count is back to the old one', async () => {
    const fx = fixtures();
    await seed(fx);
    await reshardIfNeeded(storeDir, 2, coord, log);
    const before = await readAll(OLD_SHARDS);
    const oldDir = join(storeDir, 'reshard-old');
    mkdirSync(oldDir);
    for (const f of shardFiles()) renameSync(join(storeDir, f), join(oldDir, f));
    await seed([{ record: { ...fx[0]!.record, clientId: 'bogus' }, stream: [] }], 1);
    await reshardIfNeeded(storeDir, 2, coord, log);
    // Restored as they were: the same stores under the same names, nothing moved or rewritten.
    expect(shardFiles()).toEqual(expectedFiles(2));
    expect(existsSync(oldDir)).toBe(false);
    expect(coord.getDoc<Layout>('layout')).toEqual({ shards: 2 });
    expect(plain(await readAll(OLD_SHARDS))).toEqual(plain(before));
  });

  it('a leftover reshard-old/ with a complete reshard-new/ is finished, losing nothing', async () => {
    const fx = fixtures();
    // The complete new set, as a clean run makes it (in a sibling directory).
    const ref = join(dir, 'ref');
    await seed(fx, OLD_SHARDS, ref);
    const refCoord = new LmdbStore({ path: join(dir, 'ref-coordinator.mdb'), fsync: true });
    await reshardIfNeeded(ref, 3, refCoord, log);
    await refCoord.close();

    await seed(fx);
    await reshardIfNeeded(storeDir, 2, coord, log);
    const newDir = join(storeDir, 'reshard-new');
    mkdirSync(newDir);
    for (const f of readdirSync(ref)) if (f.startsWith('shard-')) renameSync(join(ref, f), join(newDir, f));
    writeFileSync(join(newDir, 'complete'), String(Date.now()));
    const oldDir = join(storeDir, 'reshard-old');
    mkdirSync(oldDir);
    for (const f of shardFiles()) renameSync(join(storeDir, f), join(oldDir, f));

    await reshardIfNeeded(storeDir, 3, coord, log);
    await expectLayout(fx, 3);
  });

  it('a leftover reshard-new/ without complete (a crash while writing it) is discarded and the reshard redone', async () => {
    const fx = fixtures();
    await seed(fx);
    await reshardIfNeeded(storeDir, 2, coord, log);
    await seed([{ record: { ...fx[0]!.record, clientId: 'bogus' }, stream: [] }], 3, join(storeDir, 'reshard-new'));
    await reshardIfNeeded(storeDir, 3, coord, log);
    await expectLayout(fx, 3);
  });

  it('a data dir with no shard files just records the layout', async () => {
    await reshardIfNeeded(storeDir, 4, coord, log);
    expect(coord.getDoc<Layout>('layout')).toEqual({ shards: 4 });
    expect(shardFiles()).toEqual([]);
    expect(readdirSync(storeDir).filter((f) => f.startsWith('reshard'))).toEqual([]);
  });

  it('a store dir that does not exist yet: the layout is recorded, nothing is created', async () => {
    const missing = join(dir, 'nowhere', 'store');
    await reshardIfNeeded(missing, 3, coord, log);
    expect(coord.getDoc<Layout>('layout')).toEqual({ shards: 3 });
    expect(existsSync(missing)).toBe(false);
  });

  it('the layout survives a reopen of the coordinator store', async () => {
    const fx = fixtures();
    await seed(fx);
    await reshardIfNeeded(storeDir, 3, coord, log);
    await coord.close();
    coord = new LmdbStore({ path: join(storeDir, 'coordinator.mdb'), fsync: true });
    expect(coord.getDoc<Layout>('layout')).toEqual({ shards: 3 });
    // Same count at the next start: nothing to do.
    const before = await readAll(3);
    await reshardIfNeeded(storeDir, 3, coord, log);
    expect(plain(await readAll(3))).toEqual(plain(before));
  });
});
