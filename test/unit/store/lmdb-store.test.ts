import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbStore, storeKey } from '../../../src/store/lmdb-store.js';
import { STORE_FORMAT, type Store } from '../../../src/store/types.js';
import { describeStoreContract } from './store-contract.js';

const dirs: string[] = [];
const pathOf = new WeakMap<Store, string>();

function freshPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-store-'));
  dirs.push(dir);
  return join(dir, 'shard-0.mdb');
}

function openAt(path: string): LmdbStore {
  const s = new LmdbStore({ path, fsync: true });
  pathOf.set(s, path);
  return s;
}

// Runs after the contract's own afterEach has closed its store.
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describeStoreContract('LmdbStore', {
  open: () => openAt(freshPath()),
  reopen: async (old) => {
    const path = pathOf.get(old)!;
    await old.close();
    return openAt(path);
  },
});

describe('LmdbStore', () => {
  const open: LmdbStore[] = [];
  const track = (s: LmdbStore): LmdbStore => (open.push(s), s);

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  it('writes the store format in its meta doc, and it survives a reopen', async () => {
    const path = freshPath();
    const s = openAt(path);
    await s.commit();
    await s.close();
    const again = track(openAt(path));
    expect(again.getDoc<{ format: number }>('meta')?.format).toBe(STORE_FORMAT);
  });

  it('opening a store whose meta doc names another format throws an error naming the path', async () => {
    const path = freshPath();
    const s = openAt(path);
    s.putDoc('meta', { format: 999 });
    await s.commit();
    await s.close();
    expect(() => track(openAt(path))).toThrow(path);
    expect(() => track(openAt(path))).toThrow(/format 999/);
    expect(open).toEqual([]);
  });

  it('with fsync, commit() resolves only after the flush to disk, not at the commit (lmdb-js overlappingSync)', async () => {
    const s = track(openAt(freshPath()));
    const env = (s as unknown as { env: { flushed: PromiseLike<unknown> } }).env;
    // Stand in for the background fsync: commit() must wait for it.
    let flush!: () => void;
    const gate = new Promise<void>((r) => (flush = r));
    Object.defineProperty(env, 'flushed', { configurable: true, get: () => gate });
    s.putDoc('k', { v: 1 });
    let done = false;
    const c = s.commit().then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50)); // the commit itself is long done
    expect(done).toBe(false);
    flush();
    await c;
    expect(done).toBe(true);
  });

  it('without fsync (async durability), commit() does not wait for the flush', async () => {
    const path = freshPath();
    const s = track(new LmdbStore({ path, fsync: false }));
    const env = (s as unknown as { env: { flushed: PromiseLike<unknown> } }).env;
    Object.defineProperty(env, 'flushed', { configurable: true, get: () => new Promise(() => {}) });
    s.putDoc('k', { v: 1 });
    await s.commit();
  });

  it('storeKey returns short strings unchanged', () => {
    for (const s of ['', 'a/b', 'client-1', 'x'.repeat(400), 'é'.repeat(200), '🚀'.repeat(100)]) expect(storeKey(s)).toBe(s);
  });

  it("storeKey turns strings over 400 bytes into a short stable hash starting with '\\u0000h'", () => {
    const longs = ['x'.repeat(401), 'é'.repeat(201), '🚀'.repeat(101), 'c'.repeat(60_000), 'c'.repeat(59_999) + 'd'];
    const keys = longs.map(storeKey);
    for (const [i, k] of keys.entries()) {
      expect(k.startsWith('\u0000h')).toBe(true);
      expect(Buffer.byteLength(k)).toBeLessThanOrEqual(64);
      expect(storeKey(longs[i]!)).toBe(k);
    }
    expect(new Set(keys).size).toBe(longs.length);
  });
});
