/**
 * Shared Subscriptions (MQTT 5.0 section 4.8.2): `$share/{ShareName}/{filter}`.
 *
 * A filter that starts with `$share/` is a shared subscription [MQTT-4.8.2-1]. The
 * ShareName is at least one character long, contains no "/", "+" or "#", and is followed
 * by "/" and a Topic Filter [MQTT-4.8.2-1][MQTT-4.8.2-2]. A filter that breaks this is
 * refused with SUBACK 0x8F Topic Filter invalid (3.1.1: 0x80).
 *
 * The whole string (`$share/g/a/+`) names the group: the ShareName and the filter
 * together. It is the key of the subscription in the member's session (so it is stored,
 * restored and unsubscribed like any other filter) and of the group at its owner shard.
 */
import { validateTopicFilter, type TopicLimits } from './topic.js';

export const SHARE_PREFIX = '$share/';

export interface SharedFilter {
  /** The ShareName. */
  share: string;
  /** The Topic Filter the group subscribes to (after `$share/{ShareName}/`). */
  filter: string;
}

/** Why a `$share/...` filter is malformed. */
export type SharedFilterError = 'empty_share_name' | 'bad_share_name' | 'no_filter';

/** True for any filter that starts with `$share/` (well formed or not). */
export function isSharedFilter(filter: string): boolean {
  return filter.startsWith(SHARE_PREFIX);
}

/**
 * Splits `$share/{ShareName}/{filter}`; null when the filter is not a shared one, an error
 * when it is malformed. The inner filter is checked by the caller (validateTopicFilter).
 */
export function parseSharedFilter(filter: string): SharedFilter | SharedFilterError | null {
  if (!isSharedFilter(filter)) return null;
  const rest = filter.slice(SHARE_PREFIX.length);
  const slash = rest.indexOf('/');
  const share = slash < 0 ? rest : rest.slice(0, slash);
  // [MQTT-4.8.2-1] a ShareName of at least one character.
  if (share.length === 0) return 'empty_share_name';
  // [MQTT-4.8.2-2] no "+" or "#" in the ShareName ("/" ends it), and a "/" after it...
  if (share.includes('+') || share.includes('#')) return 'bad_share_name';
  // ... followed by a Topic Filter.
  if (slash < 0 || slash === rest.length - 1) return 'no_filter';
  return { share, filter: rest.slice(slash + 1) };
}

/**
 * A shared filter fully checked: the syntax above and the inner Topic Filter (wildcards,
 * length and level limits). Returns the parts, or null when it is not valid.
 */
export function validSharedFilter(filter: string, limits: TopicLimits): SharedFilter | null {
  const p = parseSharedFilter(filter);
  if (p === null || typeof p === 'string') return null;
  return validateTopicFilter(p.filter, limits) === null ? p : null;
}

/** The group's key is the whole `$share/...` string; this is its inner filter (the key must be well formed). */
export function sharedInnerFilter(key: string): string {
  const rest = key.slice(SHARE_PREFIX.length);
  return rest.slice(rest.indexOf('/') + 1);
}
