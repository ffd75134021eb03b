import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AdminApiError, AdminClient, AdminConnectionError } from '../../../src/admin/api-client.js';

interface Recorded {
  method: string;
  /** Raw request target as sent on the wire, so percent-encoding is visible. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

type Handler = (req: Recorded, res: ServerResponse) => void;

const TOKEN = 's3cret token';
let server: Server;
let base: string;
let requests: Recorded[];
let handler: Handler;

function reply(status: number, body: unknown, res: ServerResponse): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Every request gets `body` with `status`. */
function respond(status: number, body: unknown): void {
  handler = (_req, res) => reply(status, body, res);
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(rec);
      handler(rec, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  requests = [];
  respond(200, { ok: true });
});

function client(url = base): AdminClient {
  return new AdminClient({ url, token: TOKEN });
}

function only(): Recorded {
  expect(requests).toHaveLength(1);
  return requests[0]!;
}

describe('AdminClient requests', () => {
  // [description, call, method, raw path+query, JSON body or undefined]
  const cases: [string, (c: AdminClient) => Promise<unknown>, string, string, unknown][] = [
    ['listClients', (c) => c.listClients(), 'GET', '/api/v1/clients', undefined],
    ['listClients by uid', (c) => c.listClients({ uid: 'u/1 x' }), 'GET', '/api/v1/clients?uid=u%2F1+x', undefined],
    ['getClient', (c) => c.getClient('dev/1 #?%'), 'GET', '/api/v1/clients/dev%2F1%20%23%3F%25', undefined],
    ['kick', (c) => c.kick('a/b'), 'DELETE', '/api/v1/clients/a%2Fb', undefined],
    ['kick --discard', (c) => c.kick('a/b', { discard: true }), 'DELETE', '/api/v1/clients/a%2Fb?discard=true', undefined],
    ['kick discard:false', (c) => c.kick('a', { discard: false }), 'DELETE', '/api/v1/clients/a', undefined],
    ['subscribe', (c) => c.subscribe('a/b', 'chat/+/#', 1), 'POST', '/api/v1/clients/a%2Fb/subscriptions', { filter: 'chat/+/#', qos: 1 }],
    ['subscribe without qos', (c) => c.subscribe('a', 't'), 'POST', '/api/v1/clients/a/subscriptions', { filter: 't' }],
    ['unsubscribe', (c) => c.unsubscribe('a/b', 'chat/+/#'), 'DELETE', '/api/v1/clients/a%2Fb/subscriptions?filter=chat%2F%2B%2F%23', undefined],
    ['getTemplates', (c) => c.getTemplates(), 'GET', '/api/v1/presubscribe/templates', undefined],
    ['setTemplates', (c) => c.setTemplates(['/{ns}/im/u/{uid}', '/{ns}/im/g/+']), 'PUT', '/api/v1/presubscribe/templates', { templates: ['/{ns}/im/u/{uid}', '/{ns}/im/g/+'] }],
    ['setTemplates []', (c) => c.setTemplates([]), 'PUT', '/api/v1/presubscribe/templates', { templates: [] }],
    ['listDirectory', (c) => c.listDirectory(), 'GET', '/api/v1/directory', undefined],
    ['getUser', (c) => c.getUser('alice@x/y'), 'GET', '/api/v1/directory/alice%40x%2Fy', undefined],
    ['putUser', (c) => c.putUser('al ice', { ns: 'acme', groups: ['g1'] }), 'PUT', '/api/v1/directory/al%20ice', { ns: 'acme', groups: ['g1'] }],
    ['deleteUser', (c) => c.deleteUser('alice'), 'DELETE', '/api/v1/directory/alice', undefined],
    ['listRules', (c) => c.listRules(), 'GET', '/api/v1/rules', undefined],
    ['getRule', (c) => c.getRule('r/1'), 'GET', '/api/v1/rules/r%2F1', undefined],
    [
      'addRule',
      (c) => c.addRule({ id: 'r1', source: 'a/#', action: 'copy', destination: 'b' }),
      'POST',
      '/api/v1/rules',
      { id: 'r1', source: 'a/#', action: 'copy', destination: 'b' },
    ],
    ['putRule', (c) => c.putRule('r 1', { source: 'a/#', action: 'drop' }), 'PUT', '/api/v1/rules/r%201', { source: 'a/#', action: 'drop' }],
    ['deleteRule', (c) => c.deleteRule('r1'), 'DELETE', '/api/v1/rules/r1', undefined],
    [
      'publish',
      (c) => c.publish({ topic: 't/1', payload: 'héllo', qos: 2, retain: true }),
      'POST',
      '/api/v1/publish',
      { topic: 't/1', payload: 'héllo', qos: 2, retain: true },
    ],
    ['publish base64', (c) => c.publish({ topic: 't', payloadBase64: 'AAE=' }), 'POST', '/api/v1/publish', { topic: 't', payloadBase64: 'AAE=' }],
  ];

  it.each(cases)('%s', async (_name, call, method, target, body) => {
    const canned = { some: ['response', 1] };
    respond(200, canned);
    await expect(call(client())).resolves.toEqual(canned);
    const req = only();
    expect(req.method).toBe(method);
    expect(req.url).toBe(target);
    expect(req.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(req.headers.accept).toBe('application/json');
    if (body === undefined) {
      expect(req.body).toBe('');
      expect(req.headers['content-type']).toBeUndefined();
    } else {
      expect(req.headers['content-type']).toBe('application/json');
      expect(JSON.parse(req.body)).toEqual(body);
    }
  });

  it('returns the parsed body of a 201', async () => {
    const rule = { id: 'r1', source: 'a', action: 'drop' };
    respond(201, rule);
    await expect(client().addRule({ id: 'r1', source: 'a', action: 'drop' })).resolves.toEqual(rule);
  });

  it('keeps a base path prefix and tolerates trailing slashes', async () => {
    await client(`${base}/switchboard//`).listRules();
    expect(only().url).toBe('/switchboard/api/v1/rules');
    requests = [];
    await client(`${base}/`).listRules();
    expect(only().url).toBe('/api/v1/rules');
  });

  it('uses an injected fetch', async () => {
    const seen: string[] = [];
    const fake: typeof fetch = async (input) => {
      seen.push(String(input));
      return new Response('{"templates":["x"]}', { status: 200 });
    };
    const c = new AdminClient({ url: 'http://broker.example:9000', token: 't', fetch: fake });
    await expect(c.getTemplates()).resolves.toEqual({ templates: ['x'] });
    expect(seen).toEqual(['http://broker.example:9000/api/v1/presubscribe/templates']);
    expect(requests).toHaveLength(0);
  });

  it('refuses ids that a URL path cannot carry, without sending anything', async () => {
    const c = client();
    await expect(c.getClient('.')).rejects.toBeInstanceOf(RangeError);
    await expect(c.kick('..')).rejects.toThrow(/client id "\.\." cannot be addressed/);
    await expect(c.getUser('')).rejects.toThrow(/uid "" cannot be addressed/);
    await expect(c.deleteRule('..')).rejects.toThrow(/rule id/);
    // Dots inside an id are fine.
    await c.getClient('a..b');
    expect(only().url).toBe('/api/v1/clients/a..b');
  });

  it('validates its options', () => {
    expect(() => new AdminClient({ url: 'not a url', token: 't' })).toThrow(TypeError);
    expect(() => new AdminClient({ url: 'ftp://h', token: 't' })).toThrow(/http:\/\/ or https:\/\//);
    expect(() => new AdminClient({ url: base, token: '' })).toThrow(/token is empty/);
  });
});

describe('AdminClient errors', () => {
  async function failure(p: Promise<unknown>): Promise<AdminApiError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AdminApiError);
    return err as AdminApiError;
  }

  it("uses the server's error message and status", async () => {
    respond(404, { error: 'no such client: a/b' });
    let err = await failure(client().getClient('a/b'));
    expect(err.status).toBe(404);
    expect(err.message).toBe('no such client: a/b');

    respond(401, { error: 'unauthorized' });
    err = await failure(client().listClients());
    expect([err.status, err.message]).toEqual([401, 'unauthorized']);

    respond(404, { error: 'admin API disabled: set admin.token' });
    err = await failure(client().listClients());
    expect(err.message).toBe('admin API disabled: set admin.token');

    respond(409, { error: 'rule r1 exists' });
    err = await failure(client().addRule({ id: 'r1', source: 's', action: 'drop' }));
    expect([err.status, err.message]).toEqual([409, 'rule r1 exists']);
  });

  it('falls back to the status text when the body is not a JSON error', async () => {
    handler = (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    };
    let err = await failure(client().listRules());
    expect([err.status, err.message]).toEqual([502, 'Bad Gateway']);

    respond(500, { message: 'not the error field' });
    err = await failure(client().listRules());
    expect([err.status, err.message]).toEqual([500, 'Internal Server Error']);

    handler = (_req, res) => {
      res.writeHead(418, 'Custom Reason');
      res.end();
    };
    err = await failure(client().listRules());
    expect([err.status, err.message]).toEqual([418, 'Custom Reason']);
  });

  it('rejects a 2xx answer that is not JSON', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>some other server</html>');
    };
    const err = await failure(client().listRules());
    expect(err.status).toBe(200);
    expect(err.message).toContain('text/html');
  });

  it('reports a refused connection with the URL', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const err = await client(url).listClients().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdminConnectionError);
    expect((err as AdminConnectionError).code).toBe('ECONNREFUSED');
    expect((err as AdminConnectionError).url).toBe(url);
    expect((err as Error).message).toContain(`cannot reach the admin API at ${url}`);
    expect((err as Error).message).toContain('ECONNREFUSED');
  });

  it('gives up on a server that never answers', async () => {
    handler = () => {}; // never respond
    const c = new AdminClient({ url: base, token: TOKEN, timeoutMs: 150 });
    const err = await c.listClients().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdminConnectionError);
    expect((err as AdminConnectionError).code).toBe('TIMEOUT');
    expect((err as Error).message).toContain('no response within 150 ms');
    server.closeAllConnections();
  });
});
