/**
 * The registry of enhanced-authentication methods (src/auth/enhanced/registry.ts): the
 * built-in SCRAM-SHA-256, plug-in modules named in auth.enhanced.methods (the fixture
 * test/fixtures/auth-method-challenge.mjs), their config entries, and the fake-salt secret.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuthMethodError, createAuthMethods, loadAuthMethod, parseAuthMethodConfig, scramSecret } from '../../../src/auth/enhanced/registry.js';
import type { AuthContext, AuthStep } from '../../../src/auth/enhanced/method.js';
import { SCRAM_SHA_256 } from '../../../src/auth/enhanced/scram.js';

const FIXTURE = './test/fixtures/auth-method-challenge.mjs';
const log = { info: () => {}, warn: () => {}, error: () => {} };
const ctx: AuthContext = { clientId: 'c', phase: 'connect' };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-registry-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('plug-in methods', () => {
  it('a module path relative to the working directory, or absolute, loads with its configured name and options', async () => {
    for (const module of [FIXTURE, resolve(FIXTURE)]) {
      const m = await loadAuthMethod({ name: 'X-CHALLENGE', module, options: { tokens: { bob: 't0ken' } } }, log);
      expect(m.name).toBe('X-CHALLENGE');
      const first = (await m.start(Buffer.from('bob'), ctx)) as Extract<AuthStep, { kind: 'continue' }>;
      expect(first.kind).toBe('continue');
      const answer = createHash('sha256').update(`t0ken:${first.data!.toString()}`).digest('hex');
      expect(await first.next(Buffer.from(answer))).toMatchObject({ kind: 'success', identity: 'bob' });
      const again = (await m.start(Buffer.from('bob'), ctx)) as Extract<AuthStep, { kind: 'continue' }>;
      expect(await again.next(Buffer.from('nope'))).toMatchObject({ kind: 'failure' });
    }
  });

  it('a module that cannot be imported, or exports no factory: AuthMethodError naming it', async () => {
    await expect(loadAuthMethod({ name: 'A', module: './no/such/module.mjs' }, log)).rejects.toThrow(/cannot import module "\.\/no\/such\/module\.mjs"/);
    const empty = join(dir, 'empty.mjs');
    await writeFile(empty, 'export const x = 1;\n');
    await expect(loadAuthMethod({ name: 'A', module: empty }, log)).rejects.toBeInstanceOf(AuthMethodError);
    const noStart = join(dir, 'nostart.mjs');
    await writeFile(noStart, 'export default () => ({});\n');
    await expect(loadAuthMethod({ name: 'A', module: noStart }, log)).rejects.toThrow(/no object with start/);
  });

  it('a named export createAuthMethod is used too', async () => {
    const named = join(dir, 'named.mjs');
    await writeFile(named, "export function createAuthMethod(o) { return { start: () => ({ kind: 'success', identity: o.who }) }; }\n");
    const m = await loadAuthMethod({ name: 'N', module: named, options: { who: 'zed' } }, log);
    expect(await m.start(undefined, ctx)).toEqual({ kind: 'success', identity: 'zed' });
  });
});

describe('createAuthMethods', () => {
  it('SCRAM-SHA-256 with a users file, plus the plug-ins; none without either', async () => {
    const methods = await createAuthMethods({ scram: { credentials: new Map(), dataDir: dir }, methods: [{ name: 'X-CHALLENGE', module: FIXTURE }], log });
    expect([...methods.keys()]).toEqual([SCRAM_SHA_256, 'X-CHALLENGE']);
    expect((await createAuthMethods({ scram: null, methods: [], log })).size).toBe(0);
  });

  it('a plug-in named like the built-in one is refused while SCRAM is on', async () => {
    await expect(createAuthMethods({ scram: { credentials: new Map(), dataDir: dir }, methods: [{ name: SCRAM_SHA_256, module: FIXTURE }], log })).rejects.toThrow(/auth\.enhanced\.scram/);
    expect((await createAuthMethods({ scram: null, methods: [{ name: SCRAM_SHA_256, module: FIXTURE }], log })).has(SCRAM_SHA_256)).toBe(true);
  });
});

describe('parseAuthMethodConfig (auth.enhanced.methods entries)', () => {
  it('name, module and options', () => {
    expect(parseAuthMethodConfig({ name: 'X', module: './m.mjs' })).toEqual({ name: 'X', module: './m.mjs' });
    expect(parseAuthMethodConfig({ name: 'X', module: 'pkg', options: { a: 1 } })).toEqual({ name: 'X', module: 'pkg', options: { a: 1 } });
  });
  it('refuses a missing or spaced name, a missing module, options that are no mapping, unknown keys', () => {
    for (const v of [{ module: 'm' }, { name: 'a b', module: 'm' }, { name: 'X' }, { name: 'X', module: 'm', options: [1] }, { name: 'X', module: 'm', extra: 1 }, 'X'])
      expect(() => parseAuthMethodConfig(v), JSON.stringify(v)).toThrow();
  });
});

describe('scramSecret (the fake salts\' secret)', () => {
  it('made once in dataDir (mode 0600), the same for every caller, also when they race', async () => {
    const sub = join(dir, 'data');
    const all = await Promise.all(Array.from({ length: 8 }, () => scramSecret(sub)));
    for (const s of all) expect(s.equals(all[0]!)).toBe(true);
    expect(all[0]!.length).toBe(32);
    expect((await stat(join(sub, 'scram-secret'))).mode & 0o777).toBe(0o600);
    expect((await scramSecret(sub)).equals(await readFile(join(sub, 'scram-secret')))).toBe(true);
  });
  it('a truncated secret file is an error, not a weaker secret', async () => {
    await writeFile(join(dir, 'scram-secret'), 'short');
    await expect(scramSecret(dir)).rejects.toThrow(/at least 32 bytes/);
  });
});
