/**
 * The admin API under /api/v1 (docs/admin-api.md): routing and validation. Runs in the
 * coordinator, which owns the IM state; session operations go to the shard that owns the
 * client id. JSON in and out; every error is `{ error }` with a status naming the problem.
 */
import type { AdminShardOp, AppMessage, QoS } from '../protocol/messages.js';
import type { SessionSummary } from '../session/session-view.js';
import { parseDirectoryEntry, parseTemplate, DirectoryError, type DirectoryEntry } from '../im/presub.js';
import { parseRule, RuleError, type RoutingRule } from '../im/rules.js';
import { parseImTopic } from '../im/topics.js';
import { validateImPayload } from '../im/payload.js';
import { validateTopicFilter, validateTopicName, type TopicLimits } from '../mqtt/topic.js';
import type { ImState } from './im-state.js';

export interface AdminRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
}

export interface AdminResponse {
  status: number;
  body: unknown;
}

export interface AdminContext {
  state: ImState;
  limits: TopicLimits;
  /** Every shard's sessions (optionally one user's). */
  sessions(uid?: string): Promise<SessionSummary[]>;
  /** One operation on the shard that owns the client id. */
  shardOp(op: Exclude<AdminShardOp, { op: 'list' }>): Promise<AdminResponse>;
  /** Resolve once the change is in effect on every session. */
  templatesChanged(): Promise<void>;
  userChanged(uid: string, entry: DirectoryEntry | undefined): Promise<void>;
  rulesChanged(): Promise<void>;
  publish(msg: AppMessage): void;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const ok = (body: unknown, status = 200): AdminResponse => ({ status, body });

function object(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

function qosOf(v: unknown, dflt: QoS): QoS {
  if (v === undefined) return dflt;
  if (v !== 0 && v !== 1 && v !== 2) throw new ApiError(400, `qos must be 0, 1 or 2 (got ${JSON.stringify(v)})`);
  return v;
}

/** Validation errors of the IM modules become 400s naming the field. */
function parsed<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    // Their messages already start with the field they blame ("destination: ...").
    if (err instanceof RuleError || err instanceof DirectoryError) throw new ApiError(400, err.message);
    throw err;
  }
}

export async function handleAdmin(req: AdminRequest, ctx: AdminContext): Promise<AdminResponse> {
  try {
    return await route(req, ctx);
  } catch (err) {
    if (err instanceof ApiError) return { status: err.status, body: { error: err.message } };
    throw err;
  }
}

async function route(req: AdminRequest, ctx: AdminContext): Promise<AdminResponse> {
  let seg: string[];
  try {
    seg = req.path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  } catch {
    throw new ApiError(400, `malformed percent-encoding in ${req.path}`);
  }
  const m = req.method;
  const notAllowed = (): never => {
    throw new ApiError(405, `${m} is not allowed on /api/v1${req.path}`);
  };
  switch (seg[0]) {
    case 'clients':
      return clients(seg, req, ctx, notAllowed);
    case 'presubscribe':
      if (seg[1] !== 'templates' || seg.length !== 2) break;
      if (m === 'GET') return ok({ templates: ctx.state.templates });
      if (m !== 'PUT') return notAllowed();
      return putTemplates(req.body, ctx);
    case 'directory':
      return directory(seg, req, ctx, notAllowed);
    case 'rules':
      return rules(seg, req, ctx, notAllowed);
    case 'publish':
      if (seg.length !== 1) break;
      if (m !== 'POST') return notAllowed();
      return publish(req.body, ctx);
  }
  throw new ApiError(404, `no such endpoint: /api/v1${req.path}`);
}

async function clients(seg: string[], req: AdminRequest, ctx: AdminContext, notAllowed: () => never): Promise<AdminResponse> {
  const m = req.method;
  if (seg.length === 1) {
    if (m !== 'GET') return notAllowed();
    return ok({ clients: await ctx.sessions(req.query.uid) });
  }
  const clientId = seg[1]!;
  if (seg.length === 2) {
    if (m === 'GET') return ctx.shardOp({ op: 'get', clientId });
    if (m === 'DELETE') return ctx.shardOp({ op: 'kick', clientId, discard: req.query.discard === 'true' });
    return notAllowed();
  }
  if (seg.length === 3 && seg[2] === 'subscriptions') {
    if (m === 'POST') {
      const b = object(req.body);
      const filter = b.filter;
      if (typeof filter !== 'string' || validateTopicFilter(filter, ctx.limits) !== null)
        throw new ApiError(400, `filter must be a valid topic filter (got ${JSON.stringify(filter)})`);
      return ctx.shardOp({ op: 'sub', clientId, filter, qos: qosOf(b.qos, 1) });
    }
    if (m === 'DELETE') {
      const filter = req.query.filter;
      if (!filter) throw new ApiError(400, 'the filter query parameter is required');
      return ctx.shardOp({ op: 'unsub', clientId, filter });
    }
    return notAllowed();
  }
  throw new ApiError(404, `no such endpoint: /api/v1${req.path}`);
}

