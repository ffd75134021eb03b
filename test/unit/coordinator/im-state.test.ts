/**
 * ImState (IM-PROTOCOL 4 and 5): the coordinator's editable templates, directory and
 * routing rules. Seeded from the configuration; once saved, `{dataDir}/im-state.json`
 * wins at the next start, because runtime edits through the admin API must survive a
 * restart. Each test gets its own temporary data directory.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ImConfig } from '../../../src/config/schema.js';
import { ImState } from '../../../src/coordinator/im-state.js';

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

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sb-imstate-'));
});

afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

const stateFile = (): string => join(dir, 'im-state.json');

describe('ImState: seeding and persistence', () => {
  it('without a state file it is seeded from the configuration (source "config") and writes nothing', () => {
    const s = new ImState(CFG, dir);
    expect(s.source).toBe('config');
    expect(s.templates).toEqual(CFG.presubscribe.templates);
    expect([...s.directory.entries()]).toEqual([['alice', { uid: 'alice', ns: 'acme', groups: ['team'] }]]);
    expect(s.rules).toEqual(CFG.rules);
    expect(s.seen.size).toBe(0);
    expect(existsSync(stateFile())).toBe(false);
  });

  it('edits do not write into the configuration arrays', () => {
    const s = new ImState(CFG, dir);
    s.templates.push('/x');
    s.rules.push({ id: 'd', source: 'a/#', action: 'drop' });
    expect(CFG.presubscribe.templates).toHaveLength(2);
    expect(CFG.rules).toHaveLength(1);
  });

  it('save() then a new ImState on the same directory loads the file (source "file"), which wins over the config', () => {
    const s = new ImState(CFG, dir);
    s.templates = ['/{ns}/im/u/{uid}'];
    s.directory.set('bob', { uid: 'bob', groups: ['ops'] });
    s.directory.delete('alice');
    s.rules = [...s.rules, { id: 'mute', source: 'spam/#', action: 'drop' }];
    s.seen.add('bob');
    s.save();
    expect(existsSync(stateFile())).toBe(true);
    // The temporary file of the write-then-rename is gone.
    expect(readdirSync(dir)).toEqual(['im-state.json']);

    const t = new ImState(CFG, dir);
    expect(t.source).toBe('file');
    expect(t.templates).toEqual(['/{ns}/im/u/{uid}']);
    expect([...t.directory.values()]).toEqual([{ uid: 'bob', groups: ['ops'] }]);
    expect(t.rules).toEqual([CFG.rules[0], { id: 'mute', source: 'spam/#', action: 'drop' }]);
    expect([...t.seen]).toEqual(['bob']);
  });

  it('an emptied state is kept empty: an empty list in the file does not fall back to the config', () => {
    const s = new ImState(CFG, dir);
    s.templates = [];
    s.rules = [];
    s.directory.clear();
    s.save();
    const t = new ImState(CFG, dir);
    expect(t.source).toBe('file');
    expect(t.templates).toEqual([]);
    expect(t.rules).toEqual([]);
    expect(t.directory.size).toBe(0);
  });

  it('save() creates a missing data directory', () => {
    const nested = join(dir, 'a', 'b');
    const s = new ImState(CFG, nested);
    s.save();
    expect(existsSync(join(nested, 'im-state.json'))).toBe(true);
    expect(new ImState(CFG, nested).source).toBe('file');
  });

  it('the file is JSON with version 1', () => {
    new ImState(CFG, dir).save();
    const raw = JSON.parse(readFileSync(stateFile(), 'utf8')) as Record<string, unknown>;
    expect(raw).toMatchObject({ version: 1, templates: CFG.presubscribe.templates, rules: CFG.rules, seen: [] });
  });

  it('missing lists in a (hand-written) file read as empty', () => {
    writeFileSync(stateFile(), JSON.stringify({ version: 1 }));
    const s = new ImState(CFG, dir);
    expect(s.source).toBe('file');
    expect(s.templates).toEqual([]);
    expect(s.rules).toEqual([]);
    expect(s.directory.size).toBe(0);
  });
});

describe('ImState: a corrupt file stops the start with an error naming the file', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"version": 1,', /JSON|Unexpected|Expected/i],
    ['JSON null', 'null', /./],
    ['an unknown version', JSON.stringify({ version: 2 }), /unknown version 2/],
    ['an invalid template', JSON.stringify({ version: 1, templates: ['/{user}'] }), /templates/],
    ['an invalid directory entry', JSON.stringify({ version: 1, directory: [{ uid: 'a/b' }] }), /uid/],
    ['an invalid rule', JSON.stringify({ version: 1, rules: [{ id: 'r', source: '/a/#', action: 'copy' }] }), /destination/],
  ];
  for (const [what, text, detail] of cases) {
    it(`${what}`, () => {
      writeFileSync(stateFile(), text);
      let err: unknown;
      try {
        new ImState(CFG, dir);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Error);
      const message = (err as Error).message;
      expect(message).toContain(stateFile());
      expect(message).toMatch(/not a valid IM state file/);
      expect(message).toMatch(/fix or delete it/);
      expect(message).toMatch(detail);
    });
  }

  // Rules are addressed by id (admin API: 409 on a duplicate), and every gateway compiles
  // the list with compileRules, which throws on a repeated id. A hand-edited file with a
  // repeated id must therefore be refused at load, naming the file, like any other
  // invalid content, instead of being accepted and failing later in the gateways.
  it('a repeated rule id', () => {
    const rule = { id: 'dup', source: 'a/#', action: 'drop' };
    writeFileSync(stateFile(), JSON.stringify({ version: 1, rules: [rule, { ...rule, source: 'b/#' }] }));
    expect(() => new ImState(CFG, dir)).toThrow(stateFile());
  });

  it('a data directory path that is not readable as a file is not mistaken for "no file"', () => {
    // im-state.json is a directory: reading fails with something other than ENOENT.
    mkdirSync(stateFile());
    expect(() => new ImState(CFG, dir)).toThrow();
  });
});

describe('ImState.saveSoon', () => {
  it('coalesces many calls into one write about a second later', () => {
    vi.useFakeTimers();
    const s = new ImState(CFG, dir);
    const save = vi.spyOn(s, 'save');
    for (let i = 0; i < 50; i++) {
      s.seen.add(`u${i}`);
      s.saveSoon();
    }
    expect(save).not.toHaveBeenCalled();
    expect(existsSync(stateFile())).toBe(false);
    vi.advanceTimersByTime(999);
    expect(save).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(save).toHaveBeenCalledTimes(1);
    expect(new ImState(CFG, dir).seen.size).toBe(50);
    // A later change schedules a new write.
    s.saveSoon();
    vi.advanceTimersByTime(1000);
    expect(save).toHaveBeenCalledTimes(2);
  });

  it('an immediate save() cancels the pending one', () => {
    vi.useFakeTimers();
    const s = new ImState(CFG, dir);
    const save = vi.spyOn(s, 'save');
    s.saveSoon();
    s.save();
    expect(save).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(5000);
    expect(save).toHaveBeenCalledTimes(1);
  });

  it('close() writes a pending change at once, and nothing when none is pending', () => {
    vi.useFakeTimers();
    const s = new ImState(CFG, dir);
    const save = vi.spyOn(s, 'save');
    s.close();
    expect(save).not.toHaveBeenCalled();
    s.seen.add('late');
    s.saveSoon();
    s.close();
    expect(save).toHaveBeenCalledTimes(1);
    expect([...new ImState(CFG, dir).seen]).toEqual(['late']);
    vi.advanceTimersByTime(5000);
    expect(save).toHaveBeenCalledTimes(1);
  });
});
