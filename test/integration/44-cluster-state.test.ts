/**
 * The state a cluster shares through JetStream KV (docs/cluster.md "Shared state",
 * src/cluster/shared-*.ts, cluster-admin.ts), on one real nats-server with JetStream and
 * three nodes started in-process (A single-threaded, B with 2 gateway and 2 shard
 * threads, C single-threaded and started later):
 *  - a retained message published (or cleared) before node C started is (or is not) on C,
 *    for MQTT.js and for mosquitto_sub;
 *  - admin edits of the directory and templates on one node pre-subscribe sessions on
 *    another; a routing rule edited on B applies to a publish on C;
 *  - presence sums a user's devices over the nodes, one publication per change, and drops
 *    the devices of a node that is gone;
 *  - the admin API's session list and kick on A see and act on B's and C's sessions;
 *  - a NATS without JetStream stops a node's start with an error naming the fix.
 */
import { describe, it, expect, afterAll, beforeAll, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import type { DeepPartial } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { ClientPool, uid, type Opened, type Received } from '../helpers/clients.js';
import { HAVE_NATS, NatsServer } from '../helpers/nats.js';
import { HAVE_MOSQUITTO } from '../helpers/peers.js';
import { BrokerProcess, freePorts, killAllBrokerProcesses } from '../helpers/broker-process.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, NS, api, clientPath, eventually, imPayload, inboxOf, presenceOf, textOf } from '../helpers/im.js';

if (!HAVE_NATS) console.warn('44-cluster-state: nats-server not on PATH (Debian package nats-server): the tests are skipped');

interface Presence {
  uid: string;
  online: boolean;
  devices: number;
}
const presence = (m: Received): Presence => JSON.parse(m.payload) as Presence;

function mosquittoSub(args: string[]): Promise<string> {
  const p = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((r) => p.on('close', () => r(out)));
}

describe.skipIf(!HAVE_NATS)('44 cluster-wide state over JetStream KV', () => {
  let nats: NatsServer;
  let a: TestBroker;
  let b: TestBroker;
  let c: TestBroker | undefined;
  const pool = new ClientPool();
  const node = (name: string): DeepPartial<Config> => ({
    cluster: { nats: nats.url, node: name, flushTimeout: 2 },
    admin: { token: ADMIN_TOKEN },
    im: { defaultNamespace: NS },
  });
  const startC = async () => (c = await startTestBroker('single', node('c')));

  beforeAll(async () => {
    nats = await NatsServer.start();
    a = await startTestBroker('single', node('a'));
    b = await startTestBroker('multi', node('b'));
  }, 60_000);

  afterAll(async () => {
    await killAllBrokerProcesses();
    await pool.closeAll();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    await nats?.stop();
  }, 60_000);

  afterEach(() => pool.closeAll());

  /** A user's device (IM: the username is the uid; pre-subscribed to its inbox before CONNACK). */
  const device = (url: string, user: string, name = uid('dev')) => pool.connect(url, { protocolVersion: 5, username: user, clientId: `${user}/${name}` });
  /** Publishes probes until `box` has a message on `topic` (for changes other nodes apply eventually). */
  const until = (from: Opened, box: Opened, topic: string, make: (i: number) => Buffer | string) => {
    let i = 0;
    return eventually(async () => {
      if (box.inbox.msgs.some((m) => m.topic === topic)) return true;
      await from.client.publishAsync(topic, make(i++), { qos: 1 });
      return false;
    }, 5000, `a message on ${topic}`);
  };

  it('retained messages published or cleared before node C started are (or are not) there when it starts: MQTT.js and mosquitto_sub', async () => {
    const kept = `${uid('ret')}/kept`;
    const cleared = `${uid('ret')}/cleared`;
    const pa = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('pa') });
    const pb = await pool.connect(b.tcpUrl, { protocolVersion: 4, clientId: uid('pb') });
    await pa.client.publishAsync(kept, 'from A, before C', { qos: 1, retain: true });
    await pa.client.publishAsync(cleared, 'soon gone', { qos: 1, retain: true });
    // Cleared on another node than the one that kept it.
    await pb.client.publishAsync(cleared, '', { qos: 1, retain: true });
    await startC();
    // No waiting: a node loads the cluster's retained messages before it takes clients.
    const s = await pool.connect(c!.tcpUrl, { protocolVersion: 5, clientId: uid('sc') });
    await s.client.subscribeAsync([kept, cleared], { qos: 1 });
    const got = await s.inbox.settle(300);
    expect(got.map((m) => [m.topic, m.payload, m.packet.retain])).toEqual([[kept, 'from A, before C', true]]);
    if (HAVE_MOSQUITTO) {
      const out = await mosquittoSub(['-h', '127.0.0.1', '-p', String(c!.tcpPort), '-t', kept, '-q', '1', '-C', '1', '-W', '10']);
      expect(out.trim()).toBe('from A, before C');
    }
    // Live delivery to other nodes still happens once per subscriber.
    const live = `${uid('ret')}/live`;
    const sb = await pool.connect(b.wsUrl, { protocolVersion: 5, clientId: uid('sb') });
    await sb.client.subscribeAsync(live, { qos: 1 });
    await s.client.subscribeAsync(live, { qos: 1 });
    await pa.client.publishAsync(live, 'now', { qos: 1, retain: true });
    for (const x of [sb, s]) expect((await x.inbox.settle(300)).filter((m) => m.topic === live).map((m) => m.payload)).toEqual(['now']);
  }, 30_000);

  it('a directory edit on node A pre-subscribes the user\'s session on node B; a template edit too (a message published on C reaches it)', async () => {
    expect(c).toBeDefined();
    const jim = uid('jim').replace(/-/g, '_');
    const phone = await device(b.tcpUrl, jim, 'phone');
    const sender = await pool.connect(c!.tcpUrl, { protocolVersion: 5, clientId: uid('sender') });
    const news = `news/${jim}`;
    const put = await api(a, 'PUT', `/directory/${jim}`, { topics: [news] });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    // Node B has it too (admin API answers from B's own copy).
    await eventually(async () => (await api(b, 'GET', `/directory/${jim}`)).status === 200, 5000, 'the entry on node B');
    await until(sender, phone, news, (i) => `news ${i}`);
    const detail = await api(b, 'GET', clientPath(`${jim}/phone`));
    expect(detail.body.subscriptions).toContainEqual({ filter: news, qos: 1, presubscribed: true });

    const original = (await api(a, 'GET', '/presubscribe/templates')).body.templates as string[];
    try {
      const templates = [...original, 'tpl/{uid}'];
      expect((await api(a, 'PUT', '/presubscribe/templates', { templates })).status).toBe(200);
      await until(sender, phone, `tpl/${jim}`, (i) => `tpl ${i}`);
      expect((await api(c!, 'GET', '/presubscribe/templates')).body.templates).toEqual(templates);
    } finally {
      expect((await api(b, 'PUT', '/presubscribe/templates', { templates: original })).status).toBe(200);
      await eventually(async () => JSON.stringify((await api(a, 'GET', '/presubscribe/templates')).body.templates) === JSON.stringify(original), 5000, 'templates restored on A');
      expect((await api(a, 'DELETE', `/directory/${jim}`)).status).toBe(200);
      await eventually(async () => (await api(b, 'GET', `/directory/${jim}`)).status === 404, 5000, 'the entry gone on node B');
    }
  });

  it('a routing rule added on node B applies to a publish on node C; deleted on A, it stops everywhere', async () => {
    const [alice, jim] = [uid('alice').replace(/-/g, '_'), uid('jim').replace(/-/g, '_')];
    const audit = `audit/${jim}`;
    const rule = { id: uid('rule'), source: `/${NS}/im/u/${jim}`, action: 'copy', destination: audit };
    expect((await api(b, 'POST', '/rules', rule)).status).toBe(201);
    try {
      const watcher = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('audit') });
      await watcher.client.subscribeAsync(audit, { qos: 1 });
      const from = await device(c!.tcpUrl, alice);
      let i = 0;
      await eventually(async () => {
        if (watcher.inbox.msgs.some((m) => m.topic === audit)) return true;
        await from.client.publishAsync(inboxOf(jim), imPayload(alice, `hello ${i++}`), { qos: 1 });
        return false;
      }, 5000, 'the copy made by the rule on node C');
      expect(textOf(watcher.inbox.msgs.find((m) => m.topic === audit)!)).toMatch(/^hello \d+$/);
      expect((await api(c!, 'GET', `/rules/${rule.id}`)).status).toBe(200);
    } finally {
      expect((await api(a, 'DELETE', `/rules/${rule.id}`)).status).toBe(200);
      await eventually(async () => (await api(c!, 'GET', `/rules/${rule.id}`)).status === 404, 5000, 'the rule gone on node C');
    }
  });

  it('admin API on node A: the session list has B\'s and C\'s sessions; get and kick on A act on C\'s client', async () => {
    const [onB, onC] = [uid('onB'), uid('onC')];
    await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: onB });
    const victim = await pool.connect(c!.tcpUrl, { protocolVersion: 5, clientId: onC });
    const list = await api(a, 'GET', '/clients');
    expect(list.status).toBe(200);
    const ids = new Map((list.body.clients as Array<{ clientId: string; node: string }>).map((s) => [s.clientId, s.node]));
    expect([ids.get(onB), ids.get(onC)]).toEqual(['b', 'c']);
    expect((await api(a, 'GET', clientPath(onC))).body).toMatchObject({ clientId: onC, online: true });
    const closed = new Promise<void>((r) => victim.client.once('close', () => r()));
    expect((await api(a, 'DELETE', clientPath(onC))).status).toBe(200);
    await closed;
    expect((await api(a, 'GET', clientPath(uid('nobody')))).status).toBe(404);
  });

  it('presence counts a user\'s devices on every node, once per change: 1, 2, 1 when one disconnects, 0 when node C stops', async () => {
    const jim = uid('jim').replace(/-/g, '_');
    // Presence is readable by users of the namespace.
    const watcher = await device(a.tcpUrl, uid('alice').replace(/-/g, '_'));
    await watcher.client.subscribeAsync(presenceOf(jim), { qos: 1 });
    const states = async (n: number) => (await watcher.inbox.waitFor(n, 8000, presenceOf(jim))).map(presence);
    const onB = await device(b.tcpUrl, jim, 'b');
    expect((await states(1))[0]).toMatchObject({ uid: jim, online: true, devices: 1 });
    await device(c!.wsUrl, jim, 'c');
    expect((await states(2))[1]).toMatchObject({ online: true, devices: 2 });
    // A later subscriber on another node gets the cluster-wide count, retained.
    const late = await device(b.tcpUrl, uid('bob').replace(/-/g, '_'));
    await late.client.subscribeAsync(presenceOf(jim), { qos: 1 });
    const [r] = await late.inbox.waitFor(1, 3000, presenceOf(jim));
    expect([r!.packet.retain, presence(r!).devices]).toEqual([true, 2]);
    await onB.client.endAsync();
    expect((await states(3))[2]).toMatchObject({ online: true, devices: 1 });
    // Node C stops: its device no longer counts (on its way out, or once the others find it gone).
    await c!.close();
    c = undefined;
    expect((await states(4))[3]).toMatchObject({ uid: jim, online: false, devices: 0 });
    // One publication per change, not one per node.
    await new Promise((r) => setTimeout(r, 500));
    expect(watcher.inbox.msgs.filter((m) => m.topic === presenceOf(jim)).map((m) => presence(m).devices)).toEqual([1, 2, 1, 0]);
  }, 30_000);

  it('a node killed (SIGKILL) is found gone: the lowest-named live node drops its devices and publishes the new count once', async () => {
    const jim = uid('jim').replace(/-/g, '_');
    const [tcpPort, wsPort] = await freePorts(2);
    const d = new BrokerProcess({
      tcpPort: tcpPort!,
      wsPort: wsPort!,
      dataDir: mkdtempSync(join(tmpdir(), 'switchboard-44-d-')),
      shards: 1,
      gateways: 1,
      env: { SWITCHBOARD_CLUSTER__NATS: nats.url, SWITCHBOARD_CLUSTER__NODE: 'd', SWITCHBOARD_IM__DEFAULT_NAMESPACE: NS },
    });
    await d.start();
    const watcher = await device(b.tcpUrl, uid('alice').replace(/-/g, '_'));
    await watcher.client.subscribeAsync(presenceOf(jim), { qos: 1 });
    const states = async (n: number, ms = 8000) => (await watcher.inbox.waitFor(n, ms, presenceOf(jim))).map(presence);
    await device(a.tcpUrl, jim, 'a');
    expect((await states(1))[0]).toMatchObject({ devices: 1 });
    const onD = await pool.connect(d.tcpUrl, { protocolVersion: 5, username: jim, clientId: `${jim}/d`, reconnectPeriod: 0 });
    expect(onD.client.connected).toBe(true);
    expect((await states(2))[1]).toMatchObject({ devices: 2 });
    await d.kill();
    // Gone after 3.5 s without a heartbeat; node A (lowest name) cleans up.
    expect((await states(3, 15_000))[2]).toMatchObject({ uid: jim, online: true, devices: 1 });
    await new Promise((r) => setTimeout(r, 500));
    expect(watcher.inbox.msgs.filter((m) => m.topic === presenceOf(jim)).map((m) => presence(m).devices)).toEqual([1, 2, 1]);
  }, 60_000);

  it('NATS restarts (JetStream keeps its store): the nodes watch the buckets again; an edit on A after the restart reaches B', async () => {
    const ann = uid('ann').replace(/-/g, '_');
    await nats.stop();
    await nats.start();
    await eventually(async () => {
      const r = await api(a, 'PUT', `/directory/${ann}`, { topics: [`after/${ann}`] });
      return r.status === 200;
    }, 20_000, 'an edit accepted on A after the restart');
    await eventually(async () => (await api(b, 'GET', `/directory/${ann}`)).status === 200, 20_000, 'the edit on node B');
    expect((await api(a, 'DELETE', `/directory/${ann}`)).status).toBe(200);
    await eventually(async () => (await api(b, 'GET', `/directory/${ann}`)).status === 404, 10_000, 'the deletion on node B');
  }, 60_000);

  it('a node whose NATS has no JetStream does not start, and says how to fix it', async () => {
    const plain = await NatsServer.start({ jetstream: false });
    try {
      await expect(startTestBroker('single', { cluster: { nats: plain.url, node: 'nojs' } })).rejects.toThrow(/JetStream is not enabled.*-js/);
    } finally {
      await plain.stop();
    }
  });
});
