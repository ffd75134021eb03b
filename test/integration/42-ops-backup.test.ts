/**
 * `switchboard backup` (src/store/backup.ts, docs/operations.md "Back up"): a copy of the
 * data dir taken while the broker runs and publishes is a data dir a broker starts from,
 * with a shard count of its own: persistent sessions with their queued messages in order,
 * retained messages and uploaded files; what was published after the copy is not in it.
 * An existing non-empty target is refused. Offline, --compact makes a smaller copy.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { ROOT } from '../helpers/broker-process.js';
import { ClientPool, uid } from '../helpers/clients.js';
import { run } from '../helpers/im.js';

const backup = async (...args: string[]) => {
  // A separate process, as an operator runs it: LMDB readers of another process next to
  // the broker's writer. (Not spawnSync: the broker runs on this thread.)
  const c = run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'backup', ...args], { cwd: ROOT, env: { ...process.env, SWITCHBOARD_CONFIG: '' } });
  const code = await c.exited;
  return { code, stdout: c.stdout(), stderr: c.stderr() };
};

const storeBytes = (dir: string) => readdirSync(join(dir, 'store')).reduce((n, f) => n + statSync(join(dir, 'store', f)).size, 0);

describe('42 switchboard backup', () => {
  const pool = new ClientPool();
  const brokers: TestBroker[] = [];
  afterEach(async () => {
    await pool.closeAll();
    for (const b of brokers.splice(0)) await b.close();
  });

  it('a copy taken while the broker runs restores sessions with their queued messages, retained messages and files', async () => {
    const a = await startTestBroker('multi');
    brokers.push(a);
    const clientId = uid('bk-sub');
    const persistent = { protocolVersion: 5 as const, clientId, clean: false, properties: { sessionExpiryInterval: 3600 } };
    const sub = await pool.connect(a.tcpUrl, persistent);
    await sub.client.subscribeAsync('bk/#', { qos: 1 });
    await sub.client.endAsync();
    const pub = await pool.connect(a.wsUrl, { protocolVersion: 5, clientId: uid('bk-pub') });
    for (let i = 1; i <= 5; i++) await pub.client.publishAsync('bk/queue', `m${i}`, { qos: 1 });
    await pub.client.publishAsync('bk/retained', 'kept', { qos: 1, retain: true });
    const authorization = `Basic ${Buffer.from('alice:x').toString('base64')}`;
    const up = await fetch(`${a.httpUrl}/files?name=doc.txt`, { method: 'POST', headers: { authorization, 'content-type': 'text/plain' }, body: 'the file' });
    expect(up.status).toBe(201);
    const { id } = (await up.json()) as { id: string };

    const out = join(mkdtempSync(join(tmpdir(), 'sb-backup-')), 'copy');
    const r = await backup('--data-dir', a.config.dataDir, out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 store file\(s\)/); // coordinator + 2 shards
    expect(readdirSync(join(out, 'store')).sort()).toEqual(['coordinator.mdb', 'shard-0.mdb', 'shard-1.mdb']);
    expect(existsSync(join(out, 'files', id))).toBe(true);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    // Published after the copy: not in it.
    await pub.client.publishAsync('bk/queue', 'after the backup', { qos: 1 });

    // A target that is not empty is refused, whatever is in it.
    const again = await backup('--data-dir', a.config.dataDir, out);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists and is not empty/);
    await pool.closeAll();
    await a.close();
    brokers.splice(0);

    // Restored with another shard count: the sessions are moved to their new shards.
    const b = await startTestBroker('multi', { dataDir: out, threads: { shards: 3 } });
    brokers.push(b);
    const back = await pool.connect(b.tcpUrl, persistent);
    expect(back.connack.sessionPresent).toBe(true);
    await back.inbox.waitFor(5, 10_000, 'bk/queue');
    const got = await back.inbox.settle(300);
    expect(got.filter((m) => m.topic === 'bk/queue').map((m) => m.payload)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    const fresh = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('bk-new') });
    await fresh.client.subscribeAsync('bk/retained', { qos: 1 });
    expect((await fresh.inbox.waitFor(1, 5000, 'bk/retained'))[0]!.payload).toBe('kept');
    const file = await fetch(`${b.httpUrl}/files/${id}/doc.txt`, { headers: { authorization } });
    expect(file.status).toBe(200);
    expect(await file.text()).toBe('the file');
  }, 90_000);

  it('offline, --compact makes a copy no larger than the plain one', async () => {
    const a = await startTestBroker('single');
    const pub = await pool.connect(a.tcpUrl, { clientId: uid('bk-c') });
    for (let i = 0; i < 200; i++) await pub.client.publishAsync(`bk/r/${i}`, Buffer.alloc(2000, i), { qos: 1, retain: true });
    // Most of it deleted again: free pages a compact copy leaves out.
    for (let i = 0; i < 190; i++) await pub.client.publishAsync(`bk/r/${i}`, Buffer.alloc(0), { qos: 1, retain: true });
    await pool.closeAll();
    await a.close();
    const base = mkdtempSync(join(tmpdir(), 'sb-backup-'));
    const plain = await backup('--data-dir', a.config.dataDir, join(base, 'plain'));
    const compact = await backup('--data-dir', a.config.dataDir, '--compact', join(base, 'compact'));
    expect(plain.code, plain.stderr).toBe(0);
    expect(compact.code, compact.stderr).toBe(0);
    expect(storeBytes(join(base, 'compact'))).toBeLessThanOrEqual(storeBytes(join(base, 'plain')));
  }, 60_000);
});
