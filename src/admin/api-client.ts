// Typed client for the broker's admin HTTP API (/api/v1/...). Used by the
// `switchboard admin` CLI, and usable from scripts and tests.
//
// Only the transport is handled here: requests are built, sent with the bearer
// token, and non-2xx answers become AdminApiError. Argument validation that the
// server does anyway (QoS ranges, rule shapes) is left to the server so the two
// cannot drift apart; only what the server cannot see (a path segment that the
// URL parser would rewrite) is checked locally.
//
// Rule and directory shapes are the server's own types (type-only imports plus
// one constant), so a change to them shows up here at compile time.
import type { DirectoryEntry } from '../im/presub.js';
import { RULE_ACTIONS, type RoutingRule, type RuleAction } from '../im/rules.js';
import type { SessionSummary } from '../session/session-view.js';

export { RULE_ACTIONS };
export type { DirectoryEntry, RoutingRule, RuleAction };

export type QoS = 0 | 1 | 2;

/** One entry of GET /api/v1/clients: what the shard reports (src/session/session-view.ts). */
export type ClientSummary = SessionSummary;

export interface SubscriptionInfo {
  filter: string;
  qos: QoS;
}

/** GET /api/v1/clients/{clientId}. */
export interface ClientDetail extends Omit<ClientSummary, 'subscriptions'> {
  subscriptions: SubscriptionInfo[];
}

export interface KickResult {
  /** A live connection was closed (reason 0x98). */
  kicked: boolean;
  /** The session was deleted as well. */
  discarded: boolean;
}

/** Body of PUT /api/v1/directory/{uid}: the uid comes from the path. */
export type DirectoryUpdate = Omit<DirectoryEntry, 'uid'>;

export interface PublishRequest {
  topic: string;
  /** UTF-8 text payload. */
  payload?: string;
  /** Binary payload; use instead of `payload`. */
  payloadBase64?: string;
  qos?: QoS;
  retain?: boolean;
}

export interface AdminClientOptions {
  /** Base URL of the broker's HTTP listener, e.g. http://127.0.0.1:8083 (a path prefix is kept). */
  url: string;
  /** The server's admin.token. */
  token: string;
  /** Injected for tests; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Per-request limit, so a wedged server cannot hang a script forever (default 30 s; 0 = none). */
  timeoutMs?: number;
}

/** The server answered with a non-2xx status (or a 2xx that is not the JSON it promised). */
export class AdminApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = 'AdminApiError';
    this.status = status;
  }
}

/** No HTTP answer at all: connection refused, DNS failure, TLS failure, timeout. */
export class AdminConnectionError extends Error {
  readonly url: string;
  /** System error code when known (ECONNREFUSED, ENOTFOUND, ...), or "TIMEOUT". */
  readonly code: string | undefined;

  constructor(url: string, detail: string, code: string | undefined, options?: { cause?: unknown }) {
    super(`cannot reach the admin API at ${url}: ${detail}`, options);
    this.name = 'AdminConnectionError';
    this.url = url;
    this.code = code;
  }
}

type Query = Record<string, string | undefined>;

/** Percent-encodes one path segment; throws RangeError for values no URL path can carry. */
function segment(what: string, value: string): string {
  // WHATWG URL parsing (which fetch applies) removes "." and ".." segments even
  // when percent-encoded, so such ids would silently address a different
  // resource; an empty segment would address the collection instead.
  if (value === '' || value === '.' || value === '..') {
    throw new RangeError(`${what} ${JSON.stringify(value)} cannot be addressed through the admin API`);
  }
  return encodeURIComponent(value);
}

/** Best-effort description of a fetch failure, e.g. "connect ECONNREFUSED 127.0.0.1:8083". */
function describeNetworkError(err: unknown): { detail: string; code: string | undefined } {
  const cause = (err as { cause?: unknown })?.cause;
  // undici wraps the socket error as `cause` (an AggregateError when several
  // addresses were tried); its own message is only "fetch failed".
  const inner = cause instanceof AggregateError ? cause.errors[0] : cause;
  const code = (inner as { code?: unknown } | undefined)?.code;
  const detail =
    inner instanceof Error && inner.message ? inner.message : err instanceof Error && err.message ? err.message : String(err);
  return { detail, code: typeof code === 'string' ? code : undefined };
}

