import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { MessageQueue, type QueuedMessage } from '../../../src/session/message-queue.js';

const qm = (n: number): QueuedMessage => ({
  msg: { topic: `t/${n}`, payload: new Uint8Array([n & 0xff]), qos: 1, retain: false },
  qos: 1,
  retain: false,
});

const drain = (q: MessageQueue): string[] => {
  const out: string[] = [];
  for (let m = q.shift(); m; m = q.shift()) out.push(m.msg.topic);
  return out;
};

describe('MessageQueue', () => {
  it('is FIFO', () => {
    const q = new MessageQueue(100);
    for (let i = 0; i < 5; i++) expect(q.push(qm(i))).toBe(true);
    expect(q.size).toBe(5);
    expect(drain(q)).toEqual(['t/0', 't/1', 't/2', 't/3', 't/4']);
    expect(q.size).toBe(0);
    expect(q.shift()).toBeUndefined();
  });

  it('is bounded: push returns false and stores nothing when full', () => {
    const q = new MessageQueue(3);
    expect([q.push(qm(1)), q.push(qm(2)), q.push(qm(3)), q.push(qm(4))]).toEqual([true, true, true, false]);
    expect(q.size).toBe(3);
    expect(drain(q)).toEqual(['t/1', 't/2', 't/3']);
  });

  it('capacity 0 stores nothing', () => {
    const q = new MessageQueue(0);
    expect(q.push(qm(1))).toBe(false);
    expect(q.size).toBe(0);
    expect(q.shift()).toBeUndefined();
  });

  it('grows its ring past the initial 8 slots while wrapped, keeping the order', () => {
    const q = new MessageQueue(1000);
    for (let i = 0; i < 8; i++) q.push(qm(i));
    // Move the head so the ring is wrapped when it has to grow.
    expect(q.shift()?.msg.topic).toBe('t/0');
    expect(q.shift()?.msg.topic).toBe('t/1');
    for (let i = 8; i < 40; i++) expect(q.push(qm(i))).toBe(true);
    expect(q.size).toBe(38);
    expect(drain(q)).toEqual(Array.from({ length: 38 }, (_, i) => `t/${i + 2}`));
  });

  it('a capacity that is not a power of two is still reached exactly', () => {
    const q = new MessageQueue(11);
    let accepted = 0;
    for (let i = 0; i < 20; i++) if (q.push(qm(i))) accepted++;
    expect(accepted).toBe(11);
    expect(drain(q)).toEqual(Array.from({ length: 11 }, (_, i) => `t/${i}`));
  });

  it('clear empties the queue and it can be used again', () => {
    const q = new MessageQueue(4);
    q.push(qm(1));
    q.push(qm(2));
    q.clear();
    expect(q.size).toBe(0);
    expect(q.shift()).toBeUndefined();
    for (let i = 0; i < 4; i++) expect(q.push(qm(10 + i))).toBe(true);
    expect(q.push(qm(99))).toBe(false);
    expect(drain(q)).toEqual(['t/10', 't/11', 't/12', 't/13']);
  });

  it('property: behaves like a bounded array model', () => {
    type Op = { k: 'push'; n: number } | { k: 'shift' } | { k: 'clear' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.nat().map((n): Op => ({ k: 'push', n })) },
      { weight: 4, arbitrary: fc.constant<Op>({ k: 'shift' }) },
      { weight: 1, arbitrary: fc.constant<Op>({ k: 'clear' }) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.array(opArb, { maxLength: 300 }), (capacity, ops) => {
        const q = new MessageQueue(capacity);
        const model: QueuedMessage[] = [];
        for (const op of ops) {
          if (op.k === 'push') {
            const m = qm(op.n);
            const ok = model.length < capacity;
            if (ok) model.push(m);
            expect(q.push(m)).toBe(ok);
          } else if (op.k === 'shift') {
            expect(q.shift()).toBe(model.shift()); // same object, same order
          } else {
            q.clear();
            model.length = 0;
          }
          expect(q.size).toBe(model.length);
          expect(q.size).toBeLessThanOrEqual(capacity);
        }
        for (const m of model) expect(q.shift()).toBe(m);
        expect(q.shift()).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });
});
