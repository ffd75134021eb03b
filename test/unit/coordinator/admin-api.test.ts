/**
 * The admin API's routing and validation (src/coordinator/admin-api.ts), driven through
 * handleAdmin with a fake AdminContext: a real ImState on a MemoryStore (so "saved" means
 * "a new ImState on the same store reads it back"), spies for the change callbacks, and
 * fake session/shard operations. Every error is `{ error }` with a status naming the problem.
 */
import { beforeEach, describe, expect, it, vi, type Mock } from 'vitest';
import type { ImConfig } from '../../../src/config/schema.js';
import { handleAdmin, type AdminContext, type AdminRequest, type AdminResponse } from '../../../src/coordinator/admin-api.js';
import { ImState } from '../../../src/coordinator/im-state.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { encodeImPayload } from '../../../src/im/index.js';
import type { AdminShardOp, AppMessage } from '../../../src/protocol/messages.js';
import type { SessionSummary } from '../../../src/session/session-view.js';
import type { DirectoryEntry } from '../../../src/im/presub.js';

const CARBONS = { id: 'carbons', source: '/+/im/u/+', action: 'copy', destination: '/{1}/im/u/{sender}' } as const;
const MUTE = { id: 'mute', source: 'spam/#', action: 'drop' } as const;

const CFG: ImConfig = {
  enabled: true,
  defaultNamespace: 'acme',
  senderCheck: 'refuse',
  superusers: [],
  presubscribe: {
    templates: ['/{ns}/im/u/{uid}'],
    qos: 1,
    directory: [{ uid: 'alice', ns: 'acme', groups: ['team'] }],
    holdNewUsers: false,
  },
  rules: [CARBONS, MUTE],
  presence: true,
  files: { enabled: false, maxBytes: 1024, publicUrl: null },
};

const SESSION: SessionSummary = {
  clientId: 'alice/phone', uid: 'alice', username: 'alice', online: true, protocolVersion: 5, subscriptions: 2, queued: 0, inflight: 0, expiry: 0,
};

type ShardOp = Exclude<AdminShardOp, { op: 'list' }>;

interface Fake extends AdminContext {
  sessions: Mock<(uid?: string) => Promise<SessionSummary[]>>;
  shardOp: Mock<(op: ShardOp) => Promise<AdminResponse>>;
  templatesChanged: Mock<() => Promise<void>>;
  userChanged: Mock<(uid: string, entry: DirectoryEntry | undefined) => Promise<void>>;
  rulesChanged: Mock<() => Promise<void>>;
  publish: Mock<(msg: AppMessage) => void>;
}

/** The coordinator's store: where ImState keeps the `im` document. */
let store: MemoryStore;
let ctx: Fake;

beforeEach(() => {
  store = new MemoryStore();
  ctx = {
    state: new ImState(CFG, store),
    limits: { maxTopicLength: 256, maxTopicLevels: 16 },
    sessions: vi.fn(async () => [SESSION]),
    shardOp: vi.fn(async (op: ShardOp) => ({ status: 200, body: { echo: op } })),
    templatesChanged: vi.fn(async () => {}),
    userChanged: vi.fn(async () => {}),
    rulesChanged: vi.fn(async () => {}),
    publish: vi.fn(),
  };
});

function call(method: string, path: string, body?: unknown, query: Record<string, string> = {}): Promise<AdminResponse> {
  const req: AdminRequest = { method, path, query, body };
  return handleAdmin(req, ctx);
}

/** The `error` text of a failed response, asserting the status. */
async function error(status: number, method: string, path: string, body?: unknown, query?: Record<string, string>): Promise<string> {
  const r = await call(method, path, body, query);
  expect(r.status, `${method} ${path} -> ${JSON.stringify(r.body)}`).toBe(status);
  const b = r.body as { error?: unknown };
  expect(Object.keys(b)).toEqual(['error']);
  expect(typeof b.error).toBe('string');
  return b.error as string;
}

/** What a restarted coordinator would load from its store. */
const reloaded = (): ImState => new ImState(CFG, store);