// Methods are async so that a bad argument rejects the returned promise like
// every other failure, instead of throwing synchronously.
export class AdminClient {
  readonly url: string;
  readonly #base: string;
  readonly #token: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  constructor(opts: AdminClientOptions) {
    const parsed = new URL(opts.url); // throws TypeError for a malformed URL, before any request
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new TypeError(`admin API URL must be http:// or https:// (got ${JSON.stringify(opts.url)})`);
    }
    if (!opts.token) throw new TypeError('admin API token is empty');
    this.url = opts.url;
    // Keep a path prefix (a reverse proxy may mount the broker under one) but
    // drop trailing slashes so joining with "/api/v1" never doubles them.
    this.#base = `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
    this.#token = opts.token;
    this.#fetch = opts.fetch ?? globalThis.fetch;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  // ---- clients ----

  async listClients(opts: { uid?: string } = {}): Promise<{ clients: ClientSummary[] }> {
    return this.#request('GET', '/clients', { query: { uid: opts.uid } });
  }

  async getClient(clientId: string): Promise<ClientDetail> {
    return this.#request('GET', `/clients/${segment('client id', clientId)}`);
  }

  /** Disconnects the client (reason 0x98); with `discard`, also deletes its session. */
  async kick(clientId: string, opts: { discard?: boolean } = {}): Promise<KickResult> {
    return this.#request('DELETE', `/clients/${segment('client id', clientId)}`, {
      query: { discard: opts.discard ? 'true' : undefined },
    });
  }

  async subscribe(clientId: string, filter: string, qos?: QoS): Promise<SubscriptionInfo> {
    const body: { filter: string; qos?: QoS } = { filter };
    if (qos !== undefined) body.qos = qos;
    return this.#request('POST', `/clients/${segment('client id', clientId)}/subscriptions`, { body });
  }

  async unsubscribe(clientId: string, filter: string): Promise<{ removed: boolean }> {
    // The filter goes in the query (not the path) because filters contain "/", "+" and "#".
    return this.#request('DELETE', `/clients/${segment('client id', clientId)}/subscriptions`, { query: { filter } });
  }

  // ---- presubscribe templates ----

  async getTemplates(): Promise<{ templates: string[] }> {
    return this.#request('GET', '/presubscribe/templates');
  }

  async setTemplates(templates: string[]): Promise<{ templates: string[] }> {
    return this.#request('PUT', '/presubscribe/templates', { body: { templates } });
  }

  // ---- directory ----

  async listDirectory(): Promise<{ users: DirectoryEntry[] }> {
    return this.#request('GET', '/directory');
  }

  async getUser(uid: string): Promise<DirectoryEntry> {
    return this.#request('GET', `/directory/${segment('uid', uid)}`);
  }

  async putUser(uid: string, entry: DirectoryUpdate): Promise<DirectoryEntry> {
    return this.#request('PUT', `/directory/${segment('uid', uid)}`, { body: entry });
  }

  async deleteUser(uid: string): Promise<{ deleted: true }> {
    return this.#request('DELETE', `/directory/${segment('uid', uid)}`);
  }

  // ---- routing rules ----

  async listRules(): Promise<{ rules: RoutingRule[] }> {
    return this.#request('GET', '/rules');
  }

  async getRule(id: string): Promise<RoutingRule> {
    return this.#request('GET', `/rules/${segment('rule id', id)}`);
  }

  async addRule(rule: RoutingRule): Promise<RoutingRule> {
    return this.#request('POST', '/rules', { body: rule });
  }

  /** Replaces rule `id`; the body's id may be omitted or must equal `id`. */
  async putRule(id: string, rule: Omit<RoutingRule, 'id'> & { id?: string }): Promise<RoutingRule> {
    return this.#request('PUT', `/rules/${segment('rule id', id)}`, { body: rule });
  }

  async deleteRule(id: string): Promise<{ deleted: true }> {
    return this.#request('DELETE', `/rules/${segment('rule id', id)}`);
  }

  // ---- publish ----

  async publish(req: PublishRequest): Promise<{ published: true }> {
    return this.#request('POST', '/publish', { body: req });
  }

  // ---- transport ----

  async #request<T>(method: string, path: string, opts: { query?: Query; body?: unknown } = {}): Promise<T> {
    let url = `${this.#base}/api/v1${path}`;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) params.set(k, v);
    const qs = params.toString();
    if (qs) url += `?${qs}`;

    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' };
    const init: RequestInit = { method, headers };
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    if (this.#timeoutMs > 0) init.signal = AbortSignal.timeout(this.#timeoutMs);

    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(url, init);
      // Read the body inside the try: the timeout and a dropped connection can
      // also strike while the body is streaming.
      text = await res.text();
    } catch (err) {
      if ((err as { name?: string })?.name === 'TimeoutError') {
        throw new AdminConnectionError(this.url, `no response within ${this.#timeoutMs} ms`, 'TIMEOUT', { cause: err });
      }
      const { detail, code } = describeNetworkError(err);
      throw new AdminConnectionError(this.url, detail, code, { cause: err });
    }

    let json: unknown;
    let isJson = true;
    try {
      json = JSON.parse(text);
    } catch {
      isJson = false;
    }

    if (!res.ok) {
      const serverMessage = isJson ? (json as { error?: unknown } | null)?.error : undefined;
      const message =
        typeof serverMessage === 'string' && serverMessage !== '' ? serverMessage : res.statusText || `HTTP ${res.status}`;
      throw new AdminApiError(res.status, message);
    }
    // A 2xx that is not JSON means the URL reaches something other than the
    // admin API (e.g. a proxy's HTML page); say so instead of returning junk.
    if (!isJson) {
      const type = res.headers.get('content-type') ?? 'no content type';
      throw new AdminApiError(res.status, `expected a JSON response from ${method} ${path}, got ${type}`);
    }
    return json as T;
  }
}
