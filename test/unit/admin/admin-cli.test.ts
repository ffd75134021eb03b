import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_COMMANDS, ADMIN_USAGE, runAdminCli } from '../../../src/admin/admin-cli.js';
import { parseArgs, USAGE } from '../../../src/cli-args.js';

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let server: Server;
let base: string;
let requests: Recorded[];
let reply: { status: number; body: unknown };

beforeAll(async () => {
  server = createServer((req, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply.body));
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
  reply = { status: 200, body: { ok: true } };
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], env?: NodeJS.ProcessEnv, fetchImpl?: typeof fetch): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runAdminCli(argv, {
    env: env ?? { SWITCHBOARD_ADMIN_URL: base, SWITCHBOARD_ADMIN__TOKEN: 'env-token' },
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
  });
  return { code, stdout, stderr };
}

describe('switchboard admin commands', () => {
  // [argv, method, raw path+query, JSON body or undefined]
  const cases: [string[], string, string, unknown][] = [
    [['clients'], 'GET', '/api/v1/clients', undefined],
    [['clients', '--uid', 'u/1'], 'GET', '/api/v1/clients?uid=u%2F1', undefined],
    [['client', 'dev/1#x'], 'GET', '/api/v1/clients/dev%2F1%23x', undefined],
    [['kick', 'a/b'], 'DELETE', '/api/v1/clients/a%2Fb', undefined],
    [['kick', '--discard', 'a/b'], 'DELETE', '/api/v1/clients/a%2Fb?discard=true', undefined],
    [['subscribe', 'a/b', 'chat/+/#'], 'POST', '/api/v1/clients/a%2Fb/subscriptions', { filter: 'chat/+/#' }],
    [['subscribe', 'a', 't', '--qos', '2'], 'POST', '/api/v1/clients/a/subscriptions', { filter: 't', qos: 2 }],
    [['subscribe', 'a', 't', '--qos=0'], 'POST', '/api/v1/clients/a/subscriptions', { filter: 't', qos: 0 }],
    [['unsubscribe', 'a/b', 'chat/+/#'], 'DELETE', '/api/v1/clients/a%2Fb/subscriptions?filter=chat%2F%2B%2F%23', undefined],
    [['templates'], 'GET', '/api/v1/presubscribe/templates', undefined],
    [['templates', 'set', '/{ns}/im/u/{uid}', '/{ns}/im/g/+'], 'PUT', '/api/v1/presubscribe/templates', { templates: ['/{ns}/im/u/{uid}', '/{ns}/im/g/+'] }],
    [['templates', 'clear'], 'PUT', '/api/v1/presubscribe/templates', { templates: [] }],
    [['directory'], 'GET', '/api/v1/directory', undefined],
    [['directory', 'get', 'al/ice'], 'GET', '/api/v1/directory/al%2Fice', undefined],
    [['directory', 'set', 'alice'], 'PUT', '/api/v1/directory/alice', {}],
    [
      ['directory', 'set', 'alice', '--ns', 'acme', '--groups', 'a, b', '--groups', 'c', '--topics', 'x/1,y/#'],
      'PUT',
      '/api/v1/directory/alice',
      { ns: 'acme', groups: ['a', 'b', 'c'], topics: ['x/1', 'y/#'] },
    ],
    [['directory', 'set', 'alice', '--groups', ''], 'PUT', '/api/v1/directory/alice', { groups: [] }],
    [['directory', 'rm', 'alice'], 'DELETE', '/api/v1/directory/alice', undefined],
    [['rules'], 'GET', '/api/v1/rules', undefined],
    [['rules', 'get', 'r/1'], 'GET', '/api/v1/rules/r%2F1', undefined],
    [['rules', 'add', 'r1', 'a/#', 'copy', 'b/#'], 'POST', '/api/v1/rules', { id: 'r1', source: 'a/#', action: 'copy', destination: 'b/#' }],
    [['rules', 'add', 'r2', 'a/#', 'drop'], 'POST', '/api/v1/rules', { id: 'r2', source: 'a/#', action: 'drop' }],
    [['rules', 'rm', 'r1'], 'DELETE', '/api/v1/rules/r1', undefined],
    [['publish', 't/1', 'héllo wörld'], 'POST', '/api/v1/publish', { topic: 't/1', payload: 'héllo wörld' }],
    [['publish', 't/1', '', '--qos', '1', '--retain'], 'POST', '/api/v1/publish', { topic: 't/1', payload: '', qos: 1, retain: true }],
    [['publish', '--', 't/1', '-1'], 'POST', '/api/v1/publish', { topic: 't/1', payload: '-1' }],
  ];

  it.each(cases)('%j', async (argv, method, target, body) => {
    reply = { status: 200, body: { answer: [1, 'two'], nested: { ok: true } } };
    const r = await run(argv);
    expect(r).toEqual({ code: 0, stdout: `${JSON.stringify(reply.body, null, 2)}\n`, stderr: '' });
    expect(requests).toHaveLength(1);
    const req = requests[0]!;
    expect(req.method).toBe(method);
    expect(req.url).toBe(target);
    expect(req.headers.authorization).toBe('Bearer env-token');
    if (body === undefined) expect(req.body).toBe('');
    else expect(JSON.parse(req.body)).toEqual(body);
  });

  it('prints 2-space JSON', async () => {
    reply = { status: 200, body: { templates: ['a'] } };
    expect((await run(['templates'])).stdout).toBe('{\n  "templates": [\n    "a"\n  ]\n}\n');
  });

  it('takes --token and --url over the environment', async () => {
    const r = await run(['clients', '--token', 'flag-token', '--url', base], { SWITCHBOARD_ADMIN_URL: 'http://127.0.0.1:1', SWITCHBOARD_ADMIN__TOKEN: 'env-token' });
    expect(r.code).toBe(0);
    expect(requests[0]!.headers.authorization).toBe('Bearer flag-token');
  });

  it('defaults to http://127.0.0.1:8083', async () => {
    const seen: string[] = [];
    const fake: typeof fetch = async (input, init) => {
      seen.push(`${init?.method} ${String(input)}`);
      return new Response('{"rules":[]}', { status: 200 });
    };
    const r = await run(['rules'], { SWITCHBOARD_ADMIN__TOKEN: 't' }, fake);
    expect(r).toEqual({ code: 0, stdout: '{\n  "rules": []\n}\n', stderr: '' });
    expect(seen).toEqual(['GET http://127.0.0.1:8083/api/v1/rules']);
  });

  it('prints help on stdout', async () => {
    for (const argv of [['help'], ['--help'], ['clients', '-h'], ['rules', 'add', '--help']]) {
      expect(await run(argv, {})).toEqual({ code: 0, stdout: ADMIN_USAGE, stderr: '' });
    }
    for (const c of ADMIN_COMMANDS) expect(ADMIN_USAGE).toContain(c.words.join(' '));
    expect(ADMIN_USAGE).toContain('SWITCHBOARD_ADMIN__TOKEN');
    expect(ADMIN_USAGE).toContain('--url');
  });
});

