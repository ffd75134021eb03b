import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  filterMayMatchImTopic,
  groupTopic,
  inboxTopic,
  isTopicLevelId,
  parseImTopic,
  presenceTopic,
  type ImTopic,
} from '../../../src/im/topics.js';
import { matchTopic } from '../../../src/mqtt/topic.js';

/** The definition of the brief, written the obvious way, as the oracle for parseImTopic. */
function specParse(topic: string): ImTopic | null {
  const l = topic.split('/');
  if (!(l[0] === '' && l.length >= 3 && l[1] !== '' && l[2] === 'im')) return null;
  if (l.length === 5 && (l[3] === 'u' || l[3] === 'g' || l[3] === 'p') && l[4] !== '') {
    return { ns: l[1], kind: l[3], id: l[4] };
  }
  return { ns: l[1], kind: 'other', id: l.slice(3).join('/') };
}

/** Topics built from levels that hit every branch of the definition often. */
const levelArb = fc.oneof(
  fc.constantFrom('', 'im', 'u', 'g', 'p', 'acme', 'alice', 'x', 'IM', 'imx', '$SYS'),
  fc.string({ maxLength: 4 }),
);
const topicArb = fc.array(levelArb, { minLength: 1, maxLength: 7 }).map((ls) => ls.join('/'));