const noCallbacks = (): void => {
  expect(ctx.templatesChanged).not.toHaveBeenCalled();
  expect(ctx.userChanged).not.toHaveBeenCalled();
  expect(ctx.rulesChanged).not.toHaveBeenCalled();
  expect(ctx.publish).not.toHaveBeenCalled();
};

describe('admin API: unknown endpoints and wrong methods', () => {
  it('404 for unknown endpoints, naming the path', async () => {
    for (const path of ['/', '/nope', '/presubscribe', '/presubscribe/other', '/presubscribe/templates/x', '/publish/x', '/rules/a/b', '/directory/a/b', '/clients/a/b', '/clients/a/subscriptions/x']) {
      expect(await error(404, 'GET', path)).toBe(`no such endpoint: /api/v1${path}`);
    }
    noCallbacks();
  });

  it('405 for a method the endpoint does not have, naming method and path', async () => {
    const cases: Array<[string, string]> = [
      ['POST', '/clients'],
      ['PUT', '/clients/c1'],
      ['GET', '/clients/c1/subscriptions'],
      ['POST', '/presubscribe/templates'],
      ['DELETE', '/presubscribe/templates'],
      ['POST', '/directory'],
      ['POST', '/directory/alice'],
      ['PUT', '/rules'],
      ['DELETE', '/rules'],
      ['POST', '/rules/carbons'],
      ['GET', '/publish'],
      ['PUT', '/publish'],
    ];
    for (const [method, path] of cases) {
      expect(await error(405, method, path, {})).toBe(`${method} is not allowed on /api/v1${path}`);
    }
    expect(ctx.shardOp).not.toHaveBeenCalled();
    expect(ctx.sessions).not.toHaveBeenCalled();
    noCallbacks();
  });

  it('400 for malformed percent-encoding', async () => {
    expect(await error(400, 'GET', '/clients/%E0%A4%A')).toBe('malformed percent-encoding in /clients/%E0%A4%A');
  });

  it('errors that are not API errors propagate (the coordinator turns them into 500)', async () => {
    ctx.sessions.mockRejectedValueOnce(new Error('shard gone'));
    await expect(call('GET', '/clients')).rejects.toThrow('shard gone');
  });
});

