/**
 * identify.certificate: a username vouched for by a verified TLS client certificate
 * (tls.clientCertUsername) is accepted without a password or a users-file entry; its uid
 * is the username when that can name an inbox (one topic level).
 */
import { describe, expect, it, vi } from 'vitest';
import type { Authenticator } from '../../../src/auth/authenticator.js';
import { createIdentify } from '../../../src/auth/identify.js';

describe('identify.certificate', () => {
  it('accepts the CN without asking the users file; uid only for a topic-level id', async () => {
    const authenticate = vi.fn(async () => 'bad_credentials' as const);
    const identify = createIdentify({ authenticate } as Authenticator, null);
    expect(await identify.certificate('alice')).toEqual({ result: 'ok', uid: 'alice' });
    // "a/b" cannot name an inbox: logged in, without an IM identity (like a JWT subject).
    expect(await identify.certificate('a/b')).toEqual({ result: 'ok' });
    expect(authenticate).not.toHaveBeenCalled();
    // The password path is unchanged.
    expect(await identify.mqtt('alice', undefined)).toEqual({ result: 'bad_credentials' });
  });
});
