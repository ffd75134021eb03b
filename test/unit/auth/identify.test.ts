/**
 * createIdentify: credentials -> identity, for MQTT CONNECT and for HTTP (files,
 * IM-PROTOCOL 6: "authenticated with the same credentials as MQTT"). The users file is
 * replaced by a fake Authenticator; JWTs are checked by the real verifier (HS256 with a
 * secret) on tokens signed here with jose.
 */
import { describe, expect, it, vi, beforeAll } from 'vitest';
import { SignJWT, type JWTPayload } from 'jose';
import type { Authenticator, AuthResult } from '../../../src/auth/authenticator.js';
import { createIdentify, type Identify } from '../../../src/auth/identify.js';
import { createJwtVerifier, type JwtVerifier } from '../../../src/auth/jwt.js';

const SECRET = 'identify-test-secret-0123456789-abcdefghij';
const USERS: Record<string, string> = { alice: 'pw-alice', 'a/b': 'pw-ab', '$sys': 'pw-sys', '+': 'pw-plus' };

function fakeAuth(): Authenticator & { authenticate: ReturnType<typeof vi.fn> } {
  return {
    authenticate: vi.fn(async (username: string | undefined, password: Buffer | undefined): Promise<AuthResult> => {
      if (username === undefined) return 'not_authorized'; // no anonymous access
      return USERS[username] !== undefined && password?.toString('utf8') === USERS[username] ? 'ok' : 'bad_credentials';
    }),
  };
}

async function token(payload: JWTPayload, secret = SECRET): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(secret));
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

let jwt: JwtVerifier;

beforeAll(async () => {
  const v = await createJwtVerifier({ secret: SECRET, publicKeyFile: null, jwksFile: null, issuer: null, audience: null });
  if (!v) throw new Error('expected a verifier');
  jwt = v;
});

describe('identify.mqtt: username and password (users file)', () => {
  it('a good login has uid = username and no hints', async () => {
    const auth = fakeAuth();
    const id = await createIdentify(auth, jwt).mqtt('alice', Buffer.from('pw-alice'));
    expect(id).toEqual({ result: 'ok', uid: 'alice' });
    expect(auth.authenticate).toHaveBeenCalledWith('alice', Buffer.from('pw-alice'));
  });

  it('IM-PROTOCOL 2: a username that is not one topic level logs in but names no inbox (no uid)', async () => {
    const identify = createIdentify(fakeAuth(), jwt);
    for (const user of ['a/b', '$sys', '+']) {
      const id = await identify.mqtt(user, Buffer.from(USERS[user]!));
      expect(id, user).toEqual({ result: 'ok' });
    }
  });

  it('failures are passed through, without a uid', async () => {
    const identify = createIdentify(fakeAuth(), jwt);
    expect(await identify.mqtt('alice', Buffer.from('wrong'))).toEqual({ result: 'bad_credentials' });
    expect(await identify.mqtt(undefined, undefined)).toEqual({ result: 'not_authorized' });
  });

  it('without JWT keys a token-shaped password is just a password', async () => {
    const auth = fakeAuth();
    const t = await token({ sub: 'alice' });
    expect(await createIdentify(auth, null).mqtt('alice', Buffer.from(t))).toEqual({ result: 'bad_credentials' });
    expect(auth.authenticate).toHaveBeenCalledTimes(1);
  });
});