describe('admin API: clients', () => {
  it('GET /clients lists every session, or one user\'s with ?uid=', async () => {
    expect(await call('GET', '/clients')).toEqual({ status: 200, body: { clients: [SESSION] } });
    expect(ctx.sessions).toHaveBeenLastCalledWith(undefined);
    await call('GET', '/clients', undefined, { uid: 'alice' });
    expect(ctx.sessions).toHaveBeenLastCalledWith('alice');
  });

  it('GET and DELETE /clients/{id} go to the owning shard; the shard answer is returned as is', async () => {
    ctx.shardOp.mockResolvedValueOnce({ status: 404, body: { error: 'no session' } });
    expect(await call('GET', '/clients/c1')).toEqual({ status: 404, body: { error: 'no session' } });
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'get', clientId: 'c1' });
    await call('DELETE', '/clients/c1');
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'kick', clientId: 'c1', discard: false });
    await call('DELETE', '/clients/c1', undefined, { discard: 'true' });
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'kick', clientId: 'c1', discard: true });
    // Only the exact word: anything else keeps the session.
    await call('DELETE', '/clients/c1', undefined, { discard: '1' });
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'kick', clientId: 'c1', discard: false });
  });

  it("client ids with '/' arrive percent-encoded in one segment and are decoded (IM-PROTOCOL 2: alice/phone)", async () => {
    await call('GET', '/clients/alice%2Fphone');
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'get', clientId: 'alice/phone' });
    await call('DELETE', '/clients/alice%2Fphone');
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'kick', clientId: 'alice/phone', discard: false });
    await call('POST', '/clients/alice%2Fphone/subscriptions', { filter: 'a/b' });
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'sub', clientId: 'alice/phone', filter: 'a/b', qos: 1 });
    await call('GET', '/clients/%24hold%2Fbob%20x');
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'get', clientId: '$hold/bob x' });
    // Unencoded, the '/' is a path separator: a different (unknown) endpoint.
    expect(await error(404, 'GET', '/clients/alice/phone')).toMatch(/no such endpoint/);
  });

  it('POST /clients/{id}/subscriptions: filter required and valid, qos 0..2 (default 1)', async () => {
    await call('POST', '/clients/c1/subscriptions', { filter: '/acme/im/g/+', qos: 2 });
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'sub', clientId: 'c1', filter: '/acme/im/g/+', qos: 2 });
    await call('POST', '/clients/c1/subscriptions', { filter: 'x', qos: 0 });
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'sub', clientId: 'c1', filter: 'x', qos: 0 });
    ctx.shardOp.mockClear();

    expect(await error(400, 'POST', '/clients/c1/subscriptions', { qos: 1 })).toBe('filter must be a valid topic filter (got undefined)');
    expect(await error(400, 'POST', '/clients/c1/subscriptions', { filter: 'a/#/b' })).toBe('filter must be a valid topic filter (got "a/#/b")');
    expect(await error(400, 'POST', '/clients/c1/subscriptions', { filter: '' })).toMatch(/^filter must be a valid topic filter/);
    expect(await error(400, 'POST', '/clients/c1/subscriptions', { filter: 7 })).toBe('filter must be a valid topic filter (got 7)');
    // The broker's topic limits apply.
    expect(await error(400, 'POST', '/clients/c1/subscriptions', { filter: 'a/'.repeat(20) + 'b' })).toMatch(/^filter/);
    expect(await error(400, 'POST', '/clients/c1/subscriptions', { filter: 'a', qos: 3 })).toBe('qos must be 0, 1 or 2 (got 3)');
    expect(await error(400, 'POST', '/clients/c1/subscriptions', { filter: 'a', qos: '1' })).toBe('qos must be 0, 1 or 2 (got "1")');
    for (const body of [undefined, null, [], 'a/b', 3]) {
      expect(await error(400, 'POST', '/clients/c1/subscriptions', body)).toBe('request body must be a JSON object');
    }
    expect(ctx.shardOp).not.toHaveBeenCalled();
  });

  it('DELETE /clients/{id}/subscriptions needs ?filter=', async () => {
    await call('DELETE', '/clients/c1/subscriptions', undefined, { filter: 'a/+' });
    expect(ctx.shardOp).toHaveBeenLastCalledWith({ op: 'unsub', clientId: 'c1', filter: 'a/+' });
    ctx.shardOp.mockClear();
    expect(await error(400, 'DELETE', '/clients/c1/subscriptions')).toBe('the filter query parameter is required');
    expect(await error(400, 'DELETE', '/clients/c1/subscriptions', undefined, { filter: '' })).toBe('the filter query parameter is required');
    expect(ctx.shardOp).not.toHaveBeenCalled();
  });
});

