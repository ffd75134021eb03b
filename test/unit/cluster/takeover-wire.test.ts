/**
 * The takeover messages between nodes (src/cluster/takeover-wire.ts): round trips, refusal
 * of anything malformed or of another protocol version, and hand-over parts that keep the
 * order and stay under the size asked.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { PROTOCOL_VERSION, type SessionMessages } from '../../../src/protocol/messages.js';
import { decodeClaims, decodeDirect, encodeClaims, encodeDirect, splitMessages } from '../../../src/cluster/takeover-wire.js';
import { WireError } from '../../../src/cluster/wire.js';

const msg = (topic: string, n: number) => ({ topic, payload: Buffer.alloc(n), qos: 1 as const, retain: false });

describe('takeover wire', () => {
  it('claims and direct items round-trip', () => {
    const claims = [{ id: 3, clientId: 'c/1', owner: 'alice', clean: false }, { id: 4, clientId: 'c2', clean: true }];
    expect(decodeClaims(encodeClaims('n1', claims))).toEqual({ v: PROTOCOL_VERSION, from: 'n1', claims });
    const items = [
      { k: 'answer' as const, id: 3, answer: { node: 'n2', has: true, lastSeen: 9, meta: { protocolVersion: 5 as const, expiry: 60, subs: [['a/+', { qos: 1 as const, noLocal: false, retainAsPublished: false }]] as Array<[string, { qos: 1; noLocal: boolean; retainAsPublished: boolean }]>, presub: [], qos2In: [7] } } },
      { k: 'finish' as const, id: 3, clientId: 'c/1', take: true },
      { k: 'moved' as const, id: 3, more: false, state: { inflight: [{ packetId: 2, msg: msg('t', 3), qos: 1 as const, retain: false, state: 'publish' as const }], queue: [] } },
    ];
    const back = decodeDirect(encodeDirect('n2', items));
    expect(back.from).toBe('n2');
    expect(back.items).toEqual(items);
  });

  it('refuses another protocol version, a batch without a sender, and malformed items', () => {
    expect(() => decodeClaims(pack({ v: PROTOCOL_VERSION + 1, from: 'x', claims: [] }))).toThrow(WireError);
    expect(() => decodeClaims(pack({ v: PROTOCOL_VERSION, claims: [] }))).toThrow(WireError);
    expect(() => decodeClaims(pack({ v: PROTOCOL_VERSION, from: 'x', claims: [{ id: 1 }] }))).toThrow(WireError);
    expect(() => decodeDirect(pack({ v: PROTOCOL_VERSION, from: 'x', items: [{ k: 'what', id: 1 }] }))).toThrow(WireError);
    expect(() => decodeDirect(pack({ v: PROTOCOL_VERSION, from: 'x', items: [{ k: 'moved', id: 1, state: {} }] }))).toThrow(WireError);
    expect(() => decodeDirect(new Uint8Array([0xc1]))).toThrow(WireError);
  });

  it('property: hand-over parts keep every message in order, inflight first, each part within the size unless one message alone exceeds it', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(3000), { maxLength: 20 }), fc.array(fc.nat(3000), { maxLength: 60 }), fc.integer({ min: 200, max: 20_000 }), (inf, q, max) => {
        const state: SessionMessages = {
          inflight: inf.map((n, i) => ({ packetId: i + 1, msg: msg(`i${i}`, n), qos: 1, retain: false, state: 'publish' })),
          queue: q.map((n, i) => ({ msg: msg(`q${i}`, n), qos: 1, retain: false })),
        };
        const parts = splitMessages(state, max);
        const flat = parts.flatMap((p) => [...p.inflight.map((e) => e.msg.topic), ...p.queue.map((e) => e.msg.topic)]);
        const want = [...state.inflight.map((e) => e.msg.topic), ...state.queue.map((e) => e.msg.topic)];
        const size = (p: SessionMessages) => [...p.inflight, ...p.queue].reduce((a, e) => a + e.msg.topic.length + e.msg.payload.length + 128, 0);
        return (
          JSON.stringify(flat) === JSON.stringify(want) &&
          parts.every((p) => size(p) <= max || p.inflight.length + p.queue.length === 1)
        );
      }),
    );
  });
});
