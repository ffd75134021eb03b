/**
 * `switchboard backup OUT`: a copy of the data dir that a broker can start from, taken
 * while the broker runs (or not).
 *
 * A plain file copy of a live LMDB file can be torn (a commit lands half-way through the
 * copy). Each store file is instead opened read-only in this process, as LMDB allows next
 * to the broker (readers register in the `*.mdb-lock` file), and copied from one read
 * transaction with LMDB's own copy (mdb_env_copy2, lmdb-js `backup()`): a committed state,
 * whatever the broker writes meanwhile. The files are copied one after the other, so the
 * shards' and the coordinator's copies are a few milliseconds apart: a message published
 * during the backup may be in one shard's copy and not in another's, as if the broker had
 * stopped while routing it (each session is whole; nothing is torn).
 *
 * Then the rest of the data dir (uploaded files): after the stores, so every file an IM
 * message in the copy refers to is there. Not copied: the broker's lock (`store/LOCK`), the
 * LMDB lock files (made anew on open) and unfinished uploads (`*.part`).
 */
import { cp, mkdir, readdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { open } from 'lmdb';
import { storeDir } from './open.js';

export interface BackupOptions {
  /** Leave out free pages (smaller, slower): also how to shrink a store that grew once. */
  compact?: boolean;
}

export interface BackupResult {
  out: string;
  /** Each store file copied and the size of its copy. */
  stores: Array<{ file: string; bytes: number }>;
  /** Other files copied (uploaded files and their metadata). */
  files: number;
}

const STORE_FILE = /\.mdb$/;

export async function backupDataDir(dataDir: string, out: string, o: BackupOptions = {}): Promise<BackupResult> {
  if (!existsSync(dataDir)) throw backupError(`${dataDir}: no such data directory`);
  // Never mixed with an older copy: a backup is one consistent set.
  if (existsSync(out) && (await readdir(out)).length > 0) throw backupError(`${out} exists and is not empty; give a new directory`);
  const src = storeDir(dataDir);
  for (const d of ['reshard-new', 'reshard-old'])
    if (existsSync(join(src, d))) throw backupError(`${src}/${d}: the store is being resharded (the broker is starting); back up once it has started`);
  // 0700: the copy holds sessions, messages and files like the data dir itself.
  await mkdir(out, { recursive: true, mode: 0o700 });
  const result: BackupResult = { out, stores: [], files: 0 };
  const storeFiles = existsSync(src) ? (await readdir(src)).filter((f) => STORE_FILE.test(f)).sort() : [];
  if (storeFiles.length > 0) await mkdir(storeDir(out), { recursive: true });
  for (const file of storeFiles) {
    const dest = join(storeDir(out), file);
    // Read-only: this process never writes the broker's files.
    const env = open({ path: join(src, file), readOnly: true });
    try {
      await env.backup(dest, o.compact ?? false);
    } finally {
      await env.close();
    }
    result.stores.push({ file, bytes: (await stat(dest)).size });
  }
  for (const entry of await readdir(dataDir)) {
    if (entry === basename(src)) continue;
    await cp(join(dataDir, entry), join(out, entry), {
      recursive: true,
      errorOnExist: true,
      force: false,
      filter: (from) => !from.endsWith('.part'),
    });
  }
  result.files = await countFiles(out, storeDir(out));
  return result;
}

async function countFiles(dir: string, skip: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (p === skip) continue;
    n += e.isDirectory() ? await countFiles(p, skip) : 1;
  }
  return n;
}

function backupError(message: string): Error {
  return Object.assign(new Error(message), { code: 'BACKUP_FAILED' });
}

/** `switchboard backup` arguments: its own, like `admin` and `cert`. */
export interface BackupArgs {
  out?: string;
  configFile?: string;
  dataDir?: string;
  compact: boolean;
  help: boolean;
}

export const USAGE_BACKUP = [
  'Usage: switchboard backup [--config FILE] [--data-dir DIR] [--compact] OUT',
  '',
  'Copies the data directory (the LMDB stores, consistently, and the uploaded files) to the',
  'new directory OUT, while the broker runs or not. Restore: stop the broker, start it with',
  '--data-dir OUT (or put OUT in place of the data directory). See docs/operations.md.',
  '',
  '  -c, --config FILE   config file whose dataDir is backed up (default: $SWITCHBOARD_CONFIG)',
  '  --data-dir DIR      the data directory (overrides the config; default ./data)',
  '  --compact           leave out free pages: a smaller copy, slower to make',
  '',
].join('\n');

export function parseBackupArgs(argv: string[]): BackupArgs {
  const a: BackupArgs = { compact: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const value = (): string => {
      if (eq >= 0) return arg.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) throw backupUsage(`${name} needs a value`);
      return next;
    };
    if (name === '--help' || name === '-h') a.help = true;
    else if (name === '--compact') a.compact = true;
    else if (name === '--config' || name === '-c') a.configFile = value();
    else if (name === '--data-dir') a.dataDir = value();
    else if (arg.startsWith('-')) throw backupUsage(`unknown flag "${name}"`);
    else if (a.out === undefined) a.out = arg;
    else throw backupUsage(`unexpected argument "${arg}"`);
  }
  if (!a.help && a.out === undefined) throw backupUsage('the output directory OUT is missing');
  return a;
}

function backupUsage(message: string): Error {
  return Object.assign(new Error(`${message} (switchboard help backup)`), { code: 'BACKUP_USAGE' });
}
