/** Checks of what the login form asks for, and what a JWT says about its user (pure). */
import { isTopicLevelId } from '../../src/im/index.js';

/** A device name: one part of the client id `{uid}/{device}`. */
export const DEVICE_RE = /^[A-Za-z0-9_.-]{1,32}$/;

/** Why a user name cannot be used, or null. */
export function userNameProblem(name: string): string | null {
  if (name === '') return 'Enter a user name.';
  return isTopicLevelId(name) ? null : 'A user name cannot contain "/", "+" or "#", nor start with "$".';
}

export function deviceProblem(device: string): string | null {
  return DEVICE_RE.test(device) ? null : 'A device name has 1 to 32 letters, digits, ".", "_" or "-".';
}

/** A fresh device name for a tab: `web-` and 4 random letters or digits. */
export function newDeviceName(random: () => number = Math.random): string {
  let s = '';
  for (let i = 0; i < 4; i++) s += '0123456789abcdefghijklmnopqrstuvwxyz'[Math.floor(random() * 36)];
  return `web-${s}`;
}

/**
 * The `ns` and `groups` claims of a JWT, unverified: the broker verified the token, and
 * uses these claims when the directory has no entry for the user (docs/im.md section 1),
 * which is exactly when /im/contacts cannot know them.
 */
export function tokenHints(token: string): { ns?: string; groups?: string[] } {
  const part = token.trim().split('.')[1];
  if (part === undefined) return {};
  let claims: unknown;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
  if (claims === null || typeof claims !== 'object') return {};
  const c = claims as Record<string, unknown>;
  const out: { ns?: string; groups?: string[] } = {};
  if (typeof c['ns'] === 'string' && isTopicLevelId(c['ns'])) out.ns = c['ns'];
  if (Array.isArray(c['groups'])) out.groups = c['groups'].filter((g): g is string => typeof g === 'string' && isTopicLevelId(g));
  return out;
}
