// Topic access control lists.
//
// Rules are evaluated in order; the FIRST rule that matches decides
// (allow -> true, deny -> false). When no rule matches, `aclDefault` decides.
// A rule applies to an action when its permission is that action or 'all',
// and to a client only when its optional `username` / `clientId` equal the
// client's exactly (a rule with `username` never applies to an anonymous
// client).
//
// Placeholders: in a rule's topic, `%u` is replaced by the client's username
// and `%c` by its client id, in a single pass (a username containing "%c" is
// inserted literally, never re-expanded). The substituted string is then
// used as the rule's filter. A rule does NOT match at all when
//   - it uses `%u` and the client has no username, or
//   - a substituted value contains `+`, `#`, `/` or U+0000.
// The second case prevents identity-controlled widening: with
// `allow subscribe %u` a user named `#` would be granted `#` (everything);
// with `allow all users/%u/inbox` a user named `+` would get every user's
// inbox; with `allow all users/%u/#` a user named `a/b` would reach into
// user `a`'s tree. Usernames and client ids are chosen by clients, so they
// may only ever fill one literal level (or part of one). The flip side: such
// a client also escapes DENY rules that use the placeholder, so prefer
// `aclDefault: deny` plus allow rules when identities are untrusted.
//
// Matching semantics:
//   publish(topic):  a rule matches when matchTopic(ruleFilter, topic).
//   subscribe(filter):
//     - an ALLOW rule matches only when the rule filter COVERS the requested
//       filter: every topic the requested filter can match is also matched
//       by the rule filter (rule `a/#` covers `a/+/b`; rule `a/+` does not
//       cover `a/#`). Granting a subscription that could deliver topics the
//       rule does not allow would leak them.
//     - a DENY rule matches when the two filters OVERLAP: some topic matches
//       both (rule `a/secret` denies `a/#` and `+/+`). Otherwise a wildcard
//       subscription would route the denied topic anyway.
//   Both follow MQTT's `$` rule [MQTT-4.7.2-1]: filters starting with `+` or
//   `#` never match topics starting with `$`, so `allow all #` does not grant
//   `$SYS/...`; write `$SYS/#` explicitly.
//
// Shared subscriptions: pass canSubscribe the filter proper, i.e. the part
// after `$share/<group>/`; the ACL reasons about topics, not groups.
// Invalid topic names / filters are refused (false) regardless of rules.
import { matchTopic, validateTopicFilter, validateTopicName } from '../mqtt/topic.js';
import type { TopicLimits } from '../mqtt/topic.js';

import type { AclAction, AclRule } from '../config/schema.js';
// The rule type is the configuration's own, so config rules pass straight in.
export type { AclAction, AclPermission, AclRule } from '../config/schema.js';

export interface AclContext {
  readonly username?: string;
  readonly clientId: string;
}

export interface Acl {
  canPublish(ctx: AclContext, topic: string): boolean;
  canSubscribe(ctx: AclContext, filter: string): boolean;
}

export class AclError extends Error {
  readonly code = 'ACL_INVALID' as const;
  /** 0-based index of the offending rule. */
  readonly ruleIndex: number;

  constructor(ruleIndex: number, reason: string) {
    super(`acl rule #${ruleIndex}: ${reason}`);
    this.name = 'AclError';
    this.ruleIndex = ruleIndex;
  }
}

// Only syntax matters here; size limits are the protocol layer's business.
const NO_LIMITS: TopicLimits = { maxTopicLength: 65535, maxTopicLevels: Number.MAX_SAFE_INTEGER };

const PLACEHOLDER = /%[uc]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_VALUE = /[+#/\u0000]/;

function isWildcardLevel(level: string): boolean {
  return level === '+' || level === '#';
}

function isDollarLevel(level: string): boolean {
  return level.startsWith('$');
}

/**
 * True when every topic matched by `inner` is also matched by `outer`
 * (both must be valid topic filters). Reflexive; e.g. `#` covers `a/+`,
 * `a/#` covers `a`, `a/+` does not cover `a/#`, and `+/x` does not cover
 * `$SYS/x` because of the `$` rule.
 */
export function filterCovers(outer: string, inner: string): boolean {
  const o = outer.split('/');
  const n = inner.split('/');
  // `inner` can match a `$` topic only through a literal `$...` first level;
  // `outer` cannot match any `$` topic through a leading wildcard.
  if (isDollarLevel(n[0] as string) && isWildcardLevel(o[0] as string)) return false;
  for (let i = 0; ; i++) {
    const ol = o[i];
    const nl = n[i];
    // `#` matches any remainder, including none (`a/#` matches `a`).
    if (ol === '#') return true;
    if (ol === undefined) return nl === undefined;
    // inner ended: it matches topics with exactly i levels, outer needs more.
    if (nl === undefined) return false;
    // inner `#` matches remainders of any length, so normally only an outer
    // `#` covers it. But the empty string is not a topic: where the prefix
    // so far could only spell "" (at the start, or after a single empty
    // level), inner `#` needs at least one more level, and `+/#` matches
    // exactly those remainders (`#` = `+/#`, `/#` = `/+/#`).
    if (nl === '#') {
      const needsLevel = i === 0 || (i === 1 && n[0] === '');
      return needsLevel && ol === '+' && o[i + 1] === '#';
    }
    // inner `+` matches every value of this level; a literal covers only one.
    if (nl === '+' && ol !== '+') return false;
    if (ol !== '+' && ol !== nl) return false;
  }
}

/**
 * True when at least one topic matches both filters (both must be valid
 * topic filters). Symmetric; e.g. `a/#` and `+/b` overlap (`a/b`), `a` and
 * `a/#` overlap (`a`), `+/x` and `$SYS/x` do not.
 */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  const x0 = x[0] as string;
  const y0 = y[0] as string;
  // A shared topic must start with `$` to match a literal `$...` level, and
  // must not start with `$` to match a leading wildcard.
  if ((isDollarLevel(x0) && isWildcardLevel(y0)) || (isDollarLevel(y0) && isWildcardLevel(x0))) {
    return false;
  }
  for (let i = 0; ; i++) {
    const xl = x[i];
    const yl = y[i];
    // `#` absorbs whatever the other filter still needs (any filter suffix
    // matches at least one sequence of levels), or nothing at all.
    if (xl === '#' || yl === '#') {
      // Exception: if the other filter ends here, the shared topic has
      // exactly i levels; with i = 1 and a literal empty first level that
      // topic would be "", which is not a topic (`+` vs `/#`).
      const otherEnded = xl === undefined || yl === undefined;
      return !(otherEnded && i === 1 && (x0 === '' || y0 === ''));
    }
    if (xl === undefined || yl === undefined) return xl === yl;
    if (xl !== '+' && yl !== '+' && xl !== yl) return false;
  }
}

