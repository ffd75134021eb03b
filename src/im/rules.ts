/**
 * Message routing rules (IM-PROTOCOL.md section 5, paper figure 3): for every message
 * published on a topic matching a rule's source filter, the broker performs the rule's
 * action toward a destination topic built from a template. The classic use is "carbons":
 *
 *   { id: 'carbons', source: '/+/im/u/+', action: 'copy', destination: '/{1}/im/u/{sender}' }
 *
 * so that what Alice's PC sends to Jim also reaches Alice's phone.
 *
 * This module is pure: it validates rules, compiles them, and computes for one topic
 * which topics the message goes to. Not re-applying rules to the produced copies and not
 * echoing a copy to the publishing connection are the broker's job.
 */
import { validateTopicFilter, validateTopicName } from '../mqtt/topic.js';
import { NO_LIMITS, show } from './show.js';

export const RULE_ACTIONS = ['copy', 'move', 'drop'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

export interface RoutingRule {
  id: string;
  source: string;
  action: RuleAction;
  destination?: string;
}

/**
 * A rule that does not validate. `field` is 'id' | 'source' | 'action' | 'destination',
 * the unknown key, or '' when the rule itself is not an object. The message starts with
 * the field and quotes the offending value, so it can be shown to an operator as is.
 */
export class RuleError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
    this.name = 'RuleError';
  }
}


const RULE_KEYS: ReadonlySet<string> = new Set(['id', 'source', 'action', 'destination']);
const ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
// eslint-disable-next-line no-control-regex
const BAD_LITERAL = /[+#\u0000]/;

function fail(field: string, message: string): never {
  throw new RuleError(field, `${field}: ${message}`);
}

/** One piece of a destination template: literal text, or a value filled in per message. */
type Part =
  | { lit: string }
  | { ph: 'sender' }
  | { ph: 'clientid' }
  | { ph: 'wild'; n: number }; // 0-based wildcard index

/**
 * Splits a destination template into parts. Braces are reserved for placeholders: a '{'
 * must open one of the known placeholders and a lone '}' is an error, so a typo such as
 * `{sendr}` or `{1` is reported at load time instead of silently producing a topic with
 * braces in it.
 */
function parseDestination(dest: string, wildcards: number): Part[] {
  const parts: Part[] = [];
  let lit = '';
  const flushLiteral = (): void => {
    if (lit === '') return;
    if (BAD_LITERAL.test(lit)) {
      fail('destination', `literal text may not contain '+', '#' or NUL (it is a topic name, not a filter), got ${show(dest)}`);
    }
    parts.push({ lit });
    lit = '';
  };
  for (let i = 0; i < dest.length; i++) {
    const c = dest[i];
    if (c === '}') fail('destination', `'}' without a matching '{' at position ${i} in ${show(dest)}`);
    if (c !== '{') {
      lit += c;
      continue;
    }
    const close = dest.indexOf('}', i + 1);
    const name = close === -1 ? '' : dest.slice(i + 1, close);
    if (close === -1 || name.includes('{')) {
      fail('destination', `unterminated placeholder at position ${i} in ${show(dest)}`);
    }
    flushLiteral();
    if (name === 'sender' || name === 'clientid') {
      parts.push({ ph: name });
    } else if (/^[0-9]+$/.test(name)) {
      const n = Number(name);
      if (n < 1 || n > wildcards) {
        const has = wildcards === 0 ? 'no wildcards' : `only ${wildcards} wildcard${wildcards === 1 ? '' : 's'}`;
        fail('destination', n < 1 ? `placeholder {${name}}: wildcards are numbered from 1` : `placeholder {${name}} but the source has ${has}`);
      }
      parts.push({ ph: 'wild', n: n - 1 });
    } else {
      fail('destination', `unknown placeholder {${name}} in ${show(dest)} (known: {sender}, {clientid}, {1}..{N})`);
    }
    i = close;
  }
  flushLiteral();
  return parts;
}

function countWildcards(filter: string): number {
  let n = 0;
  for (const level of filter.split('/')) if (level === '+' || level === '#') n++;
  return n;
}

/**
 * Validates and normalises (rebuilds the object; absent keys stay absent). Errors name
 * the field and the value, e.g. `destination: placeholder {3} but the source has only 2
 * wildcards`.
 * id: 1..64 chars of [A-Za-z0-9_.-]. source: a valid topic filter, not starting with '$'.
 * action: one of RULE_ACTIONS. destination: required for copy/move, must be absent for
 * drop; literal parts must contain no '+', '#', NUL; placeholders are {sender},
 * {clientid}, {N} with N in 1..(number of wildcards in source). Unknown keys -> RuleError
 * naming the key.
 */
export function parseRule(raw: unknown): RoutingRule {
  return checkRule(raw).rule;
}

interface Checked {
  rule: RoutingRule;
  parts: Part[] | undefined;
}

function checkRule(raw: unknown): Checked {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new RuleError('', `a routing rule must be an object, got ${show(raw)}`);
  }
  const r = raw as Record<string, unknown>;
  // Unknown keys first: a misspelt "destinaton" would otherwise surface as the less
  // helpful "destination is required".
  for (const key of Object.keys(r)) {
    if (!RULE_KEYS.has(key)) fail(key, `unknown key (allowed: id, source, action, destination)`);
  }

  const { id, source, action, destination } = r;
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    fail('id', `must be 1..64 characters of [A-Za-z0-9_.-], got ${show(id)}`);
  }
  if (typeof source !== 'string') fail('source', `must be a topic filter string, got ${show(source)}`);
  const problem = validateTopicFilter(source, NO_LIMITS);
  if (problem !== null) fail('source', `invalid topic filter ${show(source)} (${problem})`);
  // '$' topics are the server's own; rules re-publishing them would leak or forge them.
  if (source.startsWith('$')) fail('source', `may not start with '$' (server topics), got ${show(source)}`);
  if (typeof action !== 'string' || !(RULE_ACTIONS as readonly string[]).includes(action)) {
    fail('action', `must be one of ${RULE_ACTIONS.join(', ')}, got ${show(action)}`);
  }
  const act = action as RuleAction;

  if (act === 'drop') {
    if (destination !== undefined) fail('destination', `must be absent for action drop, got ${show(destination)}`);
    return { rule: { id, source, action: act }, parts: undefined };
  }
  if (destination === undefined) fail('destination', `is required for action ${act}`);
  if (typeof destination !== 'string') fail('destination', `must be a topic template string, got ${show(destination)}`);
  if (destination === '') fail('destination', 'must not be empty');
  // Checked on the template text: no substituted value may start with '$' either, so a
  // template that does can never produce a usable topic.
  if (destination.startsWith('$')) fail('destination', `may not start with '$' (server topics), got ${show(destination)}`);
  const parts = parseDestination(destination, countWildcards(source));
  return { rule: { id, source, action: act, destination }, parts };
}

