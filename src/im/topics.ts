/**
 * The IM topic scheme of IM-PROTOCOL.md section 2:
 *
 *   /{ns}/im/u/{uid}   a user's inbox
 *   /{ns}/im/g/{gid}   a group conversation   (added)
 *   /{ns}/im/p/{uid}   a user's presence      (added; retained, broker-maintained)
 *
 * The leading '/' is part of the scheme, so the first level is always empty. Anything
 * else below `/{ns}/im` is still an IM topic (kind 'other'): the IM layer owns the whole
 * `im` category of a namespace, so the IM ACL must see those topics too, even though no
 * client may use them by default.
 */

export type ImTopicKind = 'u' | 'g' | 'p' | 'other';

export interface ImTopic {
  ns: string;
  kind: ImTopicKind;
  id: string;
}

const SLASH = 0x2f; // '/'

/**
 * IM topic: levels[0] === '' && levels.length >= 3 && levels[1] !== '' && levels[2] === 'im'.
 * kind is 'u' | 'g' | 'p' only when there are exactly 5 levels, levels[3] is that letter and
 * levels[4] !== ''; otherwise kind 'other' and id = levels after 'im' joined with '/'
 * ('' if none). Returns null for non-IM topics.
 */
export function parseImTopic(topic: string): ImTopic | null {
  // Runs on every PUBLISH when the IM layer is on: reject the common non-IM topics
  // (which rarely start with '/') with index arithmetic before allocating anything.
  if (topic.charCodeAt(0) !== SLASH) return null;
  const nsEnd = topic.indexOf('/', 1);
  if (nsEnd <= 1) return null; // fewer than 3 levels, or an empty namespace level
  // levels[2] must be exactly "im": followed by '/' or by the end of the topic.
  if (!topic.startsWith('im', nsEnd + 1)) return null;
  const afterIm = nsEnd + 3;
  if (afterIm < topic.length && topic.charCodeAt(afterIm) !== SLASH) return null;

  const ns = topic.slice(1, nsEnd);
  if (afterIm >= topic.length) return { ns, kind: 'other', id: '' };
  const rest = topic.slice(afterIm + 1); // levels after 'im', joined with '/'
  // Exactly two more levels, the first a single kind letter, the second non-empty.
  if (rest.length >= 3 && rest.charCodeAt(1) === SLASH && rest.indexOf('/', 2) === -1) {
    const k = rest[0];
    if (k === 'u' || k === 'g' || k === 'p') return { ns, kind: k, id: rest.slice(2) };
  }
  return { ns, kind: 'other', id: rest };
}

// The builders do not validate: callers hold identifiers that already passed
// isTopicLevelId (directory, authentication), and these run on hot paths.

/** `/${ns}/im/u/${uid}` */
export function inboxTopic(ns: string, uid: string): string {
  return `/${ns}/im/u/${uid}`;
}

/** `/${ns}/im/g/${gid}` */
export function groupTopic(ns: string, gid: string): string {
  return `/${ns}/im/g/${gid}`;
}

/** `/${ns}/im/p/${uid}` */
export function presenceTopic(ns: string, uid: string): string {
  return `/${ns}/im/p/${uid}`;
}

/**
 * True when at least one IM topic (as defined by parseImTopic) matches the MQTT filter
 * (with + and #). E.g. '#', '+/#', '/#', '/+/+/u/+', '/acme/im/u/+' -> true;
 * 'a/#', '/acme/chat/#', '$SYS/#' -> false.
 *
 * Levels are read the way matchTopic reads them ('+' and '#' are wildcards only as a
 * whole level), so this agrees with the broker's matcher on every filter. Pass the
 * filter proper of a shared subscription (after `$share/<group>/`).
 */
export function filterMayMatchImTopic(filter: string): boolean {
  // An IM topic constrains only its first three levels ('' / non-empty / 'im'); past
  // them any continuation exists, so the filter's remaining levels never matter.
  // IM topics start with an empty level, never '$', so MQTT's rule that wildcard-led
  // filters skip '$' topics [MQTT-4.7.2-1] cannot exclude any of them.
  const levels = filter.split('/', 3);
  for (let i = 0; i < 3; i++) {
    const f = levels[i];
    // The filter ended before level 3: it only matches topics with fewer than 3
    // levels, and no IM topic is that short.
    if (f === undefined) return false;
    // '#' matches any continuation, including an IM one from this level on.
    if (f === '#') return true;
    if (f === '+') continue; // the IM topic can put the level it needs here
    if (i === 0 && f !== '') return false;
    if (i === 1 && f === '') return false;
    if (i === 2 && f !== 'im') return false;
  }
  return true;
}

/** Characters that would change the meaning of a topic level: '/', '+', '#', NUL. */
// eslint-disable-next-line no-control-regex
const LEVEL_BREAKERS = /[/+#\u0000]/;

/** Longest identifier accepted (UTF-16 code units); keeps topics and logs bounded. */
const MAX_ID_LENGTH = 128;

/**
 * An identifier usable as one topic level (uid, group id, namespace): non-empty, at most
 * 128 chars, no '/', '+', '#', NUL, not starting with '$'.
 *
 * Identifiers are spliced into topics and filters (inboxTopic, ACL grants, pre-subscription
 * templates), so one that contained a separator or wildcard would widen what a user can
 * read: a uid '+' would make `/acme/im/u/+` "the user's own inbox".
 */
export function isTopicLevelId(s: string): boolean {
  return (
    s.length > 0 &&
    s.length <= MAX_ID_LENGTH &&
    // '$' at the start of a topic marks server topics [MQTT-4.7.2-1]; refusing it for
    // every identifier keeps an id usable as a first level too (a namespace, say).
    s.charCodeAt(0) !== 0x24 &&
    !LEVEL_BREAKERS.test(s)
  );
}

/** Client ids of the broker's holding sessions (holdNewUsers); clients may not use the prefix. */
export const HOLD_PREFIX = '$hold/';
