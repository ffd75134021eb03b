import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { imCanPublish, imCanSubscribe, type ImUser } from '../../../src/im/im-acl.js';
import { parseImTopic, type ImTopic } from '../../../src/im/topics.js';
import { matchTopic } from '../../../src/mqtt/topic.js';

const alice: ImUser = { uid: 'alice', ns: 'acme', groups: ['dev', 'ops'] };

function t(topic: string): ImTopic {
  const parsed = parseImTopic(topic);
  if (parsed === null) throw new Error(`not an IM topic: ${topic}`);
  return parsed;
}

describe('imCanPublish', () => {
  it('allows inboxes and groups of the own namespace', () => {
    expect(imCanPublish(alice, t('/acme/im/u/jim'))).toBe(true);
    expect(imCanPublish(alice, t('/acme/im/u/alice'))).toBe(true);
    expect(imCanPublish(alice, t('/acme/im/g/dev'))).toBe(true);
    // Membership is not required to post (see im-acl.ts).
    expect(imCanPublish(alice, t('/acme/im/g/sales'))).toBe(true);
  });

  it('refuses other namespaces', () => {
    expect(imCanPublish(alice, t('/other/im/u/jim'))).toBe(false);
    expect(imCanPublish(alice, t('/other/im/g/dev'))).toBe(false);
    expect(imCanPublish(alice, t('/Acme/im/u/jim'))).toBe(false);
  });

  it('never allows presence: the broker maintains it', () => {
    expect(imCanPublish(alice, t('/acme/im/p/alice'))).toBe(false);
    expect(imCanPublish(alice, t('/acme/im/p/jim'))).toBe(false);
  });

  it("refuses kind 'other'", () => {
    for (const topic of ['/acme/im', '/acme/im/u', '/acme/im/u/a/b', '/acme/im/x/y', '/acme/im/u/']) {
      expect(imCanPublish(alice, t(topic)), topic).toBe(false);
    }
  });

  it('refuses an unauthenticated (no IM profile) client', () => {
    expect(imCanPublish(undefined, t('/acme/im/u/jim'))).toBe(false);
  });
});

