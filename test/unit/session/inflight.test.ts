import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Inflight, type InflightEntry } from '../../../src/session/inflight.js';

const entry = (tag: string): InflightEntry => ({
  msg: { topic: tag, payload: new Uint8Array(0), qos: 1, retain: false },
  qos: 1,
  retain: false,
  state: 'publish',
});

describe('Inflight', () => {
  it('[MQTT-2.3.1-1] allocates non-zero packet ids, starting at 1', () => {
    const f = new Inflight();
    expect(f.add(entry('a'))).toBe(1);
    expect(f.add(entry('b'))).toBe(2);
    expect(f.size).toBe(2);
    expect(f.get(1)?.msg.topic).toBe('a');
    expect(f.get(0)).toBeUndefined();
  });

  it('does not reuse a freed id immediately (keeps counting up)', () => {
    const f = new Inflight();
    const a = f.add(entry('a'));
    expect(f.delete(a)).toBe(true);
    expect(f.delete(a)).toBe(false);
    expect(f.add(entry('b'))).toBe(2);
  });

  it('wraps from 65535 to 1, never 0, and skips ids still in use', () => {
    const f = new Inflight();
    // id 1 stays in use for the whole test
    expect(f.add(entry('keep'))).toBe(1);
    let wrong = 0;
    for (let i = 2; i <= 65534; i++) {
      const id = f.add(entry('tmp'));
      if (id !== i) wrong++;
      f.delete(id);
    }
    expect(wrong).toBe(0);
    expect(f.add(entry('last'))).toBe(65535);
    // 0 is never used, 1 is in use: the next free id is 2.
    expect(f.add(entry('wrapped'))).toBe(2);
    expect(f.get(1)?.msg.topic).toBe('keep');
    expect(f.size).toBe(3);
  });

  it('throws when all 65535 ids are in use, and works again after one is freed', () => {
    const f = new Inflight();
    for (let i = 1; i <= 65535; i++) f.add(entry(String(i)));
    expect(f.size).toBe(65535);
    expect(() => f.add(entry('x'))).toThrow(/no free packet identifier/);
    f.delete(40_000);
    expect(f.add(entry('x'))).toBe(40_000);
  });

  it('[MQTT-4.4.0-1] entriesInOrder gives insertion (send) order, not id order', () => {
    const f = new Inflight();
    for (let i = 1; i < 65535; i++) f.delete(f.add(entry('tmp'))); // next id is 65535
    const a = f.add(entry('a')); // 65535
    const b = f.add(entry('b')); // 1 (wrapped)
    const c = f.add(entry('c')); // 2
    expect([a, b, c]).toEqual([65535, 1, 2]);
    f.delete(b);
    const d = f.add(entry('d'));
    expect([...f.entriesInOrder()].map(([id, e]) => [id, e.msg.topic])).toEqual([
      [65535, 'a'],
      [2, 'c'],
      [d, 'd'],
    ]);
  });

  it('entries are live objects (state can move to pubrel); clear empties the window', () => {
    const f = new Inflight();
    const id = f.add(entry('a'));
    f.get(id)!.state = 'pubrel';
    expect([...f.entriesInOrder()][0]![1].state).toBe('pubrel');
    f.clear();
    expect(f.size).toBe(0);
    expect([...f.entriesInOrder()]).toEqual([]);
  });

  it('property: ids are unique among live entries, in 1..65535, and order follows insertion', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant<'add'>('add'), fc.nat({ max: 20 })), { maxLength: 200 }), (ops) => {
        const f = new Inflight();
        const live: number[] = []; // model: ids in insertion order
        for (const op of ops) {
          if (op === 'add') {
            const id = f.add(entry('m'));
            expect(id).toBeGreaterThanOrEqual(1);
            expect(id).toBeLessThanOrEqual(65535);
            expect(live).not.toContain(id);
            live.push(id);
          } else if (live.length > 0) {
            const [id] = live.splice(op % live.length, 1);
            expect(f.delete(id!)).toBe(true);
          }
        }
        expect(f.size).toBe(live.length);
        expect([...f.entriesInOrder()].map(([id]) => id)).toEqual(live);
      }),
    );
  });
});
