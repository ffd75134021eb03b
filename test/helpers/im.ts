/**
 * Helpers for the IM integration tests (test/integration/20-im-*): IM topics of the test
 * namespace, payloads built with the client codec, the admin API over HTTP, JWTs, and
 * polling with a deadline for state that changes asynchronously (metrics, sessions).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { SignJWT } from 'jose';
import { encodeImPayload, decodeImPayload, type ImMessage, type ImContentItem } from '../../src/im/index.js';
import { addUser } from '../../src/auth/users-file.js';
import type { DeepPartial } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startTestBroker, type TestBroker, type TopologyName } from './broker.js';
import type { Received } from './clients.js';

/** The namespace every IM test broker uses (im.defaultNamespace). */
export const NS = 'acme';
export const ADMIN_TOKEN = 'secret-token';
export const JWT_SECRET = 'a-test-secret-of-reasonable-length-0123456789';

export const inboxOf = (user: string, ns = NS): string => `/${ns}/im/u/${user}`;
export const groupOf = (gid: string, ns = NS): string => `/${ns}/im/g/${gid}`;
export const presenceOf = (user: string, ns = NS): string => `/${ns}/im/p/${user}`;

/**
 * One broker for the enclosing describe (like sharedBroker), set up for IM tests:
 * namespace NS, the admin API on with ADMIN_TOKEN (unless overridden) and, when `users`
 * is given, a users file with those username -> password pairs (written before start).
 */
export function imBroker(topo: TopologyName, overrides: DeepPartial<Config> = {}, users?: Record<string, string>): { b: TestBroker } {
  const ref = {} as { b: TestBroker };
  let dir: string | undefined;
  beforeAll(async () => {
    let auth = overrides.auth;
    if (users) {
      dir = await mkdtemp(join(tmpdir(), 'switchboard-im-users-'));
      const usersFile = join(dir, 'users');
      for (const [u, p] of Object.entries(users)) await addUser(usersFile, u, p);
      auth = { ...auth, usersFile };
    }
    ref.b = await startTestBroker(topo, {
      admin: { token: ADMIN_TOKEN },
      ...overrides,
      auth,
      im: { defaultNamespace: NS, ...overrides.im },
    });
  });
  afterAll(async () => {
    await ref.b?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return ref;
}

/** A fixed send time (seconds): tests compare it field by field. */
export const TS = 1_700_000_000;

/** An IM payload with the given items (default: one text item). */
export function imPayload(sender: string, items: ImContentItem[] | string, o: { kind?: number; media?: number; ts?: number } = {}): Buffer {
  const con = typeof items === 'string' ? [{ ty: 0, co: items }] : items;
  return encodeImPayload({ sender, ts: o.ts ?? TS, kind: o.kind ?? 0, media: o.media ?? 0, content: { con } });
}

/** Decodes a received MQTT.js message as an IM payload. */
export function decoded(r: Received): ImMessage {
  return decodeImPayload(r.packet.payload as Buffer);
}

/** The text of a received IM message's first item. */
export function textOf(r: Received): string {
  return decoded(r).content.con[0]!.co;
}

/** Reason/return code carried by an MQTT.js error (publish, subscribe, connect). */
export function codeOf(err: unknown): number | undefined {
  return (err as { code?: number } | undefined)?.code;
}

export interface ApiResult<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** One admin API request (`/api/v1` + path); JSON in, JSON out. */
export async function api<T = any>(b: TestBroker, method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN): Promise<ApiResult<T>> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${b.httpUrl}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

/** `/clients/{id}` with the id percent-encoded (client ids like `alice/pc`). */
export const clientPath = (clientId: string): string => `/clients/${encodeURIComponent(clientId)}`;

/** An HS256 token signed with JWT_SECRET (or `secret`). */
export async function signJwt(claims: Record<string, unknown> & { sub?: string }, o: { secret?: string; exp?: string | number } = {}): Promise<string> {
  const { sub, ...rest } = claims;
  let jwt = new SignJWT(rest).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  jwt = jwt.setExpirationTime(o.exp ?? '10m');
  return jwt.sign(new TextEncoder().encode(o.secret ?? JWT_SECRET));
}

/**
 * Polls `probe` until it returns something other than undefined/false, or fails after
 * `ms` with the last value in the message. For state that settles asynchronously.
 */
export async function eventually<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, ms = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    last = v;
    if (Date.now() > deadline) throw new Error(`timeout after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Reads a /metrics series until it equals `want` (counters of other threads are gathered on request). */
export async function metricReaches(read: () => Promise<number>, want: number, what: string, ms = 5000): Promise<void> {
  let got = NaN;
  try {
    await eventually(async () => (got = await read()) === want, ms, what);
  } catch {
    throw new Error(`${what}: expected ${want}, got ${got} after ${ms} ms`);
  }
}

// ---------------------------------------------------------------- child processes

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when the process exited and its output was read. */
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();

/** Spawns a command (no shell), recording its output; killAll() ends whatever is left. */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Child {
  const proc = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  // 'close', not 'exit': only then has all of the output been read.
  const exited = new Promise<number | null>((resolve) =>
    proc.on('close', (code) => {
      children.delete(proc);
      resolve(code);
    }),
  );
  return { proc, stdout: () => out, stderr: () => err, exited };
}

/** Kills every child started by run() that is still running (by its own pid). */
export function killAll(): void {
  for (const p of children) p.kill('SIGKILL');
  children.clear();
}
