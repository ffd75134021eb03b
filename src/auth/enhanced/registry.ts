/**
 * The enhanced-authentication methods a gateway offers, by name (MQTT 5.0 section 4.12):
 * SCRAM-SHA-256 built in (with a users file and `auth.enhanced.scram`), plus the modules
 * of `auth.enhanced.methods`, imported in every gateway thread (each thread has its own
 * module instance; a method that needs shared state keeps it outside the process).
 * A CONNECT naming any other method is refused with 0x8C [MQTT-4.12.0-1].
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AuthMethod, AuthMethodEnv, AuthMethodFactory, AuthMethods } from './method.js';
import { SCRAM_SHA_256, type ScramCredentials } from './scram.js';
import { createScramMethod } from './scram-method.js';

/** One entry of `auth.enhanced.methods`. */
export interface AuthMethodConfig {
  readonly name: string;
  /** Path of an ES module (relative paths: to the working directory), or a package name. */
  readonly module: string;
  readonly options?: Readonly<Record<string, unknown>>;
}

export class AuthMethodError extends Error {
  readonly code = 'AUTH_METHOD_INVALID' as const;
}

/** An Authentication Method is a UTF-8 string; names are kept printable and short. */
export function methodNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return 'must be a non-empty string';
  if (name.length > 256 || !/^[\x21-\x7e]+$/.test(name)) return 'must be printable ASCII without spaces, at most 256 characters';
  return null;
}

/** Validates one `auth.enhanced.methods` entry (config load.ts); throws an Error saying what is wrong. */
export function parseAuthMethodConfig(value: unknown): AuthMethodConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('must be a mapping { name, module, options? }');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) if (!['name', 'module', 'options'].includes(key)) throw new Error(`has an unknown key "${key}" (name, module, options)`);
  const bad = methodNameProblem(v.name);
  if (bad) throw new Error(`name ${bad}`);
  if (typeof v.module !== 'string' || v.module.trim() === '') throw new Error('module must be a module path or package name');
  if (v.options !== undefined && (v.options === null || typeof v.options !== 'object' || Array.isArray(v.options))) throw new Error('options must be a mapping');
  return { name: v.name as string, module: v.module, ...(v.options !== undefined ? { options: v.options as Record<string, unknown> } : {}) };
}

/** Imports a plug-in module and makes its method; throws AuthMethodError naming the module. */
export async function loadAuthMethod(cfg: AuthMethodConfig, log: AuthMethodEnv['log']): Promise<AuthMethod> {
  const spec = cfg.module.startsWith('.') || isAbsolute(cfg.module) ? pathToFileURL(resolve(cfg.module)).href : cfg.module;
  let mod: { default?: unknown; createAuthMethod?: unknown };
  try {
    mod = (await import(spec)) as typeof mod;
  } catch (err) {
    throw new AuthMethodError(`auth.enhanced.methods: method "${cfg.name}": cannot import module "${cfg.module}": ${(err as Error).message}`);
  }
  const factory = (typeof mod.createAuthMethod === 'function' ? mod.createAuthMethod : mod.default) as AuthMethodFactory | undefined;
  if (typeof factory !== 'function')
    throw new AuthMethodError(`auth.enhanced.methods: module "${cfg.module}" exports no function (default export or createAuthMethod)`);
  const made = await factory(cfg.options ?? {}, { name: cfg.name, log });
  if (typeof made?.start !== 'function') throw new AuthMethodError(`auth.enhanced.methods: the factory of "${cfg.module}" returned no object with start()`);
  return { name: cfg.name, start: made.start.bind(made) };
}

/**
 * The secret behind the fake salts of unknown SCRAM users (scram.ts fakeScramCredentials).
 * It must be the same on every gateway thread and across restarts, or the salt of an
 * unknown name would change where a real user's does not: kept in `{dataDir}/scram-secret`
 * (32 random bytes, mode 0600), made by whichever thread comes first. The file appears
 * whole (written aside, then hard-linked; a link never replaces an existing file).
 */
export async function scramSecret(dataDir: string): Promise<Buffer> {
  const path = join(dataDir, 'scram-secret');
  const read = async () => {
    const b = await readFile(path);
    if (b.length < 32) throw new AuthMethodError(`${path}: expected at least 32 bytes; delete it to make a new one`);
    return b;
  };
  try {
    return await read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, randomBytes(32), { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  return read();
}

export interface RegistryOptions {
  /** Offer SCRAM-SHA-256 (auth.enhanced.scram): only with a users file (`scram` not null). */
  scram: { credentials: ReadonlyMap<string, ScramCredentials>; dataDir: string } | null;
  methods: readonly AuthMethodConfig[];
  log: AuthMethodEnv['log'];
}

export async function createAuthMethods(o: RegistryOptions): Promise<AuthMethods> {
  const out = new Map<string, AuthMethod>();
  if (o.scram) {
    if (o.scram.credentials.size === 0)
      o.log.warn({}, 'SCRAM-SHA-256 is offered but no user of the users file has SCRAM credentials (run `switchboard passwd` for each)');
    out.set(SCRAM_SHA_256, createScramMethod({ credentials: o.scram.credentials, secret: await scramSecret(o.scram.dataDir) }));
  }
  for (const m of o.methods) {
    if (out.has(m.name)) throw new AuthMethodError(`auth.enhanced.methods: "${m.name}" is offered twice${m.name === SCRAM_SHA_256 ? ' (set auth.enhanced.scram to false to replace the built-in one)' : ''}`);
    out.set(m.name, await loadAuthMethod(m, o.log));
  }
  return out;
}
