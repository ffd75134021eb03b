/**
 * The embedded default store: one LMDB environment (npm `lmdb`) per owner, a file under
 * `{dataDir}/store/`. LMDB is copy-on-write with a single writer: a commit is atomic and
 * a crash (kill -9, power loss with `sync`) leaves the last committed state, never a torn
 * one, so there is no recovery step at start.
 *
 * lmdb-js queues the writes issued during one event-loop turn and commits them as one
 * transaction on its own thread: a put never blocks the event loop, and the promise of
 * the last write of a turn resolves when that whole turn is durable (group commit).
 *
 * Keys: ordered-binary (strings, numbers, arrays sort as expected), so a session's
 * outbound records [clientId, seq] are one range in `seq` order.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createHash } from 'node:crypto';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { AppMessage } from '../protocol/messages.js';
import { STORE_FORMAT, type DedupEntry, type DedupKey, type OutboundRecord, type SessionRecord, type ShardIndex, type ShardState, type Store, type StoreStats } from './types.js';

export interface LmdbOptions {
  /** The environment's file. */
  path: string;
  /**
   * true: commits are fsynced (durable against power loss); false: written to the OS
   * (durable against a crash of the process, not of the machine). `async` mode uses false.
   */
  fsync: boolean;
}

/** Longest key kept as is; LMDB keys are bounded (a few hundred bytes is safe everywhere). */
const MAX_PLAIN_KEY_BYTES = 400;

/**
 * Client ids and topics may be up to 65,535 bytes; longer ones are keyed by their hash.
 * U+0000 cannot appear in an MQTT string [MQTT-1.5.4-2], so no real name collides with it.
 */
export function storeKey(s: string): string {
  if (s.length * 3 <= MAX_PLAIN_KEY_BYTES || Buffer.byteLength(s) <= MAX_PLAIN_KEY_BYTES) return s;
  return `\u0000h${createHash('sha256').update(s).digest('base64url')}`;
}

export class LmdbStore implements Store {
  readonly kind = 'lmdb' as const;
  private readonly env: RootDatabase;
  private readonly sessions: Database<SessionRecord, string>;
  private readonly outbound: Database<OutboundRecord, [string, number]>;
  private readonly bodies: Database<AppMessage, number>;
  /** Value: the publisher's client id (the key holds it hashed when it is long), fingerprint, time. */
  private readonly dedup: Database<{ origin: string; fp: number; at: number }, DedupKey>;
  private readonly retained: Database<AppMessage, string>;
  private readonly docs: Database<unknown, string>;
  /** The last write issued: its promise resolves when everything before it is committed. */
  private last: Promise<unknown> | null = null;
  private failure: Error | null = null;
  /** Closed: later writes are ignored (a timer firing during shutdown must not throw). */
  private closed = false;
  /**
   * Outbound seqs per session key whose put is not committed yet (with how many puts of
   * each are in flight): getKeys reads only committed data, so deleteSession removes these
   * by name, else a session re-created before the commit would get them back.
   */
  private readonly pendingOut = new Map<string, Map<number, number>>();
  private readonly fsync: boolean;

  constructor(o: LmdbOptions) {
    this.fsync = o.fsync;
    mkdirSync(dirname(o.path), { recursive: true });
    this.env = open({ path: o.path, maxDbs: 8, noSync: !o.fsync, compression: false });
    this.sessions = this.env.openDB<SessionRecord, string>({ name: 'sessions' });
    this.outbound = this.env.openDB<OutboundRecord, [string, number]>({ name: 'outbound' });
    this.bodies = this.env.openDB<AppMessage, number>({ name: 'bodies' });
    this.dedup = this.env.openDB<{ origin: string; fp: number; at: number }, DedupKey>({ name: 'dedup' });
    this.retained = this.env.openDB<AppMessage, string>({ name: 'retained' });
    this.docs = this.env.openDB<unknown, string>({ name: 'docs' });
    const meta = this.docs.get('meta') as { format?: number } | undefined;
    if (meta && meta.format !== STORE_FORMAT) {
      void this.env.close(); // the caller gets no store to close
      throw new Error(`${o.path}: store format ${String(meta.format)}, this version reads ${STORE_FORMAT}; start the matching version or move the data dir away`);
    }
    if (!meta) this.track(this.docs.put('meta', { format: STORE_FORMAT, created: Date.now() }));
  }

  private track(p: Promise<unknown>): void {
    if (this.closed) return;
    this.last = p;
    // A failed commit (disk full, I/O error) must not pass unnoticed: commit() rejects.
    p.catch((err: unknown) => (this.failure ??= err as Error));
  }

