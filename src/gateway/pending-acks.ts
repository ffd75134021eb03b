/**
 * Durability `sync`: PUBACK/PUBREC held until every destination of the publish (each
 * shard it was routed to, the coordinator for a retained one) answered that it is
 * committed. Acks leave in the order the PUBLISHes came, per connection
 * [MQTT-4.6.0-2][MQTT-4.6.0-3]: a later publish that is committed first (or refused
 * straight away) waits behind an earlier one.
 */
import type { AckPacket } from '../channel/types.js';

/** Bit of the coordinator in a pending ack's destination mask (shards use bits 0..28). */
export const COORDINATOR_BIT = 1 << 30;
/** Bit of the cluster link (the other nodes, through NATS). */
export const CLUSTER_BIT = 1 << 29;

/** Ids wrap well below 2^31 so they stay small integers on the links. */
const MAX_ID = 0x3fffffff;

/**
 * Where a gateway generation's ids start: 2^24 apart over 64 generations. A shard may
 * answer a token late (queueFullPolicy hold parks a message up to maxAckHoldSeconds), after
 * its gateway died and was restarted: the new generation must not take that answer for one
 * of its own acks, and it would if both counted from 1.
 */
export function firstAckId(generation: number): number {
  return 1 + (generation % 64) * 0x1000000;
}

export interface PendingAck {
  readonly id: number;
  readonly connId: number;
  readonly packet: AckPacket | { cmd: string; messageId?: number };
  /** Answers still missing. */
  waits: number;
  /** Destinations (shard bits, COORDINATOR_BIT) it went to. */
  mask: number;
  sealed: boolean;
  /** A queued refusal (id 0) the client counts against our Receive Maximum until it gets it (ChannelState.acksHeld). */
  counted?: boolean;
}

export class PendingAcks {
  private next: number;
  private readonly byId = new Map<number, PendingAck>();
  private readonly byConn = new Map<number, PendingAck[]>();

  constructor(
    private readonly release: (a: PendingAck) => void,
    firstId = 1,
  ) {
    this.next = firstId;
  }

  /** Number of acks waiting (all connections), for metrics. */
  get size(): number {
    return this.byId.size;
  }

  /** A new ack, to be answered once every destination added with `expect` committed. */
  open(connId: number, packet: AckPacket): PendingAck {
    const id = this.next;
    this.next = this.next >= MAX_ID ? 1 : this.next + 1;
    const a: PendingAck = { id, connId, packet, waits: 0, mask: 0, sealed: false };
    this.byId.set(id, a);
    let q = this.byConn.get(connId);
    if (!q) this.byConn.set(connId, (q = []));
    q.push(a);
    return a;
  }

  expect(a: PendingAck, bit: number): void {
    a.waits++;
    a.mask |= bit;
  }

  /** Every destination is known: the ack goes as soon as they all answered. */
  seal(a: PendingAck): void {
    a.sealed = true;
    if (a.waits === 0) this.byId.delete(a.id);
    this.drain(a.connId);
  }

  /** Answers from one destination (a token appears once per publish message it got). */
  committed(ids: readonly number[]): void {
    const touched = new Set<number>();
    for (const id of ids) {
      const a = this.byId.get(id);
      if (!a || --a.waits > 0) continue;
      this.byId.delete(id);
      touched.add(a.connId);
    }
    for (const connId of touched) this.drain(connId);
  }

  /**
   * An ack that needs no commit (a refused or duplicate publish): sent in its turn. False
   * when nothing waits on the connection, so the caller writes it at once.
   */
  queueReady(connId: number, packet: { cmd: string; messageId?: number }, counted = false): boolean {
    const q = this.byConn.get(connId);
    if (!q) return false;
    q.push({ id: 0, connId, packet, waits: 0, mask: 0, sealed: true, ...(counted ? { counted } : {}) });
    return true;
  }

  /** The connection is gone: its acks are never sent (the client resends those PUBLISHes). */
  dropConn(connId: number): void {
    const q = this.byConn.get(connId);
    if (!q) return;
    for (const a of q) this.byId.delete(a.id);
    this.byConn.delete(connId);
  }

  /** Connections with an ack waiting on a destination (a shard that died before answering). */
  waitingOn(bit: number): number[] {
    const out: number[] = [];
    for (const [connId, q] of this.byConn) if (q.some((a) => a.waits > 0 && (a.mask & bit) !== 0)) out.push(connId);
    return out;
  }

  private drain(connId: number): void {
    const q = this.byConn.get(connId);
    if (!q) return;
    let i = 0;
    while (i < q.length && q[i]!.sealed && q[i]!.waits === 0) this.release(q[i++]!);
    if (i === q.length) this.byConn.delete(connId);
    else if (i > 0) q.splice(0, i);
  }
}