describe('admin API: pre-subscription templates (IM-PROTOCOL 4)', () => {
  it('GET returns the current templates', async () => {
    expect(await call('GET', '/presubscribe/templates')).toEqual({ status: 200, body: { templates: ['/{ns}/im/u/{uid}'] } });
  });

  it('PUT replaces them, persists them and calls templatesChanged', async () => {
    const templates = ['/{ns}/im/u/{uid}', '/{ns}/im/p/+', 'devices/{clientid}'];
    expect(await call('PUT', '/presubscribe/templates', { templates })).toEqual({ status: 200, body: { templates } });
    expect(ctx.state.templates).toEqual(templates);
    expect(ctx.templatesChanged).toHaveBeenCalledTimes(1);
    expect(reloaded().source).toBe('store');
    expect(reloaded().templates).toEqual(templates);
    expect(ctx.rulesChanged).not.toHaveBeenCalled();
    expect(ctx.userChanged).not.toHaveBeenCalled();
    // An empty list is a valid answer: no pre-subscriptions.
    expect(await call('PUT', '/presubscribe/templates', { templates: [] })).toEqual({ status: 200, body: { templates: [] } });
    expect(reloaded().templates).toEqual([]);
  });

  it('an edit is answered (and the change applied) only once the store committed it', async () => {
    let open!: () => void;
    class Gated extends MemoryStore {
      override commit(): Promise<void> {
        return new Promise((resolve) => (open = resolve));
      }
    }
    const gated = new Gated();
    ctx.state = new ImState(CFG, gated);
    let answered = false;
    const r = call('PUT', '/presubscribe/templates', { templates: ['/x'] }).then((x) => ((answered = true), x));
    await new Promise((resolve) => setImmediate(resolve));
    expect(gated.getDoc('im')).toMatchObject({ templates: ['/x'] }); // written, not yet durable
    expect(answered).toBe(false);
    expect(ctx.templatesChanged).not.toHaveBeenCalled();
    open();
    expect(await r).toEqual({ status: 200, body: { templates: ['/x'] } });
    expect(ctx.templatesChanged).toHaveBeenCalledTimes(1);
  });

  it('bad bodies are 400 naming the field; nothing changes', async () => {
    expect(await error(400, 'PUT', '/presubscribe/templates', [])).toBe('request body must be a JSON object');
    expect(await error(400, 'PUT', '/presubscribe/templates', {})).toBe('templates must be a list of topic templates');
    expect(await error(400, 'PUT', '/presubscribe/templates', { templates: '/{ns}/im/u/{uid}' })).toBe('templates must be a list of topic templates');
    expect(await error(400, 'PUT', '/presubscribe/templates', { templates: ['/a', 5] })).toBe('templates[1] must be a string');
    expect(await error(400, 'PUT', '/presubscribe/templates', { templates: ['/{user}'] })).toMatch(/^templates: .*unknown placeholder \{user\}/);
    expect(await error(400, 'PUT', '/presubscribe/templates', { templates: ['$SYS/#'] })).toMatch(/^templates: /);
    expect(ctx.state.templates).toEqual(['/{ns}/im/u/{uid}']);
    expect(reloaded().source).toBe('config');
    noCallbacks();
  });
});

describe('admin API: directory (IM-PROTOCOL 4)', () => {
  it('GET lists the users; GET /directory/{uid} returns one or 404', async () => {
    expect(await call('GET', '/directory')).toEqual({ status: 200, body: { users: [{ uid: 'alice', ns: 'acme', groups: ['team'] }] } });
    expect(await call('GET', '/directory/alice')).toEqual({ status: 200, body: { uid: 'alice', ns: 'acme', groups: ['team'] } });
    expect(await error(404, 'GET', '/directory/bob')).toBe('no directory entry for uid "bob"');
  });

  it('PUT creates or replaces an entry with the uid from the path, persists it and calls userChanged', async () => {
    const r = await call('PUT', '/directory/bob', { groups: ['ops', 'ops'], topics: ['news/#'] });
    // De-duplicated by parseDirectoryEntry.
    expect(r).toEqual({ status: 200, body: { uid: 'bob', groups: ['ops'], topics: ['news/#'] } });
    expect(ctx.userChanged).toHaveBeenLastCalledWith('bob', { uid: 'bob', groups: ['ops'], topics: ['news/#'] });
    expect(reloaded().directory.get('bob')).toEqual({ uid: 'bob', groups: ['ops'], topics: ['news/#'] });

    // A body uid equal to the path is fine; replacing drops absent keys.
    expect(await call('PUT', '/directory/alice', { uid: 'alice', ns: 'globex' })).toEqual({ status: 200, body: { uid: 'alice', ns: 'globex' } });
    expect(reloaded().directory.get('alice')).toEqual({ uid: 'alice', ns: 'globex' });
    expect(ctx.userChanged).toHaveBeenCalledTimes(2);
    expect(ctx.templatesChanged).not.toHaveBeenCalled();
  });

  it('percent-encoded uids are decoded', async () => {
    expect((await call('PUT', '/directory/j%C3%BCrgen', {})).body).toEqual({ uid: 'jürgen' });
    expect(ctx.userChanged).toHaveBeenLastCalledWith('jürgen', { uid: 'jürgen' });
  });

  it('PUT bad bodies are 400 naming the field; nothing is stored', async () => {
    expect(await error(400, 'PUT', '/directory/bob', 'x')).toBe('request body must be a JSON object');
    expect(await error(400, 'PUT', '/directory/bob', { uid: 'carol' })).toBe('uid in the body ("carol") differs from the path ("bob")');
    expect(await error(400, 'PUT', '/directory/bob', { groups: 'ops' })).toMatch(/^groups: /);
    expect(await error(400, 'PUT', '/directory/bob', { groups: ['a/b'] })).toMatch(/^groups: /);
    expect(await error(400, 'PUT', '/directory/bob', { ns: '' })).toMatch(/^ns: /);
    expect(await error(400, 'PUT', '/directory/bob', { topics: ['a/#/b'] })).toMatch(/^topics: /);
    expect(await error(400, 'PUT', '/directory/bob', { colour: 'red' })).toMatch(/^colour: .*unknown key/);
    // The uid comes from the path, and it must be a valid one.
    expect(await error(400, 'PUT', '/directory/a%2Bb', {})).toMatch(/^uid: /);
    expect(ctx.state.directory.has('bob')).toBe(false);
    expect(reloaded().source).toBe('config');
    noCallbacks();
  });

  // parseDirectoryEntry and parseRule already start their messages with the field
  // ("groups: must be ..."); the API must not prefix it a second time, or operators read
  // "groups: groups: must be ...".
  it('a validation error names the field once', async () => {
    expect(await error(400, 'PUT', '/directory/bob', { groups: 'ops' })).not.toMatch(/^groups: groups:/);
    expect(await error(400, 'PUT', '/presubscribe/templates', { templates: ['/{user}'] })).not.toMatch(/^templates: templates:/);
    expect(await error(400, 'POST', '/rules', { ...MUTE, id: 'x', action: 'explode' })).not.toMatch(/^action: action:/);
  });

  it('DELETE removes an entry (persisted, userChanged with undefined) or 404', async () => {
    expect(await call('DELETE', '/directory/alice')).toEqual({ status: 200, body: { deleted: true } });
    expect(ctx.userChanged).toHaveBeenLastCalledWith('alice', undefined);
    expect(reloaded().directory.size).toBe(0);
    expect(await error(404, 'DELETE', '/directory/alice')).toBe('no directory entry for uid "alice"');
    expect(ctx.userChanged).toHaveBeenCalledTimes(1);
  });
});

