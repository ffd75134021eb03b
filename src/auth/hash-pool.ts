// Password hashing/verification off the event loop. One scrypt verification
// with the default parameters costs ~50 ms of CPU and 16 MiB of memory; run
// on the event loop it would stall every connection during a CONNECT burst.
//
// The pool is deliberately small: authentication is bursty and rare compared
// to message traffic, and each thread can hold 16+ MiB while hashing. Idle
// threads exit (minThreads 0 + idleTimeout) so a quiet broker holds none.
import { Piscina } from 'piscina';
import type { HashTask } from '../../workers/hash-task.js';
import type { PasswordInput } from './password.js';

export interface HashPoolOptions {
  /** Upper bound on worker threads (default 1). */
  maxThreads?: number;
  /** How long an idle thread lingers before exiting, in ms (default 10 s). */
  idleTimeoutMs?: number;
  /**
   * Tasks allowed to wait for a thread (default 1024). Beyond that `verify`
   * rejects instead of queueing without bound during a CONNECT flood; the
   * caller should refuse the connection as "server busy".
   */
  maxQueue?: number;
}

export interface HashPool {
  /** Resolves false for a wrong password or malformed hash; rejects only if the pool fails or is closed. */
  verify(password: PasswordInput, encoded: string): Promise<boolean>;
  /** Produces a new encoded hash with the default parameters. */
  hash(password: PasswordInput): Promise<string>;
  /** Waits for running tasks, fails queued ones, and terminates all threads. */
  close(): Promise<void>;
}

const TASK_RELATIVE = '../../workers/hash-task';

/**
 * Locates the task file next to this module's location in the tree.
 * src/auth/hash-pool.ts      -> workers/hash-task.ts      (tsx / vitest)
 * dist/src/auth/hash-pool.js -> dist/workers/hash-task.js (compiled)
 * Under TypeScript sources the worker needs the tsx loader to import .ts;
 * compiled code must not pay for (or depend on) tsx.
 */
export function resolveHashTask(moduleUrl: string = import.meta.url): {
  filename: string;
  execArgv: string[] | undefined;
} {
  const isTs = new URL(moduleUrl).pathname.endsWith('.ts');
  const filename = new URL(`${TASK_RELATIVE}.${isTs ? 'ts' : 'js'}`, moduleUrl).href;
  return { filename, execArgv: isTs ? ['--import', 'tsx'] : undefined };
}

// Structured clone copies a typed array's *entire* backing ArrayBuffer.
// Passwords parsed from the wire are usually views into a larger socket
// chunk, so copy just the password bytes before posting them.
function detach(password: PasswordInput): PasswordInput {
  return typeof password === 'string' ? password : new Uint8Array(password);
}

export function createHashPool(opts: HashPoolOptions = {}): HashPool {
  const { filename, execArgv } = resolveHashTask();
  const maxThreads = Math.max(1, Math.floor(opts.maxThreads ?? 1));
  const pool = new Piscina<HashTask, boolean | string>({
    filename,
    minThreads: 0,
    maxThreads,
    idleTimeout: opts.idleTimeoutMs ?? 10_000,
    maxQueue: opts.maxQueue ?? 1024,
    // Bounded so close() cannot hang on a stuck task; a single scrypt run
    // takes well under a second.
    closeTimeout: 5_000,
    ...(execArgv ? { execArgv } : {}),
  });
  // Piscina reports a close timeout as an 'error' event; without a listener
  // that would be an uncaught exception during shutdown.
  pool.on('error', () => undefined);

  let closing: Promise<void> | null = null;

  function run(task: HashTask): Promise<boolean | string> {
    if (closing !== null) return Promise.reject(new Error('hash pool is closed'));
    return pool.run(task);
  }

  return {
    async verify(password, encoded) {
      const result = await run({ op: 'verify', password: detach(password), encoded });
      return result === true;
    },
    async hash(password) {
      const result = await run({ op: 'hash', password: detach(password) });
      if (typeof result !== 'string') throw new Error('hash task returned no hash');
      return result;
    },
    close() {
      // Idempotent: shutdown paths often call close() more than once.
      closing ??= pool.close({ force: true });
      return closing;
    },
  };
}
