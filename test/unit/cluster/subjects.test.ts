/**
 * MQTT topics and filters as NATS subjects (src/cluster/subjects.ts): NATS must deliver a
 * message to a node exactly when MQTT matching would [MQTT-4.7.1-1..3], up to the `$` rule
 * [MQTT-4.7.2-1] that the receiving shards apply again.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { escapeLevel, filterSubjects, topicSubject } from '../../../src/cluster/subjects.js';
import { matchTopic as topicMatches } from '../../../src/mqtt/topic.js';
import { natsMatch } from './memory-bus.js';

describe('subjects', () => {
  it('escapes what NATS reserves, the empty level, and the escape character itself', () => {
    expect(escapeLevel('abc-_9')).toBe('abc-_9');
    expect(escapeLevel('')).toBe('~');
    expect(escapeLevel('a.b')).toBe('a~2Eb');
    expect(escapeLevel('*')).toBe('~2A');
    expect(escapeLevel('>')).toBe('~3E');
    expect(escapeLevel('~')).toBe('~7E');
    expect(escapeLevel('a b')).toBe('a~20b');
    expect(escapeLevel('é')).toBe('~C3~A9');
    expect(topicSubject('sb.m', '/default/im/u/alice')).toBe('sb.m.~.default.im.u.alice');
  });

  it('maps + to * and # to > (and a/# also to a itself [MQTT-4.7.1-2])', () => {
    expect(filterSubjects('p', 'a/+/c')).toEqual(['p.a.*.c']);
    expect(filterSubjects('p', 'a/#')).toEqual(['p.a', 'p.a.>']);
    expect(filterSubjects('p', '#')).toEqual(['p.>']);
    expect(filterSubjects('p', '+/#')).toEqual(['p.*', 'p.*.>']);
  });

  const level = fc.oneof(fc.constantFrom('', 'a', 'b', '.', '*', '>', '~', '~7E', 'a.b', ' ', 'é', '$x'), fc.string({ maxLength: 3 }).filter((s) => !/[+#/\u0000]/.test(s)));
  const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'));
  const filterLevel = fc.oneof(level, fc.constant('+'));
  const filter = fc
    .tuple(fc.array(filterLevel, { minLength: 1, maxLength: 4 }), fc.boolean())
    .map(([l, hash]) => (hash ? [...l, '#'] : l).join('/'))
    .chain((f) => fc.constantFrom(f, '#'));

  it('a topic subject matches a filter subject exactly when MQTT matching says so (property)', () => {
    fc.assert(
      fc.property(topic, filter, (t, f) => {
        const nats = filterSubjects('p', f).some((s) => natsMatch(s, topicSubject('p', t)));
        // NATS is told nothing of the `$` rule: a wildcard-first filter matches `$` topics
        // there, and the receiving shard drops the copy. Everything else must agree.
        if (t.startsWith('$') && (f.startsWith('+') || f.startsWith('#'))) return nats === true || !topicMatches(f, t);
        expect(nats).toBe(topicMatches(f, t));
        return true;
      }),
      { numRuns: 3000 },
    );
  });

  it('different topics never share a subject (property)', () => {
    fc.assert(fc.property(topic, topic, (a, b) => a === b || topicSubject('p', a) !== topicSubject('p', b)), { numRuns: 3000 });
  });
});
