import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AclError, compileAcl, filterCovers, filtersOverlap } from '../../../src/auth/acl.js';
import type { AclRule } from '../../../src/auth/acl.js';
import { matchTopic } from '../../../src/mqtt/topic.js';

// ---------------------------------------------------------------------------
// Property tests for the filter algebra, with matchTopic as the oracle.

// A small alphabet makes collisions (and thus interesting cases) likely;
// '' (empty level) and '$s' (a `$` topic when first) exercise MQTT's edge rules.
const LITERALS = ['a', 'b', '', '$s'];
const TOPIC_LEVELS = [...LITERALS, 'c']; // 'c' never occurs in a filter: a "fresh" value

const topicArb = fc
  .array(fc.constantFrom(...TOPIC_LEVELS), { minLength: 1, maxLength: 5 })
  .map((levels) => levels.join('/'))
  .filter((t) => t.length > 0);

const filterArb = fc
  .tuple(
    fc.array(fc.constantFrom(...LITERALS, '+'), { minLength: 0, maxLength: 3 }),
    fc.boolean(),
  )
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter((f) => f.length > 0);

// Every topic over TOPIC_LEVELS with up to 5 levels. Filters have at most 4
// levels, so any witness topic needs at most 5 levels and either alphabet
// values or the fresh 'c' — exhaustive enough to check both directions.
const ALL_TOPICS: string[] = (() => {
  const out: string[] = [];
  let layer: string[][] = [[]];
  for (let depth = 1; depth <= 5; depth++) {
    layer = layer.flatMap((prefix) => TOPIC_LEVELS.map((level) => [...prefix, level]));
    for (const levels of layer) {
      const topic = levels.join('/');
      if (topic.length > 0) out.push(topic);
    }
  }
  return out;
})();

