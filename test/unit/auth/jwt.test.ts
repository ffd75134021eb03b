import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { createJwtVerifier, looksLikeJwt, type JwtConfig } from '../../../src/auth/jwt.js';

const SECRET = 'a-long-enough-test-secret-for-hs256-0123456789';
const NONE: JwtConfig = { secret: null, publicKeyFile: null, jwksFile: null, issuer: null, audience: null };

function now(): number {
  return Math.floor(Date.now() / 1000);
}

async function hs(payload: JWTPayload, secret = SECRET, expSecondsFromNow = 600): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(now() + expSecondsFromNow)
    .sign(new TextEncoder().encode(secret));
}

async function rs(payload: JWTPayload, key: CryptoKey, kid?: string): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader(kid === undefined ? { alg: 'RS256' } : { alg: 'RS256', kid })
    .setIssuedAt()
    .setExpirationTime(now() + 600)
    .sign(key);
}

function b64url(obj: unknown): string {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

let dir: string;
let rsa: { publicKey: CryptoKey; privateKey: CryptoKey };
let other: { publicKey: CryptoKey; privateKey: CryptoKey };
let pemFile: string;
let jwksFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-jwt-'));
  rsa = await generateKeyPair('RS256', { extractable: true });
  other = await generateKeyPair('RS256', { extractable: true });
  pemFile = join(dir, 'pub.pem');
  await writeFile(pemFile, await exportSPKI(rsa.publicKey));
  jwksFile = join(dir, 'jwks.json');
  const jwk = await exportJWK(rsa.publicKey);
  await writeFile(jwksFile, JSON.stringify({ keys: [{ ...jwk, kid: 'k1', alg: 'RS256', use: 'sig' }] }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('createJwtVerifier', () => {
  it('returns null when nothing is configured', async () => {
    expect(await createJwtVerifier(NONE)).toBeNull();
  });

  it('accepts a valid HS256 token and maps the claims', async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET }))!;
    const t = await hs({ sub: 'alice', ns: 'acme', groups: ['a', 'b'] });
    expect(await v.verify(t)).toEqual({ uid: 'alice', ns: 'acme', groups: ['a', 'b'] });
  });

  it('ignores malformed optional claims', async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET }))!;
    expect(await v.verify(await hs({ sub: 'alice', ns: 7, groups: ['a', 1] }))).toEqual({ uid: 'alice' });
    expect(await v.verify(await hs({ sub: 'alice', groups: 'admins' }))).toEqual({ uid: 'alice' });
  });

  it('refuses a token signed with another secret', async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET }))!;
    expect(await v.verify(await hs({ sub: 'alice' }, 'some-other-secret-entirely-0123456789'))).toBeNull();
  });

  it('refuses expired tokens beyond the 30 s tolerance, accepts within it', async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET }))!;
    expect(await v.verify(await hs({ sub: 'alice' }, SECRET, -120))).toBeNull();
    expect(await v.verify(await hs({ sub: 'alice' }, SECRET, -10))).toEqual({ uid: 'alice' });
  });

  it('refuses tokens that are not yet valid', async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET }))!;
    const t = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'HS256' })
      .setNotBefore(now() + 300)
      .sign(new TextEncoder().encode(SECRET));
    expect(await v.verify(t)).toBeNull();
  });

  it("refuses alg 'none'", async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET }))!;
    const t = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'alice', exp: now() + 600 })}.`;
    expect(await v.verify(t)).toBeNull();
  });

  it('refuses an HS256 token signed with the RSA public key (algorithm confusion)', async () => {
    const v = (await createJwtVerifier({ ...NONE, publicKeyFile: pemFile }))!;
    const { readFile } = await import('node:fs/promises');
    const pem = await readFile(pemFile, 'utf8');
    expect(await v.verify(await hs({ sub: 'alice' }, pem))).toBeNull();
  });

  it('refuses RS256 when only a secret is configured, and HS256 when only a key is', async () => {
    const hsOnly = (await createJwtVerifier({ ...NONE, secret: SECRET }))!;
    expect(await hsOnly.verify(await rs({ sub: 'alice' }, rsa.privateKey))).toBeNull();
    const rsOnly = (await createJwtVerifier({ ...NONE, publicKeyFile: pemFile }))!;
    expect(await rsOnly.verify(await hs({ sub: 'alice' }))).toBeNull();
  });

  it('refuses missing, empty or non-string sub', async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET }))!;
    expect(await v.verify(await hs({ name: 'alice' }))).toBeNull();
    expect(await v.verify(await hs({ sub: '' }))).toBeNull();
    // SignJWT refuses a numeric sub, so this one is signed by hand.
    const { createHmac } = await import('node:crypto');
    const input = `${b64url({ alg: 'HS256' })}.${b64url({ sub: 42, exp: now() + 600 })}`;
    const sig = createHmac('sha256', SECRET).update(input).digest('base64url');
    expect(await v.verify(`${input}.${sig}`)).toBeNull();
  });

  it('refuses garbage', async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET }))!;
    for (const t of ['', 'abc', 'a.b.c', 'eyJ.eyJ.x', `${b64url({ alg: 'HS256' })}.notjson.sig`]) {
      expect(await v.verify(t)).toBeNull();
    }
  });

  it('checks issuer and audience when configured', async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET, issuer: 'https://idp', audience: 'switchboard' }))!;
    expect(await v.verify(await hs({ sub: 'a', iss: 'https://idp', aud: 'switchboard' }))).toEqual({ uid: 'a' });
    expect(await v.verify(await hs({ sub: 'a', iss: 'https://idp', aud: ['x', 'switchboard'] }))).toEqual({ uid: 'a' });
    expect(await v.verify(await hs({ sub: 'a', iss: 'https://evil', aud: 'switchboard' }))).toBeNull();
    expect(await v.verify(await hs({ sub: 'a', iss: 'https://idp', aud: 'other' }))).toBeNull();
    expect(await v.verify(await hs({ sub: 'a' }))).toBeNull();
  });

  it('verifies RS256 with a PEM SPKI public key', async () => {
    const v = (await createJwtVerifier({ ...NONE, publicKeyFile: pemFile }))!;
    expect(await v.verify(await rs({ sub: 'bob' }, rsa.privateKey))).toEqual({ uid: 'bob' });
    expect(await v.verify(await rs({ sub: 'bob' }, other.privateKey))).toBeNull();
  });

  it('verifies RS256 with a JWKS file', async () => {
    const v = (await createJwtVerifier({ ...NONE, jwksFile }))!;
    expect(await v.verify(await rs({ sub: 'carol' }, rsa.privateKey, 'k1'))).toEqual({ uid: 'carol' });
    expect(await v.verify(await rs({ sub: 'carol' }, rsa.privateKey))).toEqual({ uid: 'carol' });
    expect(await v.verify(await rs({ sub: 'carol' }, other.privateKey, 'k1'))).toBeNull();
    expect(await v.verify(await rs({ sub: 'carol' }, rsa.privateKey, 'unknown'))).toBeNull();
  });

  it('accepts both algorithms when a secret and a key are configured', async () => {
    const v = (await createJwtVerifier({ ...NONE, secret: SECRET, publicKeyFile: pemFile, jwksFile }))!;
    expect(await v.verify(await hs({ sub: 'a' }))).toEqual({ uid: 'a' });
    expect(await v.verify(await rs({ sub: 'b' }, rsa.privateKey))).toEqual({ uid: 'b' });
  });

  it('fails at start, naming the file, when a key file is missing or invalid', async () => {
    const missing = join(dir, 'nope.pem');
    await expect(createJwtVerifier({ ...NONE, publicKeyFile: missing })).rejects.toThrow(missing);
    const badPem = join(dir, 'bad.pem');
    await writeFile(badPem, 'not a key');
    await expect(createJwtVerifier({ ...NONE, publicKeyFile: badPem })).rejects.toThrow(badPem);
    const badJson = join(dir, 'bad.json');
    await writeFile(badJson, '{');
    await expect(createJwtVerifier({ ...NONE, jwksFile: badJson })).rejects.toThrow(/bad\.json.*JSON/);
    const noKeys = join(dir, 'nokeys.json');
    await writeFile(noKeys, '{"keys":[]}');
    await expect(createJwtVerifier({ ...NONE, jwksFile: noKeys })).rejects.toThrow(noKeys);
    const badKey = join(dir, 'badkey.json');
    await writeFile(badKey, '{"keys":[{"kty":"RSA","n":"AQAB"}]}');
    await expect(createJwtVerifier({ ...NONE, jwksFile: badKey })).rejects.toThrow(badKey);
    await expect(createJwtVerifier({ ...NONE, secret: '' })).rejects.toThrow(/empty/);
  });
});

describe('looksLikeJwt', () => {
  it('recognises the shape of a compact JWS', async () => {
    expect(looksLikeJwt(await hs({ sub: 'a' }))).toBe(true);
    expect(looksLikeJwt('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln')).toBe(true);
  });

  it('rejects ordinary passwords and near misses', () => {
    for (const s of ['', 'hunter2', 'eyJ', 'eyJa.b', 'eyJa.b.c.d', 'abc.def.ghi', 'eyJa.b+c.d', 'eyJa..d', 'eyJa.b.c ']) {
      expect(looksLikeJwt(s)).toBe(false);
    }
  });
});
