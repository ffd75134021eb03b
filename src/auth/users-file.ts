// The users file: one `username:scrypt$N$r$p$salt$hash` entry per line, optionally
// followed by `:scram-sha-256$iterations$salt$StoredKey$ServerKey`, the user's SCRAM
// credentials for MQTT 5 enhanced authentication (src/auth/enhanced/scram.ts). SCRAM
// cannot use the scrypt hash (it needs keys derived from the password with PBKDF2), so
// `switchboard passwd` writes both; a line without the field (written before it existed)
// stays valid, and that user logs in with a password only (docs/authentication.md).
// Blank lines and lines whose first non-blank character is `#` are ignored.
//
// Parsing is strict and reports the first problem with its line number:
// a silently skipped line would lock a user out (or, worse, keep a user
// whose removal was intended), and the operator should learn about it at
// startup, not at the first failed login.
//
// The username is everything before the FIRST `:`; hashes never contain
// `:`, but allowing it in usernames would make the format ambiguous for
// humans, so usernames with `:` are rejected (as in htpasswd/mosquitto).
import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { hashPassword, isPasswordHash } from './password.js';
import type { PasswordInput } from './password.js';
import { encodeScramCredentials, newScramCredentials, parseScramCredentials, DEFAULT_SCRAM_ITERATIONS, type ScramCredentials } from './enhanced/scram.js';

export class UsersFileError extends Error {
  readonly code = 'USERS_FILE_INVALID' as const;
  /** 1-based line number; 0 when the problem is not tied to a line. */
  readonly line: number;
  readonly source: string;

  constructor(source: string, line: number, reason: string) {
    super(line > 0 ? `${source}:${line}: ${reason}` : `${source}: ${reason}`);
    this.name = 'UsersFileError';
    this.source = source;
    this.line = line;
  }
}

// MQTT strings must not contain U+0000 and should avoid other control
// characters [MQTT-1.5.4-2]; in a line-oriented file they would also be
// invisible, so they are rejected outright.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Returns why `username` cannot be stored in a users file, or null if it can. */
export function usernameProblem(username: string): string | null {
  if (username.length === 0) return 'empty username';
  if (username.includes(':')) return "username must not contain ':'";
  if (CONTROL.test(username)) return 'username must not contain control characters';
  if (username.trim() !== username) return 'username must not start or end with whitespace';
  // A line starting with `#` is a comment, so such a user could never be read back.
  if (username.startsWith('#')) return "username must not start with '#'";
  if (Buffer.byteLength(username, 'utf8') > 65535) return 'username longer than 65535 bytes';
  return null;
}

function isIgnorable(line: string): boolean {
  const trimmed = line.trim();
  return trimmed.length === 0 || trimmed.startsWith('#');
}

function splitLines(text: string): string[] {
  // Tolerate a UTF-8 BOM and CRLF line endings from editors on other systems.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  return body.split(/\r?\n/);
}

/** One user of the file: the scrypt hash, and the SCRAM credentials when the line has them. */
export interface UserEntry {
  hash: string;
  scram?: ScramCredentials;
}

interface Entry extends UserEntry {
  username: string;
}

function parseLine(line: string, lineNo: number, source: string): Entry {
  const colon = line.indexOf(':');
  if (colon < 0) {
    throw new UsersFileError(source, lineNo, "expected 'username:hash'");
  }
  const username = line.slice(0, colon);
  // Neither field contains ':' (base64 and decimals), so a second one starts the SCRAM field.
  const [hash = '', scramText, ...extra] = line.slice(colon + 1).trimEnd().split(':');
  const problem = usernameProblem(username);
  if (problem !== null) throw new UsersFileError(source, lineNo, problem);
  // Deliberately no echo of the hash itself: error messages end up in logs.
  if (!isPasswordHash(hash)) {
    throw new UsersFileError(
      source,
      lineNo,
      `invalid password hash for user '${username}' (expected scrypt$N$r$p$salt$hash)`,
    );
  }
  if (scramText === undefined) return { username, hash };
  const scram = extra.length === 0 ? parseScramCredentials(scramText) : null;
  if (scram === null) {
    throw new UsersFileError(
      source,
      lineNo,
      `invalid SCRAM credentials for user '${username}' (expected scram-sha-256$iterations$salt$StoredKey$ServerKey after the hash)`,
    );
  }
  return { username, hash, scram };
}

/**
 * Parses users-file text into username -> encoded hash.
 * @param source name used in error messages (usually the file path)
 * @throws UsersFileError for a malformed line or a duplicate user
 */
export function parseUsersFile(text: string, source: string): Map<string, string> {
  return new Map([...parseUsersFileEntries(text, source)].map(([username, e]) => [username, e.hash]));
}

/** Like parseUsersFile, with each user's SCRAM credentials when the line has them. */
export function parseUsersFileEntries(text: string, source: string): Map<string, UserEntry> {
  const users = new Map<string, UserEntry>();
  const firstSeen = new Map<string, number>();
  const lines = splitLines(text);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (isIgnorable(line)) continue;
    const lineNo = i + 1;
    const { username, ...entry } = parseLine(line, lineNo, source);
    const previous = firstSeen.get(username);
    if (previous !== undefined) {
      // Last-wins or first-wins would both be a guess about intent.
      throw new UsersFileError(
        source,
        lineNo,
        `duplicate user '${username}' (first defined on line ${previous})`,
      );
    }
    firstSeen.set(username, lineNo);
    users.set(username, entry);
  }
  return users;
}

/**
 * Reads and parses a users file. File-system errors (ENOENT, EACCES, ...)
 * propagate unchanged so callers can tell "missing" from "invalid".
 */
export async function loadUsersFile(path: string): Promise<Map<string, string>> {
  const text = await readFile(path, 'utf8');
  return parseUsersFile(text, path);
}

/** Reads a users file with its SCRAM credentials (see loadUsersFile for errors). */
export async function loadUsersFileEntries(path: string): Promise<Map<string, UserEntry>> {
  return parseUsersFileEntries(await readFile(path, 'utf8'), path);
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}

/**
 * Creates or replaces `username`'s entry (scrypt hash and SCRAM-SHA-256 credentials with
 * `scramIterations`, default 4096), keeping comments, blank lines
 * and the order of other users intact. The file is created (mode 0600)
 * when missing. An existing file that does not parse is left untouched
 * and the UsersFileError is thrown: rewriting it could lose entries.
 */
export async function addUser(
  path: string,
  username: string,
  password: PasswordInput,
  scramIterations: number = DEFAULT_SCRAM_ITERATIONS,
): Promise<void> {
  const problem = usernameProblem(username);
  if (problem !== null) throw new UsersFileError(path, 0, problem);

  let text = '';
  let mode = 0o600;
  try {
    text = await readFile(path, 'utf8');
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  parseUsersFile(text, path); // validate before touching anything

  const scram = encodeScramCredentials(newScramCredentials(password, scramIterations));
  const entry = `${username}:${await hashPassword(password)}:${scram}`;
  const lines = text.length === 0 ? [] : splitLines(text);
  // splitLines turns a trailing newline into a final empty element.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const index = lines.findIndex(
    (line) => !isIgnorable(line) && line.slice(0, line.indexOf(':')) === username,
  );
  if (index >= 0) lines[index] = entry;
  else lines.push(entry);

  await writeAtomically(path, lines.join('\n') + '\n', mode);
}

// Write-to-temp-then-rename so a crash mid-write never leaves a truncated
// users file behind (which would lock everyone out on the next start).
async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, content, { encoding: 'utf8', mode, flag: 'wx' });
    // writeFile's mode is filtered by the umask; make it exact.
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
