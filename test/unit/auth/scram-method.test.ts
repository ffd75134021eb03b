/**
 * The SCRAM-SHA-256 method's exchange (src/auth/enhanced/scram-method.ts): start answers
 * the client-first-message with a server-first-message and a continuation; the
 * continuation answers the client-final-message with success (server-final-message) or a
 * failure that never tells an unknown user from a wrong password.
 */
import { describe, expect, it } from 'vitest';
import type { AuthContext, AuthStep } from '../../../src/auth/enhanced/method.js';
import { newScramCredentials, SCRAM_SHA_256 } from '../../../src/auth/enhanced/scram.js';
import { createScramMethod, SCRAM_FAILED } from '../../../src/auth/enhanced/scram-method.js';
import { scramClient } from '../../helpers/scram-client.js';

const ctx: AuthContext = { clientId: 'c1', phase: 'connect' };
const secret = Buffer.alloc(32, 3);
const method = createScramMethod({ credentials: new Map([['alice', newScramCredentials('wonderland')]]), secret });

async function run(user: string, password: string, tamper?: (clientFinal: Buffer) => Buffer): Promise<{ first: AuthStep; last: AuthStep; client: ReturnType<typeof scramClient> }> {
  const client = scramClient(user, password);
  const first = await method.start(client.first(), ctx);
  if (first.kind !== 'continue') return { first, last: first, client };
  let fin = client.final(first.data!);
  if (tamper) fin = tamper(fin);
  return { first, last: await first.next(fin), client };
}

describe('SCRAM-SHA-256 method', () => {
  it('is named SCRAM-SHA-256', () => expect(method.name).toBe(SCRAM_SHA_256));

  it('right password: continue (server-first), then success as the user with a server-final-message the client verifies', async () => {
    const { first, last, client } = await run('alice', 'wonderland');
    expect(first.kind).toBe('continue');
    expect(last).toMatchObject({ kind: 'success', identity: 'alice' });
    expect(client.verifyServer(last.kind === 'success' ? last.data : undefined)).toBe(true);
  });

  it('wrong password and unknown user: the same failure for the client, a different detail in the log', async () => {
    const wrong = (await run('alice', 'nope')).last;
    const unknown = (await run('mallory', 'nope')).last;
    expect(wrong).toMatchObject({ kind: 'failure', reason: SCRAM_FAILED });
    expect(unknown).toMatchObject({ kind: 'failure', reason: SCRAM_FAILED });
    expect(wrong.kind === 'failure' && wrong.detail).toMatch(/wrong proof/);
    expect(unknown.kind === 'failure' && unknown.detail).toMatch(/unknown user/);
  });

  it('an unknown user gets a server-first-message shaped like a real one, with the same salt on every try', async () => {
    const salt = (s: AuthStep) => (s.kind === 'continue' ? /,s=([^,]+),i=(\d+)$/.exec(s.data!.toString())!.slice(1) : []);
    const a1 = salt((await run('mallory', 'x')).first);
    const a2 = salt((await run('mallory', 'y')).first);
    const real = salt((await run('alice', 'x')).first);
    expect(a1).toEqual(a2);
    expect(a1[1]).toBe(real[1]); // same iteration count
    expect(Buffer.from(a1[0]!, 'base64').length).toBe(Buffer.from(real[0]!, 'base64').length);
    expect(salt((await run('trudy', 'x')).first)[0]).not.toBe(a1[0]);
  });

  it('each exchange has its own server nonce', async () => {
    const n = async () => {
      const s = await method.start(scramClient('alice', 'x', { nonce: 'same' }).first(), ctx);
      return s.kind === 'continue' ? s.data!.toString().split(',')[0] : '';
    };
    expect(await n()).not.toBe(await n());
  });

  it('a client-final-message with another nonce, another channel binding, or malformed: failure', async () => {
    const swapNonce = (f: Buffer) => Buffer.from(f.toString().replace(/r=([^,]+)/, 'r=$1x'));
    const swapCb = (f: Buffer) => Buffer.from(f.toString().replace('c=biws', 'c=eSws'));
    for (const t of [swapNonce, swapCb, () => Buffer.from('garbage')]) expect((await run('alice', 'wonderland', t)).last).toMatchObject({ kind: 'failure', reason: SCRAM_FAILED });
  });

  it('a malformed client-first-message or channel binding: failure at once', async () => {
    expect(await method.start(Buffer.from('p=tls-unique,,n=alice,r=x'), ctx)).toMatchObject({ kind: 'failure', detail: 'channel binding is not supported' });
    expect(await method.start(undefined, ctx)).toMatchObject({ kind: 'failure' });
  });
});