describe('imCanSubscribe', () => {
  it('leaves filters that cannot match IM topics alone', () => {
    for (const f of ['a/#', '/acme/chat/#', '$SYS/#', 'sensors/+/temp', '/acme', '+/+']) {
      expect(imCanSubscribe(alice, f), f).toBe(true);
      expect(imCanSubscribe(undefined, f), f).toBe(true);
    }
  });

  it('allows exactly the listed filters', () => {
    for (const f of ['/acme/im/u/alice', '/acme/im/p/+', '/acme/im/p/jim', '/acme/im/p/alice', '/acme/im/g/dev',
      '/acme/im/g/ops', '/acme/im/p/Jim Smith']) {
      expect(imCanSubscribe(alice, f), f).toBe(true);
    }
  });

  it('refuses every other filter that may match IM topics', () => {
    for (const f of [
      '#', '+/#', '/#', '/+/#', '/acme/#', '/acme/im/#', '/acme/im/u/+', '/acme/im/u/#', '/+/im/u/+',
      '/+/im/u/alice', // alice's namesakes in other namespaces
      '/acme/im/u/jim', // someone else's inbox
      '/other/im/u/alice', // another namespace
      '/acme/im/g/sales', // not a member
      '/acme/im/g/+', '/acme/im/+/alice', '/acme/+/u/alice', '/acme/im/p/#', '/acme/im/p/+/x', '/acme/im/p/a/b',
      '/other/im/p/+', '/acme/im', '/acme/im/u', '/acme/im/u/alice/x', '/acme/im/u/alice/#', '/acme/im/x/y',
      '/acme/im/p/', '/acme/im/u/', '+/acme/im/u/alice',
    ]) {
      expect(imCanSubscribe(alice, f), f).toBe(false);
    }
  });

  it('refuses IM filters without a user', () => {
    expect(imCanSubscribe(undefined, '/acme/im/u/alice')).toBe(false);
    expect(imCanSubscribe(undefined, '/acme/im/p/+')).toBe(false);
  });

  it('grants nothing through identifiers that are not plain levels', () => {
    // A uid '+' must not make '/acme/im/u/+' "its own inbox".
    expect(imCanSubscribe({ uid: '+', ns: 'acme', groups: [] }, '/acme/im/u/+')).toBe(false);
    expect(imCanSubscribe({ uid: '#', ns: 'acme', groups: [] }, '/acme/im/u/#')).toBe(false);
    expect(imCanSubscribe({ uid: 'a', ns: 'acme', groups: ['+'] }, '/acme/im/g/+')).toBe(false);
    expect(imCanSubscribe({ uid: 'a', ns: '+', groups: [] }, '/+/im/u/a')).toBe(false);
    expect(imCanSubscribe({ uid: 'a', ns: '+', groups: [] }, '/+/im/p/+')).toBe(false);
    expect(imCanSubscribe({ uid: 'u/x', ns: 'acme', groups: [] }, '/acme/im/u/u/x')).toBe(false);
    expect(imCanSubscribe({ uid: 'x', ns: 'a/im/u', groups: [] }, '/a/im/u/im/u/x')).toBe(false);
  });

  // The privacy property of the IM ACL: whatever the user profile (even a hostile one)
  // and whatever the filter, a granted filter never delivers someone else's inbox.
  it('property: a granted filter matches no inbox but the user own', () => {
    const ident = fc.constantFrom('acme', 'other', 'alice', 'jim', 'dev', 'u', 'im', '+', '#', '', 'a/b', '$x', 'x');
    const userArb = fc.record({ uid: ident, ns: ident, groups: fc.array(ident, { maxLength: 3 }) });
    // Filters are drawn partly from the user's own identifiers, so grants (and inboxes
    // matched by granted filters) actually happen.
    const caseArb = userArb.chain((user) => {
      const mine = fc.constantFrom(user.uid, user.ns, ...user.groups);
      const id = fc.oneof(ident, mine);
      const level = fc.oneof(id, fc.constantFrom('u', 'g', 'p', 'im', ''));
      // The allowed shapes with one level possibly replaced by a wildcard.
      const nearGrant = fc
        .tuple(
          fc.constantFrom(['u', user.uid], ['p', '+'], ['p', user.uid], ...user.groups.map((g) => ['g', g])),
          fc.integer({ min: -1, max: 4 }),
          fc.constantFrom('+', '#'),
        )
        .map(([[k, x], at, w]) => {
          const ls = ['', user.ns, 'im', k, x];
          if (at >= 0) ls.splice(at, w === '#' ? 5 : 1, w);
          return ls.join('/');
        });
      const filterArb = fc.oneof(
        nearGrant,
        fc
          .tuple(fc.constantFrom('', '+'), id, fc.constantFrom('im', '+'), fc.constantFrom('u', 'g', 'p', '+'), id)
          .map((ls) => ls.join('/')),
        fc.tuple(fc.array(level, { minLength: 1, maxLength: 6 }), fc.boolean()).map(([ls, hash]) => [...ls, ...(hash ? ['#'] : [])].join('/')),
      );
      return fc.tuple(fc.constant(user), filterArb);
    });
    let granted = 0;
    let inboxHits = 0;
    fc.assert(
      fc.property(caseArb, fc.array(ident.filter((s) => s !== ''), { maxLength: 4 }), ([user, filter], extra) => {
        if (!imCanSubscribe(user, filter)) return;
        if (filterMayMatchIm(filter)) granted++;
        // Candidate inboxes: every namespace/uid combination from the pool, the
        // filter's own levels, and the user's.
        const names = new Set([...extra, user.uid, user.ns, ...filter.split('/'), 'zed']);
        for (const ns of names) {
          for (const uid of names) {
            const inbox = `/${ns}/im/u/${uid}`;
            const parsed = parseImTopic(inbox);
            if (parsed?.kind !== 'u' || !matchTopic(filter, inbox)) continue;
            // Only a real topic name can be published, so only those can leak.
            if (/[+#]/.test(inbox)) continue;
            inboxHits++;
            expect(parsed.ns).toBe(user.ns);
            expect(parsed.id).toBe(user.uid);
          }
        }
      }),
      { numRuns: 3000 },
    );
    // Guard against a vacuous property: IM filters were granted during the run.
    expect(granted).toBeGreaterThan(0);
    expect(inboxHits).toBeGreaterThan(0);
  });

  it('property: a granted IM filter is one of the listed exact forms', () => {
    const ident = fc.constantFrom('acme', 'alice', 'jim', 'dev', 'x', '+', '#');
    fc.assert(
      fc.property(
        fc.record({ uid: ident, ns: ident, groups: fc.array(ident, { maxLength: 2 }) }),
        fc.tuple(fc.constantFrom('', '+'), ident, fc.constantFrom('im', '+'), fc.constantFrom('u', 'g', 'p', '+', '#'), ident),
        (user, ls) => {
          const f = ls.join('/');
          if (!filterMayMatchIm(f) || !imCanSubscribe(user, f)) return;
          const [, ns, im, k, x] = ls;
          expect(ns).toBe(user.ns);
          expect(im).toBe('im');
          if (k === 'u') expect(x).toBe(user.uid);
          else if (k === 'g') expect(user.groups).toContain(x);
          else expect(k).toBe('p');
          expect(x).not.toBe('#');
          if (k !== 'p') expect(x).not.toBe('+');
        },
      ),
      { numRuns: 2000 },
    );
  });
});

function filterMayMatchIm(f: string): boolean {
  // Local restatement so the test does not lean on the function under test's helper.
  const l = f.split('/');
  const ok = (i: number, want: (s: string) => boolean): boolean | 'hash' =>
    l[i] === '#' ? 'hash' : l[i] === undefined ? false : l[i] === '+' || want(l[i]);
  for (const [i, want] of [[0, (s: string) => s === ''], [1, (s: string) => s !== ''], [2, (s: string) => s === 'im']] as const) {
    const r = ok(i, want);
    if (r === 'hash') return true;
    if (!r) return false;
  }
  return true;
}
