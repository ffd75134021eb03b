import { describe, it, expect } from 'vitest';
import { COORDINATOR_BIT, PendingAcks, type PendingAck } from '../../../src/gateway/pending-acks.js';
import type { AckPacket } from '../../../src/channel/types.js';

const puback = (messageId: number): AckPacket => ({ cmd: 'puback', messageId });
const pubrec = (messageId: number): AckPacket => ({ cmd: 'pubrec', messageId });

/** A PendingAcks whose released acks are recorded as [connId, cmd, messageId]. */
function harness() {
  const released: Array<[number, string, number | undefined]> = [];
  const raw: PendingAck[] = [];
  const acks = new PendingAcks((a) => {
    raw.push(a);
    released.push([a.connId, a.packet.cmd, a.packet.messageId]);
  });
  /** Opens an ack routed to `bits` (one expect per entry), then seals it. */
  const route = (connId: number, packet: AckPacket, bits: number[]): PendingAck => {
    const a = acks.open(connId, packet);
    for (const b of bits) acks.expect(a, b);
    acks.seal(a);
    return a;
  };
  return { acks, released, raw, route, take: () => released.splice(0) };
}

describe('PendingAcks: ordering per connection', () => {
  it('[MQTT-4.6.0-2] acks are released in PUBLISH order even when committed out of order', () => {
    const { acks, route, take } = harness();
    const a1 = route(1, puback(1), [1 << 0]);
    const a2 = route(1, puback(2), [1 << 1]);
    const a3 = route(1, pubrec(3), [1 << 2]);
    expect(acks.size).toBe(3);
    acks.committed([a3.id]);
    expect(take()).toEqual([]); // waits behind 1 and 2
    acks.committed([a2.id]);
    expect(take()).toEqual([]);
    acks.committed([a1.id]);
    expect(take()).toEqual([
      [1, 'puback', 1],
      [1, 'puback', 2],
      [1, 'pubrec', 3],
    ]);
    expect(acks.size).toBe(0);
  });

  it('an ack is released only once every destination committed (shards and the coordinator)', () => {
    const { acks, route, take } = harness();
    const a = route(1, puback(1), [1 << 0, 1 << 3, COORDINATOR_BIT]);
    acks.committed([a.id]);
    acks.committed([a.id]);
    expect(take()).toEqual([]);
    acks.committed([a.id]);
    expect(take()).toEqual([[1, 'puback', 1]]);
  });

  it('an ack the head of the queue released lets the ones behind go in the same step', () => {
    const { acks, route, take } = harness();
    const a1 = route(1, puback(1), [1]);
    const a2 = route(1, puback(2), [1]);
    acks.committed([a2.id, a1.id]); // one batch, out of order
    expect(take()).toEqual([
      [1, 'puback', 1],
      [1, 'puback', 2],
    ]);
  });

  it('nothing is released before seal, even when every expected destination already answered', () => {
    const { acks, take } = harness();
    const a = acks.open(1, puback(1));
    acks.expect(a, 1);
    acks.committed([a.id]);
    expect(take()).toEqual([]);
    acks.seal(a);
    expect(take()).toEqual([[1, 'puback', 1]]);
  });

  it('a token that is unknown (or already answered) is ignored', () => {
    const { acks, route, take } = harness();
    const a = route(1, puback(1), [1]);
    acks.committed([a.id + 1000]);
    expect(take()).toEqual([]);
    acks.committed([a.id]);
    expect(take()).toEqual([[1, 'puback', 1]]);
    acks.committed([a.id]); // a late duplicate answer
    expect(take()).toEqual([]);
  });
});

describe('PendingAcks: acks with no destination', () => {
  it('an ack with 0 destinations is released at seal when nothing waits ahead', () => {
    const { acks, take } = harness();
    const a = acks.open(1, puback(1));
    expect(take()).toEqual([]);
    acks.seal(a);
    expect(take()).toEqual([[1, 'puback', 1]]);
    expect(acks.size).toBe(0);
  });

  it('an ack with 0 destinations waits behind an earlier held one', () => {
    const { acks, route, take } = harness();
    const a1 = route(1, puback(1), [1]);
    route(1, puback(2), []); // matched no route: nothing to commit
    expect(take()).toEqual([]);
    expect(acks.size).toBe(1); // only a1 waits on a commit
    acks.committed([a1.id]);
    expect(take()).toEqual([
      [1, 'puback', 1],
      [1, 'puback', 2],
    ]);
  });
});

