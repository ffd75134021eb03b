import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { TopicTrie } from '../../../src/router/topic-trie.js';
import { matchTopic } from '../../../src/mqtt/topic.js';

/** Filters matched by the trie, sorted, asserting each is visited once with its own value. */
function matched<V>(trie: TopicTrie<V>, topic: string): string[] {
  const out: string[] = [];
  trie.match(topic, (value, filter) => {
    expect(value).toBe(trie.get(filter));
    out.push(filter);
  });
  const sorted = [...out].sort();
  expect(new Set(sorted).size).toBe(sorted.length); // no duplicate visits
  return sorted;
}

function trieOf(filters: string[]): TopicTrie<string> {
  const t = new TopicTrie<string>();
  for (const f of filters) t.set(f, `v:${f}`);
  return t;
}

describe('TopicTrie basic map operations', () => {
  it('set/get/has/size/delete', () => {
    const t = new TopicTrie<number>();
    expect(t.size).toBe(0);
    expect(t.get('a')).toBeUndefined();
    t.set('a/b', 1);
    t.set('a/+', 2);
    t.set('a/#', 3);
    t.set('a', 4);
    expect(t.size).toBe(4);
    expect(t.get('a/b')).toBe(1);
    expect(t.get('a/+')).toBe(2);
    expect(t.get('a/#')).toBe(3);
    expect(t.get('a')).toBe(4);
    expect(t.has('a/c')).toBe(false);
    expect(t.has('a/b/c')).toBe(false);
    t.set('a/b', 10); // overwrite does not change size
    expect(t.size).toBe(4);
    expect(t.get('a/b')).toBe(10);
    expect(t.delete('a/b')).toBe(true);
    expect(t.delete('a/b')).toBe(false);
    expect(t.delete('nope/x')).toBe(false);
    expect(t.size).toBe(3);
    expect(new Map(t.filters())).toEqual(new Map([['a/+', 2], ['a/#', 3], ['a', 4]]));
  });

  it('keeps wildcard filters distinct from look-alike literal levels', () => {
    const t = new TopicTrie<number>();
    t.set('a/+', 1);
    expect(t.get('a/x')).toBeUndefined();
    expect(t.has('a/#')).toBe(false);
    t.set('a+', 2); // invalid as a filter, but stored literally like matchTopic treats it
    expect(t.get('a+')).toBe(2);
  });

  it('stores undefined values as present', () => {
    const t = new TopicTrie<undefined>();
    t.set('x', undefined);
    expect(t.has('x')).toBe(true);
    expect(t.size).toBe(1);
    const seen: string[] = [];
    t.match('x', (_v, f) => seen.push(f));
    expect(seen).toEqual(['x']);
  });

  it('[MQTT-4.7.1-2] rejects `#` that is not the last level', () => {
    const t = new TopicTrie<number>();
    expect(() => t.set('a/#/b', 1)).toThrow(RangeError);
    expect(t.size).toBe(0);
    expect(t.get('a/#/b')).toBeUndefined();
    expect(t.delete('a/#/b')).toBe(false);
  });

  it('prunes nodes on delete so the root is empty again', () => {
    const t = new TopicTrie<number>();
    expect(t.nodeCount()).toBe(1);
    const fs = ['a/b/c', 'a/b', 'a/+/c', 'a/#', '#', '+', '/', '', '$SYS/#'];
    fs.forEach((f, i) => t.set(f, i));
    expect(t.nodeCount()).toBeGreaterThan(1);
    // Deleting a deep leaf keeps shared prefixes that are still used.
    t.delete('a/b/c');
    expect(t.get('a/b')).toBe(1);
    for (const f of fs) t.delete(f);
    expect(t.size).toBe(0);
    expect(t.nodeCount()).toBe(1);
  });
});

