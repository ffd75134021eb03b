/**
 * The memory store (`store.durability: memory`): the same contract as LMDB with nothing
 * on disk. State lives as long as the thread that owns the store, so a restart (or a
 * crashed shard thread) starts empty, as with `persistence false` in Mosquitto.
 */
import type { AppMessage } from '../protocol/messages.js';
import type { DedupEntry, DedupKey, OutboundRecord, SessionRecord, ShardIndex, ShardState, Store, StoreStats } from './types.js';

const DONE = Promise.resolve();

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly outbound = new Map<string, Map<number, OutboundRecord>>();
  private readonly bodies = new Map<number, AppMessage>();
  private readonly dedup = new Map<string, DedupEntry>();
  private readonly retained = new Map<string, AppMessage>();
  private readonly docs = new Map<string, unknown>();

  putSession(r: SessionRecord): void {
    this.sessions.set(r.clientId, r);
  }
  deleteSession(clientId: string): void {
    this.sessions.delete(clientId);
    this.outbound.delete(clientId);
  }
  putOutbound(clientId: string, r: OutboundRecord): void {
    let m = this.outbound.get(clientId);
    if (!m) this.outbound.set(clientId, (m = new Map()));
    m.set(r.seq, r);
  }
  deleteOutbound(clientId: string, seq: number): void {
    const m = this.outbound.get(clientId);
    if (!m) return;
    m.delete(seq);
    if (m.size === 0) this.outbound.delete(clientId);
  }
  putBody(id: number, msg: AppMessage): void {
    this.bodies.set(id, msg);
  }
  deleteBody(id: number): void {
    this.bodies.delete(id);
  }
  putDedup(e: DedupEntry): void {
    this.dedup.set(e.key.join('\u0000'), e);
  }
  deleteDedup(key: DedupKey): void {
    this.dedup.delete(key.join('\u0000'));
  }
  loadShard(): ShardState {
    const outbound = new Map<string, OutboundRecord[]>();
    for (const [clientId, m] of this.outbound) outbound.set(clientId, [...m.values()].sort((a, b) => a.seq - b.seq));
    return { sessions: [...this.sessions.values()], outbound, bodies: new Map(this.bodies), dedup: [...this.dedup.values()] };
  }

  loadShardIndex(): ShardIndex {
    const { sessions, outbound, dedup } = this.loadShard();
    return { sessions, outbound, bodyIds: [...this.bodies.keys()], dedup };
  }
  loadOutbound(clientId: string, withBodies: boolean): { outbound: OutboundRecord[]; bodies: Map<number, AppMessage> } {
    const outbound = [...(this.outbound.get(clientId)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
    const bodies = new Map<number, AppMessage>();
    for (const r of outbound) {
      if (!withBodies) break;
      const b = this.bodies.get(r.body);
      if (b) bodies.set(r.body, b);
    }
    return { outbound, bodies };
  }

  putRetained(msg: AppMessage): void {
    this.retained.set(msg.topic, msg);
  }
  deleteRetained(topic: string): void {
    this.retained.delete(topic);
  }
  loadRetained(): AppMessage[] {
    return [...this.retained.values()];
  }
  putDoc(name: string, value: unknown): void {
    this.docs.set(name, value);
  }
  getDoc<T>(name: string): T | undefined {
    return this.docs.get(name) as T | undefined;
  }

  commit(): Promise<void> {
    return DONE;
  }
  stats(): StoreStats {
    let entries = this.sessions.size + this.bodies.size + this.dedup.size + this.retained.size + this.docs.size;
    for (const m of this.outbound.values()) entries += m.size;
    return { bytes: 0, entries };
  }
  close(): Promise<void> {
    return DONE;
  }
}