export interface CompiledRules {
  readonly size: number;
}

interface CompiledRule {
  readonly rule: RoutingRule;
  /** The source filter split into levels once, so matching never re-splits it. */
  readonly levels: readonly string[];
  readonly parts: readonly Part[] | undefined;
}

/**
 * The compiled table. A class (not exported) so applyRules can tell a real table from a
 * look-alike `{ size }` object instead of crashing on a missing field.
 */
class RuleTable implements CompiledRules {
  /**
   * The literal start of each rule's source, up to its first wildcard: a topic that starts
   * with none of them matches no rule, which is decided without splitting the topic (most
   * of a broker's traffic when the rules cover only the IM tree).
   */
  private readonly prefixes: string[];

  constructor(readonly compiled: readonly CompiledRule[]) {
    this.prefixes = compiled.map((r) => literalPrefix(r.levels));
  }

  get size(): number {
    return this.compiled.length;
  }

  mayMatch(topic: string): boolean {
    for (const p of this.prefixes) if (topic.startsWith(p)) return true;
    return false;
  }
}

/** `a/b/+/c` -> `a/b/`; `a/#` -> `a` (`#` also matches the parent level); no wildcard: the whole filter. */
function literalPrefix(levels: readonly string[]): string {
  const w = levels.findIndex((l) => l === '+' || l === '#');
  if (w < 0) return levels.join('/');
  const head = levels.slice(0, w).join('/');
  return w > 0 && levels[w] === '+' ? head + '/' : head;
}

/** The outcome when no rule applies; shared (callers only read outcomes). */
const UNTOUCHED: RuleOutcome = Object.freeze({ deliverOriginal: true, copies: Object.freeze([]) as unknown as string[], skipped: 0 });

/**
 * Validates every rule (throws RuleError like parseRule, and for a repeated id, since the
 * admin API addresses rules by id) and precompiles source filters and destination
 * templates once, so applyRules does no parsing per message.
 */
