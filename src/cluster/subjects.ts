/**
 * MQTT topics and filters as NATS subjects, so that NATS itself routes a message only to
 * the nodes with a matching subscription.
 *
 * - One MQTT level is one NATS token; `+` becomes `*` and `#` becomes `>`.
 * - NATS reserves `.` (the separator), `*`, `>` and whitespace, and has no empty tokens,
 *   while an MQTT level may hold any UTF-8 but `+`/`#` wildcards (and IM topics start with
 *   an empty level: `/ns/im/u/uid`). A level is therefore escaped: bytes outside
 *   `[A-Za-z0-9_-]` become `~` and two hex digits, and the empty level is the token `~`
 *   alone (a literal `~` is `~7E`, so the mapping stays one-to-one). A topic level `*` is
 *   `~2A`, never a NATS wildcard.
 * - MQTT `a/#` also matches `a` itself [MQTT-4.7.1-2]; NATS `a.>` does not, so such a
 *   filter is two subjects.
 * - Topics starting with `$` are not matched by a filter starting with a wildcard
 *   [MQTT-4.7.2-1]; NATS would match them. The receiving node's shards match every message
 *   against their own subscriptions again, so such an extra copy is dropped there.
 * The subject never has to be decoded: the message itself carries its topic.
 */

const SAFE = /^[A-Za-z0-9_-]+$/;

/** One MQTT topic level as one NATS token. */
export function escapeLevel(level: string): string {
  if (level.length === 0) return '~';
  if (SAFE.test(level)) return level;
  let out = '';
  for (const ch of level) {
    if (/[A-Za-z0-9_-]/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `~${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The subject a message on `topic` is published to (`prefix` = the cluster's message prefix). */
export function topicSubject(prefix: string, topic: string): string {
  let s = prefix;
  for (const level of topic.split('/')) s += `.${escapeLevel(level)}`;
  return s;
}

/** The subjects a node subscribes to for one MQTT filter (one, or two for a trailing `#`). */
export function filterSubjects(prefix: string, filter: string): string[] {
  const levels = filter.split('/');
  let s = prefix;
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level === '#') return i === 0 ? [`${s}.>`] : [s, `${s}.>`];
    s += level === '+' ? '.*' : `.${escapeLevel(level)}`;
  }
  return [s];
}
