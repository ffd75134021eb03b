import { describe, it, expect } from 'vitest';
import {
  DEFAULT_SCRYPT_PARAMS,
  hashPassword,
  hashPasswordSync,
  isPasswordHash,
  makeDummyHash,
  parsePasswordHash,
  verifyPassword,
  verifyPasswordSync,
} from '../../../src/auth/password.js';

// Cheap parameters keep the suite fast where the cost itself is not under test.
const FAST = { N: 1024, r: 8, p: 1 };

describe('hashPassword', () => {
  it('produces scrypt$N$r$p$salt$hash with the default parameters', async () => {
    const encoded = await hashPassword('secret');
    const parts = encoded.split('$');
    expect(parts.slice(0, 4)).toEqual(['scrypt', '16384', '8', '1']);
    const parsed = parsePasswordHash(encoded);
    expect(parsed?.salt.length).toBe(DEFAULT_SCRYPT_PARAMS.saltBytes);
    expect(parsed?.hash.length).toBe(DEFAULT_SCRYPT_PARAMS.keyBytes);
  });

  it('salts: the same password hashes differently each time', async () => {
    const [a, b] = await Promise.all([hashPassword('pw', FAST), hashPassword('pw', FAST)]);
    expect(a).not.toBe(b);
  });

  it('refuses parameters it could not verify later', async () => {
    await expect(hashPassword('pw', { N: 1000 })).rejects.toThrow(RangeError);
    expect(() => hashPasswordSync('pw', { r: 0 })).toThrow(RangeError);
    expect(() => hashPasswordSync('pw', { saltBytes: 4 })).toThrow(RangeError);
  });
});

describe('verifyPassword / verifyPasswordSync', () => {
  it('accepts the right password and rejects others (async and sync agree)', async () => {
    const encoded = await hashPassword('correct horse', FAST);
    expect(await verifyPassword('correct horse', encoded)).toBe(true);
    expect(await verifyPassword('correct horsE', encoded)).toBe(false);
    expect(await verifyPassword('', encoded)).toBe(false);
    expect(verifyPasswordSync('correct horse', encoded)).toBe(true);
    expect(verifyPasswordSync('wrong', encoded)).toBe(false);
  });

  it('treats a password as UTF-8 bytes: string and Buffer forms are interchangeable', async () => {
    const encoded = hashPasswordSync('päss', FAST);
    expect(await verifyPassword(Buffer.from('päss', 'utf8'), encoded)).toBe(true);
    expect(verifyPasswordSync(new Uint8Array(Buffer.from('päss')), encoded)).toBe(true);
    expect(verifyPasswordSync(Buffer.from('päss', 'latin1'), encoded)).toBe(false);
  });

  it('verifies binary (non-UTF-8) passwords exactly', () => {
    const pw = Buffer.from([0xff, 0x00, 0xfe]);
    const encoded = hashPasswordSync(pw, FAST);
    expect(verifyPasswordSync(pw, encoded)).toBe(true);
    expect(verifyPasswordSync(Buffer.from([0xff, 0x00, 0xfd]), encoded)).toBe(false);
  });

  it('honours the parameters stored in the hash, not the defaults', async () => {
    const encoded = await hashPassword('pw', { N: 2048, r: 4, p: 2, keyBytes: 48, saltBytes: 24 });
    expect(encoded.startsWith('scrypt$2048$4$2$')).toBe(true);
    expect(await verifyPassword('pw', encoded)).toBe(true);
  });

  it('returns false (never throws) for malformed hashes', async () => {
    const good = hashPasswordSync('pw', FAST);
    const [, n, r, p, salt, hash] = good.split('$') as string[];
    const malformed: unknown[] = [
      '',
      'garbage',
      'bcrypt$2b$10$abc',
      `scrypt$${n}$${r}$${p}$${salt}`, // too few fields
      `${good}$extra`,
      `argon2$${n}$${r}$${p}$${salt}$${hash}`,
      `scrypt$1000$${r}$${p}$${salt}$${hash}`, // N not a power of two
      `scrypt$0$${r}$${p}$${salt}$${hash}`,
      `scrypt$01024$${r}$${p}$${salt}$${hash}`, // non-canonical number
      `scrypt$-1024$${r}$${p}$${salt}$${hash}`,
      `scrypt$1e3$${r}$${p}$${salt}$${hash}`,
      `scrypt$1073741824$${r}$${p}$${salt}$${hash}`, // absurd cost
      `scrypt$${n}$1000$${p}$${salt}$${hash}`,
      `scrypt$${n}$${r}$${p}$not*base64$${hash}`,
      `scrypt$${n}$${r}$${p}$${salt}$${hash}x`, // non-canonical base64
      `scrypt$${n}$${r}$${p}$AAAA$${hash}`, // salt too short
      `scrypt$${n}$${r}$${p}$${salt}$AAAA`, // key too short
      `scrypt$${n}$${r}$${p}$$${hash}`,
      'scrypt$' + 'A'.repeat(10_000),
      undefined,
      null,
      42,
    ];
    for (const bad of malformed) {
      expect(isPasswordHash(bad as string)).toBe(false);
      await expect(verifyPassword('pw', bad as string)).resolves.toBe(false);
      expect(verifyPasswordSync('pw', bad as string)).toBe(false);
    }
    // Sanity: the pieces above really came from a valid hash.
    expect(verifyPasswordSync('pw', good)).toBe(true);
  });

  it('returns false for a non-string/bytes password instead of throwing', async () => {
    const good = hashPasswordSync('pw', FAST);
    await expect(verifyPassword(undefined as unknown as string, good)).resolves.toBe(false);
    expect(verifyPasswordSync({} as unknown as string, good)).toBe(false);
  });
});

describe('makeDummyHash', () => {
  it('is well-formed, copies the sample parameters, and matches nothing obvious', () => {
    const sample = hashPasswordSync('pw', { N: 2048, r: 4, p: 1, keyBytes: 40 });
    const dummy = makeDummyHash(sample);
    const parsed = parsePasswordHash(dummy);
    expect(parsed).not.toBeNull();
    expect(parsed?.N).toBe(2048);
    expect(parsed?.r).toBe(4);
    expect(parsed?.hash.length).toBe(40);
    expect(verifyPasswordSync('pw', dummy)).toBe(false);
    expect(verifyPasswordSync('', dummy)).toBe(false);
  });

  it('falls back to the default parameters', () => {
    expect(makeDummyHash().startsWith('scrypt$16384$8$1$')).toBe(true);
    expect(makeDummyHash('garbage').startsWith('scrypt$16384$8$1$')).toBe(true);
  });
});
