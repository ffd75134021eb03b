import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashPasswordSync, verifyPassword } from '../../../src/auth/password.js';
import {
  addUser,
  loadUsersFile,
  loadUsersFileEntries,
  parseUsersFile,
  parseUsersFileEntries,
  UsersFileError,
  usernameProblem,
} from '../../../src/auth/users-file.js';
import { deriveScramCredentials, encodeScramCredentials, newScramCredentials, parseScramCredentials } from '../../../src/auth/enhanced/scram.js';

const H1 = hashPasswordSync('one', { N: 1024 });
const H2 = hashPasswordSync('two', { N: 1024 });

function parseError(text: string): UsersFileError {
  try {
    parseUsersFile(text, 'users.txt');
  } catch (err) {
    expect(err).toBeInstanceOf(UsersFileError);
    return err as UsersFileError;
  }
  throw new Error('expected parseUsersFile to throw');
}

describe('parseUsersFile', () => {
  it('reads entries and skips comments and blank lines', () => {
    const text = `# users\n\nalice:${H1}\n   # indented comment\n\t\nbob smith:${H2}\n`;
    const users = parseUsersFile(text, 'users.txt');
    expect([...users]).toEqual([
      ['alice', H1],
      ['bob smith', H2],
    ]);
  });

  it('tolerates CRLF, a BOM, trailing whitespace and a missing final newline', () => {
    const users = parseUsersFile(`\uFEFFalice:${H1}  \r\nbob:${H2}`, 'users.txt');
    expect(users.get('alice')).toBe(H1);
    expect(users.get('bob')).toBe(H2);
  });

  it('returns an empty map for an empty or comment-only file', () => {
    expect(parseUsersFile('', 'x').size).toBe(0);
    expect(parseUsersFile('# nothing\n\n', 'x').size).toBe(0);
  });

  it('reports a line without a colon with its line number', () => {
    const err = parseError(`# c\nalice:${H1}\nbogus line\n`);
    expect(err.code).toBe('USERS_FILE_INVALID');
    expect(err.line).toBe(3);
    expect(err.source).toBe('users.txt');
    expect(err.message).toMatch(/^users\.txt:3: /);
  });

  it('reports an invalid hash without echoing it', () => {
    const err = parseError(`alice:${H1}\n\nbob:scrypt$1$2$3$secretish$x\n`);
    expect(err.line).toBe(3);
    expect(err.message).toContain("user 'bob'");
    expect(err.message).not.toContain('secretish');
  });

  it('reports bad usernames', () => {
    expect(parseError(`:${H1}`).message).toContain('empty username');
    expect(parseError(` alice:${H1}`).message).toContain('whitespace');
    expect(parseError(`al\u0001ice:${H1}`).message).toContain('control');
  });

  it('reports a duplicate user with both line numbers', () => {
    const err = parseError(`alice:${H1}\nbob:${H2}\n# again\nalice:${H2}\n`);
    expect(err.line).toBe(4);
    expect(err.message).toContain("duplicate user 'alice'");
    expect(err.message).toContain('line 1');
  });
});

describe('usernameProblem', () => {
  it('accepts ordinary names and rejects unstorable ones', () => {
    expect(usernameProblem('alice')).toBeNull();
    expect(usernameProblem('dévice 7')).toBeNull();
    expect(usernameProblem('')).not.toBeNull();
    expect(usernameProblem('a:b')).not.toBeNull();
    expect(usernameProblem('#admin')).not.toBeNull();
    expect(usernameProblem('a\nb')).not.toBeNull();
    expect(usernameProblem('trailing ')).not.toBeNull();
  });
});

