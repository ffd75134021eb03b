/**
 * Helpers for the IM integration tests (test/integration/20-im-*): IM topics of the test
 * namespace, payloads built with the client codec, the admin API over HTTP, JWTs, and
 * polling with a deadline for state that changes asynchronously (metrics, sessions).
 */
import { SignJWT } from 'jose';
import { encodeImPayload, decodeImPayload, type ImMessage, type ImContentItem } from '../../src/im/index.js';
import type { TestBroker } from './broker.js';
import type { Received } from './clients.js';

/** The namespace every IM test broker uses (im.defaultNamespace). */
export const NS = 'acme';
export const ADMIN_TOKEN = 'secret-token';
export const JWT_SECRET = 'a-test-secret-of-reasonable-length-0123456789';

export const inboxOf = (user: string, ns = NS): string => `/${ns}/im/u/${user}`;
export const groupOf = (gid: string, ns = NS): string => `/${ns}/im/g/${gid}`;
export const presenceOf = (user: string, ns = NS): string => `/${ns}/im/p/${user}`;

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

/** Reads a /metrics series until it equals `want` (metrics of other threads arrive a little later). */
export async function metricReaches(read: () => Promise<number>, want: number, what: string, ms = 5000): Promise<void> {
  let got = NaN;
  await eventually(async () => (got = await read()) === want, ms, `${what} == ${want} (got ${got})`).catch(async () => {
    throw new Error(`${what}: expected ${want}, got ${await read()}`);
  });
}
