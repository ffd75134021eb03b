import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { RetainedStore } from '../../../src/router/retained-store.js';
import { matchTopic } from '../../../src/mqtt/topic.js';
import type { AppMessage } from '../../../src/protocol/messages.js';

const msg = (topic: string, payload = 'v', extra: Partial<AppMessage> = {}): AppMessage => ({
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  retain: true,
  ...extra,
});

const topics = (ms: AppMessage[]): string[] => ms.map((m) => m.topic).sort();

function storeOf(ts: string[], capacity = 1000): RetainedStore {
  const s = new RetainedStore(capacity);
  for (const t of ts) expect(s.set(msg(t))).toBe(true);
  return s;
}

describe('RetainedStore: set / replace / delete', () => {
  it('[MQTT-3.3.1-5] keeps one message per topic: a new one replaces the old', () => {
    const s = new RetainedStore(10);
    expect(s.set(msg('a/b', 'one'))).toBe(true);
    expect(s.set(msg('a/b', 'two'))).toBe(true);
    expect(s.size).toBe(1);
    const got = s.match('a/b');
    expect(got).toHaveLength(1);
    expect(Buffer.from(got[0]!.payload).toString()).toBe('two');
  });

  it('[MQTT-3.3.1-10] [MQTT-3.3.1-11] an empty payload deletes the retained message and is not stored', () => {
    const s = storeOf(['a/b', 'a']);
    expect(s.set(msg('a/b', ''))).toBe(true);
    expect(s.size).toBe(1);
    expect(s.match('a/b')).toEqual([]);
    expect(topics(s.match('#'))).toEqual(['a']);
    // Deleting something that is not there is fine and changes nothing.
    expect(s.set(msg('x/y', ''))).toBe(true);
    expect(s.set(msg('a/b/c', ''))).toBe(true);
    expect(s.size).toBe(1);
    // An empty payload for a topic that was never stored does not store it.
    expect(s.match('x/y')).toEqual([]);
  });

  it('deleting a parent keeps its children, deleting a child keeps its parent', () => {
    const s = storeOf(['a', 'a/b', 'a/b/c']);
    s.set(msg('a/b', ''));
    expect(topics(s.match('#'))).toEqual(['a', 'a/b/c']);
    s.set(msg('a/b/c', ''));
    expect(topics(s.match('#'))).toEqual(['a']);
    s.set(msg('a/b', 'again'));
    expect(topics(s.match('a/+'))).toEqual(['a/b']);
  });
});

describe('RetainedStore: match', () => {
  const s = storeOf(['a', 'a/b', 'a/c', 'a/b/c', 'b/b', '/x', 'x/', '$SYS/up', '$SYS/a/b', 'a/$x']);

  it('exact topics', () => {
    expect(topics(s.match('a/b'))).toEqual(['a/b']);
    expect(topics(s.match('a/b/c'))).toEqual(['a/b/c']);
    expect(topics(s.match('a/z'))).toEqual([]);
    expect(topics(s.match('/x'))).toEqual(['/x']);
  });

  it('[MQTT-4.7.1-3] + matches exactly one level (which may be empty)', () => {
    expect(topics(s.match('a/+'))).toEqual(['a/$x', 'a/b', 'a/c']);
    expect(topics(s.match('+/b'))).toEqual(['a/b', 'b/b']);
    expect(topics(s.match('+/+/+'))).toEqual(['a/b/c']);
    expect(topics(s.match('+/x'))).toEqual(['/x']);
    expect(topics(s.match('x/+'))).toEqual(['x/']);
  });

  it('[MQTT-4.7.1-2] # matches the parent level and every level below', () => {
    expect(topics(s.match('a/#'))).toEqual(['a', 'a/$x', 'a/b', 'a/b/c', 'a/c']);
    expect(topics(s.match('a/b/#'))).toEqual(['a/b', 'a/b/c']);
    expect(topics(s.match('a/b/c/#'))).toEqual(['a/b/c']);
    expect(topics(s.match('+/#'))).toEqual(['/x', 'a', 'a/$x', 'a/b', 'a/b/c', 'a/c', 'b/b', 'x/']);
  });

  it('[MQTT-4.7.2-1] $ topics are not matched by a filter starting with # or +', () => {
    const all = topics(s.match('#'));
    expect(all).not.toContain('$SYS/up');
    expect(all).toContain('a/$x'); // only the first level counts
    expect(topics(s.match('+/up'))).toEqual([]);
    expect(topics(s.match('+/+'))).not.toContain('$SYS/up');
    expect(topics(s.match('$SYS/#'))).toEqual(['$SYS/a/b', '$SYS/up']);
    expect(topics(s.match('$SYS/+'))).toEqual(['$SYS/up']);
  });

  it('[MQTT-3.3.2-5] expired messages are not returned', () => {
    const st = new RetainedStore(10);
    st.set(msg('e/1', 'old', { props: { expiresAt: 1000 } }));
    st.set(msg('e/2', 'new', { props: { expiresAt: 3000 } }));
    st.set(msg('e/3', 'forever'));
    expect(topics(st.match('e/#', 2000))).toEqual(['e/2', 'e/3']);
  });
});

