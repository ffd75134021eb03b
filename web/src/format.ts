/** Times as the chat shows them. */

const pad = (n: number): string => String(n).padStart(2, '0');
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/**
 * "14:05" today, "Mon 14:05" within the last week, "2025-11-24 14:05" before that (local
 * time). `ts` is the payload's TS in seconds, `now` milliseconds.
 */
export function formatTime(ts: number, now: number): string {
  const d = new Date(ts * 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const today = new Date(now);
  if (d.toDateString() === today.toDateString()) return hm;
  if (now - d.getTime() < 6 * 24 * 3600 * 1000 && d.getTime() <= now) return `${DAYS[d.getDay()]} ${hm}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}
