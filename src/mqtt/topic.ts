/**
 * Topic name / topic filter validation and a reference matcher (MQTT 3.1.1
 * and 5.0, section 4.7). Both protocol versions share these rules, so one
 * implementation serves both codecs.
 *
 * `matchTopic` is the *reference* semantics: it is deliberately simple so it
 * can be trusted by ACL code and used as the oracle in the TopicTrie property
 * tests. The broker's hot path uses `TopicTrie.match` instead.
 */

/** Broker-configured limits; the 65535-byte wire limit always applies too. */
export interface TopicLimits {
  maxTopicLength: number;
  maxTopicLevels: number;
}

/**
 * Why a topic name / filter was rejected. A string union (not an enum) so it
 * serialises across worker threads unchanged; callers map it to the reason
 * code of their protocol version.
 */
export type TopicError =
  | 'empty'
  | 'wildcard_in_name'
  | 'bad_wildcard'
  | 'null_char'
  | 'too_long'
  | 'too_many_levels';

// Topic strings are UTF-8 strings with a 2-byte length prefix on the wire.
// [MQTT-4.7.3-3]
const WIRE_MAX_BYTES = 65535;

const SLASH = 0x2f; // '/'
const PLUS = 0x2b; // '+'
const HASH = 0x23; // '#'
const NUL = 0x00;
const DOLLAR = 0x24; // '$'

/** Shared length check; byteLength is skipped when the UTF-16 length already decides. */
function checkLength(s: string, limits: TopicLimits): boolean {
  const max = Math.min(limits.maxTopicLength, WIRE_MAX_BYTES);
  // Each UTF-16 code unit encodes to 1..3 UTF-8 bytes, so these bounds are
  // exact shortcuts that avoid scanning the string twice in the common case.
  if (s.length > max) return false;
  if (s.length * 3 <= max) return true;
  return Buffer.byteLength(s, 'utf8') <= max;
}

/**
 * Validates a Topic Name as carried in PUBLISH (and Will Topic).
 * Returns null when valid.
 */
export function validateTopicName(topic: string, limits: TopicLimits): TopicError | null {
  // [MQTT-4.7.3-1] Topic Names must be at least one character long.
  if (topic.length === 0) return 'empty';
  // [MQTT-4.7.3-3] plus the broker's own (usually smaller) limit.
  if (!checkLength(topic, limits)) return 'too_long';
  let levels = 1;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === SLASH) {
      levels++;
    } else if (c === PLUS || c === HASH) {
      // [MQTT-3.3.2-2] [MQTT-4.7.1-1] no wildcards in a Topic Name.
      return 'wildcard_in_name';
    } else if (c === NUL) {
      // [MQTT-4.7.3-2] U+0000 is not allowed.
      return 'null_char';
    }
  }
  // Level cap protects the trie (and its recursive match) from very deep topics.
  if (levels > limits.maxTopicLevels) return 'too_many_levels';
  return null;
}

/**
 * Validates a Topic Filter as carried in SUBSCRIBE / UNSUBSCRIBE.
 * `$share/...` is not special-cased here; shared subscriptions are parsed
 * before the remaining filter reaches this function.
 */
export function validateTopicFilter(filter: string, limits: TopicLimits): TopicError | null {
  // [MQTT-4.7.3-1] Topic Filters must be at least one character long.
  if (filter.length === 0) return 'empty';
  // [MQTT-4.7.3-3]
  if (!checkLength(filter, limits)) return 'too_long';
  let levels = 1;
  let levelStart = 0;
  const n = filter.length;
  for (let i = 0; i < n; i++) {
    const c = filter.charCodeAt(i);
    if (c === SLASH) {
      levels++;
      levelStart = i + 1;
    } else if (c === HASH) {
      // [MQTT-4.7.1-2] '#' must be alone in its level and be the last character.
      if (i !== levelStart || i !== n - 1) return 'bad_wildcard';
    } else if (c === PLUS) {
      // [MQTT-4.7.1-3] '+' must occupy an entire level.
      if (i !== levelStart) return 'bad_wildcard';
      if (i + 1 < n && filter.charCodeAt(i + 1) !== SLASH) return 'bad_wildcard';
    } else if (c === NUL) {
      // [MQTT-4.7.3-2]
      return 'null_char';
    }
  }
  if (levels > limits.maxTopicLevels) return 'too_many_levels';
  return null;
}

/** True for server-internal topics such as `$SYS/...` (see [MQTT-4.7.2-1]). */
export function isSysTopic(topic: string): boolean {
  return topic.charCodeAt(0) === DOLLAR;
}

/**
 * Reference matcher: does `topic` (a valid Topic Name) match `filter`
 * (a valid Topic Filter)? Empty levels are real levels: `/a` is ["", "a"].
 */
export function matchTopic(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // [MQTT-4.7.2-1] filters starting with a wildcard never match `$` topics.
  if (isSysTopic(topic) && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    // [MQTT-4.7.1-2] '#' matches the parent level and any number of children,
    // so `a/#` matches `a` (i === t.length here) as well as `a/b/c`.
    if (level === '#') return true;
    if (i >= t.length) return false;
    // [MQTT-4.7.1-3] '+' matches exactly one level, which may be empty.
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