describe('loadUsersFile / addUser', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-users-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a missing file with mode 0600', async () => {
    const path = join(dir, 'users');
    await addUser(path, 'alice', 'wonder');
    const users = await loadUsersFile(path);
    expect([...users.keys()]).toEqual(['alice']);
    expect(await verifyPassword('wonder', users.get('alice') as string)).toBe(true);
    if (process.platform !== 'win32') expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('replaces an existing user in place, keeping comments and order', async () => {
    const path = join(dir, 'users');
    await writeFile(path, `# header\nalice:${H1}\n\n# bob next\nbob:${H2}\n`);
    await addUser(path, 'alice', 'new-password');
    await addUser(path, 'carol', 'c');
    const text = await readFile(path, 'utf8');
    const lines = text.split('\n');
    expect(lines[0]).toBe('# header');
    expect(lines[1]?.startsWith('alice:scrypt$')).toBe(true);
    expect(lines[1]).not.toBe(`alice:${H1}`);
    expect(lines.slice(2, 5)).toEqual(['', '# bob next', `bob:${H2}`]);
    expect(lines[5]?.startsWith('carol:scrypt$')).toBe(true);
    expect(text.endsWith('\n')).toBe(true);
    const users = await loadUsersFile(path);
    expect(users.size).toBe(3);
    expect(await verifyPassword('new-password', users.get('alice') as string)).toBe(true);
    // No temp files left behind.
    expect(await readdir(dir)).toEqual(['users']);
  });

  it('does not mistake a user whose name is a prefix of another', async () => {
    const path = join(dir, 'users');
    await writeFile(path, `alice2:${H1}\n`);
    await addUser(path, 'alice', 'x');
    const users = await loadUsersFile(path);
    expect(users.get('alice2')).toBe(H1);
    expect(users.has('alice')).toBe(true);
  });

  it('refuses to rewrite an invalid file and leaves it untouched', async () => {
    const path = join(dir, 'users');
    const original = `alice:${H1}\nbroken\n`;
    await writeFile(path, original);
    await expect(addUser(path, 'bob', 'x')).rejects.toMatchObject({
      code: 'USERS_FILE_INVALID',
      line: 2,
    });
    expect(await readFile(path, 'utf8')).toBe(original);
  });

  it('rejects usernames that cannot be stored', async () => {
    const path = join(dir, 'users');
    await expect(addUser(path, 'a:b', 'x')).rejects.toBeInstanceOf(UsersFileError);
    await expect(addUser(path, '#root', 'x')).rejects.toBeInstanceOf(UsersFileError);
    expect(await readdir(dir)).toEqual([]);
  });

  it('loadUsersFile propagates fs errors and names the file in parse errors', async () => {
    await expect(loadUsersFile(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    const path = join(dir, 'bad');
    await writeFile(path, 'nope\n');
    await expect(loadUsersFile(path)).rejects.toThrow(`${path}:1:`);
  });
});

describe('SCRAM-SHA-256 credentials in the users file (optional third field)', () => {
  const S = encodeScramCredentials(newScramCredentials('one'));
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-users-scram-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lines with and without the field parse; parseUsersFile keeps giving the hash alone', () => {
    const text = `alice:${H1}:${S}\nbob:${H2}\n`;
    const entries = parseUsersFileEntries(text, 'users.txt');
    expect(entries.get('alice')?.hash).toBe(H1);
    expect(entries.get('alice')?.scram).toEqual(parseScramCredentials(S));
    expect(entries.get('bob')).toEqual({ hash: H2 });
    expect(parseUsersFile(text, 'users.txt')).toEqual(new Map([['alice', H1], ['bob', H2]]));
  });

  it('a malformed field, or a fourth one, is an error naming the line (never the secret)', () => {
    for (const bad of [`alice:${H1}:scram-sha-256$1$x$y$z`, `alice:${H1}:${S}:extra`, `alice:${H1}:`]) {
      const err = parseError(bad);
      expect(err.line).toBe(1);
      expect(err.message).toMatch(/invalid SCRAM credentials for user 'alice'/);
      expect(err.message).not.toContain(S.split('$')[3]);
    }
  });

  it('addUser (switchboard passwd) writes the hash and the SCRAM credentials, which verify the same password', async () => {
    const path = join(dir, 'users');
    await addUser(path, 'alice', 'wonder');
    const e = (await loadUsersFileEntries(path)).get('alice')!;
    expect(await verifyPassword('wonder', e.hash)).toBe(true);
    expect(e.scram?.iterations).toBe(4096);
    expect(deriveScramCredentials('wonder', e.scram!.salt, 4096)).toEqual(e.scram);
    await addUser(path, 'bob', 'b', 8192);
    expect((await loadUsersFileEntries(path)).get('bob')?.scram?.iterations).toBe(8192);
  });
});
