/**
 * PresenceBook (IM-PROTOCOL 2, added: presence `/{ns}/im/p/{uid}`): devices online per
 * user, counted per shard so a restarted shard can be written off. The coordinator
 * publishes the returned state as the retained presence message, so every change must
 * report the user's full device count across shards.
 */
import { describe, it, expect, vi, afterEach } from 'vitest';
import fc from 'fast-check';
import { PresenceBook, presencePayload } from '../../../src/coordinator/presence.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('PresenceBook.change', () => {
  it('counts devices across shards; online while any device is', () => {
    const b = new PresenceBook();
    expect(b.change('alice', 'acme', 1, 0)).toMatchObject({ ns: 'acme', state: { uid: 'alice', online: true, devices: 1 } });
    expect(b.change('alice', 'acme', 1, 2)).toMatchObject({ state: { online: true, devices: 2 } });
    expect(b.change('alice', 'acme', 1, 2)).toMatchObject({ state: { online: true, devices: 3 } });
    expect(b.devices('alice')).toBe(3);
    expect(b.change('alice', 'acme', -1, 0)).toMatchObject({ state: { online: true, devices: 2 } });
    expect(b.change('alice', 'acme', -1, 2)).toMatchObject({ state: { online: true, devices: 1 } });
    expect(b.change('alice', 'acme', -1, 2)).toMatchObject({ state: { uid: 'alice', online: false, devices: 0 } });
    expect(b.devices('alice')).toBe(0);
  });

  it('users are independent', () => {
    const b = new PresenceBook();
    b.change('alice', 'acme', 1, 0);
    b.change('bob', 'acme', 1, 0);
    b.change('bob', 'acme', 1, 1);
    expect(b.devices('alice')).toBe(1);
    expect(b.devices('bob')).toBe(2);
    expect(b.devices('carol')).toBe(0);
  });

  it('never goes negative: a stray -1 (e.g. after a shard was dropped) reports 0 devices, offline', () => {
    const b = new PresenceBook();
    expect(b.change('alice', 'acme', -1, 0).state).toMatchObject({ online: false, devices: 0 });
    expect(b.devices('alice')).toBe(0);
    // ... and a later +1 counts from 0, not from -1.
    expect(b.change('alice', 'acme', 1, 0).state).toMatchObject({ online: true, devices: 1 });
    // A -1 on one shard cannot take devices away from another.
    expect(b.change('alice', 'acme', -1, 5).state).toMatchObject({ online: true, devices: 1 });
  });

  it('reports the namespace of the change and the time of the change', () => {
    vi.useFakeTimers();
    vi.setSystemTime(1_700_000_000_000);
    const b = new PresenceBook();
    const r = b.change('alice', 'acme', 1, 0);
    expect(r).toEqual({ ns: 'acme', state: { uid: 'alice', online: true, devices: 1, ts: 1_700_000_000_000 } });
    vi.setSystemTime(1_700_000_005_000);
    expect(b.change('alice', 'acme', -1, 0).state.ts).toBe(1_700_000_005_000);
  });

  it('the latest namespace wins (a directory edit moved the user)', () => {
    const b = new PresenceBook();
    b.change('alice', 'acme', 1, 0);
    expect(b.change('alice', 'globex', 1, 1).ns).toBe('globex');
    // dropShard reports the user under the namespace last seen.
    expect(b.dropShard(0)).toEqual([{ ns: 'globex', state: expect.objectContaining({ uid: 'alice', devices: 1, online: true }) }]);
  });
});