describe('filterCovers / filtersOverlap properties', () => {
  it('filterCovers(a, b) implies every topic matching b matches a', () => {
    fc.assert(
      fc.property(filterArb, filterArb, topicArb, (a, b, t) => {
        if (filterCovers(a, b) && matchTopic(b, t)) expect(matchTopic(a, t)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it('a topic matching both a and b implies filtersOverlap(a, b)', () => {
    fc.assert(
      fc.property(filterArb, filterArb, topicArb, (a, b, t) => {
        if (matchTopic(a, t) && matchTopic(b, t)) expect(filtersOverlap(a, b)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it('both agree exactly with brute force over all short topics', () => {
    fc.assert(
      fc.property(filterArb, filterArb, (a, b) => {
        const covers = ALL_TOPICS.every((t) => !matchTopic(b, t) || matchTopic(a, t));
        const overlap = ALL_TOPICS.some((t) => matchTopic(a, t) && matchTopic(b, t));
        expect(filterCovers(a, b)).toBe(covers);
        expect(filtersOverlap(a, b)).toBe(overlap);
      }),
      { numRuns: 400 },
    );
  });

  it('both agree exactly with brute force for every pair of small filters', () => {
    // Exhaustive over filters of <= 2 non-`#` levels (+ optional `#`): the
    // empty-level and `$` edge cases live here, and random sampling can miss them.
    const filters: string[] = [];
    let layer: string[][] = [[]];
    for (let depth = 0; depth <= 2; depth++) {
      for (const levels of layer) {
        for (const f of [levels.join('/'), [...levels, '#'].join('/')]) {
          if (f.length > 0) filters.push(f);
        }
      }
      layer = layer.flatMap((prefix) => [...LITERALS, '+'].map((level) => [...prefix, level]));
    }
    const topics = ALL_TOPICS.filter((t) => t.split('/').length <= 4);
    const matches = new Map(filters.map((f) => [f, topics.filter((t) => matchTopic(f, t))]));
    for (const a of filters) {
      const ma = new Set(matches.get(a));
      for (const b of filters) {
        const mb = matches.get(b) as string[];
        const covers = mb.every((t) => ma.has(t));
        const overlap = mb.some((t) => ma.has(t));
        if (filterCovers(a, b) !== covers || filtersOverlap(a, b) !== overlap) {
          expect({ a, b, covers: filterCovers(a, b), overlap: filtersOverlap(a, b) }).toEqual({
            a,
            b,
            covers,
            overlap,
          });
        }
      }
    }
  });

  it('covers is reflexive, overlap symmetric, and covering implies overlap', () => {
    fc.assert(
      fc.property(filterArb, filterArb, (a, b) => {
        expect(filterCovers(a, a)).toBe(true);
        expect(filtersOverlap(a, b)).toBe(filtersOverlap(b, a));
        if (filterCovers(a, b)) expect(filtersOverlap(a, b)).toBe(true);
      }),
    );
  });
});

describe('filterCovers / filtersOverlap examples', () => {
  it.each([
    ['a/#', 'a/+/b', true],
    ['a/#', 'a', true],
    ['a/#', 'a/#', true],
    ['#', 'a/+/#', true],
    ['+/+', 'a/b', true],
    ['a/+', 'a/#', false],
    ['a/+', 'a/b/c', false],
    ['a/b', 'a/+', false],
    ['a', 'a/#', false],
    ['+/#', '#', true], // a topic has >= 1 level, so both match all non-$ topics
    ['+/+/#', '#', false],
    ['/+/#', '/#', true], // "" is not a topic, so `/#` needs a second level too
    ['+', '/#', false],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/x', true],
  ])('filterCovers(%s, %s) = %s', (outer, inner, expected) => {
    expect(filterCovers(outer, inner)).toBe(expected);
  });

  it.each([
    ['a/secret', 'a/#', true],
    ['a/secret', '+/+', true],
    ['a/secret', '+', false],
    ['+', '/#', false], // the only shared candidate would be "", not a topic
    ['+', '+/#', true],
    ['/', '/#', true],
    ['a', 'a/#', true],
    ['a/+', '+/b', true],
    ['a/b', 'a/c', false],
    ['a/b/c', 'a/+', false],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/+', false],
    ['$SYS/#', '$SYS/x', true],
  ])('filtersOverlap(%s, %s) = %s', (a, b, expected) => {
    expect(filtersOverlap(a, b)).toBe(expected);
    expect(filtersOverlap(b, a)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------
// compileAcl behaviour.

const alice = { username: 'alice', clientId: 'phone-1' };
const anon = { clientId: 'anon-1' };

function rule(
  action: AclRule['action'],
  permission: AclRule['permission'],
  topic: string,
  extra: Partial<AclRule> = {},
): AclRule {
  return { action, permission, topic, ...extra };
}

describe('compileAcl', () => {
  it('falls back to aclDefault when nothing matches', () => {
    expect(compileAcl([], 'allow').canPublish(alice, 'x/y')).toBe(true);
    expect(compileAcl([], 'deny').canPublish(alice, 'x/y')).toBe(false);
    expect(compileAcl([], 'allow').canSubscribe(alice, 'x/#')).toBe(true);
    expect(compileAcl([], 'deny').canSubscribe(alice, 'x/#')).toBe(false);
    const acl = compileAcl([rule('allow', 'all', 'public/#')], 'deny');
    expect(acl.canPublish(alice, 'private/x')).toBe(false);
  });

  it('first matching rule wins', () => {
    const denyFirst = compileAcl(
      [rule('deny', 'all', 'a/secret'), rule('allow', 'all', 'a/#')],
      'deny',
    );
    expect(denyFirst.canPublish(alice, 'a/secret')).toBe(false);
    expect(denyFirst.canPublish(alice, 'a/open')).toBe(true);
    const allowFirst = compileAcl(
      [rule('allow', 'all', 'a/#'), rule('deny', 'all', 'a/secret')],
      'deny',
    );
    expect(allowFirst.canPublish(alice, 'a/secret')).toBe(true);
  });

  it('permission scopes a rule to publish, subscribe or both', () => {
    const acl = compileAcl(
      [rule('allow', 'publish', 'in/#'), rule('allow', 'subscribe', 'out/#'), rule('allow', 'all', 'both/#')],
      'deny',
    );
    expect(acl.canPublish(alice, 'in/x')).toBe(true);
    expect(acl.canSubscribe(alice, 'in/x')).toBe(false);
    expect(acl.canPublish(alice, 'out/x')).toBe(false);
    expect(acl.canSubscribe(alice, 'out/x')).toBe(true);
    expect(acl.canPublish(alice, 'both/x')).toBe(true);
    expect(acl.canSubscribe(alice, 'both/+')).toBe(true);
  });

  it('username / clientId restrict a rule to that identity', () => {
    const acl = compileAcl(
      [
        rule('allow', 'all', 'admin/#', { username: 'alice' }),
        rule('allow', 'all', 'dev/#', { clientId: 'phone-1' }),
        rule('allow', 'all', 'both/#', { username: 'alice', clientId: 'laptop' }),
      ],
      'deny',
    );
    expect(acl.canPublish(alice, 'admin/x')).toBe(true);
    expect(acl.canPublish({ username: 'bob', clientId: 'phone-1' }, 'admin/x')).toBe(false);
    expect(acl.canPublish(anon, 'admin/x')).toBe(false);
    expect(acl.canPublish({ username: 'bob', clientId: 'phone-1' }, 'dev/x')).toBe(true);
    expect(acl.canPublish(alice, 'both/x')).toBe(false);
    expect(acl.canPublish({ username: 'alice', clientId: 'laptop' }, 'both/x')).toBe(true);
  });

  it('substitutes %u and %c', () => {
    const acl = compileAcl(
      [rule('allow', 'all', 'users/%u/#'), rule('allow', 'publish', 'devices/%c/state'), rule('allow', 'all', 'mix/%u-%c')],
      'deny',
    );
    expect(acl.canPublish(alice, 'users/alice/inbox')).toBe(true);
    expect(acl.canSubscribe(alice, 'users/alice/#')).toBe(true);
    expect(acl.canSubscribe(alice, 'users/+/inbox')).toBe(false);
    expect(acl.canPublish(alice, 'users/bob/inbox')).toBe(false);
    expect(acl.canPublish(alice, 'devices/phone-1/state')).toBe(true);
    expect(acl.canPublish(alice, 'devices/phone-2/state')).toBe(false);
    expect(acl.canPublish(alice, 'mix/alice-phone-1')).toBe(true);
    // Single pass: a username containing "%c" is inserted literally.
    const tricky = { username: '%c', clientId: 'zzz' };
    expect(acl.canPublish(tricky, 'users/%c/x')).toBe(true);
    expect(acl.canPublish(tricky, 'users/zzz/x')).toBe(false);
  });

  it('a %u rule never matches an anonymous client (allow or deny)', () => {
    const acl = compileAcl([rule('allow', 'all', 'users/%u/#')], 'deny');
    expect(acl.canPublish(anon, 'users//x')).toBe(false);
    expect(acl.canPublish(anon, 'users/undefined/x')).toBe(false);
    const denyAcl = compileAcl([rule('deny', 'all', 'users/%u/#')], 'allow');
    expect(denyAcl.canPublish(anon, 'users/x/y')).toBe(true);
    // %c works without a username.
    const byClient = compileAcl([rule('allow', 'all', 'c/%c')], 'deny');
    expect(byClient.canPublish(anon, 'c/anon-1')).toBe(true);
  });

  it('placeholder values with + # / cannot widen a rule', () => {
    const acl = compileAcl(
      [rule('allow', 'subscribe', '%u'), rule('allow', 'all', 'users/%u/inbox'), rule('allow', 'all', 'tree/%c/#')],
      'deny',
    );
    // A user named '#' would otherwise be granted '#' (everything).
    expect(acl.canSubscribe({ username: '#', clientId: 'x' }, '#')).toBe(false);
    expect(acl.canSubscribe({ username: '#', clientId: 'x' }, 'anything')).toBe(false);
    // A user named '+' would otherwise read every user's inbox.
    expect(acl.canSubscribe({ username: '+', clientId: 'x' }, 'users/+/inbox')).toBe(false);
    expect(acl.canPublish({ username: '+', clientId: 'x' }, 'users/bob/inbox')).toBe(false);
    // A '/' in the value would reach into another identity's subtree.
    expect(acl.canPublish({ username: 'bob/inbox', clientId: 'x' }, 'users/bob/inbox/inbox')).toBe(false);
    expect(acl.canPublish({ username: 'u', clientId: 'a/b' }, 'tree/a/b/c')).toBe(false);
    expect(acl.canSubscribe({ username: 'u', clientId: '#' }, 'tree/#')).toBe(false);
    // Ordinary identities are unaffected.
    expect(acl.canSubscribe({ username: 'bob', clientId: 'x' }, 'bob')).toBe(true);
    expect(acl.canPublish({ username: 'u', clientId: 'a' }, 'tree/a/b/c')).toBe(true);
  });

  it('subscribe: allow needs coverage, deny needs only overlap', () => {
    const acl = compileAcl(
      [rule('deny', 'subscribe', 'a/secret'), rule('allow', 'subscribe', 'a/#'), rule('allow', 'subscribe', 'b/+')],
      'deny',
    );
    expect(acl.canSubscribe(alice, 'a/open')).toBe(true);
    expect(acl.canSubscribe(alice, 'a/+/x')).toBe(true);
    expect(acl.canSubscribe(alice, 'a/#')).toBe(false); // would receive a/secret
    expect(acl.canSubscribe(alice, 'a/+')).toBe(false);
    expect(acl.canSubscribe(alice, '+/+')).toBe(false); // overlaps a/secret (deny first)
    expect(acl.canSubscribe(alice, 'b/x')).toBe(true);
    expect(acl.canSubscribe(alice, 'b/#')).toBe(false); // not covered by b/+
    expect(acl.canSubscribe(alice, '#')).toBe(false);
  });

  it('respects the $ rule: allow # does not grant $SYS', () => {
    const acl = compileAcl([rule('allow', 'all', '#')], 'deny');
    expect(acl.canPublish(alice, 'x/y')).toBe(true);
    expect(acl.canPublish(alice, '$SYS/x')).toBe(false);
    expect(acl.canSubscribe(alice, '$SYS/#')).toBe(false);
    const sys = compileAcl([rule('allow', 'subscribe', '$SYS/#')], 'deny');
    expect(sys.canSubscribe(alice, '$SYS/broker/+')).toBe(true);
  });

  it('refuses invalid topics and filters regardless of rules', () => {
    const acl = compileAcl([], 'allow');
    expect(acl.canPublish(alice, 'a/+')).toBe(false);
    expect(acl.canPublish(alice, '')).toBe(false);
    expect(acl.canSubscribe(alice, 'a/#/b')).toBe(false);
    expect(acl.canSubscribe(alice, 'a+')).toBe(false);
  });

  it('rejects malformed rules with their index', () => {
    const bad: unknown[] = [
      rule('allow', 'all', 'a/#/b'),
      rule('allow', 'all', ''),
      rule('allow', 'all', 'users/%u+'),
      { action: 'permit', permission: 'all', topic: 'a' },
      { action: 'allow', permission: 'read', topic: 'a' },
      { action: 'allow', permission: 'all', topic: 7 },
      { action: 'allow', permission: 'all', topic: 'a', username: 3 },
    ];
    for (const r of bad) {
      const rules = [rule('allow', 'all', 'ok'), r as AclRule];
      expect(() => compileAcl(rules, 'deny')).toThrow(AclError);
      try {
        compileAcl(rules, 'deny');
      } catch (err) {
        expect((err as AclError).ruleIndex).toBe(1);
        expect((err as AclError).code).toBe('ACL_INVALID');
      }
    }
    expect(() => compileAcl([], 'maybe' as 'allow')).toThrow(AclError);
  });
});
