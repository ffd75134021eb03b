/**
 * SCRAM-SHA-256 primitives (src/auth/enhanced/scram.ts): the RFC 7677 test vector, the
 * client messages' grammar (RFC 5802 section 7), the stored-credentials format, and the
 * fake credentials of unknown users. Checked against an independent client
 * (test/helpers/scram-client.ts) too.
 */
import { describe, expect, it } from 'vitest';
import {
  authMessage,
  decodeSaslName,
  deriveScramCredentials,
  encodeSaslName,
  encodeScramCredentials,
  fakeScramCredentials,
  isScramError,
  MAX_SCRAM_MESSAGE,
  newScramCredentials,
  parseClientFinal,
  parseClientFirst,
  parseScramCredentials,
  serverFinalMessage,
  serverFirstMessage,
  verifyClientProof,
  type ClientFinal,
  type ClientFirst,
} from '../../../src/auth/enhanced/scram.js';
import { scramClient } from '../../helpers/scram-client.js';

const b = (s: string) => Buffer.from(s, 'utf8');
const ok = <T>(x: T | { error: string }): T => {
  if (isScramError(x)) throw new Error(x.error);
  return x;
};

describe('RFC 7677 section 3 test vector (user "user", password "pencil")', () => {
  const C1 = 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO';
  const SNONCE = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
  const S1 = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
  const C2 = 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
  const S2 = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';
  const creds = deriveScramCredentials('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);

  it('server-first-message, proof check and server-final-message are the RFC\'s', () => {
    const cf = ok(parseClientFirst(b(C1)));
    expect(cf).toMatchObject({ gs2Header: 'n,,', username: 'user', nonce: 'rOprNGfwEbeRWgbNEkqO', bare: 'n=user,r=rOprNGfwEbeRWgbNEkqO' });
    expect(serverFirstMessage(cf, SNONCE, creds)).toBe(S1);
    const fin = ok(parseClientFinal(b(C2)));
    const msg = authMessage(cf, S1, fin);
    expect(verifyClientProof(creds, msg, fin.proof)).toBe(true);
    expect(serverFinalMessage(creds, msg)).toBe(S2);
  });

  it('a proof with one bit changed does not verify', () => {
    const cf = ok(parseClientFirst(b(C1)));
    const fin = ok(parseClientFinal(b(C2)));
    fin.proof[5]! ^= 1;
    expect(verifyClientProof(creds, authMessage(cf, S1, fin), fin.proof)).toBe(false);
  });

  it('the independent test client computes the same client-final-message and accepts the server-final-message', () => {
    const client = scramClient('user', 'pencil', { nonce: 'rOprNGfwEbeRWgbNEkqO' });
    expect(client.first().toString()).toBe(C1);
    expect(client.final(S1).toString()).toBe(C2);
    expect(client.verifyServer(S2)).toBe(true);
    expect(client.verifyServer('v=AAAA')).toBe(false);
  });
});

describe('client-first-message (RFC 5802 section 7)', () => {
  it('gs2 flag "y" (client supports channel binding, thinks the server does not) is accepted', () => {
    expect(ok(parseClientFirst(b('y,,n=alice,r=abc'))).gs2Header).toBe('y,,');
  });
  it('channel binding ("p=") is refused: not supported', () => {
    expect(parseClientFirst(b('p=tls-unique,,n=alice,r=abc'))).toEqual({ error: 'channel binding is not supported' });
  });
  it('an authorization identity is accepted only when it is the username', () => {
    expect(ok(parseClientFirst(b('n,a=alice,n=alice,r=abc'))).username).toBe('alice');
    expect(isScramError(parseClientFirst(b('n,a=bob,n=alice,r=abc')))).toBe(true);
  });
  it('saslname escapes: =2C is ",", =3D is "="; any other "=" is malformed', () => {
    expect(ok(parseClientFirst(b('n,,n=a=2Cb=3Dc,r=x'))).username).toBe('a,b=c');
    expect(decodeSaslName('a=41')).toBeNull();
    expect(decodeSaslName(encodeSaslName('x,=y'))).toBe('x,=y');
  });
  it('mandatory extensions, a missing nonce, a nonce with a comma or spaces, an empty username: refused', () => {
    for (const m of ['n,,m=ext,n=a,r=x', 'n,,n=a', 'n,,n=a,r=', 'n,,n=a,r=a b', 'n,,n=,r=x', 'n,n=a,r=x', 'x,,n=a,r=x', ''])
      expect(isScramError(parseClientFirst(b(m))), m).toBe(true);
  });
  it('extensions after the nonce are ignored', () => {
    expect(ok(parseClientFirst(b('n,,n=a,r=x,t=ext'))).nonce).toBe('x');
  });
  it(`bounded: a message longer than ${MAX_SCRAM_MESSAGE} bytes, invalid UTF-8 or a NUL is refused`, () => {
    expect(isScramError(parseClientFirst(b(`n,,n=a,r=${'x'.repeat(MAX_SCRAM_MESSAGE)}`)))).toBe(true);
    expect(isScramError(parseClientFirst(Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0x2c, 0x72, 0x3d, 0x78])))).toBe(true);
    expect(isScramError(parseClientFirst(b('n,,n=a\u0000,r=x')))).toBe(true);
    expect(isScramError(parseClientFirst(undefined))).toBe(true);
  });
});