describe('switchboard admin failures', () => {
  it('reports API errors with status and message, exit 1', async () => {
    reply = { status: 404, body: { error: 'no such client: a/b' } };
    expect(await run(['client', 'a/b'])).toEqual({ code: 1, stdout: '', stderr: 'switchboard admin: 404 no such client: a/b\n' });

    reply = { status: 401, body: { error: 'unauthorized' } };
    expect((await run(['clients'])).stderr).toBe('switchboard admin: 401 unauthorized\n');

    reply = { status: 409, body: { error: 'rule r1 already exists' } };
    const r = await run(['rules', 'add', 'r1', 'a', 'drop']);
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'switchboard admin: 409 rule r1 already exists\n' });
  });

  it('names the URL when the connection is refused, exit 1', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const r = await run(['clients', '--url', url]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^switchboard admin: cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(r.stderr).toContain(url);
    expect(r.stderr).toContain('is the broker running');
  });

  // [argv, env override or undefined, expected message fragment]
  const usageCases: [string[], NodeJS.ProcessEnv | undefined, string][] = [
    [[], undefined, 'missing command'],
    [['klients'], undefined, 'unknown command "klients"'],
    [['client'], undefined, '"client" needs ID'],
    [['subscribe', 'a'], undefined, '"subscribe" needs ID FILTER'],
    [['subscribe', 'a', 't', '--qos', '3'], undefined, '--qos must be 0, 1 or 2 (got "3")'],
    [['subscribe', 'a', 't', '--qos', 'x'], undefined, '--qos must be 0, 1 or 2'],
    [['publish', 't', 'm', '--qos=1.0'], undefined, '--qos must be 0, 1 or 2'],
    [['publish', 't', 'm', '--qos'], undefined, 'flag --qos needs a value'],
    [['publish', 't'], undefined, '"publish" needs TOPIC MESSAGE'],
    [['publish', 't', 'm', 'extra'], undefined, 'unexpected argument "extra"'],
    [['templates', 'set'], undefined, '"templates set" needs T...'],
    [['directory', 'bob'], undefined, 'unknown command "directory bob" (directory subcommands: get, set, rm)'],
    [['rules', 'add', 'r1', 'a', 'bounce', 'b'], undefined, 'ACTION must be one of copy, move, drop (got "bounce")'],
    [['rules', 'add', 'r1', 'a', 'move'], undefined, 'a move rule needs a DESTINATION'],
    [['rules', 'add', 'r1', 'a', 'drop', 'b'], undefined, 'a drop rule takes no DESTINATION'],
    [['clients', '--discard'], undefined, 'flag --discard does not apply to "clients"'],
    [['clients', '--bogus'], undefined, 'unknown flag "--bogus"'],
    [['kick', 'a', '--discard=yes'], undefined, 'flag --discard takes no value'],
    [['client', '..'], undefined, 'client id ".." cannot be addressed'],
    [['clients'], {}, 'no admin token: pass --token or set SWITCHBOARD_ADMIN__TOKEN'],
    [['clients'], { SWITCHBOARD_ADMIN__TOKEN: '' }, 'no admin token'],
    [['clients', '--token', 't', '--url', 'nope'], {}, 'invalid --url "nope"'],
  ];

  it.each(usageCases)('%j is a usage error', async (argv, env, message) => {
    const r = await run(argv, env ?? { SWITCHBOARD_ADMIN_URL: base, SWITCHBOARD_ADMIN__TOKEN: 'env-token' });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith('switchboard admin: ')).toBe(true);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain(ADMIN_USAGE);
    expect(requests).toHaveLength(0);
  });
});

describe('switchboard admin in the top-level command line', () => {
  it('passes every argument after "admin" through, --help included', () => {
    expect(parseArgs(['admin', 'clients', '--uid', 'u', '--token', 't'])).toEqual({
      command: 'admin',
      overrides: {},
      rest: ['clients', '--uid', 'u', '--token', 't'],
    });
    expect(parseArgs(['admin', 'kick', 'a', '--help'])).toMatchObject({ command: 'admin', rest: ['kick', 'a', '--help'] });
    expect(parseArgs(['admin', '--', 'x'])).toMatchObject({ command: 'admin', rest: ['--', 'x'] });
  });

  it('routes "help admin" to the admin help topic', () => {
    expect(parseArgs(['help', 'admin'])).toMatchObject({ command: 'help', rest: ['admin'] });
    expect(parseArgs(['--help', 'admin', 'clients'])).toMatchObject({ command: 'help', rest: ['admin'] });
  });

  it('lists every admin command in USAGE', () => {
    for (const c of ADMIN_COMMANDS) expect(USAGE).toContain(`admin ${c.words.join(' ')}`);
    expect(USAGE).toContain('admin COMMAND');
  });
});
