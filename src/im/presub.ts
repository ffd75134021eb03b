/**
 * Pre-subscription lists (IM-PROTOCOL.md section 4, paper figure 2): the topics the broker
 * subscribes a session to on the user's behalf, so a mobile client need not send
 * SUBSCRIBE for each of them. The list is built from configured templates (e.g.
 * `/{ns}/im/u/{uid}`) plus the user's directory entry (groups, extra topics).
 *
 * Pure: the coordinator looks the entry up and applies the result to the session.
 */
import { validateTopicFilter } from '../mqtt/topic.js';
import { groupTopic, isTopicLevelId } from './topics.js';
import { NO_LIMITS, show } from './show.js';

export interface DirectoryEntry {
  uid: string;
  ns?: string;
  groups?: string[];
  topics?: string[];
}

/**
 * A directory entry or template that does not validate. `field` is 'uid' | 'ns' |
 * 'groups' | 'topics' | the unknown key | 'templates', or '' when the entry itself is
 * not an object. The message starts with the field and quotes the offending value.
 */
export class DirectoryError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
    this.name = 'DirectoryError';
  }
}


const ENTRY_KEYS: ReadonlySet<string> = new Set(['uid', 'ns', 'groups', 'topics']);

function fail(field: string, message: string): never {
  throw new DirectoryError(field, `${field}: ${message}`);
}

const ID_RULE = "non-empty, at most 128 characters, no '/', '+', '#' or NUL, not starting with '$'";

/** Why `filter` is not acceptable as a subscription filter here, or null. */
function filterProblem(filter: string): string | null {
  const problem = validateTopicFilter(filter, NO_LIMITS);
  if (problem !== null) return problem;
  // '$' topics are the server's; a user's pre-subscriptions have no business there, and
  // the ACL would not be consulted for them.
  if (filter.startsWith('$')) return "starts with '$'";
  return null;
}

function stringList(field: string, v: unknown, check: (s: string) => string | null): string[] {
  if (!Array.isArray(v)) fail(field, `must be an array of strings, got ${show(v)}`);
  const out: string[] = [];
  for (let i = 0; i < v.length; i++) {
    const s: unknown = v[i];
    if (typeof s !== 'string') fail(field, `[${i}] must be a string, got ${show(s)}`);
    const problem = check(s);
    if (problem !== null) fail(field, `[${i}] ${problem}, got ${show(s)}`);
    // De-duplicated here so later consumers (the ACL's group list, subscribe calls)
    // never see the same item twice.
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

/**
 * Validates: uid, ns and every group with isTopicLevelId; topics are valid topic filters
 * (not '$'); unknown keys rejected naming the key; groups/topics de-duplicated.
 * Rebuilds the object; absent keys stay absent.
 */
export function parseDirectoryEntry(raw: unknown): DirectoryEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new DirectoryError('', `a directory entry must be an object, got ${show(raw)}`);
  }
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    if (!ENTRY_KEYS.has(key)) fail(key, 'unknown key (allowed: uid, ns, groups, topics)');
  }
  const { uid, ns, groups, topics } = r;
  if (typeof uid !== 'string' || !isTopicLevelId(uid)) fail('uid', `must be ${ID_RULE}, got ${show(uid)}`);
  const entry: DirectoryEntry = { uid };
  if (ns !== undefined) {
    if (typeof ns !== 'string' || !isTopicLevelId(ns)) fail('ns', `must be ${ID_RULE}, got ${show(ns)}`);
    entry.ns = ns;
  }
  if (groups !== undefined) {
    entry.groups = stringList('groups', groups, (g) => (isTopicLevelId(g) ? null : `must be ${ID_RULE}`));
  }
  if (topics !== undefined) {
    entry.topics = stringList('topics', topics, (t) => {
      const problem = filterProblem(t);
      return problem === null ? null : `is not a valid topic filter (${problem})`;
    });
  }
  return entry;
}

