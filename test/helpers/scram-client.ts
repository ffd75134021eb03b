/**
 * A SCRAM-SHA-256 client (RFC 5802, RFC 7677) for the tests, written from the RFCs and
 * independent of the server's src/auth/enhanced/scram.ts, so that the two check each
 * other. ASCII passwords only (no SASLprep).
 *
 *   const s = scramClient('alice', 'secret');
 *   CONNECT authenticationData = s.first()
 *   AUTH 0x18 from the server  -> authenticationData = s.final(serverFirst)
 *   CONNACK / AUTH 0x00        -> s.verifyServer(serverFinal) is true
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export interface ScramClient {
  /** client-first-message: gs2 header "n,," (no channel binding), n=, r=. */
  first(): Buffer;
  /** client-final-message for the server-first-message; throws when the server's nonce does not extend ours. */
  final(serverFirst: Buffer | string): Buffer;
  /** The server-final-message proves the server knew the ServerKey. */
  verifyServer(serverFinal: Buffer | string | undefined): boolean;
}

const hmac = (key: Buffer, s: string) => createHmac('sha256', key).update(s).digest();

export function scramClient(username: string, password: string, o: { nonce?: string; gs2?: string } = {}): ScramClient {
  const gs2 = o.gs2 ?? 'n,,';
  const nonce = o.nonce ?? randomBytes(18).toString('base64');
  const bare = `n=${username.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${nonce}`;
  let expectedServerSignature: Buffer | undefined;
  return {
    first: () => Buffer.from(gs2 + bare),
    final(serverFirst) {
      const sf = serverFirst.toString();
      const attrs = Object.fromEntries(sf.split(',').map((kv) => [kv.slice(0, 1), kv.slice(2)]));
      if (!attrs.r?.startsWith(nonce) || attrs.r === nonce) throw new Error(`server nonce does not extend ours: ${sf}`);
      const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), 32, 'sha256');
      const clientKey = hmac(salted, 'Client Key');
      const storedKey = createHash('sha256').update(clientKey).digest();
      const withoutProof = `c=${Buffer.from(gs2).toString('base64')},r=${attrs.r}`;
      const authMessage = `${bare},${sf},${withoutProof}`;
      const signature = hmac(storedKey, authMessage);
      const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
      expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
    },
    verifyServer(serverFinal) {
      if (!serverFinal || !expectedServerSignature) return false;
      const text = serverFinal.toString();
      if (!text.startsWith('v=')) return false;
      const got = Buffer.from(text.slice(2), 'base64');
      return got.length === expectedServerSignature.length && timingSafeEqual(got, expectedServerSignature);
    },
  };
}
