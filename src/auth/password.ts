// scrypt password hashes in a self-describing string format:
//
//   scrypt$<N>$<r>$<p>$<saltB64>$<hashB64>
//
// The cost parameters travel with every hash so they can be raised later
// without invalidating existing users files: old hashes keep verifying with
// the parameters they were created with.
//
// Both async (libuv thread pool) and sync variants exist. The broker itself
// verifies through the piscina hash pool, whose worker uses the sync
// variants: a dedicated worker thread gains nothing from bouncing the work
// to the libuv pool, and the libuv pool is shared with file and DNS I/O.
import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import type { ScryptOptions } from 'node:crypto';

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelisation. */
  p: number;
  saltBytes: number;
  keyBytes: number;
}

export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({
  N: 16384,
  r: 8,
  p: 1,
  saltBytes: 16,
  keyBytes: 32,
});

export interface ParsedPasswordHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** Passwords are accepted as text or raw bytes (MQTT passwords are binary data). */
export type PasswordInput = string | Uint8Array;

// Bounds on parameters read from a stored hash. A users file is trusted
// configuration, but a typo or a hand-edited line must not make every login
// allocate gigabytes or spin for minutes, so out-of-range values make the
// hash "malformed" (verification fails) instead of being honoured.
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;
const MIN_SALT = 8;
const MAX_SALT = 64;
const MIN_KEY = 16;
const MAX_KEY = 64;
// scrypt needs about 128 * N * r bytes; stay well within what MAX_N/MAX_R allow.
const MAX_MEM = 256 * 1024 * 1024;

const PREFIX = 'scrypt';
const DECIMAL = /^[1-9][0-9]{0,9}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function decodeBase64Strict(text: string): Buffer | null {
  if (!BASE64.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  // Buffer.from silently ignores junk and mis-padding; a round trip makes
  // the encoding canonical so one hash has exactly one spelling.
  return bytes.toString('base64') === text ? bytes : null;
}

function isPowerOfTwo(n: number): boolean {
  return n >= 2 && (n & (n - 1)) === 0;
}

function memoryNeeded(N: number, r: number): number {
  return 128 * N * r;
}

function scryptOptions(N: number, r: number, p: number): ScryptOptions {
  // Node's default maxmem (32 MiB) is close to what N=16384,r=8 needs; give
  // explicit headroom so valid stronger parameters do not fail spuriously.
  return { N, r, p, maxmem: memoryNeeded(N, r) * 2 + 1024 * 1024 };
}

/** Parses and validates an encoded hash; returns null for anything malformed. */
export function parsePasswordHash(encoded: string): ParsedPasswordHash | null {
  if (typeof encoded !== 'string' || encoded.length > 512) return null;
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== PREFIX) return null;
  const [, nText, rText, pText, saltText, hashText] = parts as [
    string, string, string, string, string, string,
  ];
  if (!DECIMAL.test(nText) || !DECIMAL.test(rText) || !DECIMAL.test(pText)) return null;
  const N = Number(nText);
  const r = Number(rText);
  const p = Number(pText);
  if (!isPowerOfTwo(N) || N > MAX_N || r > MAX_R || p > MAX_P) return null;
  if (memoryNeeded(N, r) > MAX_MEM) return null;
  const salt = decodeBase64Strict(saltText);
  const hash = decodeBase64Strict(hashText);
  if (salt === null || hash === null) return null;
  if (salt.length < MIN_SALT || salt.length > MAX_SALT) return null;
  if (hash.length < MIN_KEY || hash.length > MAX_KEY) return null;
  return { N, r, p, salt, hash };
}

export function isPasswordHash(encoded: string): boolean {
  return parsePasswordHash(encoded) !== null;
}

function resolveParams(overrides: Partial<ScryptParams> | undefined): ScryptParams {
  const params = { ...DEFAULT_SCRYPT_PARAMS, ...overrides };
  const { N, r, p, saltBytes, keyBytes } = params;
  const ok =
    Number.isInteger(N) && isPowerOfTwo(N) && N <= MAX_N &&
    Number.isInteger(r) && r >= 1 && r <= MAX_R &&
    Number.isInteger(p) && p >= 1 && p <= MAX_P &&
    memoryNeeded(N, r) <= MAX_MEM &&
    Number.isInteger(saltBytes) && saltBytes >= MIN_SALT && saltBytes <= MAX_SALT &&
    Number.isInteger(keyBytes) && keyBytes >= MIN_KEY && keyBytes <= MAX_KEY;
  // Refuse to produce a hash that parsePasswordHash would later reject.
  if (!ok) throw new RangeError(`invalid scrypt parameters: ${JSON.stringify(params)}`);
  return params;
}

function encode(N: number, r: number, p: number, salt: Buffer, hash: Buffer): string {
  return [PREFIX, N, r, p, salt.toString('base64'), hash.toString('base64')].join('$');
}

export async function hashPassword(
  password: PasswordInput,
  params?: Partial<ScryptParams>,
): Promise<string> {
  const { N, r, p, saltBytes, keyBytes } = resolveParams(params);
  const salt = randomBytes(saltBytes);
  const hash = await new Promise<Buffer>((resolve, reject) => {
    scrypt(password, salt, keyBytes, scryptOptions(N, r, p), (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
  return encode(N, r, p, salt, hash);
}

export function hashPasswordSync(password: PasswordInput, params?: Partial<ScryptParams>): string {
  const { N, r, p, saltBytes, keyBytes } = resolveParams(params);
  const salt = randomBytes(saltBytes);
  const hash = scryptSync(password, salt, keyBytes, scryptOptions(N, r, p));
  return encode(N, r, p, salt, hash);
}

function isPasswordInput(password: unknown): password is PasswordInput {
  return typeof password === 'string' || password instanceof Uint8Array;
}

/** Never throws: a malformed hash or an scrypt failure yields false. */
export async function verifyPassword(password: PasswordInput, encoded: string): Promise<boolean> {
  const parsed = parsePasswordHash(encoded);
  if (parsed === null || !isPasswordInput(password)) return false;
  const { N, r, p, salt, hash } = parsed;
  try {
    const derived = await new Promise<Buffer>((resolve, reject) => {
      scrypt(password, salt, hash.length, scryptOptions(N, r, p), (err, key) =>
        err ? reject(err) : resolve(key),
      );
    });
    return timingSafeEqual(derived, hash);
  } catch {
    return false;
  }
}

/** Sync variant for the hash pool worker. Never throws. */
export function verifyPasswordSync(password: PasswordInput, encoded: string): boolean {
  const parsed = parsePasswordHash(encoded);
  if (parsed === null || !isPasswordInput(password)) return false;
  const { N, r, p, salt, hash } = parsed;
  try {
    return timingSafeEqual(scryptSync(password, salt, hash.length, scryptOptions(N, r, p)), hash);
  } catch {
    return false;
  }
}

/**
 * A well-formed hash that no known password matches (salt and "hash" are
 * random bytes, so finding a match means inverting scrypt). Used to spend
 * the same work on unknown users as on known ones. When `like` is a valid
 * hash its cost parameters and lengths are copied so the timing matches it.
 */
export function makeDummyHash(like?: string): string {
  const parsed = like === undefined ? null : parsePasswordHash(like);
  if (parsed !== null) {
    const { N, r, p, salt, hash } = parsed;
    return encode(N, r, p, randomBytes(salt.length), randomBytes(hash.length));
  }
  const { N, r, p, saltBytes, keyBytes } = DEFAULT_SCRYPT_PARAMS;
  return encode(N, r, p, randomBytes(saltBytes), randomBytes(keyBytes));
}