export function compileRules(rules: readonly RoutingRule[]): CompiledRules {
  const seen = new Set<string>();
  const compiled: CompiledRule[] = [];
  for (const raw of rules) {
    const { rule, parts } = checkRule(raw);
    if (seen.has(rule.id)) fail('id', `duplicate rule id ${show(rule.id)}`);
    seen.add(rule.id);
    compiled.push({ rule, levels: rule.source.split('/'), parts });
  }
  return new RuleTable(compiled);
}

export interface RuleContext {
  sender?: string;
  clientId: string;
}

export interface RuleOutcome {
  deliverOriginal: boolean;
  copies: string[];
  skipped: number;
}

/** Reference-style match (same semantics as matchTopic) on pre-split levels. */
function matches(f: readonly string[], t: readonly string[]): boolean {
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    // '#' also matches the parent level: `a/#` matches `a` [MQTT-4.7.1-2].
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** The wildcard matches of a filter that is known to match; '#' takes the rest ('' if none). */
function captures(f: readonly string[], t: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '+') out.push(t[i]);
    else if (f[i] === '#') out.push(t.slice(i).join('/'));
  }
  return out;
}

// eslint-disable-next-line no-control-regex
const NOT_ONE_LEVEL = /[/+#\u0000]/;

/** The destination topic for one message, or null when the rule must be skipped. */
function expand(parts: readonly Part[], caps: readonly string[], ctx: RuleContext): string | null {
  let out = '';
  for (const p of parts) {
    if ('lit' in p) {
      out += p.lit;
      continue;
    }
    if (p.ph === 'wild') {
      // Levels of a valid topic name: '#' captures may span levels, which is intended.
      out += caps[p.n];
      continue;
    }
    const v = p.ph === 'sender' ? ctx.sender : ctx.clientId;
    if (v === undefined) return null;
    // Identities are chosen by clients; one containing '/' (or a wildcard) must not
    // steer the copy into another part of the topic tree.
    if (NOT_ONE_LEVEL.test(v)) return null;
    out += v;
  }
  // Catches '', the wire length limit, and (defensively) wildcards or NUL; '$' because a
  // rule must never publish into server topics, whatever a substituted value begins with.
  if (validateTopicName(out, NO_LIMITS) !== null || out.charCodeAt(0) === 0x24) return null;
  return out;
}

/**
 * Every rule whose source matches the topic applies, in order.
 * copy: original delivered, destination added to copies. move: original not delivered,
 * destination added. drop: nothing is delivered at all (deliverOriginal false, copies
 * emptied, later rules ignored).
 * Placeholders: {sender} = ctx.sender (if undefined the action is skipped: skipped++),
 * {clientid} = ctx.clientId, {N} = the N-th wildcard's match (1-based; '+' one level;
 * '#' the remaining levels joined with '/', possibly '').
 * An expanded destination that is not a valid topic name (empty, contains + # or NUL,
 * starts with '$', or a substituted value containing '/' for {sender}/{clientid})
 * -> skipped++. A skipped action has no effect at all: a move that cannot be performed
 * leaves the original delivered rather than losing the message.
 * copies are de-duplicated and never contain the original topic itself. The outcome is
 * the set of topics the message is published on: a copy or move whose destination is the
 * original topic therefore means "deliver the original" (once), never a second delivery.
 */
export function applyRules(c: CompiledRules, topic: string, ctx: RuleContext): RuleOutcome {
  if (!(c instanceof RuleTable)) throw new TypeError('applyRules: expected the result of compileRules');
  const rules = c.compiled;
  // No rule can match a '$' topic: sources never start with '$', and a filter starting
  // with a wildcard does not match '$' topics [MQTT-4.7.2-1]. Checking once here also
  // spares the split on the most frequent system traffic.
  if (rules.length === 0 || topic.charCodeAt(0) === 0x24 || !c.mayMatch(topic)) return UNTOUCHED;
  const out: RuleOutcome = { deliverOriginal: true, copies: [], skipped: 0 };
  const levels = topic.split('/');
  for (const r of rules) {
    if (!matches(r.levels, levels)) continue;
    if (r.rule.action === 'drop') {
      out.deliverOriginal = false;
      out.copies = [];
      return out;
    }
    const dest = expand(r.parts!, captures(r.levels, levels), ctx);
    if (dest === null) {
      out.skipped++;
      continue;
    }
    if (r.rule.action === 'move') out.deliverOriginal = false;
    if (dest === topic) out.deliverOriginal = true;
    else if (!out.copies.includes(dest)) out.copies.push(dest);
  }
  return out;
}
