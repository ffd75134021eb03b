import { describe, expect, it } from 'vitest';
import { newPickState, pickMember } from '../../../src/session/shared-strategy.js';
import type { AppMessage } from '../../../src/protocol/messages.js';

const members = ['a', 'b', 'c'].map((clientId) => ({ clientId }));
const msg = (over: Partial<AppMessage> = {}): AppMessage => ({ topic: 't', payload: new Uint8Array(0), qos: 1, retain: false, ...over });
const run = (strategy: Parameters<typeof pickMember>[0], n: number, cands = members, m: (i: number) => AppMessage = () => msg(), random?: () => number) => {
  const st = newPickState();
  return Array.from({ length: n }, (_, i) => pickMember(strategy, cands, st, m(i), random).clientId);
};

describe('shared subscription strategies', () => {
  it('round_robin: every member in turn, so the load is even', () => {
    expect(run('round_robin', 7)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  });

  it('round_robin: keeps turning when the candidates change', () => {
    const st = newPickState();
    expect(pickMember('round_robin', members, st, msg()).clientId).toBe('a');
    expect(pickMember('round_robin', members, st, msg()).clientId).toBe('b');
    const two = members.slice(0, 2);
    expect(pickMember('round_robin', two, st, msg()).clientId).toBe('a');
    expect(pickMember('round_robin', two, st, msg()).clientId).toBe('b');
  });

  it('random: uniform over the candidates', () => {
    const seq = [0, 0.34, 0.99, 0.5];
    let i = 0;
    expect(run('random', 4, members, undefined, () => seq[i++]!)).toEqual(['a', 'b', 'c', 'b']);
    const counts = new Map<string, number>();
    for (const c of run('random', 3000)) counts.set(c, (counts.get(c) ?? 0) + 1);
    for (const m of members) expect(counts.get(m.clientId)).toBeGreaterThan(800);
  });

  it('sticky: the same member while it stays a candidate, then another one, kept in turn', () => {
    const st = newPickState();
    const picks = Array.from({ length: 5 }, () => pickMember('sticky', members, st, msg()).clientId);
    expect(new Set(picks).size).toBe(1);
    const first = picks[0]!;
    const without = members.filter((m) => m.clientId !== first);
    const next = pickMember('sticky', without, st, msg()).clientId;
    expect(next).not.toBe(first);
    expect(pickMember('sticky', members, st, msg()).clientId).toBe(next); // the first one back does not take over
  });

  it('hash: one publisher always gets the same member; publishers spread; no publisher -> by topic', () => {
    const byPublisher = run('hash', 20, members, (i) => msg({ origin: 'pub-1', topic: `t/${i}` }));
    expect(new Set(byPublisher).size).toBe(1);
    const spread = new Set(Array.from({ length: 30 }, (_, i) => pickMember('hash', members, newPickState(), msg({ origin: `pub-${i}` })).clientId));
    expect(spread.size).toBe(3);
    const st = newPickState();
    expect(pickMember('hash', members, st, msg({ topic: 'x/1' }))).toBe(pickMember('hash', members, st, msg({ topic: 'x/1' })));
  });

  it('a single candidate is always picked', () => {
    for (const s of ['round_robin', 'random', 'sticky', 'hash'] as const) expect(run(s, 3, [{ clientId: 'z' }])).toEqual(['z', 'z', 'z']);
  });
});
