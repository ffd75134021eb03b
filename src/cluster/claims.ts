/**
 * The claims this node has out (docs/cluster.md, "Sessions across nodes"): which nodes
 * each one still waits for, and what they answered. A claim settles when every node it
 * asked has answered, left the cluster, or the deadline passed. Pure bookkeeping over a
 * clock; the takeover link sends and receives.
 */
import type { ClaimAnswer } from '../protocol/messages.js';

export interface PendingClaim {
  id: number;
  shard: number;
  reqId: number;
  clientId: string;
  waiting: Set<string>;
  answers: ClaimAnswer[];
  deadline: number;
}

export interface Settled {
  claim: PendingClaim;
  /** Nodes that never answered (deadline). */
  missing: string[];
}

export class ClaimBook {
  private next = 0;
  private readonly pending = new Map<number, PendingClaim>();

  get size(): number {
    return this.pending.size;
  }

  /** A new claim that waits for `nodes`; settled at once (returned) when there are none. */
  open(shard: number, reqId: number, clientId: string, nodes: string[], deadline: number): { claim: PendingClaim; settled: boolean } {
    const claim: PendingClaim = { id: ++this.next, shard, reqId, clientId, waiting: new Set(nodes), answers: [], deadline };
    if (claim.waiting.size === 0) return { claim, settled: true };
    this.pending.set(claim.id, claim);
    return { claim, settled: false };
  }

  /** Node `answer.node` answered claim `id`; returns the claim when that settles it. */
  answer(id: number, answer: ClaimAnswer): PendingClaim | null {
    const c = this.pending.get(id);
    if (!c || !c.waiting.delete(answer.node)) return null;
    c.answers.push(answer);
    return this.settleIfDone(c);
  }

  /** A node left the cluster: no claim waits for it any more. */
  nodeGone(node: string): PendingClaim[] {
    const out: PendingClaim[] = [];
    for (const c of [...this.pending.values()]) {
      if (!c.waiting.delete(node)) continue;
      const done = this.settleIfDone(c);
      if (done) out.push(done);
    }
    return out;
  }

  /** Claims past their deadline, settled with what they have. */
  expire(now: number): Settled[] {
    const out: Settled[] = [];
    for (const c of [...this.pending.values()]) {
      if (c.deadline > now) continue;
      this.pending.delete(c.id);
      out.push({ claim: c, missing: [...c.waiting] });
    }
    return out;
  }

  private settleIfDone(c: PendingClaim): PendingClaim | null {
    if (c.waiting.size > 0) return null;
    this.pending.delete(c.id);
    return c;
  }
}
