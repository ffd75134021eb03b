/**
 * The built-in SCRAM-SHA-256 method over MQTT 5 AUTH (MQTT 5.0 section 4.12, the SCRAM
 * example of its non-normative text):
 *
 *   CONNECT  Authentication Data = client-first-message
 *   AUTH 0x18                     = server-first-message   (this module: start)
 *   AUTH 0x18                     = client-final-message
 *   CONNACK 0x00 (re-auth: AUTH 0x00) = server-final-message (this module: next)
 *
 * The server does no PBKDF2: it keeps StoredKey and ServerKey (users file), so a login
 * costs two HMACs and a hash, on the event loop. An unknown user (or one whose users-file
 * line has no SCRAM field yet) goes through the same steps with fake credentials and fails
 * at the proof, with the same Reason String as a wrong password.
 */
import type { AuthMethod, AuthStep } from './method.js';
import {
  authMessage,
  DEFAULT_SCRAM_ITERATIONS,
  fakeScramCredentials,
  isScramError,
  newServerNonce,
  parseClientFinal,
  parseClientFirst,
  SCRAM_SHA_256,
  serverFinalMessage,
  serverFirstMessage,
  verifyClientProof,
  type ScramCredentials,
} from './scram.js';

/** What a client is told on any failure: never which part was wrong. */
export const SCRAM_FAILED = 'SCRAM-SHA-256 authentication failed';

export interface ScramMethodOptions {
  /** username -> credentials (users with a SCRAM field in the users file). */
  credentials: ReadonlyMap<string, ScramCredentials>;
  /** Secret for the fake salts of unknown users (registry.ts keeps it in dataDir). */
  secret: Buffer;
}

export function createScramMethod(o: ScramMethodOptions): AuthMethod {
  // Fake credentials look like the real ones: same iteration count and salt length as a
  // real entry (the first), so neither tells an unknown user apart.
  const sample = o.credentials.values().next().value as ScramCredentials | undefined;
  const iterations = sample?.iterations ?? DEFAULT_SCRAM_ITERATIONS;
  const saltBytes = sample?.salt.length ?? 16;
  const fail = (detail: string): AuthStep => ({ kind: 'failure', reason: SCRAM_FAILED, detail });
  return {
    name: SCRAM_SHA_256,
    start(data) {
      const cf = parseClientFirst(data);
      if (isScramError(cf)) return fail(cf.error);
      const real = o.credentials.get(cf.username);
      // Derived for every user, known or not, so this step costs the same either way.
      const fake = fakeScramCredentials(o.secret, cf.username, iterations, saltBytes);
      const creds = real ?? fake;
      const serverFirst = serverFirstMessage(cf, newServerNonce(), creds);
      const nonce = serverFirst.slice(2, serverFirst.indexOf(','));
      return {
        kind: 'continue',
        data: Buffer.from(serverFirst, 'utf8'),
        next(clientData) {
          const fin = parseClientFinal(clientData);
          if (isScramError(fin)) return fail(fin.error);
          if (fin.nonce !== nonce) return fail('nonce does not match');
          // c= is base64 of the gs2 header: no channel binding data (RFC 5802 section 7).
          if (fin.channelBinding !== Buffer.from(cf.gs2Header, 'utf8').toString('base64')) return fail('channel binding does not match the gs2 header');
          const message = authMessage(cf, serverFirst, fin);
          // Verified even for an unknown user (against the fake keys): the same work either way.
          const ok = verifyClientProof(creds, message, fin.proof);
          if (!real) return fail(`unknown user ${JSON.stringify(cf.username)} (or no SCRAM credentials in the users file)`);
          if (!ok) return fail('wrong proof (wrong password)');
          return { kind: 'success', identity: cf.username, data: Buffer.from(serverFinalMessage(creds, message), 'utf8') };
        },
      };
    },
  };
}
