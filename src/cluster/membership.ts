/**
 * Who else is in the cluster: every node says it is alive on one subject every
 * `intervalMs`; a node not heard from for `deadAfterMs` is gone (it died, or lost NATS),
 * which is logged and counted. Pure bookkeeping over a clock; the cluster link sends and
 * receives the heartbeats.
 */
export interface NodeInfo {
  node: string;
  /** When the node started (ms since the epoch): a restarted node is a new incarnation. */
  since: number;
  lastSeen: number;
}

export type MembershipEvent = { kind: 'joined' | 'restarted' | 'gone'; node: string };

export class Membership {
  private readonly nodes = new Map<string, NodeInfo>();
  private lastSweep: number | undefined;

  constructor(
    readonly self: string,
    private readonly deadAfterMs: number,
    /**
     * How often sweep() is called. A sweep more than twice that after the previous one means
     * this node's own event loop was held up (a long turn, CPU starvation, SIGSTOP): the
     * peers' heartbeats of that time may still be unread in its socket, so it forgets no
     * one then and sweeps on the next call, once they have been read.
     */
    private readonly sweepEveryMs?: number,
  ) {}

  /** A heartbeat from `node`; returns what changed. */
  heard(node: string, since: number, now: number): MembershipEvent | null {
    if (node === this.self) return null;
    const known = this.nodes.get(node);
    this.nodes.set(node, { node, since, lastSeen: now });
    if (!known) return { kind: 'joined', node };
    if (known.since !== since) return { kind: 'restarted', node };
    return null;
  }

  /** Nodes silent for longer than deadAfterMs are forgotten; returns them. */
  sweep(now: number): MembershipEvent[] {
    const late = this.sweepEveryMs !== undefined && this.lastSweep !== undefined && now - this.lastSweep > 2 * this.sweepEveryMs;
    this.lastSweep = now;
    if (late) return [];
    const out: MembershipEvent[] = [];
    for (const [node, info] of this.nodes) {
      if (now - info.lastSeen <= this.deadAfterMs) continue;
      this.nodes.delete(node);
      out.push({ kind: 'gone', node });
    }
    return out;
  }

  /** The other live nodes, by name. */
  others(): NodeInfo[] {
    return [...this.nodes.values()].sort((a, b) => a.node.localeCompare(b.node));
  }
}