describe('admin API: routing rules (IM-PROTOCOL 5)', () => {
  it('GET lists the rules in evaluation order; GET /rules/{id} returns one or 404', async () => {
    expect(await call('GET', '/rules')).toEqual({ status: 200, body: { rules: [CARBONS, MUTE] } });
    expect(await call('GET', '/rules/mute')).toEqual({ status: 200, body: MUTE });
    expect(await error(404, 'GET', '/rules/none')).toBe('no rule with id "none"');
  });

  it('POST appends a rule (201), persists it and calls rulesChanged', async () => {
    const rule = { id: 'fwd', source: 'a/+', action: 'move', destination: 'b/{1}' };
    expect(await call('POST', '/rules', rule)).toEqual({ status: 201, body: rule });
    expect(ctx.state.rules.map((r) => r.id)).toEqual(['carbons', 'mute', 'fwd']);
    expect(reloaded().rules.map((r) => r.id)).toEqual(['carbons', 'mute', 'fwd']);
    expect(ctx.rulesChanged).toHaveBeenCalledTimes(1);
  });

  it('POST with an existing id is 409; nothing changes', async () => {
    expect(await error(409, 'POST', '/rules', { id: 'mute', source: 'other/#', action: 'drop' })).toBe('a rule with id "mute" exists');
    expect(ctx.state.rules).toEqual([CARBONS, MUTE]);
    expect(reloaded().source).toBe('config');
    noCallbacks();
  });

  it('POST bad bodies are 400 naming the field', async () => {
    expect(await error(400, 'POST', '/rules', { id: 'x', source: 'a/#', action: 'explode' })).toMatch(/^action: /);
    expect(await error(400, 'POST', '/rules', { id: 'x', source: 'a/#', action: 'copy' })).toMatch(/^destination: .*required/);
    expect(await error(400, 'POST', '/rules', { id: 'x', source: 'a/+', action: 'copy', destination: 'b/{2}' })).toMatch(/^destination: /);
    expect(await error(400, 'POST', '/rules', { id: 'bad id', source: 'a/#', action: 'drop' })).toMatch(/^id: /);
    expect(await error(400, 'POST', '/rules', { id: 'x', source: '$SYS/#', action: 'drop' })).toMatch(/^source: /);
    expect(await error(400, 'POST', '/rules', { id: 'x', source: 'a/#', action: 'drop', destinaton: 'b' })).toMatch(/^destinaton: .*unknown key/);
    expect(ctx.state.rules).toEqual([CARBONS, MUTE]);
    noCallbacks();
  });

  // Like every other endpoint that takes an object, a body that is not one is reported as
  // such, not as an error of an unnamed field (": a routing rule must be an object").
  it('POST with a body that is not an object is 400 "request body must be a JSON object"', async () => {
    for (const body of [undefined, null, [], 'rule']) {
      expect(await error(400, 'POST', '/rules', body)).toBe('request body must be a JSON object');
    }
  });

  it('PUT /rules/{id} replaces a rule in place: it keeps its position in the evaluation order', async () => {
    const replaced = { id: 'carbons', source: '/+/im/g/+', action: 'drop' };
    expect(await call('PUT', '/rules/carbons', { source: '/+/im/g/+', action: 'drop' })).toEqual({ status: 200, body: replaced });
    expect(ctx.state.rules).toEqual([replaced, MUTE]);
    expect(reloaded().rules).toEqual([replaced, MUTE]);
    expect(ctx.rulesChanged).toHaveBeenCalledTimes(1);
  });

  it('PUT /rules/{id} creates a missing rule at the end', async () => {
    const rule = { id: 'new', source: 'x/#', action: 'drop' };
    expect(await call('PUT', '/rules/new', { ...rule })).toEqual({ status: 200, body: rule });
    expect(ctx.state.rules).toEqual([CARBONS, MUTE, rule]);
    expect(reloaded().rules).toEqual([CARBONS, MUTE, rule]);
  });

  it('PUT bad bodies are 400; the id comes from the path', async () => {
    expect(await error(400, 'PUT', '/rules/mute', 'x')).toBe('request body must be a JSON object');
    expect(await error(400, 'PUT', '/rules/mute', { id: 'other', source: 'a/#', action: 'drop' })).toBe('id in the body ("other") differs from the path ("mute")');
    expect(await error(400, 'PUT', '/rules/mute', { source: 'a/#', action: 'move' })).toMatch(/^destination: /);
    expect(await error(400, 'PUT', '/rules/bad%20id', { source: 'a/#', action: 'drop' })).toMatch(/^id: /);
    expect(ctx.state.rules).toEqual([CARBONS, MUTE]);
    noCallbacks();
  });

  it('DELETE removes a rule (persisted, rulesChanged) or 404', async () => {
    expect(await call('DELETE', '/rules/carbons')).toEqual({ status: 200, body: { deleted: true } });
    expect(ctx.state.rules).toEqual([MUTE]);
    expect(reloaded().rules).toEqual([MUTE]);
    expect(ctx.rulesChanged).toHaveBeenCalledTimes(1);
    expect(await error(404, 'DELETE', '/rules/carbons')).toBe('no rule with id "carbons"');
    expect(ctx.rulesChanged).toHaveBeenCalledTimes(1);
  });

  it('rule ids are percent-decoded', async () => {
    await call('PUT', '/rules/a.b-c_d', { source: 'a/#', action: 'drop' });
    expect(await call('GET', '/rules/a%2Eb-c_d')).toMatchObject({ status: 200, body: { id: 'a.b-c_d' } });
  });
});