interface CompiledRule {
  readonly allow: boolean;
  readonly username: string | undefined;
  readonly clientId: string | undefined;
  readonly topic: string;
  readonly usesUsername: boolean;
  readonly usesClientId: boolean;
}

function compileRule(rule: AclRule, index: number): CompiledRule {
  if (rule === null || typeof rule !== 'object') throw new AclError(index, 'not an object');
  if (rule.action !== 'allow' && rule.action !== 'deny') {
    throw new AclError(index, `action must be "allow" or "deny", got ${JSON.stringify(rule.action)}`);
  }
  if (rule.permission !== 'publish' && rule.permission !== 'subscribe' && rule.permission !== 'all') {
    throw new AclError(
      index,
      `permission must be "publish", "subscribe" or "all", got ${JSON.stringify(rule.permission)}`,
    );
  }
  if (typeof rule.topic !== 'string') throw new AclError(index, 'topic must be a string');
  for (const key of ['username', 'clientId'] as const) {
    const value = rule[key];
    if (value !== undefined && typeof value !== 'string') {
      throw new AclError(index, `${key} must be a string when present`);
    }
  }
  // Validate the shape the filter will have after substitution; any safe
  // value is a plain literal, so 'x' is representative.
  const problem = validateTopicFilter(rule.topic.replace(PLACEHOLDER, 'x'), NO_LIMITS);
  if (problem !== null) {
    throw new AclError(index, `invalid topic filter ${JSON.stringify(rule.topic)} (${problem})`);
  }
  return {
    allow: rule.action === 'allow',
    username: rule.username,
    clientId: rule.clientId,
    topic: rule.topic,
    usesUsername: rule.topic.includes('%u'),
    usesClientId: rule.topic.includes('%c'),
  };
}

function isSafeValue(value: string): boolean {
  return !UNSAFE_VALUE.test(value);
}

/**
 * The rule's filter for this client, or null when the rule cannot apply
 * (identity constraint unmet, or a placeholder cannot be filled safely).
 */
function ruleFilterFor(rule: CompiledRule, ctx: AclContext): string | null {
  if (rule.username !== undefined && ctx.username !== rule.username) return null;
  if (rule.clientId !== undefined && ctx.clientId !== rule.clientId) return null;
  if (!rule.usesUsername && !rule.usesClientId) return rule.topic;
  const { username, clientId } = ctx;
  if (rule.usesUsername && (username === undefined || !isSafeValue(username))) return null;
  if (rule.usesClientId && !isSafeValue(clientId)) return null;
  return rule.topic.replace(PLACEHOLDER, (p) => (p === '%u' ? (username as string) : clientId));
}

/**
 * Compiles ACL rules. Throws AclError for a malformed rule (bad action or
 * permission, or a topic that is not a valid filter), naming its index.
 */
export function compileAcl(rules: readonly AclRule[], aclDefault: AclAction): Acl {
  if (aclDefault !== 'allow' && aclDefault !== 'deny') {
    throw new AclError(-1, `aclDefault must be "allow" or "deny", got ${JSON.stringify(aclDefault)}`);
  }
  const compiled = rules.map(compileRule);
  // Pre-split by action; order within each list is preserved, which is all
  // first-match-wins needs.
  const publishRules = compiled.filter((_, i) => rules[i]?.permission !== 'subscribe');
  const subscribeRules = compiled.filter((_, i) => rules[i]?.permission !== 'publish');
  const fallback = aclDefault === 'allow';

  return {
    canPublish(ctx, topic) {
      if (validateTopicName(topic, NO_LIMITS) !== null) return false;
      for (const rule of publishRules) {
        const filter = ruleFilterFor(rule, ctx);
        if (filter !== null && matchTopic(filter, topic)) return rule.allow;
      }
      return fallback;
    },
    canSubscribe(ctx, filter) {
      if (validateTopicFilter(filter, NO_LIMITS) !== null) return false;
      for (const rule of subscribeRules) {
        const ruleFilter = ruleFilterFor(rule, ctx);
        if (ruleFilter === null) continue;
        const matches = rule.allow
          ? filterCovers(ruleFilter, filter)
          : filtersOverlap(ruleFilter, filter);
        if (matches) return rule.allow;
      }
      return fallback;
    },
  };
}
