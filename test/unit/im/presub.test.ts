import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  DirectoryError,
  expandPresub,
  parseDirectoryEntry,
  parseTemplate,
  type DirectoryEntry,
} from '../../../src/im/presub.js';
import { isTopicLevelId } from '../../../src/im/topics.js';
import { validateTopicFilter } from '../../../src/mqtt/topic.js';

/** Catches the DirectoryError thrown by `f`. */
function dirError(f: () => unknown): DirectoryError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DirectoryError);
    return e as DirectoryError;
  }
  throw new Error('expected a DirectoryError, nothing was thrown');
}

const LIMITS = { maxTopicLength: 65535, maxTopicLevels: 1000 };

describe('parseDirectoryEntry', () => {
  it('accepts and rebuilds entries, keeping absent keys absent', () => {
    const raw = { uid: 'alice', ns: 'acme', groups: ['dev', 'ops'], topics: ['/acme/news', '/acme/broadcast/#'] };
    const e = parseDirectoryEntry(raw);
    expect(e).toEqual(raw);
    expect(e).not.toBe(raw);
    expect(e.groups).not.toBe(raw.groups);
    const min = parseDirectoryEntry({ uid: 'jim' });
    expect(min).toEqual({ uid: 'jim' });
    expect(Object.keys(min)).toEqual(['uid']);
    expect(Object.keys(parseDirectoryEntry({ uid: 'jim', ns: undefined }))).toEqual(['uid']);
  });

  it('de-duplicates groups and topics, keeping first occurrences in order', () => {
    expect(parseDirectoryEntry({ uid: 'a', groups: ['x', 'y', 'x', 'z', 'y'], topics: ['t/1', 't/+', 't/1'] })).toEqual({
      uid: 'a',
      groups: ['x', 'y', 'z'],
      topics: ['t/1', 't/+'],
    });
  });

  it('refuses non-objects with field ""', () => {
    for (const raw of [null, 'alice', 3, [{ uid: 'a' }]]) expect(dirError(() => parseDirectoryEntry(raw)).field).toBe('');
  });

  it('names an unknown key', () => {
    const e = dirError(() => parseDirectoryEntry({ uid: 'a', group: ['x'] }));
    expect(e.field).toBe('group');
    expect(e.message).toContain('group');
  });

  it('validates uid and ns as single levels', () => {
    for (const bad of ['', 'a/b', '+', '#', '$x', 'a\u0000', 'x'.repeat(129), 5, null]) {
      expect(dirError(() => parseDirectoryEntry({ uid: bad })).field, String(bad)).toBe('uid');
      expect(dirError(() => parseDirectoryEntry({ uid: 'a', ns: bad })).field, String(bad)).toBe('ns');
    }
    expect(dirError(() => parseDirectoryEntry({})).field).toBe('uid');
    expect(dirError(() => parseDirectoryEntry({ uid: 'a/b' })).message).toContain('"a/b"');
  });

  it('validates groups', () => {
    for (const groups of ['dev', [''], ['a/b'], ['+'], [1], ['ok', '$sys']]) {
      const e = dirError(() => parseDirectoryEntry({ uid: 'a', groups }));
      expect(e.field).toBe('groups');
    }
    expect(dirError(() => parseDirectoryEntry({ uid: 'a', groups: ['ok', 'x/y'] })).message).toContain('[1]');
  });

  it('validates topics as filters outside $', () => {
    for (const topics of ['t', [''], ['a/#/b'], ['a+'], ['$SYS/#'], [null]]) {
      const e = dirError(() => parseDirectoryEntry({ uid: 'a', topics }));
      expect(e.field).toBe('topics');
    }
  });
});

describe('parseTemplate', () => {
  it('accepts templates with the known placeholders', () => {
    for (const t of ['/{ns}/im/u/{uid}', '/{ns}/im/p/+', '/{ns}/devices/{clientid}', '/{ns}/news/#', 'fixed/topic',
      'user-{uid}/x', '{ns}']) {
      expect(parseTemplate(t)).toBe(t);
    }
  });

  it("refuses unknown placeholders, stray braces and invalid filters with field 'templates'", () => {
    const bad: [string, string][] = [
      ['/{namespace}/im/u/{uid}', 'unknown placeholder {namespace}'],
      ['/{ns}/im/u/{user}', 'unknown placeholder {user}'],
      ['/{ns}/im/u/{1}', 'unknown placeholder {1}'],
      ['/{ns}/im/u/{sender}', 'unknown placeholder {sender}'],
      ['/{ns/im', 'unterminated'],
      ['/ns}/im', "'}'"],
      ['', 'empty'],
      ['/{ns}/#/x', 'bad_wildcard'],
      ['/{ns}/a+', 'bad_wildcard'],
      ['$SYS/{uid}', "'$'"],
    ];
    for (const [t, text] of bad) {
      const e = dirError(() => parseTemplate(t));
      expect(e.field, t).toBe('templates');
      expect(e.message, t).toContain(text);
    }
  });
});

