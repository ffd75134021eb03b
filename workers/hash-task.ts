// Piscina task for the auth hash pool (src/auth/hash-pool.ts). Runs on a
// dedicated worker thread, so it uses the *sync* scrypt functions: the
// thread is there precisely to absorb that CPU time, and the async variants
// would just hand the work to libuv's pool, which the broker's file and DNS
// I/O share.
import { hashPasswordSync, verifyPasswordSync } from '../src/auth/password.js';
import type { PasswordInput } from '../src/auth/password.js';

export type HashTask =
  | { op: 'verify'; password: PasswordInput; encoded: string }
  | { op: 'hash'; password: PasswordInput };

export default function hashTask(task: HashTask): boolean | string {
  switch (task.op) {
    case 'verify':
      // verifyPasswordSync never throws; a bad hash is simply "no match".
      return verifyPasswordSync(task.password, task.encoded);
    case 'hash':
      return hashPasswordSync(task.password);
    default:
      throw new Error(`unknown hash task op: ${String((task as { op?: unknown }).op)}`);
  }
}
