/**
 * Presence (IM-PROTOCOL.md section 2, added): how many devices of each user are online,
 * counted per shard so a shard that restarts (its sessions are gone) can be written off.
 * The coordinator publishes the retained `/{ns}/im/p/{uid}` on every change.
 */
export interface PresenceState {
  uid: string;
  online: boolean;
  devices: number;
  /** Time of the last change, ms since the epoch. */
  ts: number;
}

export class PresenceBook {
  private readonly byUser = new Map<string, { ns: string; perShard: Map<number, number> }>();

  /** Applies a change; returns the user's new state to publish. */
  change(uid: string, ns: string, delta: number, shard: number): { ns: string; state: PresenceState } {
    let u = this.byUser.get(uid);
    if (!u) this.byUser.set(uid, (u = { ns, perShard: new Map() }));
    u.ns = ns;
    const n = Math.max(0, (u.perShard.get(shard) ?? 0) + delta);
    if (n === 0) u.perShard.delete(shard);
    else u.perShard.set(shard, n);
    const state = this.state(uid, u.perShard);
    if (u.perShard.size === 0) this.byUser.delete(uid);
    return { ns, state };
  }

  /** A shard restarted: its sessions (and devices) are gone. Returns the users that changed. */
  dropShard(shard: number): Array<{ ns: string; state: PresenceState }> {
    const out: Array<{ ns: string; state: PresenceState }> = [];
    for (const [uid, u] of [...this.byUser]) {
      if (!u.perShard.delete(shard)) continue;
      out.push({ ns: u.ns, state: this.state(uid, u.perShard) });
      if (u.perShard.size === 0) this.byUser.delete(uid);
    }
    return out;
  }

  devices(uid: string): number {
    let n = 0;
    for (const c of this.byUser.get(uid)?.perShard.values() ?? []) n += c;
    return n;
  }

  private state(uid: string, perShard: Map<number, number>): PresenceState {
    let devices = 0;
    for (const c of perShard.values()) devices += c;
    return { uid, online: devices > 0, devices, ts: Date.now() };
  }
}