describe('identify.mqtt: a JWT as the password', () => {
  it('uid = sub, with the ns and groups claims as hints; the users file is not asked', async () => {
    const auth = fakeAuth();
    const identify = createIdentify(auth, jwt);
    const t = await token({ sub: 'jim', ns: 'acme', groups: ['team', 'ops'] });
    expect(await identify.mqtt(undefined, Buffer.from(t))).toEqual({ result: 'ok', uid: 'jim', ns: 'acme', groups: ['team', 'ops'] });
    expect(await identify.mqtt('', Buffer.from(t))).toMatchObject({ result: 'ok', uid: 'jim' });
    expect(auth.authenticate).not.toHaveBeenCalled();
  });

  it('without hint claims, ns and groups are absent', async () => {
    const id = await createIdentify(fakeAuth(), jwt).mqtt(undefined, Buffer.from(await token({ sub: 'jim' })));
    expect(id.result).toBe('ok');
    expect(id.uid).toBe('jim');
    expect(id.ns).toBeUndefined();
    expect(id.groups).toBeUndefined();
  });

  it('a username equal to the sub is accepted; a different one is bad_credentials (one connection, one identity)', async () => {
    const identify = createIdentify(fakeAuth(), jwt);
    const t = Buffer.from(await token({ sub: 'jim' }));
    expect(await identify.mqtt('jim', t)).toMatchObject({ result: 'ok', uid: 'jim' });
    expect(await identify.mqtt('alice', t)).toEqual({ result: 'bad_credentials' });
  });

  it('an invalid token is bad_credentials and does not fall back to the users file', async () => {
    const auth = fakeAuth();
    const identify = createIdentify(auth, jwt);
    expect(await identify.mqtt(undefined, Buffer.from(await token({ sub: 'jim' }, 'some-other-secret-0123456789')))).toEqual({ result: 'bad_credentials' });
    expect(await identify.mqtt(undefined, Buffer.from(await token({ ns: 'acme' })))).toEqual({ result: 'bad_credentials' }); // no sub
    expect(auth.authenticate).not.toHaveBeenCalled();
  });

  it('a huge token-shaped password is not parsed as a JWT (it goes to the users file)', async () => {
    const auth = fakeAuth();
    const huge = `eyJ${'a'.repeat(20000)}.b.c`;
    expect(await createIdentify(auth, jwt).mqtt('alice', Buffer.from(huge))).toEqual({ result: 'bad_credentials' });
    expect(auth.authenticate).toHaveBeenCalledTimes(1);
  });

  // Identity.uid is documented as "the user's id, when it can name an inbox (one topic
  // level)", and the username path enforces it. The uid is spliced unchecked into topics
  // downstream (topics.ts: "callers hold identifiers that already passed isTopicLevelId
  // (directory, authentication)"; the coordinator publishes presence on
  // presenceTopic(ns, uid)), so a token whose sub is not one level must not yield a uid.
  it('IM-PROTOCOL 2: a sub that is not one topic level names no inbox (no uid)', async () => {
    const identify = createIdentify(fakeAuth(), jwt);
    for (const sub of ['a/b', '+', '#', '$SYS', 'x'.repeat(129)]) {
      const id = await identify.mqtt(undefined, Buffer.from(await token({ sub })));
      expect(id.uid, sub).toBeUndefined();
    }
  });
});

describe('identify.http', () => {
  let identify: Identify;
  let auth: ReturnType<typeof fakeAuth>;
  beforeAll(() => {
    auth = fakeAuth();
    identify = createIdentify(auth, jwt);
  });

  it('Basic: the users file, uid = username', async () => {
    expect(await identify.http(basic('alice', 'pw-alice'), undefined)).toEqual({ uid: 'alice' });
    expect(await identify.http(basic('alice', 'nope'), undefined)).toBeNull();
    // Logs in, but names no inbox: no HTTP identity either.
    expect(await identify.http(basic('a/b', 'pw-ab'), undefined)).toBeNull();
  });

  it('Basic with a JWT as the password, like MQTT', async () => {
    const t = await token({ sub: 'jim' });
    expect(await identify.http(basic('', t), undefined)).toEqual({ uid: 'jim' });
    expect(await identify.http(basic('jim', t), undefined)).toEqual({ uid: 'jim' });
    expect(await identify.http(basic('alice', t), undefined)).toBeNull();
  });

  it('Bearer: the token, uid = sub (scheme case-insensitive)', async () => {
    const t = await token({ sub: 'jim', ns: 'acme' });
    expect(await identify.http(`Bearer ${t}`, undefined)).toEqual({ uid: 'jim' });
    expect(await identify.http(`bearer ${t}`, undefined)).toEqual({ uid: 'jim' });
    expect(await identify.http('Bearer not.a.token', undefined)).toBeNull();
  });

  it('access_token query parameter, for clients that cannot send headers', async () => {
    const t = await token({ sub: 'jim' });
    expect(await identify.http(undefined, t)).toEqual({ uid: 'jim' });
    expect(await identify.http(undefined, 'garbage')).toBeNull();
  });

  it('a valid Authorization header wins over access_token', async () => {
    const jim = await token({ sub: 'jim' });
    expect(await identify.http(basic('alice', 'pw-alice'), jim)).toEqual({ uid: 'alice' });
    // A failed header is a failure: the query token is not tried instead.
    expect(await identify.http(basic('alice', 'nope'), jim)).toBeNull();
  });

  it('no credentials at all -> null', async () => {
    expect(await identify.http(undefined, undefined)).toBeNull();
    expect(await identify.http('', undefined)).toBeNull();
  });

  it('without JWT keys, Bearer and access_token identify nobody', async () => {
    const noJwt = createIdentify(fakeAuth(), null);
    const t = await token({ sub: 'jim' });
    expect(await noJwt.http(`Bearer ${t}`, undefined)).toBeNull();
    expect(await noJwt.http(undefined, t)).toBeNull();
    expect(await noJwt.http(basic('alice', 'pw-alice'), undefined)).toEqual({ uid: 'alice' });
  });

  it('a sub that is not one topic level identifies nobody over HTTP', async () => {
    expect(await identify.http(`Bearer ${await token({ sub: 'a/b' })}`, undefined)).toBeNull();
  });
});
