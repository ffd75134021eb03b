import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../../src/auth/authenticator.js';
import type { PasswordVerifier } from '../../../src/auth/authenticator.js';
import { createHashPool, resolveHashTask } from '../../../src/auth/hash-pool.js';
import type { HashPool } from '../../../src/auth/hash-pool.js';
import { hashPassword, parsePasswordHash } from '../../../src/auth/password.js';

/** Records what the authenticator asks the pool to verify. */
function recordingVerifier(inner: PasswordVerifier): PasswordVerifier & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    verify(password, encoded) {
      calls.push(encoded);
      return inner.verify(password, encoded);
    },
  };
}

describe('resolveHashTask', () => {
  it('uses the .ts task with tsx under sources and the .js task when compiled', () => {
    const ts = resolveHashTask('file:///app/src/auth/hash-pool.ts');
    expect(ts.filename).toBe('file:///app/workers/hash-task.ts');
    expect(ts.execArgv).toEqual(['--import', 'tsx']);
    const js = resolveHashTask('file:///app/dist/src/auth/hash-pool.js');
    expect(js.filename).toBe('file:///app/dist/workers/hash-task.js');
    expect(js.execArgv).toBeUndefined();
  });
});

describe('createAuthenticator (real piscina pool)', () => {
  let pool: HashPool;
  let users: Map<string, string>;

  beforeAll(async () => {
    pool = createHashPool({ maxThreads: 1 });
    users = new Map([
      ['alice', await hashPassword('wonderland')],
      ['empty', await hashPassword('')],
    ]);
  });

  afterAll(async () => {
    await pool.close();
  });

  it('the pool verifies right and wrong passwords, string or Buffer', async () => {
    const alice = users.get('alice') as string;
    expect(await pool.verify('wonderland', alice)).toBe(true);
    expect(await pool.verify(Buffer.from('wonderland'), alice)).toBe(true);
    expect(await pool.verify('nope', alice)).toBe(false);
    expect(await pool.verify('x', 'not-a-hash')).toBe(false);
  });

  it('sends only the password bytes of a Buffer view to the worker', async () => {
    // A view into a larger buffer, as produced by a packet parser.
    const chunk = Buffer.from('xxxxwonderlandyyyy');
    expect(await pool.verify(chunk.subarray(4, 14), users.get('alice') as string)).toBe(true);
  });

  it('accepts the right password and rejects a wrong one', async () => {
    const auth = createAuthenticator({ allowAnonymous: false, users, pool });
    expect(await auth.authenticate('alice', Buffer.from('wonderland'))).toBe('ok');
    expect(await auth.authenticate('alice', Buffer.from('Wonderland'))).toBe('bad_credentials');
    expect(await auth.authenticate('alice', Buffer.alloc(0))).toBe('bad_credentials');
  });

  it('rejects unknown users and missing passwords, verifying a dummy hash each time', async () => {
    const verifier = recordingVerifier(pool);
    const auth = createAuthenticator({ allowAnonymous: true, users, pool: verifier });
    expect(await auth.authenticate('mallory', Buffer.from('wonderland'))).toBe('bad_credentials');
    expect(await auth.authenticate('mallory', undefined)).toBe('bad_credentials');
    expect(await auth.authenticate('alice', undefined)).toBe('bad_credentials');
    // An empty stored password still needs an (empty) password to be sent.
    expect(await auth.authenticate('empty', undefined)).toBe('bad_credentials');
    expect(await auth.authenticate('empty', Buffer.alloc(0))).toBe('ok');
    // One scrypt verification per attempt, never against a real user's hash
    // on the failure paths, always with the same cost as a real hash.
    expect(verifier.calls).toHaveLength(5);
    const real = new Set(users.values());
    for (const encoded of verifier.calls.slice(0, 4)) {
      expect(real.has(encoded)).toBe(false);
      expect(parsePasswordHash(encoded)?.N).toBe(parsePasswordHash(users.get('alice') as string)?.N);
    }
  });

  it('anonymous access depends on allowAnonymous', async () => {
    const open = createAuthenticator({ allowAnonymous: true, users, pool });
    const closed = createAuthenticator({ allowAnonymous: false, users, pool });
    expect(await open.authenticate(undefined, undefined)).toBe('ok');
    expect(await closed.authenticate(undefined, undefined)).toBe('not_authorized');
    // v5 permits a password without a username; it cannot be checked, so it is ignored.
    expect(await open.authenticate(undefined, Buffer.from('x'))).toBe('ok');
    expect(await closed.authenticate(undefined, Buffer.from('wonderland'))).toBe('not_authorized');
  });

  it('without a user table, a username is an unverified label accepted only when anonymous is', async () => {
    const verifier = recordingVerifier(pool);
    const open = createAuthenticator({ allowAnonymous: true, users: null, pool: verifier });
    const closed = createAuthenticator({ allowAnonymous: false, users: null, pool: verifier });
    expect(await open.authenticate('anyone', Buffer.from('whatever'))).toBe('ok');
    expect(await open.authenticate('anyone', undefined)).toBe('ok');
    expect(await closed.authenticate('anyone', Buffer.from('whatever'))).toBe('not_authorized');
    expect(verifier.calls).toHaveLength(0);
  });

  it('an empty user table rejects every username', async () => {
    const auth = createAuthenticator({ allowAnonymous: true, users: new Map(), pool });
    expect(await auth.authenticate('alice', Buffer.from('wonderland'))).toBe('bad_credentials');
    expect(await auth.authenticate(undefined, undefined)).toBe('ok');
  });

  it('handles concurrent attempts through the single-thread pool', async () => {
    const auth = createAuthenticator({ allowAnonymous: false, users, pool });
    const results = await Promise.all([
      auth.authenticate('alice', Buffer.from('wonderland')),
      auth.authenticate('alice', Buffer.from('bad')),
      auth.authenticate('ghost', Buffer.from('wonderland')),
      auth.authenticate('alice', Buffer.from('wonderland')),
    ]);
    expect(results).toEqual(['ok', 'bad_credentials', 'bad_credentials', 'ok']);
  });
});

describe('hash pool lifecycle', () => {
  it('close() resolves (also twice, also unused) and later calls reject', async () => {
    const unused = createHashPool();
    await unused.close();

    const pool = createHashPool();
    const encoded = await pool.hash('pw');
    const inFlight = pool.verify('pw', encoded);
    await pool.close();
    await pool.close();
    // A task already running when close() was called still completes.
    expect(await inFlight).toBe(true);
    await expect(pool.verify('pw', encoded)).rejects.toThrow(/closed/);
  });
});
