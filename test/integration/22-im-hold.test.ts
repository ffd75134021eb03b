/**
 * IM-PROTOCOL 4 with im.presubscribe.holdNewUsers: a user registered in the directory who
 * never connected gets what was sent before their first login, in order, without
 * subscribing; the holding session is consumed by their first device, and the broker
 * remembers (across restarts) that the user has connected.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeImPayload, decodeImPayload } from '../../src/im/index.js';
import { startTestBroker, TOPOLOGIES, type TestBroker } from '../helpers/broker.js';
import { ClientPool, uid } from '../helpers/clients.js';

const TOKEN = 'hold-token';
const text = (sender: string, co: string) => encodeImPayload({ sender, ts: 1764000000, kind: 0, media: 0, content: { con: [{ ty: 0, co }] } });

async function api(b: TestBroker, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${b.httpUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

describe.each(TOPOLOGIES)('22 IM holding sessions (%s)', (topo) => {
  const pool = new ClientPool();
  const brokers: TestBroker[] = [];
  afterEach(async () => {
    await pool.closeAll();
    for (const b of brokers.splice(0)) await b.close();
  });
  const start = async (dataDir: string, directory: Array<{ uid: string }>) => {
    const b = await startTestBroker(topo, {
      dataDir,
      admin: { token: TOKEN },
      im: { defaultNamespace: 'acme', presubscribe: { holdNewUsers: true, directory } },
    });
    brokers.push(b);
    return b;
  };

  it('IM-PROTOCOL 4: messages sent before a directory user\'s first login arrive in order on their first device; not on the second', async () => {
    const newbie = uid('newbie');
    const b = await start(mkdtempSync(join(tmpdir(), 'sb-hold-')), [{ uid: newbie }]);
    const { json } = await api(b, 'GET', '/clients');
    expect(json.clients.map((c: { clientId: string }) => c.clientId)).toContain(`$hold/${newbie}`);

    const alice = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: 'alice/pc', username: 'alice' });
    for (let i = 0; i < 5; i++) await alice.client.publishAsync(`/acme/im/u/${newbie}`, text('alice', `m${i}`), { qos: 1 });

    const phone = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: `${newbie}/phone`, username: newbie });
    const got = await phone.inbox.waitFor(5, 3000);
    expect(got.map((m) => decodeImPayload(m.packet.payload as Buffer).content.con[0]!.co)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    // The holding session is gone; live traffic flows as usual.
    const after = await api(b, 'GET', '/clients');
    expect(after.json.clients.map((c: { clientId: string }) => c.clientId)).not.toContain(`$hold/${newbie}`);
    await alice.client.publishAsync(`/acme/im/u/${newbie}`, text('alice', 'live'), { qos: 1 });
    await phone.inbox.waitFor(6, 3000);
    // A second device starts empty: the held messages went to the first one.
    const pc = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: `${newbie}/pc`, username: newbie });
    await alice.client.publishAsync(`/acme/im/u/${newbie}`, text('alice', 'both'), { qos: 1 });
    const pcGot = await pc.inbox.waitFor(1, 3000);
    expect(decodeImPayload(pcGot[0]!.packet.payload as Buffer).content.con[0]!.co).toBe('both');
    expect((await pc.inbox.settle(200)).length).toBe(1);
  });

  it('a user added to the directory at run time is held too; a restart remembers who already connected', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-hold-'));
    const late = uid('late');
    const b = await start(dataDir, []);
    expect((await api(b, 'PUT', `/directory/${late}`, { groups: [] })).status).toBe(200);
    const alice = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: 'alice/pc', username: 'alice' });
    // The holding session is created asynchronously: wait until it is listed.
    for (let i = 0; i < 50; i++) {
      const { json } = await api(b, 'GET', '/clients');
      if (json.clients.some((c: { clientId: string }) => c.clientId === `$hold/${late}`)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await alice.client.publishAsync(`/acme/im/u/${late}`, text('alice', 'early'), { qos: 1 });
    const dev = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: `${late}/phone`, username: late });
    expect(decodeImPayload((await dev.inbox.waitFor(1, 3000))[0]!.packet.payload as Buffer).content.con[0]!.co).toBe('early');
    await pool.closeAll();
    await b.close();
    brokers.splice(0);

    // Same data directory: the directory survived (runtime edit) and `late` is known to have connected.
    const b2 = await start(dataDir, []);
    const { json } = await api(b2, 'GET', '/clients');
    expect(json.clients.map((c: { clientId: string }) => c.clientId)).not.toContain(`$hold/${late}`);
    expect((await api(b2, 'GET', `/directory/${late}`)).json).toEqual({ uid: late, groups: [] });
  });

  it('clients cannot take a holding session\'s client id', async () => {
    const b = await start(mkdtempSync(join(tmpdir(), 'sb-hold-')), [{ uid: 'x' }]);
    const err = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: '$hold/x', username: 'x' }).catch((e: { code?: number }) => e);
    expect((err as { code?: number }).code).toBe(0x85);
  });
});
