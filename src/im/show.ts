/** Shared by the IM parsers (rules, directory, templates), whose errors quote what they refuse. */
import type { TopicLimits } from '../mqtt/topic.js';

/** Only syntax matters when a rule or directory entry is parsed; the broker's configured limits apply when it is used. */
export const NO_LIMITS: TopicLimits = { maxTopicLength: 65535, maxTopicLevels: Number.MAX_SAFE_INTEGER };

/** A value quoted for an error message, cut short so a huge value cannot flood a log. */
export function show(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') return typeof v;
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