describe('TopicTrie.match', () => {
  const filters = [
    'sport/tennis/player1/#', 'sport/tennis/+', 'sport/#', '#', '+', '+/+', '/+', '+/tennis/#',
    '$SYS/#', '$SYS/monitor/+', '+/monitor/Clients', 'sport', 'sport/', 'a//b', 'a/+/b',
  ];
  const t = trieOf(filters);
  const topics = [
    'sport/tennis/player1', 'sport/tennis/player1/ranking', 'sport/tennis/player1/score/wimbledon',
    'sport/tennis', 'sport', 'sport/', '/finance', 'finance', '$SYS/monitor/Clients', '$SYS',
    'a//b', 'x/monitor/Clients', '/', 'a/b',
  ];

  it.each(topics)('[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] agrees with matchTopic for %s', (topic) => {
    expect(matched(t, topic)).toEqual(filters.filter((f) => matchTopic(f, topic)).sort());
  });

  it('[MQTT-4.7.1-2] `a/#` matches `a` (parent level)', () => {
    expect(matched(trieOf(['a/#']), 'a')).toEqual(['a/#']);
    expect(matched(trieOf(['a/b/#']), 'a')).toEqual([]);
  });

  it('[MQTT-4.7.2-1] leading wildcards do not match `$` topics', () => {
    const tt = trieOf(['#', '+', '+/monitor/Clients', '$SYS/#']);
    expect(matched(tt, '$SYS/monitor/Clients')).toEqual(['$SYS/#']);
    expect(matched(tt, '$SYS')).toEqual(['$SYS/#']);
    expect(matched(tt, 'x/monitor/Clients')).toEqual(['#', '+/monitor/Clients']);
  });

  it('matches nothing on an empty trie', () => {
    expect(matched(new TopicTrie<number>(), 'a')).toEqual([]);
  });
});

// ---- property tests -------------------------------------------------------

const literalLevel = fc.constantFrom('a', 'b', '', '$SYS', '$x');
const filterLevel = fc.oneof(literalLevel, fc.constant('+'));
const filterArb = fc
  .tuple(fc.array(filterLevel, { minLength: 0, maxLength: 4 }), fc.boolean())
  .filter(([levels, hash]) => levels.length > 0 || hash)
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'));
const topicArb = fc.array(literalLevel, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));

describe('TopicTrie properties', () => {
  it('[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1] match() equals naive matchTopic over all filters', () => {
    fc.assert(
      fc.property(fc.uniqueArray(filterArb, { maxLength: 30 }), fc.array(topicArb, { minLength: 1, maxLength: 10 }), (fs, topics) => {
        const t = trieOf(fs);
        for (const topic of topics) {
          expect(matched(t, topic)).toEqual(fs.filter((f) => matchTopic(f, topic)).sort());
        }
      }),
      { numRuns: 500 },
    );
  });

  type Op = { kind: 'set'; filter: string; value: number } | { kind: 'delete'; filter: string };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), filter: filterArb, value: fc.integer() }),
    fc.record({ kind: fc.constant('delete' as const), filter: filterArb }),
  );

  it('set/delete sequences stay consistent with a Map model and prune to an empty root', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), topicArb, (ops, topic) => {
        const t = new TopicTrie<number>();
        const model = new Map<string, number>();
        for (const op of ops) {
          if (op.kind === 'set') {
            t.set(op.filter, op.value);
            model.set(op.filter, op.value);
          } else {
            expect(t.delete(op.filter)).toBe(model.delete(op.filter));
          }
          expect(t.size).toBe(model.size);
        }
        const entries = [...t.filters()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        const expected = [...model].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        expect(entries).toEqual(expected);
        for (const [f, v] of model) expect(t.get(f)).toBe(v);
        expect(matched(t, topic)).toEqual([...model.keys()].filter((f) => matchTopic(f, topic)).sort());
        for (const f of [...model.keys()]) expect(t.delete(f)).toBe(true);
        expect(t.size).toBe(0);
        expect([...t.filters()]).toEqual([]);
        expect(t.nodeCount()).toBe(1);
      }),
      { numRuns: 300 },
    );
  });
});
