/**
 * Cluster-wide presence, the bookkeeping (shared-presence.ts does the I/O): how many
 * devices each user has on each node, from the presence bucket's values (and this node's
 * own counts, known first). A user's presence is the sum over the nodes. Pure.
 */
import type { PresenceState } from '../coordinator/presence.js';

export class PresenceView {
  private readonly users = new Map<string, { ns: string; nodes: Map<string, number> }>();
  /** A user's namespace outlives their last device: the "offline" message needs it. */
  private readonly nsOf = new Map<string, string>();

  /** `node` has `n` devices of `uid` (0 = none). */
  set(uid: string, ns: string, node: string, n: number): void {
    this.nsOf.set(uid, ns);
    let u = this.users.get(uid);
    if (n <= 0) {
      if (!u) return;
      u.nodes.delete(node);
      if (u.nodes.size === 0) this.users.delete(uid);
      return;
    }
    if (!u) this.users.set(uid, (u = { ns, nodes: new Map() }));
    u.ns = ns;
    u.nodes.set(node, n);
  }

  count(uid: string, node: string): number {
    return this.users.get(uid)?.nodes.get(node) ?? 0;
  }

  total(uid: string): number {
    let n = 0;
    for (const c of this.users.get(uid)?.nodes.values() ?? []) n += c;
    return n;
  }

  ns(uid: string): string | undefined {
    return this.users.get(uid)?.ns ?? this.nsOf.get(uid);
  }

  /** The presence message's content for `uid` now. */
  state(uid: string, now = Date.now()): PresenceState {
    const devices = this.total(uid);
    return { uid, online: devices > 0, devices, ts: now };
  }

  /** Forgets a node's devices; returns the users it had. */
  dropNode(node: string): string[] {
    const out: string[] = [];
    for (const [uid, u] of [...this.users]) {
      if (!u.nodes.delete(node)) continue;
      out.push(uid);
      if (u.nodes.size === 0) this.users.delete(uid);
    }
    return out;
  }

  /** Nodes that have devices here. */
  nodes(): Set<string> {
    const out = new Set<string>();
    for (const u of this.users.values()) for (const n of u.nodes.keys()) out.add(n);
    return out;
  }
}

/** The node that cleans up after a gone node: the lowest name among the live ones (this one included). */
export function isLeader(self: string, others: readonly string[]): boolean {
  return others.every((o) => self < o);
}

/** A presence key: `{base64url uid}.{node}` (node names are `[A-Za-z0-9_-]`: valid key tokens). */
export function presenceKey(uid: string, node: string): string {
  return `${Buffer.from(uid, 'utf8').toString('base64url')}.${node}`;
}

export function parsePresenceKey(key: string): { uid: string; node: string } | null {
  const dot = key.indexOf('.');
  if (dot <= 0 || dot === key.length - 1) return null;
  return { uid: Buffer.from(key.slice(0, dot), 'base64url').toString('utf8'), node: key.slice(dot + 1) };
}
