/**
 * MessageQueue.prepend: a holding session (im.presubscribe.holdNewUsers) hands its
 * messages to the user's first real session. Those messages are older than anything the
 * new session queued, so they go in front; the queue stays bounded, and what does not
 * fit (the newest of the handed-over messages) is dropped and counted by the caller.
 */
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

const topics = (ns: number[]): string[] => ns.map((n) => `t/${n}`);

describe('MessageQueue.prepend', () => {
  it('puts the given messages, in their order, in front of what is queued', () => {
    const q = new MessageQueue(10);
    q.push(qm(10));
    q.push(qm(11));
    expect(q.prepend([qm(1), qm(2), qm(3)])).toBe(0);
    expect(q.size).toBe(5);
    expect(drain(q)).toEqual(topics([1, 2, 3, 10, 11]));
  });

  it('into an empty queue it behaves like pushing them in order', () => {
    const q = new MessageQueue(4);
    expect(q.prepend([qm(1), qm(2)])).toBe(0);
    expect(drain(q)).toEqual(topics([1, 2]));
  });

  it('an empty list changes nothing and drops nothing', () => {
    const q = new MessageQueue(2);
    q.push(qm(1));
    q.push(qm(2));
    expect(q.prepend([])).toBe(0);
    expect(drain(q)).toEqual(topics([1, 2]));
  });

  it('stays within capacity: keeps the oldest that fit, drops the newest, returns how many were dropped', () => {
    const q = new MessageQueue(5);
    q.push(qm(10));
    q.push(qm(11));
    expect(q.prepend([qm(1), qm(2), qm(3), qm(4), qm(5)])).toBe(2);
    expect(q.size).toBe(5);
    expect(drain(q)).toEqual(topics([1, 2, 3, 10, 11]));
  });

  it('a full queue takes none of them; what was queued is kept', () => {
    const q = new MessageQueue(2);
    q.push(qm(10));
    q.push(qm(11));
    expect(q.prepend([qm(1), qm(2), qm(3)])).toBe(3);
    expect(drain(q)).toEqual(topics([10, 11]));
  });

  it('capacity 0 drops everything', () => {
    const q = new MessageQueue(0);
    expect(q.prepend([qm(1)])).toBe(1);
    expect(q.size).toBe(0);
    expect(q.shift()).toBeUndefined();
  });

  it('works after the ring has wrapped around', () => {
    const q = new MessageQueue(8);
    for (let i = 0; i < 8; i++) q.push(qm(100 + i));
    for (let i = 0; i < 6; i++) q.shift();
    q.push(qm(200));
    q.push(qm(201)); // head is now in the middle of the ring
    expect(q.prepend([qm(1), qm(2), qm(3), qm(4)])).toBe(0);
    expect(drain(q)).toEqual(topics([1, 2, 3, 4, 106, 107, 200, 201]));
  });

  it('the queue keeps working (push, shift, bound) afterwards', () => {
    const q = new MessageQueue(4);
    q.push(qm(10));
    q.prepend([qm(1), qm(2)]);
    expect(q.push(qm(11))).toBe(true);
    expect(q.push(qm(12))).toBe(false);
    expect(drain(q)).toEqual(topics([1, 2, 10, 11]));
    expect(q.push(qm(13))).toBe(true);
    expect(drain(q)).toEqual(topics([13]));
  });

  it('does not modify the list it was given', () => {
    const list = [qm(1), qm(2), qm(3)];
    const q = new MessageQueue(1);
    q.prepend(list);
    expect(list.map((m) => m.msg.topic)).toEqual(topics([1, 2, 3]));
  });
});

describe('MessageQueue.prepend against an array model (fast-check)', () => {
  type Op = { k: 'push'; n: number } | { k: 'shift' } | { k: 'prepend'; ns: number[] } | { k: 'clear' };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ k: fc.constant('push' as const), n: fc.nat(999) }) },
    { weight: 3, arbitrary: fc.constant({ k: 'shift' as const }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('prepend' as const), ns: fc.array(fc.nat(999), { maxLength: 12 }) }) },
    { weight: 1, arbitrary: fc.constant({ k: 'clear' as const }) },
  );

  it('order, size, capacity and the dropped count match the model', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 }), fc.array(opArb, { maxLength: 80 }), (capacity, ops) => {
        const q = new MessageQueue(capacity);
        let model: number[] = [];
        for (const op of ops) {
          switch (op.k) {
            case 'push': {
              const fits = model.length < capacity;
              expect(q.push(qm(op.n))).toBe(fits);
              if (fits) model.push(op.n);
              break;
            }
            case 'shift':
              expect(q.shift()?.msg.topic).toBe(model.length > 0 ? `t/${model.shift()!}` : undefined);
              break;
            case 'prepend': {
              const room = Math.max(0, capacity - model.length);
              const kept = op.ns.slice(0, room);
              expect(q.prepend(op.ns.map(qm))).toBe(op.ns.length - kept.length);
              model = [...kept, ...model];
              break;
            }
            case 'clear':
              q.clear();
              model = [];
              break;
          }
          expect(q.size).toBe(model.length);
          expect(q.size).toBeLessThanOrEqual(capacity);
        }
        expect(drain(q)).toEqual(topics(model));
      }),
      { numRuns: 500 },
    );
  });
});
