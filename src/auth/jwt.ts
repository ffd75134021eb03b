// JWT bearer tokens as an alternative to users-file passwords (MQTT password field,
// HTTP `Authorization: Bearer`).
//
// Decisions:
// - The algorithm is chosen by the server's configuration, never by the token: HS256
//   only when a secret is configured, RS256 only when a public key or JWKS is. A token
//   whose header names anything else (including 'none', or HS256 against an RSA key,
//   the classic key-confusion attack) is refused before any key is used.
// - Key files are read once, at start, so a broken file stops the broker with a message
//   naming the file instead of failing every login later.
// - verify() never throws for a bad token: every failure is simply "not authenticated",
//   since the caller cannot do anything more useful with the reason than the client can.
// - Optional claims that are malformed (`ns` not a string, `groups` not a string array)
//   are dropped rather than refusing the token: they only ever narrow or label access,
//   and an issuer bug there should not lock users out of their own identity.
import { readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  importJWK,
  importSPKI,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';

export interface JwtConfig {
  secret: string | null;
  publicKeyFile: string | null;
  jwksFile: string | null;
  issuer: string | null;
  audience: string | null;
}

export interface JwtIdentity {
  uid: string;
  ns?: string;
  groups?: string[];
}

export interface JwtVerifier {
  /** null = invalid (bad signature, wrong algorithm, expired, not yet valid, wrong iss/aud, missing or non-string sub, malformed). */
  verify(token: string): Promise<JwtIdentity | null>;
}

/** Accepts clocks that drift a little between the issuer and this server. */
const CLOCK_TOLERANCE_S = 30;

type RsaKey = Awaited<ReturnType<typeof importSPKI>>;

async function readKeyFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read JWT ${what} file ${file}: ${(err as Error).message}`);
  }
}

async function loadPem(file: string): Promise<RsaKey> {
  const pem = await readKeyFile(file, 'public key');
  try {
    return await importSPKI(pem.trim(), 'RS256');
  } catch (err) {
    throw new Error(`JWT public key file ${file} is not a PEM SPKI RSA public key: ${(err as Error).message}`);
  }
}

async function loadJwks(file: string): Promise<JWTVerifyGetKey> {
  const text = await readKeyFile(file, 'JWKS');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`JWT JWKS file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error(`JWT JWKS file ${file} has no "keys" array`);
  // createLocalJWKSet imports keys lazily, on the first token that selects them; import
  // every RSA key now so a typo in the file surfaces at start rather than as "invalid
  // token" for everyone.
  let rsa = 0;
  for (const [i, k] of keys.entries()) {
    if (typeof k !== 'object' || k === null || (k as { kty?: unknown }).kty !== 'RSA') continue;
    try {
      await importJWK({ ...(k as object), alg: 'RS256' }, 'RS256');
    } catch (err) {
      throw new Error(`JWT JWKS file ${file}: key ${i} is not a usable RS256 public key: ${(err as Error).message}`);
    }
    rsa++;
  }
  if (rsa === 0) throw new Error(`JWT JWKS file ${file} contains no RSA key`);
  try {
    return createLocalJWKSet(parsed as JSONWebKeySet);
  } catch (err) {
    throw new Error(`JWT JWKS file ${file} is not a valid JWKS: ${(err as Error).message}`);
  }
}

function identityFrom(payload: JWTPayload): JwtIdentity | null {
  const { sub } = payload;
  if (typeof sub !== 'string' || sub === '') return null;
  const id: JwtIdentity = { uid: sub };
  if (typeof payload.ns === 'string') id.ns = payload.ns;
  const groups = payload.groups;
  if (Array.isArray(groups) && groups.every((g) => typeof g === 'string')) id.groups = [...groups];
  return id;
}

export async function createJwtVerifier(cfg: JwtConfig): Promise<JwtVerifier | null> {
  if (cfg.secret === null && cfg.publicKeyFile === null && cfg.jwksFile === null) return null;
  // An empty HMAC key would make every token trivially forgeable.
  if (cfg.secret === '') throw new Error('JWT secret must not be empty');
  const secret = cfg.secret === null ? null : new TextEncoder().encode(cfg.secret);
  const pem = cfg.publicKeyFile === null ? null : await loadPem(cfg.publicKeyFile);
  const jwks = cfg.jwksFile === null ? null : await loadJwks(cfg.jwksFile);

  const base: JWTVerifyOptions = { clockTolerance: CLOCK_TOLERANCE_S };
  if (cfg.issuer !== null) base.issuer = cfg.issuer;
  if (cfg.audience !== null) base.audience = cfg.audience;
  const hsOpts: JWTVerifyOptions = { ...base, algorithms: ['HS256'] };
  const rsOpts: JWTVerifyOptions = { ...base, algorithms: ['RS256'] };

  async function attempt(run: () => Promise<{ payload: JWTPayload }>): Promise<JwtIdentity | null> {
    try {
      return identityFrom((await run()).payload);
    } catch {
      return null;
    }
  }

  return {
    async verify(token: string): Promise<JwtIdentity | null> {
      let alg: unknown;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        return null;
      }
      if (alg === 'HS256' && secret !== null) return attempt(() => jwtVerify(token, secret, hsOpts));
      if (alg === 'RS256') {
        // With both a JWKS and a single key configured, either may have signed the token
        // (e.g. during a key rotation); the JWKS is tried first as it is the usual source.
        if (jwks !== null) {
          const id = await attempt(() => jwtVerify(token, jwks, rsOpts));
          if (id !== null) return id;
        }
        if (pem !== null) return attempt(() => jwtVerify(token, pem, rsOpts));
      }
      return null;
    },
  };
}

const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Cheap shape test: three base64url segments separated by dots, the first starting with 'eyJ'. */
export function looksLikeJwt(s: string): boolean {
  return JWT_SHAPE.test(s);
}
