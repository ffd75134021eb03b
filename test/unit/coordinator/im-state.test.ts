/**
 * ImState (IM-PROTOCOL 4 and 5): the coordinator's editable templates, directory and
 * routing rules. Seeded from the configuration; once saved, the store document `im` wins
 * at the next start, because runtime edits through the admin API must survive a restart.
 * A `{dataDir}/im-state.json` of earlier versions is read once, moved into the store and
 * renamed `im-state.json.migrated`.
 *
 * Most tests use a MemoryStore; "survives a reopen" uses an LmdbStore in a temporary
 * directory. Each test gets its own temporary data directory (for the legacy file).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ImConfig } from '../../../src/config/schema.js';
import { ImState, uniqueRules } from '../../../src/coordinator/im-state.js';
import { LmdbStore } from '../../../src/store/lmdb-store.js';
import { MemoryStore } from '../../../src/store/memory-store.js';

const CFG: ImConfig = {
  enabled: true,
  defaultNamespace: 'acme',
  senderCheck: 'refuse',
  superusers: [],
  presubscribe: {
    templates: ['/{ns}/im/u/{uid}', '/{ns}/im/p/+'],
    qos: 1,
    directory: [{ uid: 'alice', ns: 'acme', groups: ['team'] }],
    holdNewUsers: false,
  },
  rules: [{ id: 'carbons', source: '/+/im/u/+', action: 'copy', destination: '/{1}/im/u/{sender}' }],
  presence: true,
  files: { enabled: false, maxBytes: 1024, publicUrl: null },
};

/** A MemoryStore whose commits wait until `open()`: shows what happens before a write is durable. */
class GatedStore extends MemoryStore {
  private waiting: Array<() => void> = [];
  private gated = true;
  override commit(): Promise<void> {
    if (!this.gated) return super.commit();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  open(): void {
    this.gated = false;
    for (const r of this.waiting.splice(0)) r();
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

let dir: string;
let store: MemoryStore;
const lmdbs: LmdbStore[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sb-imstate-'));
  store = new MemoryStore();
});

afterEach(async () => {
  vi.useRealTimers();
  for (const s of lmdbs.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

const legacyFile = (): string => join(dir, 'im-state.json');
const migratedFile = (): string => join(dir, 'im-state.json.migrated');
const openLmdb = (): LmdbStore => {
  const s = new LmdbStore({ path: join(dir, 'store', 'coordinator.mdb'), fsync: true });
  lmdbs.push(s);
  return s;
};
/** Closes an LmdbStore and opens the same file again, as a restart would. */
const reopenLmdb = async (s: LmdbStore): Promise<LmdbStore> => {
  lmdbs.splice(lmdbs.indexOf(s), 1);
  await s.close();
  return openLmdb();
};

/** A state with every part edited away from the configuration. */
function edit(s: ImState): void {
  s.templates = ['/{ns}/im/u/{uid}'];
  s.directory.set('bob', { uid: 'bob', groups: ['ops'] });
  s.directory.delete('alice');
  s.rules = [...s.rules, { id: 'mute', source: 'spam/#', action: 'drop' }];
  s.seen.add('bob');
}
function expectEdited(t: ImState): void {
  expect(t.templates).toEqual(['/{ns}/im/u/{uid}']);
  expect([...t.directory.values()]).toEqual([{ uid: 'bob', groups: ['ops'] }]);
  expect(t.rules).toEqual([CFG.rules[0], { id: 'mute', source: 'spam/#', action: 'drop' }]);
  expect([...t.seen]).toEqual(['bob']);
}

describe('ImState: seeding and persistence in the store', () => {
  it('with no document and no legacy file it is seeded from the configuration (source "config") and writes nothing', async () => {
    const s = new ImState(CFG, store, dir);
    expect(s.source).toBe('config');
    expect(s.templates).toEqual(CFG.presubscribe.templates);
    expect([...s.directory.entries()]).toEqual([['alice', { uid: 'alice', ns: 'acme', groups: ['team'] }]]);
    expect(s.rules).toEqual(CFG.rules);
    expect(s.seen.size).toBe(0);
    await tick();
    expect(store.getDoc('im')).toBeUndefined();
    expect(store.stats().entries).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('without a data directory there is no legacy file to look for', () => {
    const s = new ImState(CFG, store);
    expect(s.source).toBe('config');
    expect(s.templates).toEqual(CFG.presubscribe.templates);
  });

  it('edits do not write into the configuration arrays', () => {
    const s = new ImState(CFG, store, dir);
    s.templates.push('/x');
    s.rules.push({ id: 'd', source: 'a/#', action: 'drop' });
    expect(CFG.presubscribe.templates).toHaveLength(2);
    expect(CFG.rules).toHaveLength(1);
  });

  it('save() then a new ImState on the same store reads it back (source "store"), which wins over the config', async () => {
    const s = new ImState(CFG, store, dir);
    edit(s);
    await s.save();
    const t = new ImState(CFG, store, dir);
    expect(t.source).toBe('store');
    expectEdited(t);
    // Nothing is written into the data directory any more.
    expect(readdirSync(dir)).toEqual([]);
  });

  it('save() writes the document at once and resolves only after the store commit', async () => {
    const gated = new GatedStore();
    const s = new ImState(CFG, gated, dir);
    s.seen.add('u1');
    let done = false;
    const saved = s.save().then(() => (done = true));
    expect(gated.getDoc('im')).toMatchObject({ version: 1, seen: ['u1'] });
    await tick();
    await tick();
    expect(done).toBe(false);
    gated.open();
    await saved;
    expect(done).toBe(true);
  });

  it('save() rejects when the commit fails', async () => {
    class Failing extends MemoryStore {
      override commit(): Promise<void> {
        return Promise.reject(new Error('disk full'));
      }
    }
    await expect(new ImState(CFG, new Failing(), dir).save()).rejects.toThrow('disk full');
  });

  it('an emptied state is kept empty: empty lists in the document do not fall back to the config', async () => {
    const s = new ImState(CFG, store, dir);
    s.templates = [];
    s.rules = [];
    s.directory.clear();
    await s.save();
    const t = new ImState(CFG, store, dir);
    expect(t.source).toBe('store');
    expect(t.templates).toEqual([]);
    expect(t.rules).toEqual([]);
    expect(t.directory.size).toBe(0);
  });

  it('the document is { version: 1, templates, directory, rules, seen }', async () => {
    await new ImState(CFG, store, dir).save();
    expect(store.getDoc('im')).toEqual({ version: 1, templates: CFG.presubscribe.templates, directory: CFG.presubscribe.directory, rules: CFG.rules, seen: [] });
  });

  it('missing lists in a document read as empty', () => {
    store.putDoc('im', { version: 1 });
    const s = new ImState(CFG, store, dir);
    expect(s.source).toBe('store');
    expect(s.templates).toEqual([]);
    expect(s.rules).toEqual([]);
    expect(s.directory.size).toBe(0);
    expect(s.seen.size).toBe(0);
  });

  it('survives a reopen (LmdbStore): a restarted coordinator reads the saved state', async () => {
    let lmdb = openLmdb();
    const s = new ImState(CFG, lmdb, dir);
    expect(s.source).toBe('config');
    edit(s);
    await s.save();
    lmdb = await reopenLmdb(lmdb);
    const t = new ImState(CFG, lmdb, dir);
    expect(t.source).toBe('store');
    expectEdited(t);
  });
});

describe('ImState: migration of a legacy {dataDir}/im-state.json', () => {
  const LEGACY = {
    version: 1,
    templates: ['/{ns}/im/u/{uid}'],
    directory: [{ uid: 'bob', groups: ['ops'] }],
    rules: [CFG.rules[0], { id: 'mute', source: 'spam/#', action: 'drop' }],
    seen: ['bob'],
  };

  it('is read once (source "file"), written into the store, and renamed .migrated after the commit', async () => {
    const text = JSON.stringify(LEGACY, null, 1);
    writeFileSync(legacyFile(), text);
    const gated = new GatedStore();
    const s = new ImState(CFG, gated, dir);
    expect(s.source).toBe('file');
    expectEdited(s);
    expect(gated.getDoc('im')).toEqual(LEGACY);
    // Not durable yet: the file stays where it is (a crash now reads it again).
    await tick();
    expect(existsSync(legacyFile())).toBe(true);
    expect(existsSync(migratedFile())).toBe(false);
    gated.open();
    await vi.waitFor(() => expect(existsSync(migratedFile())).toBe(true));
    expect(existsSync(legacyFile())).toBe(false);
    expect(readFileSync(migratedFile(), 'utf8')).toBe(text); // kept as it was, for the record

    // The next start reads the store; the renamed file is not read again.
    const t = new ImState(CFG, gated, dir);
    expect(t.source).toBe('store');
    expectEdited(t);
  });

  it('the migrated state survives a reopen (LmdbStore)', async () => {
    writeFileSync(legacyFile(), JSON.stringify(LEGACY));
    let lmdb = openLmdb();
    expect(new ImState(CFG, lmdb, dir).source).toBe('file');
    await vi.waitFor(() => expect(existsSync(migratedFile())).toBe(true));
    lmdb = await reopenLmdb(lmdb);
    const t = new ImState(CFG, lmdb, dir);
    expect(t.source).toBe('store');
    expectEdited(t);
  });

  it('a document in the store wins over a legacy file, which is then left alone', async () => {
    store.putDoc('im', { version: 1, templates: ['/from/store'] });
    writeFileSync(legacyFile(), JSON.stringify(LEGACY));
    const s = new ImState(CFG, store, dir);
    expect(s.source).toBe('store');
    expect(s.templates).toEqual(['/from/store']);
    await tick();
    expect(existsSync(legacyFile())).toBe(true);
    expect(existsSync(migratedFile())).toBe(false);
    expect(store.getDoc('im')).toEqual({ version: 1, templates: ['/from/store'] });
  });

  it('missing lists in a (hand-written) legacy file read as empty', () => {
    writeFileSync(legacyFile(), JSON.stringify({ version: 1 }));
    const s = new ImState(CFG, store, dir);
    expect(s.source).toBe('file');
    expect(s.templates).toEqual([]);
    expect(s.rules).toEqual([]);
    expect(s.directory.size).toBe(0);
  });
});

/** The error of `fn`, asserting it is one. */
function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    return e as Error;
  }
  throw new Error('expected an error');
}

const INVALID: Array<[string, unknown, RegExp]> = [
  ['an unknown version', { version: 2 }, /unknown version 2/],
  ['no version', { templates: [] }, /unknown version undefined/],
  ['an invalid template', { version: 1, templates: ['/{user}'] }, /templates/],
  ['an invalid directory entry', { version: 1, directory: [{ uid: 'a/b' }] }, /uid/],
  ['an invalid rule', { version: 1, rules: [{ id: 'r', source: '/a/#', action: 'copy' }] }, /destination/],
  // Rules are addressed by id (admin API: 409 on a duplicate), and every gateway compiles
  // the list with compileRules, which throws on a repeated id: refused at load, like any
  // other invalid content, instead of failing later in the gateways.
  ['a repeated rule id', { version: 1, rules: [{ id: 'dup', source: 'a/#', action: 'drop' }, { id: 'dup', source: 'b/#', action: 'drop' }] }, /rule id "dup" appears twice/],
];

describe('ImState: an invalid document in the store stops the start with an error naming the store', () => {
  for (const [what, doc, detail] of INVALID) {
    it(what, () => {
      store.putDoc('im', doc);
      const message = errorOf(() => new ImState(CFG, store, dir)).message;
      expect(message).toContain('the IM state in the store is not valid');
      expect(message).toMatch(/fix or delete it/);
      expect(message).toMatch(detail);
    });
  }

  it('an invalid document is not replaced by a legacy file', () => {
    store.putDoc('im', { version: 2 });
    writeFileSync(legacyFile(), JSON.stringify({ version: 1 }));
    expect(() => new ImState(CFG, store, dir)).toThrow(/in the store/);
    expect(existsSync(legacyFile())).toBe(true);
  });
});

describe('ImState: an invalid legacy file stops the start with an error naming the file', () => {
  for (const [what, doc, detail] of INVALID) {
    it(what, async () => {
      writeFileSync(legacyFile(), JSON.stringify(doc));
      const message = errorOf(() => new ImState(CFG, store, dir)).message;
      expect(message).toContain(`the IM state in ${legacyFile()} is not valid`);
      expect(message).toMatch(/fix or delete it/);
      expect(message).toMatch(detail);
      // Nothing migrated: the store is untouched and the file stays for the operator to fix.
      await tick();
      expect(store.getDoc('im')).toBeUndefined();
      expect(existsSync(legacyFile())).toBe(true);
      expect(existsSync(migratedFile())).toBe(false);
    });
  }

  it('not JSON: the error names the file', () => {
    writeFileSync(legacyFile(), '{"version": 1,');
    const message = errorOf(() => new ImState(CFG, store, dir)).message;
    expect(message).toContain(legacyFile());
    expect(message).toMatch(/JSON/);
    expect(message).toMatch(/fix or delete it/);
  });

  it('not JSON: the start is stopped, nothing is migrated', async () => {
    writeFileSync(legacyFile(), '{"version": 1,');
    expect(() => new ImState(CFG, store, dir)).toThrow(/JSON/);
    await tick();
    expect(store.getDoc('im')).toBeUndefined();
    expect(existsSync(legacyFile())).toBe(true);
  });

  it('JSON null is refused like any other invalid content, naming the file', () => {
    writeFileSync(legacyFile(), 'null');
    expect(() => new ImState(CFG, store, dir)).toThrow(legacyFile());
  });

  it('an im-state.json that is not readable as a file (a directory) is not mistaken for "no file"', () => {
    mkdirSync(legacyFile());
    expect(() => new ImState(CFG, store, dir)).toThrow();
    expect(store.getDoc('im')).toBeUndefined();
  });
});

describe('uniqueRules', () => {
  it('returns the list when every id is unique, throws naming a repeated id', () => {
    const rules = [
      { id: 'a', source: 'a/#', action: 'drop' },
      { id: 'b', source: 'b/#', action: 'drop' },
    ] as const;
    expect(uniqueRules([...rules])).toEqual(rules);
    expect(uniqueRules([])).toEqual([]);
    expect(() => uniqueRules([...rules, { id: 'a', source: 'c/#', action: 'drop' }])).toThrow('rule id "a" appears twice');
  });
});

describe('ImState.saveSoon', () => {
  it('coalesces many calls into one write about a second later', () => {
    vi.useFakeTimers();
    const s = new ImState(CFG, store, dir);
    const save = vi.spyOn(s, 'save');
    for (let i = 0; i < 50; i++) {
      s.seen.add(`u${i}`);
      s.saveSoon();
    }
    expect(save).not.toHaveBeenCalled();
    expect(store.getDoc('im')).toBeUndefined();
    vi.advanceTimersByTime(999);
    expect(save).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(save).toHaveBeenCalledTimes(1);
    expect(new ImState(CFG, store, dir).seen.size).toBe(50);
    // A later change schedules a new write.
    s.seen.add('u50');
    s.saveSoon();
    vi.advanceTimersByTime(1000);
    expect(save).toHaveBeenCalledTimes(2);
    expect(new ImState(CFG, store, dir).seen.size).toBe(51);
  });

  it('an immediate save() cancels the pending one', async () => {
    vi.useFakeTimers();
    const s = new ImState(CFG, store, dir);
    const save = vi.spyOn(s, 'save');
    s.saveSoon();
    await s.save();
    expect(save).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(5000);
    expect(save).toHaveBeenCalledTimes(1);
  });

  it('close() writes a pending change at once, and nothing when none is pending', () => {
    vi.useFakeTimers();
    const s = new ImState(CFG, store, dir);
    const save = vi.spyOn(s, 'save');
    s.close();
    expect(save).not.toHaveBeenCalled();
    expect(store.getDoc('im')).toBeUndefined();
    s.seen.add('late');
    s.saveSoon();
    s.close();
    expect(save).toHaveBeenCalledTimes(1);
    expect([...new ImState(CFG, store, dir).seen]).toEqual(['late']);
    vi.advanceTimersByTime(5000);
    expect(save).toHaveBeenCalledTimes(1);
  });
});