describe('PendingAcks: queueReady (refused or duplicate publishes)', () => {
  it('returns false when nothing waits on the connection (the caller writes the ack at once)', () => {
    const { acks, route, take } = harness();
    expect(acks.queueReady(1, { cmd: 'puback', messageId: 9, reasonCode: 0x87 } as { cmd: string; messageId: number })).toBe(false);
    expect(take()).toEqual([]);
    // Also after the connection's held acks all went.
    const a = route(1, puback(1), [1]);
    acks.committed([a.id]);
    take();
    expect(acks.queueReady(1, { cmd: 'pubrec', messageId: 2 })).toBe(false);
    expect(take()).toEqual([]);
  });

  it('[MQTT-4.6.0-2] queues a refusal behind held acks, released in order with them', () => {
    const { acks, route, take, raw } = harness();
    const a1 = route(1, puback(1), [1]);
    const refusal = { cmd: 'puback', messageId: 2, reasonCode: 0x87 } as { cmd: string; messageId: number };
    expect(acks.queueReady(1, refusal)).toBe(true);
    const a3 = route(1, puback(3), [1]);
    expect(take()).toEqual([]);
    acks.committed([a1.id]);
    // The refusal goes right after 1; 3 still waits.
    expect(take()).toEqual([
      [1, 'puback', 1],
      [1, 'puback', 2],
    ]);
    // A queued refusal is marked with id 0 and carries the packet as given.
    const r = raw.find((a) => a.packet.messageId === 2)!;
    expect(r.id).toBe(0);
    expect(r.packet).toBe(refusal);
    acks.committed([a3.id]);
    expect(take()).toEqual([[1, 'puback', 3]]);
  });

  it('[MQTT-3.3.4-7] a queued refusal can be marked `counted` (ChannelState.acksHeld); a duplicate PUBREC is not', () => {
    const { acks, route, raw } = harness();
    const a1 = route(1, puback(1), [1]);
    expect(acks.queueReady(1, { cmd: 'puback', messageId: 2 }, true)).toBe(true);
    expect(acks.queueReady(1, { cmd: 'pubrec', messageId: 3 })).toBe(true);
    acks.committed([a1.id]);
    expect(raw.map((a) => [a.packet.messageId, a.id === 0, a.counted === true])).toEqual([
      [1, false, false],
      [2, true, true],
      [3, true, false],
    ]);
  });

  it('a queued refusal does not count as waiting (size) and is not released by a commit of another connection', () => {
    const { acks, route, take } = harness();
    const a1 = route(1, puback(1), [1]);
    const b1 = route(2, puback(1), [1]);
    expect(acks.queueReady(1, { cmd: 'pubrec', messageId: 2 })).toBe(true);
    expect(acks.size).toBe(2);
    acks.committed([b1.id]);
    expect(take()).toEqual([[2, 'puback', 1]]);
    acks.committed([a1.id]);
    expect(take()).toEqual([
      [1, 'puback', 1],
      [1, 'pubrec', 2],
    ]);
  });
});

describe('PendingAcks: the same destination twice', () => {
  it('an ack sent to the same shard twice (waits 2) needs two commits', () => {
    const { acks, route, take } = harness();
    // The original and a routing-rule copy both went to shard 0.
    const a = route(1, pubrec(5), [1 << 0, 1 << 0]);
    expect(a.waits).toBe(2);
    expect(a.mask).toBe(1 << 0);
    acks.committed([a.id]);
    expect(take()).toEqual([]);
    expect(acks.size).toBe(1);
    acks.committed([a.id]);
    expect(take()).toEqual([[1, 'pubrec', 5]]);
  });

  it('both answers in one committed batch (the shard committed both in one turn)', () => {
    const { acks, route, take } = harness();
    const a = route(1, puback(5), [1, 1]);
    acks.committed([a.id, a.id]);
    expect(take()).toEqual([[1, 'puback', 5]]);
  });
});

