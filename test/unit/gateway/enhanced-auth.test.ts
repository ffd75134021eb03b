/**
 * The gateway's runner of enhanced-authentication exchanges (src/gateway/enhanced-auth.ts):
 * it keeps each connection's continuation between steps, waits for promises, turns a
 * method's errors and malformed answers into errors, and drops answers of exchanges that
 * ended meanwhile.
 */
import { describe, expect, it } from 'vitest';
import type { AuthContext, AuthMethod, AuthStep } from '../../../src/auth/enhanced/method.js';
import { EnhancedAuthExchanges } from '../../../src/gateway/enhanced-auth.js';
import type { StepOutcome } from '../../../src/channel/auth.js';

const ctx: AuthContext = { clientId: 'c', phase: 'connect' };
type R = StepOutcome | { error: unknown };

function runner(start: AuthMethod['start']) {
  const ex = new EnhancedAuthExchanges(new Map([['M', { name: 'M', start }]]));
  const step = (conn: object, data: string | undefined, isStart: boolean) =>
    new Promise<R>((resolve) => ex.step(conn, { method: 'M', data: data === undefined ? undefined : Buffer.from(data), start: isStart, ctx }, resolve));
  return { ex, step };
}

describe('EnhancedAuthExchanges', () => {
  it('start, then each client answer to the last continuation (sync and async steps)', async () => {
    const seen: string[] = [];
    const { ex, step } = runner((d) => {
      seen.push(`start:${d}`);
      return {
        kind: 'continue',
        data: Buffer.from('c1'),
        next: async (x) => {
          seen.push(`next:${x}`);
          return { kind: 'continue', next: (y) => (seen.push(`next2:${y}`), { kind: 'success', identity: 'u', data: Buffer.from('fin') }) };
        },
      };
    });
    const conn = {};
    expect(await step(conn, 'a', true)).toEqual({ kind: 'continue', data: Buffer.from('c1') });
    expect(ex.startedAt(conn)).toBeTypeOf('number');
    expect(await step(conn, 'b', false)).toEqual({ kind: 'continue', data: undefined });
    expect(await step(conn, 'c', false)).toEqual({ kind: 'success', identity: 'u', data: Buffer.from('fin') });
    expect(seen).toEqual(['start:a', 'next:b', 'next2:c']);
    expect(ex.startedAt(conn)).toBeUndefined();
  });

  it('two connections keep apart', async () => {
    const { step } = runner((d) => ({ kind: 'continue', next: () => ({ kind: 'success', identity: String(d) }) }));
    const a = {};
    const b = {};
    await step(a, 'alice', true);
    await step(b, 'bob', true);
    expect(await step(a, undefined, false)).toMatchObject({ identity: 'alice' });
    expect(await step(b, undefined, false)).toMatchObject({ identity: 'bob' });
  });

  it('a method that throws, rejects, or answers nonsense (no step, no identity, no next, data over 65535 bytes) is an error', async () => {
    const bad: Array<AuthMethod['start']> = [
      () => {
        throw new Error('boom');
      },
      () => Promise.reject(new Error('down')),
      () => undefined as unknown as AuthStep,
      () => ({ kind: 'success', identity: '' }),
      () => ({ kind: 'continue' }) as unknown as AuthStep,
      () => ({ kind: 'continue', data: Buffer.alloc(65536), next: () => ({ kind: 'failure', reason: 'x' }) }),
    ];
    for (const start of bad) expect(await runner(start).step({}, 'x', true)).toHaveProperty('error');
  });

  it('a failure without a reason gets a generic one', async () => {
    expect(await runner(() => ({ kind: 'failure', reason: '' })).step({}, 'x', true)).toEqual({ kind: 'failure', reason: 'authentication failed', detail: undefined });
  });

  it('an answer to an exchange dropped meanwhile (connection closed, re-authentication timed out) is not delivered', async () => {
    let release!: (s: AuthStep) => void;
    const { ex } = runner(() => new Promise<AuthStep>((r) => (release = r)));
    const conn = {};
    const got: R[] = [];
    ex.step(conn, { method: 'M', start: true, ctx }, (r) => got.push(r));
    ex.drop(conn);
    release({ kind: 'success', identity: 'u' });
    await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual([]);
  });

  it('continuing without a continuation is an error', async () => {
    expect(await runner(() => ({ kind: 'success', identity: 'u' })).step({}, 'x', false)).toHaveProperty('error');
  });
});