describe('PresenceBook.dropShard', () => {
  it("writes off the shard's devices and reports only the users that changed", () => {
    const b = new PresenceBook();
    b.change('alice', 'acme', 1, 0);
    b.change('alice', 'acme', 1, 1);
    b.change('bob', 'acme', 2, 1);
    b.change('carol', 'globex', 1, 2);
    const out = b.dropShard(1);
    expect(out).toHaveLength(2);
    const byUid = Object.fromEntries(out.map((o) => [o.state.uid, o]));
    expect(byUid['alice']).toMatchObject({ ns: 'acme', state: { online: true, devices: 1 } });
    expect(byUid['bob']).toMatchObject({ ns: 'acme', state: { online: false, devices: 0 } });
    expect(b.devices('alice')).toBe(1);
    expect(b.devices('bob')).toBe(0);
    expect(b.devices('carol')).toBe(1);
  });

  it('a shard with no devices changes nothing; dropping twice reports once', () => {
    const b = new PresenceBook();
    b.change('alice', 'acme', 1, 0);
    expect(b.dropShard(3)).toEqual([]);
    expect(b.dropShard(0)).toHaveLength(1);
    expect(b.dropShard(0)).toEqual([]);
    expect(b.devices('alice')).toBe(0);
  });

  it("a disconnect reported after the shard was dropped does not undercount the user's other devices", () => {
    const b = new PresenceBook();
    b.change('alice', 'acme', 1, 0);
    b.change('alice', 'acme', 1, 1);
    b.dropShard(0);
    expect(b.change('alice', 'acme', -1, 0).state).toMatchObject({ online: true, devices: 1 });
  });
});

describe('PresenceBook against a model (fast-check)', () => {
  type Op = { kind: 'change'; uid: string; delta: 1 | -1; shard: number } | { kind: 'drop'; shard: number };
  const uidArb = fc.constantFrom('alice', 'bob', 'carol');
  const shardArb = fc.integer({ min: 0, max: 3 });
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('change' as const), uid: uidArb, delta: fc.constantFrom(1 as const, -1 as const), shard: shardArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), shard: shardArb }) },
  );

  it('random +1/-1 sequences over shards (and shard drops) match a per-shard, floored-at-0 model', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        const b = new PresenceBook();
        const model = new Map<string, Map<number, number>>();
        const total = (uid: string): number => [...(model.get(uid)?.values() ?? [])].reduce((a, n) => a + n, 0);
        for (const op of ops) {
          if (op.kind === 'change') {
            const per = model.get(op.uid) ?? new Map<number, number>();
            model.set(op.uid, per);
            per.set(op.shard, Math.max(0, (per.get(op.shard) ?? 0) + op.delta));
            const r = b.change(op.uid, 'acme', op.delta, op.shard);
            expect(r.state.devices).toBe(total(op.uid));
            expect(r.state.online).toBe(total(op.uid) > 0);
            expect(r.state.uid).toBe(op.uid);
          } else {
            const changed = new Set<string>();
            for (const [uid, per] of model) {
              if ((per.get(op.shard) ?? 0) > 0) changed.add(uid);
              per.delete(op.shard);
            }
            const out = b.dropShard(op.shard);
            expect(new Set(out.map((o) => o.state.uid))).toEqual(changed);
            expect(out).toHaveLength(changed.size);
            for (const o of out) expect(o.state).toMatchObject({ devices: total(o.state.uid), online: total(o.state.uid) > 0 });
          }
          for (const uid of ['alice', 'bob', 'carol']) {
            const n = b.devices(uid);
            expect(n).toBeGreaterThanOrEqual(0);
            expect(n).toBe(total(uid));
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('presencePayload', () => {
  it('is the JSON of the state, byte for byte, payload after payload', () => {
    const states = Array.from({ length: 500 }, (_, i) => ({ uid: `user-${i}`, online: i % 2 === 0, devices: i % 3, ts: 1_700_000_000_000 + i }));
    const payloads = states.map((s) => presencePayload(s));
    payloads.forEach((p, i) => expect(p.toString()).toBe(JSON.stringify(states[i])));
    const big = { uid: 'x'.repeat(5000), online: true, devices: 1, ts: 1 };
    expect(presencePayload(big).toString()).toBe(JSON.stringify(big));
  });
});