describe('admin API: publish', () => {
  const published = (): AppMessage => {
    expect(ctx.publish).toHaveBeenCalledTimes(1);
    return ctx.publish.mock.calls[0]![0];
  };

  it('publishes a UTF-8 payload with qos 0 and retain false by default', async () => {
    expect(await call('POST', '/publish', { topic: 'news/today', payload: 'héllo' })).toEqual({ status: 200, body: { published: true } });
    const m = published();
    expect(m).toMatchObject({ topic: 'news/today', qos: 0, retain: false });
    expect(Buffer.from(m.payload).toString('utf8')).toBe('héllo');
  });

  it('payloadBase64 carries binary; qos and retain are taken from the body; no payload is an empty one', async () => {
    await call('POST', '/publish', { topic: 'bin', payloadBase64: Buffer.from([0, 255, 1]).toString('base64'), qos: 2, retain: true });
    expect(published()).toMatchObject({ topic: 'bin', qos: 2, retain: true });
    expect([...published().payload]).toEqual([0, 255, 1]);
    ctx.publish.mockClear();
    await call('POST', '/publish', { topic: 'empty' });
    expect(published().payload.length).toBe(0);
  });

  it('a valid IM payload on an IM topic is published; presence topics take any payload', async () => {
    const im = encodeImPayload({ sender: 'system', ts: 1, kind: 0, media: 0, content: { con: [{ ty: 0, co: 'maintenance at 5' }] } });
    await call('POST', '/publish', { topic: '/acme/im/g/team', payloadBase64: im.toString('base64') });
    expect(Buffer.from(published().payload).equals(im)).toBe(true);
    ctx.publish.mockClear();
    await call('POST', '/publish', { topic: '/acme/im/p/alice', payload: '{"online":true}', retain: true });
    expect(published()).toMatchObject({ topic: '/acme/im/p/alice', retain: true });
  });

  it('IM-PROTOCOL 3: an invalid IM payload on an IM topic is 400, naming the topic and the problem', async () => {
    const e = await error(400, 'POST', '/publish', { topic: '/acme/im/u/alice', payload: 'hello' });
    expect(e).toMatch(/^payload is not a valid IM payload for \/acme\/im\/u\/alice: /);
    expect(await error(400, 'POST', '/publish', { topic: '/acme/im/u/alice' })).toMatch(/payload is empty/);
    // kind 'other' IM topics are still IM topics.
    expect(await error(400, 'POST', '/publish', { topic: '/acme/im/x', payload: 'x' })).toMatch(/^payload is not a valid IM payload/);
    expect(ctx.publish).not.toHaveBeenCalled();
  });

  it('[MQTT-4.7.2-1] $-topics and invalid topic names are 400', async () => {
    for (const topic of ['$SYS/broker/x', '$share/g/t', 'a/+', 'a/#', '', 5, undefined, 'a/'.repeat(20) + 'b']) {
      expect(await error(400, 'POST', '/publish', { topic, payload: 'x' })).toBe(
        `topic must be a valid topic name outside $-topics (got ${JSON.stringify(topic)})`,
      );
    }
    expect(ctx.publish).not.toHaveBeenCalled();
  });

  it('payload and payloadBase64 both, a non-string payload, a bad retain or qos are 400', async () => {
    expect(await error(400, 'POST', '/publish', { topic: 't', payload: 'a', payloadBase64: 'YQ==' })).toBe('give payload or payloadBase64, not both');
    expect(await error(400, 'POST', '/publish', { topic: 't', payload: { a: 1 } })).toBe('payload must be a string (UTF-8); use payloadBase64 for binary');
    expect(await error(400, 'POST', '/publish', { topic: 't', payload: 5 })).toBe('payload must be a string (UTF-8); use payloadBase64 for binary');
    expect(await error(400, 'POST', '/publish', { topic: 't', retain: 'yes' })).toBe('retain must be true or false');
    expect(await error(400, 'POST', '/publish', { topic: 't', qos: 1.5 })).toBe('qos must be 0, 1 or 2 (got 1.5)');
    expect(await error(400, 'POST', '/publish', 'text')).toBe('request body must be a JSON object');
    expect(ctx.publish).not.toHaveBeenCalled();
  });

  // A payloadBase64 that is not a base64 string must not silently become an empty (or
  // garbled) message: the administrator would believe the intended bytes went out.
  it('a payloadBase64 that is not a string is 400', async () => {
    expect((await call('POST', '/publish', { topic: 't', payloadBase64: 12345 })).status).toBe(400);
    expect(ctx.publish).not.toHaveBeenCalled();
  });

  it('a payloadBase64 string that is not base64 is 400', async () => {
    expect((await call('POST', '/publish', { topic: 't', payloadBase64: 'not base64!' })).status).toBe(400);
    expect(ctx.publish).not.toHaveBeenCalled();
  });
});