describe('expandPresub', () => {
  const ctx = { uid: 'alice', ns: 'acme', clientId: 'phone1' };

  it('expands templates, then groups, then extra topics', () => {
    const entry: DirectoryEntry = { uid: 'alice', groups: ['dev', 'ops'], topics: ['/acme/news', '/acme/im/u/alice'] };
    expect(expandPresub(['/{ns}/im/u/{uid}', '/{ns}/im/p/+', '/{ns}/dev/{clientid}'], entry, ctx)).toEqual([
      '/acme/im/u/alice',
      '/acme/im/p/+',
      '/acme/dev/phone1',
      '/acme/im/g/dev',
      '/acme/im/g/ops',
      '/acme/news', // the inbox listed again in topics is not repeated
    ]);
  });

  it("uses the entry's namespace over the connection's", () => {
    expect(expandPresub(['/{ns}/im/u/{uid}'], { uid: 'alice', ns: 'school', groups: ['g1'] }, ctx)).toEqual([
      '/school/im/u/alice',
      '/school/im/g/g1',
    ]);
  });

  it('works without a directory entry', () => {
    expect(expandPresub(['/{ns}/im/u/{uid}'], undefined, ctx)).toEqual(['/acme/im/u/alice']);
    expect(expandPresub([], undefined, ctx)).toEqual([]);
  });

  it('skips a template whose substituted value is not one plain level', () => {
    const templates = ['/{ns}/im/u/{uid}', '/{ns}/dev/{clientid}'];
    // Client ids such as 'alice/phone' are common; they must not add levels.
    expect(expandPresub(templates, undefined, { ...ctx, clientId: 'alice/phone' })).toEqual(['/acme/im/u/alice']);
    expect(expandPresub(templates, undefined, { ...ctx, clientId: '#' })).toEqual(['/acme/im/u/alice']);
    expect(expandPresub(templates, undefined, { ...ctx, uid: '+' })).toEqual(['/acme/dev/phone1']);
    // An invalid namespace also blocks the group topics built from it.
    expect(expandPresub(templates, { uid: 'a', groups: ['g'], topics: ['/x'] }, { ...ctx, ns: '$bad' })).toEqual(['/x']);
    // Templates without placeholders do not care about the values.
    expect(expandPresub(['fixed/#'], undefined, { uid: '+', ns: '', clientId: 'a/b' })).toEqual(['fixed/#']);
  });

  it('drops items that were never validated rather than throwing', () => {
    const raw = { uid: 'a', groups: ['ok', 'a/b', '+'], topics: ['a/#/b', '$SYS/#', 'ok/+'] } as DirectoryEntry;
    expect(expandPresub(['/{bogus}/x', '', '/{ns}/im/u/{uid}'], raw, ctx)).toEqual([
      '/acme/im/u/alice',
      '/acme/im/g/ok',
      'ok/+',
    ]);
  });

  it('property: output is de-duplicated, valid, and covers every expandable input', () => {
    const ident = fc.constantFrom('acme', 'alice', 'x', 'a/b', '+', '', '$s', 'dev');
    const templateArb = fc.constantFrom('/{ns}/im/u/{uid}', '/{ns}/im/p/+', '/{ns}/c/{clientid}', 'fixed', '/{ns}/im/u/{uid}', 'u-{uid}/#');
    const entryArb = fc.option(
      fc.record(
        {
          uid: fc.constant('alice'),
          ns: ident,
          groups: fc.array(ident, { maxLength: 4 }),
          topics: fc.array(fc.constantFrom<string>('fixed', '/acme/im/g/dev', 't/+', '/acme/im/u/alice'), { maxLength: 3 }),
        },
        { requiredKeys: ['uid'] },
      ),
      { nil: undefined },
    );
    fc.assert(
      fc.property(fc.array(templateArb, { maxLength: 5 }), entryArb, ident, ident, ident, (templates, entry, uid, ns, clientId) => {
        const out = expandPresub(templates, entry, { uid, ns, clientId });
        expect(new Set(out).size).toBe(out.length);
        for (const f of out) {
          expect(validateTopicFilter(f, LIMITS)).toBeNull();
          expect(f.startsWith('$')).toBe(false);
        }
        const effNs = entry?.ns ?? ns;
        // Each template whose used values are plain levels appears in the output.
        const values: Record<string, string> = { ns: effNs, uid, clientid: clientId };
        for (const t of templates) {
          const used = [...t.matchAll(/\{(\w+)\}/g)].map((m) => values[m[1]]);
          const expanded = t.replace(/\{(\w+)\}/g, (_m, n: string) => values[n]);
          if (used.every(isTopicLevelId)) expect(out).toContain(expanded);
          else expect(out.includes(expanded) && !(entry?.topics ?? []).includes(expanded)).toBe(false);
        }
        if (isTopicLevelId(effNs)) {
          for (const g of entry?.groups ?? []) if (isTopicLevelId(g)) expect(out).toContain(`/${effNs}/im/g/${g}`);
        }
        for (const topic of entry?.topics ?? []) expect(out).toContain(topic);
      }),
      { numRuns: 1000 },
    );
  });
});