describe('client-final-message', () => {
  it('needs c=, r= and a 32-byte proof, in that order', () => {
    const p = Buffer.alloc(32, 1).toString('base64');
    expect(ok(parseClientFinal(b(`c=biws,r=n1,p=${p}`))).nonce).toBe('n1');
    expect(ok(parseClientFinal(b(`c=biws,r=n1,x=ext,p=${p}`))).withoutProof).toBe('c=biws,r=n1,x=ext');
    for (const m of [`r=n1,c=biws,p=${p}`, 'c=biws,r=n1', `c=biws,r=n1,p=${Buffer.alloc(31).toString('base64')}`, 'c=biws,r=n1,p=!!!'])
      expect(isScramError(parseClientFinal(b(m))), m).toBe(true);
  });
});

describe('stored credentials (users-file field)', () => {
  it('round trip, and the keys are what a client derives from the password', () => {
    const c = newScramCredentials('s3cret');
    const back = parseScramCredentials(encodeScramCredentials(c))!;
    expect(back).toEqual(c);
    expect(encodeScramCredentials(c)).toMatch(/^scram-sha-256\$4096\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    const client = scramClient('u', 's3cret', { nonce: 'cn' });
    const cf = ok(parseClientFirst(client.first()));
    const sf = serverFirstMessage(cf, 'sn', back);
    const fin = ok(parseClientFinal(client.final(sf)));
    const msg = authMessage(cf, sf, fin);
    expect(verifyClientProof(back, msg, fin.proof)).toBe(true);
    expect(client.verifyServer(serverFinalMessage(back, msg))).toBe(true);
  });
  it('malformed fields and iteration counts below 4096 (RFC 7677 section 4) are refused', () => {
    const good = encodeScramCredentials(newScramCredentials('x'));
    expect(parseScramCredentials(good.replace('$4096$', '$4095$'))).toBeNull();
    expect(parseScramCredentials(good.replace('scram-sha-256', 'scram-sha-1'))).toBeNull();
    expect(parseScramCredentials(`${good}$x`)).toBeNull();
    expect(parseScramCredentials(good.slice(0, -4))).toBeNull();
  });
});

describe('fake credentials of unknown users', () => {
  const secret = Buffer.alloc(32, 7);
  it('the same for the same name and secret (a retry shows the same salt), different for another name or secret', () => {
    const a = fakeScramCredentials(secret, 'mallory', 4096, 16);
    expect(fakeScramCredentials(secret, 'mallory', 4096, 16)).toEqual(a);
    expect(fakeScramCredentials(secret, 'trent', 4096, 16).salt.equals(a.salt)).toBe(false);
    expect(fakeScramCredentials(Buffer.alloc(32, 8), 'mallory', 4096, 16).salt.equals(a.salt)).toBe(false);
    expect(a.salt.length).toBe(16);
    expect(a.iterations).toBe(4096);
  });
  it('no proof made with a password verifies against them', () => {
    const fake = fakeScramCredentials(secret, 'mallory', 4096, 16);
    const client = scramClient('mallory', 'guess', { nonce: 'cn' });
    const cf: ClientFirst = ok(parseClientFirst(client.first()));
    const sf = serverFirstMessage(cf, 'sn', fake);
    const fin: ClientFinal = ok(parseClientFinal(client.final(sf)));
    expect(verifyClientProof(fake, authMessage(cf, sf, fin), fin.proof)).toBe(false);
  });
});