describe('RetainedStore: capacity', () => {
  it('refuses a new topic when full but still replaces and deletes', () => {
    const s = new RetainedStore(2);
    expect(s.set(msg('a'))).toBe(true);
    expect(s.set(msg('b/c'))).toBe(true);
    expect(s.set(msg('d'))).toBe(false);
    expect(s.set(msg('b'))).toBe(false); // an intermediate node is not a stored topic
    expect(s.set(msg('b/c/d'))).toBe(false);
    expect(s.size).toBe(2);
    expect(topics(s.match('#'))).toEqual(['a', 'b/c']);
    expect(s.set(msg('a', 'replaced'))).toBe(true);
    expect(s.size).toBe(2);
    expect(s.set(msg('a', ''))).toBe(true);
    expect(s.size).toBe(1);
    expect(s.set(msg('d'))).toBe(true);
    expect(topics(s.match('#'))).toEqual(['b/c', 'd']);
  });

  it('capacity 0 stores nothing', () => {
    const s = new RetainedStore(0);
    expect(s.set(msg('a'))).toBe(false);
    expect(s.size).toBe(0);
    expect(s.match('#')).toEqual([]);
  });
});

describe('RetainedStore: property test against a naive scan with matchTopic', () => {
  const LEVELS = ['a', 'b', '', '$s'];
  const topicArb = fc
    .array(fc.constantFrom(...LEVELS), { minLength: 1, maxLength: 4 })
    .map((l) => l.join('/'))
    .filter((t) => t.length > 0);
  const filterArb = fc
    .tuple(fc.array(fc.constantFrom(...LEVELS, '+'), { minLength: 0, maxLength: 4 }), fc.boolean())
    .map(([l, hash]) => (hash ? [...l, '#'] : l).join('/'))
    .filter((f) => f.length > 0);
  const opArb = fc.record({ topic: topicArb, payload: fc.constantFrom('', 'x', 'y', 'zz') });

  it('match(filter) equals scanning every stored topic; size and capacity agree with a model', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), fc.array(opArb, { maxLength: 60 }), fc.array(filterArb, { minLength: 1, maxLength: 10 }), (capacity, ops, filters) => {
        const store = new RetainedStore(capacity);
        const model = new Map<string, string>();
        for (const { topic, payload } of ops) {
          const ok = store.set(msg(topic, payload));
          if (payload === '') {
            model.delete(topic);
            expect(ok).toBe(true);
          } else if (model.has(topic) || model.size < capacity) {
            model.set(topic, payload);
            expect(ok).toBe(true);
          } else {
            expect(ok).toBe(false);
          }
          expect(store.size).toBe(model.size);
          expect(store.size).toBeLessThanOrEqual(capacity);
        }
        for (const f of filters) {
          const got = store.match(f).map((m) => `${m.topic}=${Buffer.from(m.payload).toString()}`).sort();
          const want = [...model]
            .filter(([t]) => matchTopic(f, t))
            .map(([t, p]) => `${t}=${p}`)
            .sort();
          expect(got, `filter ${JSON.stringify(f)}`).toEqual(want);
        }
      }),
      { numRuns: 500 },
    );
  });
});
