/**
 * A data dir written with another shard count: sessions are placed by a hash of the
 * client id modulo the shard count, so with a new count most of them would sit in the
 * wrong shard's store, unreachable. Before any shard starts, the supervisor moves every
 * session (with its messages) to the store of the shard it belongs to now.
 *
 * Crash-safe in steps: the new stores are written in `store/reshard-new/` and marked
 * complete; the old files are moved to `store/reshard-old/`, the new ones into place; the
 * layout is written; `reshard-old/` is removed. A start that finds `reshard-old/` either
 * finishes (the new set is complete) or puts the old files back and starts over.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { shardOf } from '../runtime/sharding.js';
import { LmdbStore } from './lmdb-store.js';
import type { Store } from './types.js';

export interface Layout {
  shards: number;
}

const LAYOUT_DOC = 'layout';
const SHARD_FILE = /^shard-(\d+)\.mdb(-lock)?$/;

/** Makes the shard stores under `storeDir` match `shards`; `coordinator` keeps the layout. */
export async function reshardIfNeeded(storeDir: string, shards: number, coordinator: Store, log: Logger): Promise<void> {
  const newDir = join(storeDir, 'reshard-new');
  const oldDir = join(storeDir, 'reshard-old');
  if (existsSync(oldDir)) {
    const marker = join(newDir, 'complete');
    if (existsSync(marker)) {
      // The new set was complete: finish the swap and record the count it was made for.
      const made = (JSON.parse(readFileSync(marker, 'utf8')) as Layout).shards;
      swapIn(storeDir, newDir);
      coordinator.putDoc(LAYOUT_DOC, { shards: made } satisfies Layout);
      await coordinator.commit();
    } else moveFiles(oldDir, storeDir); // interrupted before the new set was complete: undo
    rmSync(oldDir, { recursive: true, force: true });
  }
  rmSync(newDir, { recursive: true, force: true });
  const before = coordinator.getDoc<Layout>(LAYOUT_DOC)?.shards ?? countShardFiles(storeDir);
  if (before !== 0 && before !== shards) {
    const t0 = Date.now();
    const moved = await redistribute(storeDir, before, shards, newDir);
    mkdirSync(oldDir, { recursive: true });
    for (const f of readdirSync(storeDir)) if (SHARD_FILE.test(f)) renameSync(join(storeDir, f), join(oldDir, f));
    swapIn(storeDir, newDir);
    log.warn({ from: before, to: shards, sessions: moved, ms: Date.now() - t0 }, 'sessions moved to the stores of the new shard count');
  }
  coordinator.putDoc(LAYOUT_DOC, { shards } satisfies Layout);
  await coordinator.commit();
  rmSync(oldDir, { recursive: true, force: true });
}

function countShardFiles(storeDir: string): number {
  if (!existsSync(storeDir)) return 0;
  let n = 0;
  for (const f of readdirSync(storeDir)) {
    const m = SHARD_FILE.exec(f);
    if (m && !m[2]) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

function moveFiles(from: string, to: string): void {
  for (const f of readdirSync(from)) renameSync(join(from, f), join(to, f));
}

function swapIn(storeDir: string, newDir: string): void {
  for (const f of readdirSync(newDir)) if (SHARD_FILE.test(f)) renameSync(join(newDir, f), join(storeDir, f));
  rmSync(newDir, { recursive: true, force: true });
}

/** Writes the new shard stores into `newDir`; returns how many sessions were moved. */
async function redistribute(storeDir: string, from: number, to: number, newDir: string): Promise<number> {
  mkdirSync(newDir, { recursive: true });
  const targets = Array.from({ length: to }, (_, j) => new LmdbStore({ path: join(newDir, `shard-${j}.mdb`), fsync: true }));
  // Body ids are per store: each target numbers what it receives afresh.
  const nextId = new Array<number>(to).fill(1);
  let moved = 0;
  for (let i = 0; i < from; i++) {
    const path = join(storeDir, `shard-${i}.mdb`);
    if (!existsSync(path)) continue;
    const source = new LmdbStore({ path, fsync: true });
    const state = source.loadShard();
    // A body shared by several sessions is shared again in each target that gets it.
    const ids = new Map<string, number>();
    for (const r of state.sessions) {
      const j = shardOf(r.clientId, to);
      const target = targets[j]!;
      target.putSession(r);
      for (const o of state.outbound.get(r.clientId) ?? []) {
        const body = state.bodies.get(o.body);
        let id = 0;
        if (body && o.state !== 'pubrel') {
          const k = `${j}:${o.body}`;
          id = ids.get(k) ?? 0;
          if (id === 0) {
            ids.set(k, (id = nextId[j]!++));
            target.putBody(id, body);
          }
        }
        target.putOutbound(r.clientId, { ...o, body: id, seq: nextId[j]!++ });
      }
      moved++;
    }
    // Which new shard's subscribers got an inbound QoS 2 message is unknown: all keep its key.
    for (const e of state.dedup) for (const t of targets) t.putDedup(e);
    await source.close();
  }
  for (const t of targets) await t.close();
  writeFileSync(join(newDir, 'complete'), JSON.stringify({ shards: to } satisfies Layout));
  return moved;
}
