// CONNECT authentication: username/password against the users file.
//
// Outcomes (callers map them to reason codes):
//   'ok'               accepted; the username (if any) becomes the identity
//   'bad_credentials'  unknown user, wrong or missing password
//                      (v5 0x86 Bad User Name or Password / 3.1.1 0x04)
//   'not_authorized'   anonymous access refused
//                      (v5 0x87 Not authorized / 3.1.1 0x05)
//
// Decisions:
// - No username => anonymous, allowed only when allowAnonymous. A password
//   without a username (legal in v5) is ignored: there is nobody to check
//   it against.
// - No users table configured and a username given => accepted as that
//   identity when allowAnonymous, refused ('not_authorized') otherwise.
//   Without a table there is nothing to verify, so the username is merely a
//   label the client chose; it grants nothing anonymous access would not,
//   EXCEPT through ACL rules keyed on username or `%u`. Those rules are
//   only meaningful with a users file.
// - A users table is configured and a username given: the password must
//   verify against that user's hash; a missing password never does (even
//   if the stored password is empty), since "no password" and "empty
//   password" are distinct on the wire.
// - Against user enumeration by timing, every path that involves a user
//   table performs exactly one scrypt verification on the pool: unknown
//   users and missing passwords are checked against a dummy hash with the
//   same cost parameters as a real one.
// - authenticate() rejects only if the pool itself fails (closed, queue
//   full, worker crash); callers should answer "server unavailable/busy"
//   rather than "bad credentials", which would be a lie.
import { makeDummyHash } from './password.js';
import type { PasswordInput } from './password.js';

export type AuthResult = 'ok' | 'bad_credentials' | 'not_authorized';

/** The part of the hash pool the authenticator needs (see hash-pool.ts). */
export interface PasswordVerifier {
  verify(password: PasswordInput, encoded: string): Promise<boolean>;
}

export interface AuthenticatorOptions {
  allowAnonymous: boolean;
  /** username -> encoded scrypt hash, or null when no users file is configured. */
  users: ReadonlyMap<string, string> | null;
  pool: PasswordVerifier;
}

export interface Authenticator {
  authenticate(username: string | undefined, password: Buffer | undefined): Promise<AuthResult>;
}

const EMPTY = new Uint8Array(0);

export function createAuthenticator(opts: AuthenticatorOptions): Authenticator {
  const { allowAnonymous, users, pool } = opts;
  // Copy the cost parameters of a real entry so an unknown user costs the
  // same as a known one; hashes with unusual parameters stay distinguishable,
  // which only reveals that *some* user has them.
  const sample = users === null ? undefined : users.values().next().value;
  const dummyHash = makeDummyHash(sample);

  return {
    async authenticate(username, password) {
      if (username === undefined) return allowAnonymous ? 'ok' : 'not_authorized';
      if (users === null) return allowAnonymous ? 'ok' : 'not_authorized';

      const stored = users.get(username);
      if (stored === undefined || password === undefined) {
        await pool.verify(password ?? EMPTY, dummyHash);
        return 'bad_credentials';
      }
      return (await pool.verify(password, stored)) ? 'ok' : 'bad_credentials';
    },
  };
}