type TemplateName = 'ns' | 'uid' | 'clientid';
type TemplatePart = string | { name: TemplateName };

/**
 * Splits a template into literal text and placeholders, or returns why it cannot be.
 * Braces are reserved for placeholders (as in routing rule destinations), so a typo such
 * as `{user}` is an error at load time rather than a literal level nobody publishes to.
 */
function splitTemplate(t: string): TemplatePart[] | string {
  const parts: TemplatePart[] = [];
  let lit = '';
  for (let i = 0; i < t.length; i++) {
    const c = t[i];
    if (c === '}') return `'}' without a matching '{' at position ${i}`;
    if (c !== '{') {
      lit += c;
      continue;
    }
    const close = t.indexOf('}', i + 1);
    const name = close === -1 ? '' : t.slice(i + 1, close);
    if (close === -1 || name.includes('{')) return `unterminated placeholder at position ${i}`;
    if (name !== 'ns' && name !== 'uid' && name !== 'clientid') {
      return `unknown placeholder {${name}} (known: {ns}, {uid}, {clientid})`;
    }
    if (lit !== '') parts.push(lit);
    lit = '';
    parts.push({ name });
    i = close;
  }
  if (lit !== '') parts.push(lit);
  return parts;
}

/** Joins the parts with the given values; null when a used value is not one plain level. */
function fill(parts: readonly TemplatePart[], values: Readonly<Record<TemplateName, string>>): string | null {
  let out = '';
  for (const p of parts) {
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    const v = values[p.name];
    // Client ids in particular are often `alice/phone`: spliced in, such a value would
    // subscribe the session to a different topic than the template means.
    if (!isTopicLevelId(v)) return null;
    out += v;
  }
  return out;
}

// Any value that passes isTopicLevelId is a plain literal, so one such value stands for
// them all when checking the template's shape.
const SAMPLE: Readonly<Record<TemplateName, string>> = { ns: 'x', uid: 'x', clientid: 'x' };

/**
 * Templates may use {ns}, {uid}, {clientid}; anything else in braces is an error; must be
 * a valid topic filter once expanded with sample values (and, like directory topics, not
 * start with '$'). Throws DirectoryError('templates', ...). Returns the template.
 */
export function parseTemplate(t: string): string {
  const parts = splitTemplate(t);
  if (typeof parts === 'string') fail('templates', `${parts} in ${show(t)}`);
  const problem = filterProblem(fill(parts, SAMPLE)!);
  if (problem !== null) fail('templates', `${show(t)} is not a valid topic filter once expanded (${problem})`);
  return t;
}

/**
 * The topics a session is subscribed to on behalf of the user: each template expanded
 * (skipped if a substituted value is not a valid single level), then groupTopic(ns, g)
 * for each of entry.groups, then entry.topics; de-duplicated, order preserved.
 * ns = entry?.ns ?? ctx.ns.
 *
 * Never throws: it runs while a client connects, so an item that is not a valid filter
 * (a template or entry that skipped parseTemplate / parseDirectoryEntry, a namespace that
 * is not a plain level) is left out instead of failing the connection.
 */
export function expandPresub(
  templates: readonly string[],
  entry: DirectoryEntry | undefined,
  ctx: { uid: string; ns: string; clientId: string },
): string[] {
  const ns = entry?.ns ?? ctx.ns;
  const values = { ns, uid: ctx.uid, clientid: ctx.clientId };
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (filter: string | null): void => {
    if (filter === null || seen.has(filter) || filterProblem(filter) !== null) return;
    seen.add(filter);
    out.push(filter);
  };
  for (const t of templates) {
    const parts = splitTemplate(t);
    if (typeof parts !== 'string') add(fill(parts, values));
  }
  if (isTopicLevelId(ns)) {
    for (const g of entry?.groups ?? []) if (isTopicLevelId(g)) add(groupTopic(ns, g));
  }
  for (const topic of entry?.topics ?? []) add(topic);
  return out;
}
