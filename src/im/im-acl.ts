/**
 * The default IM ACL: who may publish to and subscribe to the IM topics of section 2 of
 * IM-PROTOCOL.md. It runs in addition to the configured MQTT ACL (both must allow), and
 * superusers bypass it (the channel layer decides that, not this module).
 *
 * The policy is deliberately a short allow-list of exact filters rather than a
 * "covers" computation: an inbox is private to its user, so any wildcard that could reach
 * into inboxes (`/acme/im/u/+`, `/acme/im/#`, `#`) is refused outright, while the
 * wildcard a client legitimately needs (everyone's presence in its namespace) is listed
 * explicitly.
 */
import { filterMayMatchImTopic, groupTopic, inboxTopic, isTopicLevelId } from './topics.js';
import type { ImTopic } from './topics.js';

export interface ImUser {
  uid: string;
  ns: string;
  groups: readonly string[];
}

/**
 * Publishing to an IM topic: no user -> false; presence ('p') -> never (the broker
 * maintains presence); 'u' and 'g' -> only in the user's own namespace (t.ns === user.ns);
 * 'other' -> false.
 */
export function imCanPublish(user: ImUser | undefined, t: ImTopic): boolean {
  if (user === undefined) return false;
  switch (t.kind) {
    // Writing to anyone's inbox in the namespace is the point of an inbox. Group
    // membership is not required for 'g': the spec keeps publishing namespace-wide, so
    // e.g. a bot can post to a group without reading it.
    case 'u':
    case 'g':
      return t.ns === user.ns;
    // Presence is retained and broker-made; a client writing it could fake anyone's
    // online state.
    case 'p':
      return false;
    case 'other':
      return false;
  }
}

/**
 * Subscribing: a filter that cannot match any IM topic -> true (not the IM ACL's
 * business). Otherwise allowed only if the filter is exactly one of:
 * inboxTopic(user.ns, user.uid); `/${user.ns}/im/p/+`; presenceTopic(user.ns, x) for any
 * single literal level x; groupTopic(user.ns, g) for g in user.groups.
 * Everything else that may match IM topics (e.g. '#', '/+/im/u/+', someone else's inbox,
 * a group the user is not in) -> false. No user -> false.
 */
export function imCanSubscribe(user: ImUser | undefined, filter: string): boolean {
  if (!filterMayMatchImTopic(filter)) return true;
  if (user === undefined) return false;
  // The user's identifiers are spliced into the allowed filters, so an identifier that is
  // not a plain level (a uid '+', a namespace 'a/b') would turn an exact grant into a
  // wildcard one. Such a profile grants nothing rather than something unintended.
  if (!isTopicLevelId(user.ns)) return false;

  // Exactly `/{ns}/im/{k}/{x}`: five levels with the user's namespace.
  const prefix = `/${user.ns}/im/`;
  if (!filter.startsWith(prefix)) return false;
  const rest = filter.slice(prefix.length);
  if (rest.length < 3 || rest.charCodeAt(1) !== 0x2f /* '/' */) return false;
  const x = rest.slice(2);
  switch (rest[0]) {
    case 'u':
      return isTopicLevelId(user.uid) && filter === inboxTopic(user.ns, user.uid);
    case 'p':
      // Presence is public within the namespace: the single-level wildcard or any one
      // literal user. x is non-empty here, so the topic really is a presence topic.
      return x === '+' || isLiteralLevel(x);
    case 'g':
      return isTopicLevelId(x) && user.groups.includes(x) && filter === groupTopic(user.ns, x);
    default:
      return false;
  }
}

/** One literal topic level: no separator, no wildcard, no NUL. */
function isLiteralLevel(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[/+#\u0000]/.test(s);
}
