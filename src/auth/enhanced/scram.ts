/**
 * SCRAM-SHA-256 (RFC 5802 with the hash of RFC 7677), server side, as pure functions:
 * the stored credentials, the parsing of the client's two messages, the server's two
 * messages and the proof check. scram-method.ts runs the exchange over MQTT AUTH.
 *
 * Not supported: channel binding (gs2 flag 'p' is refused; 'n' and 'y' are accepted, as
 * this server offers no -PLUS variant, RFC 5802 section 6), an authorization identity
 * other than the username, mandatory extensions ('m='). SASLprep (RFC 4013) of the
 * password is approximated by Unicode NFKC; for ASCII passwords the two agree.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

/** What the server keeps per user (RFC 5802 section 3): never the password, nor anything a client could log in with. */
export interface ScramCredentials {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** RFC 7677 section 4: at least 4096. */
export const DEFAULT_SCRAM_ITERATIONS = 4096;
/** Accepted in a users file; the client does this much PBKDF2 work per login. */
export const MIN_SCRAM_ITERATIONS = 4096;
export const MAX_SCRAM_ITERATIONS = 10_000_000;
/** A SCRAM message from a client longer than this is refused (also bounds the AuthMessage kept between steps). */
export const MAX_SCRAM_MESSAGE = 4096;

const KEY = 32; // SHA-256
const PREFIX = 'scram-sha-256';

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/** The password as SCRAM hashes it (see the header: NFKC for SASLprep). */
function normalizePassword(password: string | Uint8Array): Buffer {
  return typeof password === 'string' ? Buffer.from(password.normalize('NFKC'), 'utf8') : Buffer.from(password);
}

/** SaltedPassword -> StoredKey, ServerKey (RFC 5802 section 3). PBKDF2 is Hi(). */
export function deriveScramCredentials(password: string | Uint8Array, salt: Buffer, iterations: number): ScramCredentials {
  const salted = pbkdf2Sync(normalizePassword(password), salt, iterations, KEY, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  return { iterations, salt, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

export function newScramCredentials(password: string | Uint8Array, iterations = DEFAULT_SCRAM_ITERATIONS): ScramCredentials {
  return deriveScramCredentials(password, randomBytes(16), iterations);
}

/** The users-file field: `scram-sha-256$<iterations>$<salt>$<StoredKey>$<ServerKey>` (base64). */
export function encodeScramCredentials(c: ScramCredentials): string {
  return [PREFIX, c.iterations, c.salt.toString('base64'), c.storedKey.toString('base64'), c.serverKey.toString('base64')].join('$');
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
function b64(text: string): Buffer | null {
  if (!BASE64.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : null;
}

/** Null for anything malformed (the users-file parser says which line). */
export function parseScramCredentials(text: string): ScramCredentials | null {
  if (text.length > 512) return null;
  const parts = text.split('$');
  if (parts.length !== 5 || parts[0] !== PREFIX || !/^[1-9][0-9]{0,7}$/.test(parts[1]!)) return null;
  const iterations = Number(parts[1]);
  if (iterations < MIN_SCRAM_ITERATIONS || iterations > MAX_SCRAM_ITERATIONS) return null;
  const salt = b64(parts[2]!);
  const storedKey = b64(parts[3]!);
  const serverKey = b64(parts[4]!);
  if (!salt || salt.length < 8 || salt.length > 64 || storedKey?.length !== KEY || serverKey?.length !== KEY) return null;
  return { iterations, salt, storedKey, serverKey };
}

/** A refused message: `why` is for logs; the client is told only that authentication failed. */
export interface ScramError {
  error: string;
}
export const isScramError = (x: unknown): x is ScramError => typeof x === 'object' && x !== null && 'error' in x;

export interface ClientFirst {
  /** gs2-header, e.g. "n,," (echoed, base64, in client-final's c=). */
  gs2Header: string;
  username: string;
  nonce: string;
  /** client-first-message-bare, part of the AuthMessage. */
  bare: string;
}

export interface ClientFinal {
  /** c= as sent (base64 of the gs2 header). */
  channelBinding: string;
  nonce: string;
  proof: Buffer;
  /** client-final-message-without-proof, part of the AuthMessage. */
  withoutProof: string;
}

/** printable ASCII except ',' (RFC 5802 section 7, `printable`). */
const NONCE = /^[\x21-\x2b\x2d-\x7e]{1,512}$/;

/** saslname -> the name: "=2C" is ',', "=3D" is '='; any other '=' is malformed (RFC 5802 section 5.1). */
export function decodeSaslName(s: string): string | null {
  if (/=(?!2C|3D)/.test(s)) return null;
  return s.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

export function encodeSaslName(s: string): string {
  return s.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function utf8(data: Buffer | undefined): string | ScramError {
  if (!data || data.length === 0) return { error: 'no SCRAM message' };
  if (data.length > MAX_SCRAM_MESSAGE) return { error: `SCRAM message longer than ${MAX_SCRAM_MESSAGE} bytes` };
  const text = data.toString('utf8');
  // A lossy decode (invalid UTF-8) or a NUL: not a SCRAM message.
  if (!Buffer.from(text, 'utf8').equals(data) || text.includes('\u0000')) return { error: 'SCRAM message is not valid UTF-8' };
  return text;
}

/** gs2-header client-first-message-bare (RFC 5802 section 7). */
export function parseClientFirst(data: Buffer | undefined): ClientFirst | ScramError {
  const text = utf8(data);
  if (typeof text !== 'string') return text;
  const c1 = text.indexOf(',');
  const c2 = c1 < 0 ? -1 : text.indexOf(',', c1 + 1);
  if (c2 < 0) return { error: 'no gs2 header' };
  const flag = text.slice(0, c1);
  if (flag.startsWith('p=')) return { error: 'channel binding is not supported' };
  if (flag !== 'n' && flag !== 'y') return { error: 'bad gs2 channel binding flag' };
  const authzid = text.slice(c1 + 1, c2);
  const bare = text.slice(c2 + 1);
  const attrs = bare.split(',');
  if (attrs[0]?.startsWith('m=')) return { error: 'mandatory extensions are not supported' };
  if (attrs.length < 2 || !attrs[0]!.startsWith('n=') || !attrs[1]!.startsWith('r=')) return { error: 'client-first-message needs n= and r=' };
  const username = decodeSaslName(attrs[0]!.slice(2));
  if (username === null || username.length === 0) return { error: 'bad username' };
  const nonce = attrs[1]!.slice(2);
  if (!NONCE.test(nonce)) return { error: 'bad client nonce' };
  if (authzid !== '') {
    // An authorization identity other than the authenticated user would mean acting for
    // someone else, which this server does not offer.
    const a = authzid.startsWith('a=') ? decodeSaslName(authzid.slice(2)) : null;
    if (a !== username) return { error: 'authorization identity is not supported' };
  }
  return { gs2Header: text.slice(0, c2 + 1), username, nonce, bare };
}

/** server-first-message: r=<client nonce><server nonce>,s=<salt>,i=<iterations>. */
export function serverFirstMessage(cf: ClientFirst, serverNonce: string, c: Pick<ScramCredentials, 'salt' | 'iterations'>): string {
  return `r=${cf.nonce}${serverNonce},s=${c.salt.toString('base64')},i=${c.iterations}`;
}

/** A server nonce: 18 random bytes, base64 (printable, no ','). */
export function newServerNonce(): string {
  return randomBytes(18).toString('base64');
}

/** client-final-message: c=...,r=...[,extensions],p=... (RFC 5802 section 7). */
export function parseClientFinal(data: Buffer | undefined): ClientFinal | ScramError {
  const text = utf8(data);
  if (typeof text !== 'string') return text;
  const at = text.lastIndexOf(',p=');
  if (at < 0) return { error: 'client-final-message has no proof' };
  const withoutProof = text.slice(0, at);
  const attrs = withoutProof.split(',');
  if (attrs.length < 2 || !attrs[0]!.startsWith('c=') || !attrs[1]!.startsWith('r=')) return { error: 'client-final-message needs c= and r=' };
  const proof = b64(text.slice(at + 3));
  if (!proof || proof.length !== KEY) return { error: 'bad client proof' };
  return { channelBinding: attrs[0]!.slice(2), nonce: attrs[1]!.slice(2), proof, withoutProof };
}

export const authMessage = (cf: ClientFirst, serverFirst: string, fin: ClientFinal): string => `${cf.bare},${serverFirst},${fin.withoutProof}`;

/**
 * ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof is good when
 * H(ClientKey) = StoredKey. Compared in constant time; the same work whatever the input.
 */
export function verifyClientProof(c: ScramCredentials, message: string, proof: Buffer): boolean {
  const signature = hmac(c.storedKey, message);
  const clientKey = Buffer.alloc(KEY);
  for (let i = 0; i < KEY; i++) clientKey[i] = proof[i]! ^ signature[i]!;
  return timingSafeEqual(sha256(clientKey), c.storedKey);
}

/** server-final-message: v=<ServerSignature>, proving the server knew the ServerKey. */
export function serverFinalMessage(c: ScramCredentials, message: string): string {
  return `v=${hmac(c.serverKey, message).toString('base64')}`;
}

/**
 * Credentials for a user that does not exist, the same on every call for that name (and
 * on every gateway thread, given the same secret): the salt an attacker sees for an
 * unknown name does not change from one try to the next, as a real user's would not,
 * so the server-first-message does not tell which users exist. The keys are derived too;
 * no proof verifies against them short of breaking HMAC.
 */
export function fakeScramCredentials(secret: Buffer, username: string, iterations: number, saltBytes: number): ScramCredentials {
  const salt = hmac(secret, `salt\u0000${username}`).subarray(0, Math.min(Math.max(saltBytes, 8), KEY));
  return { iterations, salt, storedKey: hmac(secret, `stored\u0000${username}`), serverKey: hmac(secret, `server\u0000${username}`) };
}
