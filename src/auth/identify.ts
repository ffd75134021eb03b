/**
 * Who is connecting: one place that turns credentials into an identity for MQTT CONNECT
 * and for HTTP (files). A password that looks like a JWT is checked as a bearer token
 * when JWT keys are configured (its `sub` is the uid); anything else goes to the users
 * file. The uid of a username/password login is the username.
 */
import type { Authenticator, AuthResult } from './authenticator.js';
import { looksLikeJwt, type JwtVerifier } from './jwt.js';
import { parseAuthorization } from '../transport/http-util.js';
import { isTopicLevelId } from '../im/topics.js';

export interface Identity {
  result: AuthResult;
  /** The user's id, when it can name an inbox (one topic level). */
  uid?: string;
  /** Hints from a token; the directory has the last word. */
  ns?: string;
  groups?: string[];
}

export interface Identify {
  mqtt(username: string | undefined, password: Buffer | undefined): Promise<Identity>;
  /**
   * A username the TLS layer vouches for: the subject CN of a client certificate that
   * verified against tls.caFile (tls.clientCertUsername). Accepted without a password,
   * like a users-file login of that user; the ACL and the IM layer then apply as usual.
   */
  certificate(username: string): Promise<Identity>;
  /** HTTP: `Authorization: Basic|Bearer`, or an `access_token` query parameter (for tags that cannot send headers). */
  http(authorization: string | undefined, accessToken: string | undefined): Promise<{ uid: string } | null>;
}

export function createIdentify(auth: Authenticator, jwt: JwtVerifier | null): Identify {
  const byToken = async (token: string, username?: string): Promise<Identity> => {
    const id = await jwt!.verify(token);
    // A username, if given, must be the token's subject: one connection, one identity.
    if (!id || (username !== undefined && username !== '' && username !== id.uid)) return { result: 'bad_credentials' };
    // A subject that cannot name an inbox (one topic level) logs in without an IM identity.
    if (!isTopicLevelId(id.uid)) return { result: 'ok' };
    return { result: 'ok', uid: id.uid, ns: id.ns, groups: id.groups };
  };
  const mqtt = async (username: string | undefined, password: Buffer | undefined): Promise<Identity> => {
    if (jwt && password !== undefined && password.length < 16384) {
      const text = password.toString('utf8');
      if (looksLikeJwt(text)) return byToken(text, username);
    }
    const result = await auth.authenticate(username, password);
    if (result !== 'ok' || username === undefined || !isTopicLevelId(username)) return { result };
    return { result, uid: username };
  };
  return {
    mqtt,
    async certificate(username) {
      return isTopicLevelId(username) ? { result: 'ok', uid: username } : { result: 'ok' };
    },
    async http(authorization, accessToken) {
      const cred = parseAuthorization(authorization);
      let id: Identity | undefined;
      if (cred?.kind === 'basic') id = await mqtt(cred.username, Buffer.from(cred.password, 'utf8'));
      else if (cred?.kind === 'bearer' && jwt) id = await byToken(cred.token);
      else if (!cred && accessToken !== undefined && jwt) id = await byToken(accessToken);
      return id?.result === 'ok' && id.uid !== undefined ? { uid: id.uid } : null;
    },
  };
}