describe('parseImTopic', () => {
  it('recognises inbox, group and presence topics', () => {
    expect(parseImTopic('/acme/im/u/alice')).toEqual({ ns: 'acme', kind: 'u', id: 'alice' });
    expect(parseImTopic('/acme/im/g/dev-team')).toEqual({ ns: 'acme', kind: 'g', id: 'dev-team' });
    expect(parseImTopic('/acme/im/p/jim')).toEqual({ ns: 'acme', kind: 'p', id: 'jim' });
  });

  it("gives kind 'other' to the rest of the im category", () => {
    expect(parseImTopic('/acme/im')).toEqual({ ns: 'acme', kind: 'other', id: '' });
    expect(parseImTopic('/acme/im/')).toEqual({ ns: 'acme', kind: 'other', id: '' });
    expect(parseImTopic('/acme/im/u')).toEqual({ ns: 'acme', kind: 'other', id: 'u' });
    expect(parseImTopic('/acme/im/u/')).toEqual({ ns: 'acme', kind: 'other', id: 'u/' });
    expect(parseImTopic('/acme/im/u/a/b')).toEqual({ ns: 'acme', kind: 'other', id: 'u/a/b' });
    expect(parseImTopic('/acme/im/x/alice')).toEqual({ ns: 'acme', kind: 'other', id: 'x/alice' });
    expect(parseImTopic('/acme/im/uu/alice')).toEqual({ ns: 'acme', kind: 'other', id: 'uu/alice' });
    expect(parseImTopic('/acme/im//alice')).toEqual({ ns: 'acme', kind: 'other', id: '/alice' });
    expect(parseImTopic('/acme/im/settings')).toEqual({ ns: 'acme', kind: 'other', id: 'settings' });
  });

  it('returns null outside the scheme', () => {
    for (const t of ['acme/im/u/alice', '//im/u/alice', '/acme', '/acme/', '/acme/IM/u/a', '/acme/imx/u/a',
      '/acme/chat/u/a', '$SYS/im/u/a', '', '/', 'im', '/im']) {
      expect(parseImTopic(t), t).toBeNull();
    }
  });

  it('is case sensitive and keeps the namespace and id verbatim', () => {
    expect(parseImTopic('/Acme Corp/im/u/Ålice')).toEqual({ ns: 'Acme Corp', kind: 'u', id: 'Ålice' });
    expect(parseImTopic('/acme/im/U/alice')?.kind).toBe('other');
  });

  it('agrees with the definition on arbitrary topics', () => {
    fc.assert(
      fc.property(topicArb, (t) => {
        expect(parseImTopic(t)).toEqual(specParse(t));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('topic builders', () => {
  it('build the section 2 topics', () => {
    expect(inboxTopic('acme', 'alice')).toBe('/acme/im/u/alice');
    expect(groupTopic('acme', 'dev')).toBe('/acme/im/g/dev');
    expect(presenceTopic('acme', 'jim')).toBe('/acme/im/p/jim');
  });

  it('round-trip through parseImTopic for any valid identifiers', () => {
    const id = fc.string({ minLength: 1, maxLength: 12 }).filter(isTopicLevelId);
    fc.assert(
      fc.property(id, id, (ns, x) => {
        expect(parseImTopic(inboxTopic(ns, x))).toEqual({ ns, kind: 'u', id: x });
        expect(parseImTopic(groupTopic(ns, x))).toEqual({ ns, kind: 'g', id: x });
        expect(parseImTopic(presenceTopic(ns, x))).toEqual({ ns, kind: 'p', id: x });
      }),
    );
  });
});

describe('filterMayMatchImTopic', () => {
  it('accepts filters that reach IM topics', () => {
    for (const f of ['#', '+/#', '/#', '/+/#', '/+/+/#', '/+/+/u/+', '/acme/im/u/+', '/acme/im/#', '/acme/im',
      '/+/im', '/acme/+', '+/+/+', '/acme/im/u/alice', '/acme/im/whatever/deep/#', '+/acme/im/x']) {
      expect(filterMayMatchImTopic(f), f).toBe(true);
    }
  });

  it('refuses filters that cannot reach IM topics', () => {
    for (const f of ['a/#', '/acme/chat/#', '$SYS/#', '+', '+/+', '/+', '/acme', '//im/#', '//#', 'acme/im/u/+',
      '/acme/IM/#', '/acme/imx/#', '', '/']) {
      expect(filterMayMatchImTopic(f), f).toBe(false);
    }
  });

  // Exact oracle by brute force: every filter below has at most 5 levels over a small
  // alphabet, so if some IM topic matches it, one built from these levels (with at most
  // 5 levels) does too: a witness only ever needs '', 'im', a non-empty level or a level
  // the filter itself names.
  const filterLiterals = ['', 'im', 'x', 'acme', '$SYS', 'chat'];
  const alphabet = filterLiterals;
  const universe: string[] = [];
  const grow = (prefix: string[]): void => {
    if (prefix.length > 0) universe.push(prefix.join('/'));
    if (prefix.length === 5) return;
    for (const l of alphabet) grow([...prefix, l]);
  };
  grow([]);
  const imUniverse = universe.filter((t) => parseImTopic(t) !== null);

  it('agrees with a brute-force search for a matching IM topic', () => {
    const filterLevel = fc.constantFrom(...filterLiterals, '+');
    const filterArb = fc
      .tuple(fc.array(filterLevel, { minLength: 1, maxLength: 5 }), fc.boolean())
      .map(([ls, hash]) => (hash ? [...ls.slice(0, -1), '#'] : ls).join('/'));
    fc.assert(
      fc.property(filterArb, (f) => {
        const expected = imUniverse.some((t) => matchTopic(f, t));
        expect(filterMayMatchImTopic(f)).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });

  it('is true whenever the filter matches some IM topic (random topics)', () => {
    fc.assert(
      fc.property(topicArb, fc.array(fc.constantFrom('+', '#', null), { maxLength: 7 }), (t, mask) => {
        // Turn the topic into a filter that matches it by wildcarding some levels.
        const ls = t.split('/');
        const out: string[] = [];
        for (let i = 0; i < ls.length; i++) {
          const m = mask[i];
          if (m === '#') {
            out.push('#');
            break;
          }
          out.push(m === '+' ? '+' : ls[i]);
        }
        const f = out.join('/');
        if (matchTopic(f, t) && parseImTopic(t) !== null) expect(filterMayMatchImTopic(f)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('isTopicLevelId', () => {
  it('accepts plain identifiers', () => {
    for (const s of ['alice', 'a', 'dev-team', 'Ålice', 'a$b', 'a b', 'x'.repeat(128), '📱', 'alice.phone']) {
      expect(isTopicLevelId(s), s).toBe(true);
    }
  });

  it('refuses what would change a topic', () => {
    for (const s of ['', 'a/b', '/', '+', 'a+', '#', 'a#', 'a\u0000b', '$SYS', '$', 'x'.repeat(129)]) {
      expect(isTopicLevelId(s), JSON.stringify(s)).toBe(false);
    }
  });

  it('an accepted id is exactly one literal level of any topic it is put in', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 140 }), (s) => {
        if (!isTopicLevelId(s)) return;
        expect(s.split('/')).toHaveLength(1);
        expect(matchTopic(s, s)).toBe(true);
        expect(/[+#\u0000]/.test(s)).toBe(false);
        expect(s.startsWith('$')).toBe(false);
        expect(s.length).toBeGreaterThan(0);
        expect(s.length).toBeLessThanOrEqual(128);
      }),
    );
  });
});
