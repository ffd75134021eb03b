/**
 * The claims a node has out (src/cluster/claims.ts): settled when every asked node
 * answered or left, or at the deadline with the ones that did not answer named.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ClaimBook } from '../../../src/cluster/claims.js';

const none = (node: string) => ({ node, has: false });

describe('ClaimBook', () => {
  it('a claim with nobody to ask settles at once', () => {
    const book = new ClaimBook();
    const r = book.open(0, 1, 'c', [], 1000);
    expect(r.settled).toBe(true);
    expect(book.size).toBe(0);
  });

  it('settles on the last answer, once; answers from nodes not asked, or twice, are ignored', () => {
    const book = new ClaimBook();
    const { claim } = book.open(1, 7, 'c', ['a', 'b'], 1000);
    expect(book.answer(claim.id, none('x'))).toBeNull();
    expect(book.answer(claim.id, none('a'))).toBeNull();
    expect(book.answer(claim.id, none('a'))).toBeNull();
    const done = book.answer(claim.id, { node: 'b', has: true, lastSeen: 5 });
    expect(done?.answers.map((a) => a.node)).toEqual(['a', 'b']);
    expect(book.answer(claim.id, none('b'))).toBeNull();
    expect(book.size).toBe(0);
  });

  it('a node that leaves the cluster is no longer waited for', () => {
    const book = new ClaimBook();
    const one = book.open(0, 1, 'c1', ['a', 'b'], 1000).claim;
    const two = book.open(0, 2, 'c2', ['b'], 1000).claim;
    book.answer(one.id, none('a'));
    const settled = book.nodeGone('b');
    expect(settled.map((c) => c.id).sort()).toEqual([one.id, two.id].sort());
  });

  it('at the deadline a claim settles with the nodes that did not answer named', () => {
    const book = new ClaimBook();
    const { claim } = book.open(0, 1, 'c', ['a', 'b'], 1000);
    book.answer(claim.id, none('a'));
    expect(book.expire(999)).toEqual([]);
    const [late] = book.expire(1000);
    expect(late!.missing).toEqual(['b']);
    expect(late!.claim.answers).toHaveLength(1);
    expect(book.size).toBe(0);
  });

  it('property: whatever the order of answers and departures, every claim settles exactly once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 4 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(5), fc.constantFrom('a', 'b', 'c', 'd'), fc.boolean()), { maxLength: 40 }),
        (asked, events) => {
          const book = new ClaimBook();
          const settled = new Map<number, number>();
          const ids: number[] = [];
          for (const nodes of asked) {
            const r = book.open(0, 0, 'x', nodes, 100);
            ids.push(r.claim.id);
            if (r.settled) settled.set(r.claim.id, 1);
          }
          const count = (id: number) => settled.set(id, (settled.get(id) ?? 0) + 1);
          for (const [i, node, gone] of events) {
            if (gone) for (const c of book.nodeGone(node)) count(c.id);
            else {
              const c = book.answer(ids[i % ids.length]!, none(node));
              if (c) count(c.id);
            }
          }
          for (const s of book.expire(100)) count(s.claim.id);
          return ids.every((id) => settled.get(id) === 1) && book.size === 0;
        },
      ),
    );
  });
});