  putSession(r: SessionRecord): void {
    if (this.closed) return;
    this.track(this.sessions.put(storeKey(r.clientId), r));
  }
  deleteSession(clientId: string): void {
    if (this.closed) return;
    const key = storeKey(clientId);
    this.track(this.sessions.remove(key));
    const seqs = new Set(this.pendingOut.get(key)?.keys());
    for (const k of this.outbound.getKeys({ start: [key], end: [key, Infinity] })) seqs.add(k[1]);
    for (const seq of seqs) this.track(this.outbound.remove([key, seq]));
  }
  putOutbound(clientId: string, r: OutboundRecord): void {
    if (this.closed) return;
    const key = storeKey(clientId);
    const p = this.outbound.put([key, r.seq], r);
    this.track(p);
    let m = this.pendingOut.get(key);
    if (!m) this.pendingOut.set(key, (m = new Map()));
    const inFlight = m;
    inFlight.set(r.seq, (inFlight.get(r.seq) ?? 0) + 1);
    // The map stays registered while any of its puts is in flight, so it is still current here.
    const settled = (): void => {
      const n = inFlight.get(r.seq)! - 1;
      if (n > 0) inFlight.set(r.seq, n);
      else if (inFlight.delete(r.seq) && inFlight.size === 0) this.pendingOut.delete(key);
    };
    p.then(settled, settled);
  }
  deleteOutbound(clientId: string, seq: number): void {
    if (this.closed) return;
    this.track(this.outbound.remove([storeKey(clientId), seq]));
  }
  putBody(id: number, msg: AppMessage): void {
    if (this.closed) return;
    this.track(this.bodies.put(id, msg));
  }
  deleteBody(id: number): void {
    if (this.closed) return;
    this.track(this.bodies.remove(id));
  }
  putDedup(e: DedupEntry): void {
    if (this.closed) return;
    this.track(this.dedup.put([storeKey(e.key[0]), e.key[1], e.key[2]], { origin: e.key[0], fp: e.fp, at: e.at }));
  }
  deleteDedup(key: DedupKey): void {
    if (this.closed) return;
    this.track(this.dedup.remove([storeKey(key[0]), key[1], key[2]]));
  }

  loadShard(): ShardState {
    const { sessions, outbound, bodyIds, dedup } = this.loadShardIndex();
    const bodies = new Map<number, AppMessage>();
    for (const id of bodyIds) bodies.set(id, this.bodies.get(id)!);
    return { sessions, outbound, bodies, dedup };
  }

  loadShardIndex(): ShardIndex {
    const sessions: SessionRecord[] = [];
    const byKey = new Map<string, string>();
    for (const { key, value } of this.sessions.getRange()) {
      sessions.push(value);
      byKey.set(key, value.clientId);
    }
    const outbound = new Map<string, OutboundRecord[]>();
    for (const { key, value } of this.outbound.getRange()) {
      const clientId = byKey.get(key[0]);
      if (clientId === undefined) {
        this.track(this.outbound.remove(key)); // left by a session deleted mid-way: compact
        continue;
      }
      let list = outbound.get(clientId);
      if (!list) outbound.set(clientId, (list = []));
      list.push(value); // key order is seq order
    }
    const bodyIds: number[] = [];
    for (const id of this.bodies.getKeys()) bodyIds.push(id);
    const dedup: DedupEntry[] = [];
    for (const { key, value } of this.dedup.getRange()) dedup.push({ key: [value.origin, key[1], key[2]], fp: value.fp, at: value.at });
    return { sessions, outbound, bodyIds, dedup };
  }

  loadOutbound(clientId: string, withBodies: boolean): { outbound: OutboundRecord[]; bodies: Map<number, AppMessage> } {
    const key = storeKey(clientId);
    const outbound: OutboundRecord[] = [];
    const bodies = new Map<number, AppMessage>();
    for (const { value } of this.outbound.getRange({ start: [key], end: [key, Infinity] })) {
      outbound.push(value);
      if (withBodies && value.state !== 'pubrel' && !bodies.has(value.body)) {
        const b = this.bodies.get(value.body);
        if (b) bodies.set(value.body, b);
      }
    }
    return { outbound, bodies };
  }

  putRetained(msg: AppMessage): void {
    if (this.closed) return;
    this.track(this.retained.put(storeKey(msg.topic), msg));
  }
  deleteRetained(topic: string): void {
    if (this.closed) return;
    this.track(this.retained.remove(storeKey(topic)));
  }
  loadRetained(): AppMessage[] {
    const out: AppMessage[] = [];
    for (const { value } of this.retained.getRange()) out.push(value);
    return out;
  }
  putDoc(name: string, value: unknown): void {
    if (this.closed) return;
    this.track(this.docs.put(name, value));
  }
  getDoc<T>(name: string): T | undefined {
    return this.docs.get(name) as T | undefined;
  }

  async commit(): Promise<void> {
    const last = this.last;
    if (last) await last;
    // lmdb-js on Linux opens with overlappingSync: a write's promise resolves once its
    // transaction is committed (visible, in the OS's page cache), and the fsync follows in
    // the background. Durable against power loss (`sync`) means after that flush, so the
    // answer waits for `flushed` too (it resolves when the last commit is on disk).
    if (last && this.fsync) await this.env.flushed;
    if (this.failure) throw this.failure;
  }

  stats(): StoreStats {
    if (this.closed) return { bytes: 0, entries: 0 };
    let pages = 0;
    let entries = 0;
    let pageSize = 4096;
    for (const db of [this.sessions, this.outbound, this.bodies, this.dedup, this.retained, this.docs]) {
      const s = db.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number; entryCount: number };
      pageSize = s.pageSize;
      pages += s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages;
      entries += s.entryCount;
    }
    return { bytes: pages * pageSize, entries };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.commit().catch(() => {});
    this.closed = true;
    await this.env.close();
  }
}