async function putTemplates(body: unknown, ctx: AdminContext): Promise<AdminResponse> {
  const t = object(body).templates;
  if (!Array.isArray(t)) throw new ApiError(400, 'templates must be a list of topic templates');
  const templates = t.map((x, i) => {
    if (typeof x !== 'string') throw new ApiError(400, `templates[${i}] must be a string`);
    return parsed(() => parseTemplate(x));
  });
  ctx.state.templates = templates;
  await ctx.state.save();
  await ctx.templatesChanged();
  return ok({ templates });
}

async function directory(seg: string[], req: AdminRequest, ctx: AdminContext, notAllowed: () => never): Promise<AdminResponse> {
  const m = req.method;
  const dir = ctx.state.directory;
  if (seg.length === 1) {
    if (m !== 'GET') return notAllowed();
    return ok({ users: [...dir.values()] });
  }
  if (seg.length !== 2) throw new ApiError(404, `no such endpoint: /api/v1${req.path}`);
  const uid = seg[1]!;
  if (m === 'GET') {
    const e = dir.get(uid);
    if (!e) throw new ApiError(404, `no directory entry for uid "${uid}"`);
    return ok(e);
  }
  if (m === 'PUT') {
    const b = object(req.body);
    if (b.uid !== undefined && b.uid !== uid) throw new ApiError(400, `uid in the body ("${String(b.uid)}") differs from the path ("${uid}")`);
    const entry = parsed(() => parseDirectoryEntry({ ...b, uid }));
    dir.set(uid, entry);
    await ctx.state.save();
    await ctx.userChanged(uid, entry);
    return ok(entry);
  }
  if (m === 'DELETE') {
    if (!dir.delete(uid)) throw new ApiError(404, `no directory entry for uid "${uid}"`);
    await ctx.state.save();
    await ctx.userChanged(uid, undefined);
    return ok({ deleted: true });
  }
  return notAllowed();
}

async function rules(seg: string[], req: AdminRequest, ctx: AdminContext, notAllowed: () => never): Promise<AdminResponse> {
  const m = req.method;
  const st = ctx.state;
  const commit = async (next: RoutingRule[]): Promise<void> => {
    st.rules = next;
    await st.save();
    await ctx.rulesChanged();
  };
  if (seg.length === 1) {
    if (m === 'GET') return ok({ rules: st.rules });
    if (m !== 'POST') return notAllowed();
    const rule = parsed(() => parseRule(object(req.body)));
    if (st.rules.some((r) => r.id === rule.id)) throw new ApiError(409, `a rule with id "${rule.id}" exists`);
    await commit([...st.rules, rule]);
    return ok(rule, 201);
  }
  if (seg.length !== 2) throw new ApiError(404, `no such endpoint: /api/v1${req.path}`);
  const id = seg[1]!;
  const at = st.rules.findIndex((r) => r.id === id);
  if (m === 'PUT') {
    const b = object(req.body);
    if (b.id !== undefined && b.id !== id) throw new ApiError(400, `id in the body ("${String(b.id)}") differs from the path ("${id}")`);
    const rule = parsed(() => parseRule({ ...b, id }));
    // PUT creates or replaces; a replaced rule keeps its place in the evaluation order.
    await commit(at < 0 ? [...st.rules, rule] : st.rules.map((r, i) => (i === at ? rule : r)));
    return ok(rule);
  }
  if (at < 0) throw new ApiError(404, `no rule with id "${id}"`);
  if (m === 'GET') return ok(st.rules[at]);
  if (m === 'DELETE') {
    await commit(st.rules.filter((_, i) => i !== at));
    return ok({ deleted: true });
  }
  return notAllowed();
}

function publish(body: unknown, ctx: AdminContext): AdminResponse {
  const b = object(body);
  const topic = b.topic;
  if (typeof topic !== 'string' || validateTopicName(topic, ctx.limits) !== null || topic.startsWith('$'))
    throw new ApiError(400, `topic must be a valid topic name outside $-topics (got ${JSON.stringify(topic)})`);
  if (b.payload !== undefined && b.payloadBase64 !== undefined) throw new ApiError(400, 'give payload or payloadBase64, not both');
  let payload: Buffer;
  if (b.payloadBase64 !== undefined) {
    // Buffer's decoder skips junk silently; insist on the alphabet so a mistake is a 400.
    if (typeof b.payloadBase64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b.payloadBase64) || b.payloadBase64.length % 4 === 1)
      throw new ApiError(400, 'payloadBase64 must be a base64 string');
    payload = Buffer.from(b.payloadBase64, 'base64');
  }
  else if (b.payload === undefined || typeof b.payload === 'string') payload = Buffer.from((b.payload as string | undefined) ?? '', 'utf8');
  else throw new ApiError(400, 'payload must be a string (UTF-8); use payloadBase64 for binary');
  if (b.retain !== undefined && typeof b.retain !== 'boolean') throw new ApiError(400, 'retain must be true or false');
  const im = parseImTopic(topic);
  if (im && im.kind !== 'p') {
    // Even an administrator's message must be one IM clients can decode.
    const err = validateImPayload(payload);
    if (err) throw new ApiError(400, `payload is not a valid IM payload for ${topic}: ${err.message}`);
  }
  ctx.publish({ topic, payload, qos: qosOf(b.qos, 0), retain: b.retain === true });
  return ok({ published: true });
}
