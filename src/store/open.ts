/** Which store an owner (a shard, the coordinator) gets, from the configuration. */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { LmdbStore } from './lmdb-store.js';
import { MemoryStore } from './memory-store.js';
import type { Store } from './types.js';

export function storeDir(dataDir: string): string {
  return join(dataDir, 'store');
}

/** `{dataDir}/store/{owner}.mdb`: one LMDB environment (one writer) per owner. */
export function storePath(dataDir: string, owner: string): string {
  return join(storeDir(dataDir), `${owner}.mdb`);
}

export function openStore(config: Pick<Config, 'dataDir' | 'store'>, owner: string): Store {
  if (config.store.durability === 'memory') return new MemoryStore();
  // async: commits reach the OS but are not fsynced (a process crash loses nothing
  // committed, a power cut may lose the last commits); sync: every commit is fsynced.
  return new LmdbStore({ path: storePath(config.dataDir, owner), fsync: config.store.durability === 'sync' });
}

/**
 * One broker per data dir: LMDB lets several processes open the same files, and two
 * brokers writing one store would corrupt each other's sessions. The lock file holds the
 * owner's pid; a lock left by a process that no longer exists (kill -9) is taken over.
 * Returns the release function.
 */
export function lockDataDir(dataDir: string): () => void {
  const dir = storeDir(dataDir);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(file, 'utf8').trim());
      // This process's own lock: a start that failed half-way and is tried again.
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner))
        throw Object.assign(new Error(`${dataDir} is in use by another broker (pid ${owner}); stop it or choose another --data-dir`), { code: 'DATA_DIR_IN_USE' });
      rmSync(file, { force: true }); // left by a broker that died
    }
  }
  throw new Error(`${file}: could not take the data dir lock`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