describe('PendingAcks: connections', () => {
  it('dropConn forgets a connection: its acks are never released, later tokens are ignored', () => {
    const { acks, route, take } = harness();
    const a1 = route(1, puback(1), [1]);
    expect(acks.queueReady(1, { cmd: 'puback', messageId: 2 })).toBe(true);
    const a3 = route(1, puback(3), [1]);
    acks.dropConn(1);
    expect(acks.size).toBe(0);
    expect(acks.waitingOn(1)).toEqual([]);
    acks.committed([a1.id, a3.id]);
    expect(take()).toEqual([]);
    // Nothing waits on it any more: a refusal is written at once.
    expect(acks.queueReady(1, { cmd: 'puback', messageId: 4 })).toBe(false);
    // A new ack of the same connection id starts afresh.
    route(1, puback(6), []);
    expect(take()).toEqual([[1, 'puback', 6]]);
  });

  it('dropConn of an unknown connection is harmless and leaves other connections alone', () => {
    const { acks, route, take } = harness();
    const b = route(2, puback(1), [1]);
    acks.dropConn(99);
    acks.dropConn(1);
    acks.committed([b.id]);
    expect(take()).toEqual([[2, 'puback', 1]]);
  });

  it('ids of other connections are independent: one slow connection does not hold another back', () => {
    const { acks, route, take } = harness();
    const a1 = route(1, puback(1), [1 << 0]);
    const b1 = route(2, puback(1), [1 << 1]);
    const b2 = route(2, puback(2), [1 << 1]);
    expect(new Set([a1.id, b1.id, b2.id]).size).toBe(3); // tokens are unique across connections
    acks.committed([b1.id, b2.id]);
    expect(take()).toEqual([
      [2, 'puback', 1],
      [2, 'puback', 2],
    ]);
    acks.committed([a1.id]);
    expect(take()).toEqual([[1, 'puback', 1]]);
  });

  it('the same packet id on two connections is two acks', () => {
    const { acks, route, take } = harness();
    const a = route(1, pubrec(7), [1]);
    const b = route(2, pubrec(7), [1]);
    acks.committed([b.id]);
    expect(take()).toEqual([[2, 'pubrec', 7]]);
    acks.committed([a.id]);
    expect(take()).toEqual([[1, 'pubrec', 7]]);
  });
});

describe('PendingAcks: waitingOn (a destination that died)', () => {
  it('lists the connections waiting on that destination only while they still wait', () => {
    const { acks, route } = harness();
    const shard0 = 1 << 0;
    const shard1 = 1 << 1;
    const a = route(1, puback(1), [shard0]);
    const b = route(2, puback(1), [shard1]);
    const c = route(3, puback(1), [shard0, COORDINATOR_BIT]);
    expect(acks.waitingOn(shard0).sort()).toEqual([1, 3]);
    expect(acks.waitingOn(shard1)).toEqual([2]);
    expect(acks.waitingOn(COORDINATOR_BIT)).toEqual([3]);
    expect(acks.waitingOn(1 << 2)).toEqual([]);
    acks.committed([a.id]);
    expect(acks.waitingOn(shard0)).toEqual([3]);
    acks.committed([c.id, c.id]);
    expect(acks.waitingOn(shard0)).toEqual([]);
    expect(acks.waitingOn(COORDINATOR_BIT)).toEqual([]);
    acks.committed([b.id]);
    expect(acks.waitingOn(shard1)).toEqual([]);
  });

  it('an ack already committed but queued behind another one no longer counts as waiting', () => {
    const { acks, route, take } = harness();
    const a1 = route(1, puback(1), [1 << 1]);
    const a2 = route(1, puback(2), [1 << 0]);
    acks.committed([a2.id]); // committed, but held behind a1
    expect(take()).toEqual([]);
    expect(acks.waitingOn(1 << 0)).toEqual([]);
    expect(acks.waitingOn(1 << 1)).toEqual([1]);
    acks.committed([a1.id]);
    expect(take()).toHaveLength(2);
  });
});

describe('PendingAcks: ids', () => {
  it('ids are positive, unique and never 0 (0 marks a queued refusal)', () => {
    const { acks } = harness();
    const ids = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const a = acks.open(i % 7, puback(1));
      expect(a.id).toBeGreaterThan(0);
      ids.add(a.id);
    }
    expect(ids.size).toBe(1000);
  });
});
