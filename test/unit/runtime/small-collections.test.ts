/**
 * SmallMap / SmallSet (src/runtime/small-collections.ts): compact stand-ins for Map and
 * Set that keep one entry without a Map or Set. Any sequence of operations gives what a Map or a Set gives, in the same order.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { SmallMap, SmallSet } from '../../../src/runtime/small-collections.js';

type Op = { op: 'set' | 'delete' | 'clear' | 'get'; k: number; v: number };
const ops = fc.array(
  fc.record({ op: fc.constantFrom('set', 'set', 'delete', 'get', 'clear'), k: fc.integer({ min: 0, max: 4 }), v: fc.integer() }) as fc.Arbitrary<Op>,
  { maxLength: 40 },
);

describe('SmallMap', () => {
  it('behaves like a Map (results, size, order of keys, values and entries)', () => {
    fc.assert(
      fc.property(ops, (list) => {
        const m = new Map<number, number>();
        const s = new SmallMap<number, number>();
        for (const { op, k, v } of list) {
          if (op === 'set') {
            m.set(k, v);
            expect(s.set(k, v)).toBe(s);
          } else if (op === 'delete') expect(s.delete(k)).toBe(m.delete(k));
          else if (op === 'get') expect(s.get(k)).toBe(m.get(k));
          else {
            m.clear();
            s.clear();
          }
          expect(s.size).toBe(m.size);
          for (let key = 0; key <= 4; key++) expect(s.has(key)).toBe(m.has(key));
          expect([...s]).toEqual([...m]);
          expect([...s.keys()]).toEqual([...m.keys()]);
          expect([...s.values()]).toEqual([...m.values()]);
          expect([...s.entries()]).toEqual([...m.entries()]);
        }
      }),
    );
  });

  it('holds undefined values and string keys like a Map', () => {
    const s = new SmallMap<string, number | undefined>();
    s.set('a', undefined);
    expect(s.has('a')).toBe(true);
    expect(s.size).toBe(1);
    s.set('b', 2);
    expect([...s]).toEqual([
      ['a', undefined],
      ['b', 2],
    ]);
  });
});

describe('SmallSet', () => {
  it('behaves like a Set (results, size, order)', () => {
    fc.assert(
      fc.property(ops, (list) => {
        const m = new Set<number>();
        const s = new SmallSet<number>();
        for (const { op, k } of list) {
          if (op === 'set') {
            m.add(k);
            expect(s.add(k)).toBe(s);
          } else if (op === 'delete') expect(s.delete(k)).toBe(m.delete(k));
          else if (op === 'clear') {
            m.clear();
            s.clear();
          }
          expect(s.size).toBe(m.size);
          for (let key = 0; key <= 4; key++) expect(s.has(key)).toBe(m.has(key));
          expect([...s]).toEqual([...m]);
          expect([...s.values()]).toEqual([...m.values()]);
        }
      }),
    );
  });
});

describe('SmallSet built from initial values (ChannelState.qos2In)', () => {
  it('behaves like a Set of packet ids built from the same values', () => {
    fc.assert(
      fc.property(ops, fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }), (list, initial) => {
        const m = new Set<number>(initial);
        const s = new SmallSet<number>(initial);
        for (const { op, k } of list) {
          if (op === 'set') {
            m.add(k);
            expect(s.add(k)).toBe(s);
          } else if (op === 'delete') expect(s.delete(k)).toBe(m.delete(k));
          expect(s.size).toBe(m.size);
          for (let key = 0; key <= 4; key++) expect(s.has(key)).toBe(m.has(key));
          expect([...s]).toEqual([...m]);
        }
      }),
    );
  });
});
