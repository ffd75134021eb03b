/**
 * docs/im.md promises a newcomer can send an image between two users with two devices
 * each by running examples/im/two-users.ts: run it, as a separate process, against a
 * real broker (users file with passwords, the multi-thread topology).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../src/auth/users-file.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

const run = promisify(execFile);

describe('21 examples/im/two-users.ts (the docs/im.md walk-through)', () => {
  let b: TestBroker;
  beforeAll(async () => {
    const users = join(mkdtempSync(join(tmpdir(), 'sb-users-')), 'users');
    await addUser(users, 'alice', 'alice-pw');
    await addUser(users, 'jim', 'jim-pw');
    b = await startTestBroker('multi', { auth: { allowAnonymous: false, usersFile: users }, im: { defaultNamespace: 'acme' } });
  });
  afterAll(() => b?.close());

  it('IM-PROTOCOL 5 + 6: the picture reaches both of Jim\'s devices and Alice\'s phone, not Alice\'s PC; the download is identical', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'examples/im/two-users.ts'], {
      env: {
        ...process.env,
        SWITCHBOARD_MQTT: b.tcpUrl,
        SWITCHBOARD_HTTP: b.httpUrl,
        IM_NS: 'acme',
        ALICE_PASSWORD: 'alice-pw',
        JIM_PASSWORD: 'jim-pw',
      },
      timeout: 60_000,
    });
    expect(stdout).toMatch(/jim\/pc <- \/acme\/im\/u\/jim: from alice: look at this/);
    expect(stdout).toMatch(/jim\/phone <- \/acme\/im\/u\/jim: from alice/);
    expect(stdout).toMatch(/alice\/phone <- \/acme\/im\/u\/alice: from alice/);
    expect(stdout).toMatch(/jim\/phone downloaded cat\.png: \d+ bytes, image\/png, identical/);
    expect(stdout).toMatch(/alice\/pc got 0 message\(s\) back/);
    expect(stdout.trim().endsWith('OK')).toBe(true);
  }, 90_000);
});
