/**
 * Shared subscriptions across the nodes of a cluster (docs/cluster.md, "Shared
 * subscriptions"; src/cluster/shared-link.ts): a message goes to one member of a group in
 * the whole cluster [MQTT-4.8.2-3], whichever nodes its members and its publisher are on.
 * Three nodes on one real nats-server; MQTT.js and mosquitto_sub as members.
 */
import { describe, it, expect, afterAll, beforeAll, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { startTestBroker, metric, type TestBroker } from '../helpers/broker.js';
import { ClientPool, sleep, uid, type Opened, waitUntil } from '../helpers/clients.js';
import { HAVE_NATS, NatsServer } from '../helpers/nats.js';
import { HAVE_MOSQUITTO } from '../helpers/peers.js';

if (!HAVE_NATS) console.warn('46-cluster-shared-subscriptions: nats-server not on PATH (Debian package nats-server): skipped');

/** Every payload once over all the inboxes, none twice. */
function exactlyOnce(inboxes: Array<{ msgs: Array<{ payload: string }> }>, want: string[]): void {
  const got = inboxes.flatMap((i) => i.msgs.map((m) => m.payload)).sort();
  expect(got).toEqual([...want].sort());
}

describe.skipIf(!HAVE_NATS)('46 shared subscriptions across cluster nodes', () => {
  let nats: NatsServer;
  let a: TestBroker;
  let b: TestBroker;
  let c: TestBroker;
  const pool = new ClientPool();
  const node = (name: string) => ({ cluster: { nats: nats.url, node: name, heartbeatMs: 250, deadAfterMs: 1500 } });

  beforeAll(async () => {
    nats = await NatsServer.start();
    a = await startTestBroker('single', node('a'));
    b = await startTestBroker('multi', node('b'));
    c = await startTestBroker('multi', node('c'));
  }, 60_000);

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    await nats?.stop();
  }, 60_000);

  // Each test starts with no group anywhere (the members of the last one are gone on every node).
  afterEach(async () => {
    await pool.closeAll();
    await waitUntil('no shared group left', async () => (await metric(a, 'cluster_shared_remote_placements')) === 0);
  });

  /** Waits until node `at` knows the group has members on `n` other nodes. */
  const known = (at: TestBroker, n: number) => waitUntil(`the group known on ${at.config.cluster.node}`, async () => (await metric(at, 'cluster_shared_remote_groups')) >= n);

  async function member(on: TestBroker, filter: string): Promise<Opened> {
    const m = await pool.connect(on.tcpUrl, { protocolVersion: 5, clientId: uid('m') });
    await m.client.subscribeAsync(filter, { qos: 1 });
    return m;
  }

  it('[MQTT-4.8.2-3] a message published on a node without members goes to one member in the cluster, spread over the nodes that have members', async () => {
    const topic = uid('jobs');
    const filter = `$share/${uid('g')}/${topic}`;
    const mb = await member(b, filter);
    const mc = await member(c, filter);
    await waitUntil('both nodes known on A', async () => (await metric(a, 'cluster_shared_remote_placements')) === 2);
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    const want = Array.from({ length: 60 }, (_, i) => `j${i}`);
    for (const w of want) await p.client.publishAsync(topic, w, { qos: 1 });
    await waitUntil('60 deliveries', () => mb.inbox.msgs.length + mc.inbox.msgs.length >= 60);
    await sleep(200);
    exactlyOnce([mb.inbox, mc.inbox], want);
    // Spread in turn over the two nodes.
    expect(mb.inbox.msgs.length).toBe(30);
    expect(mc.inbox.msgs.length).toBe(30);
  });

  it('[MQTT-4.8.2-3] a publisher on a node with members: its local members get each message, no other node does', async () => {
    const topic = uid('local');
    const filter = `$share/${uid('g')}/${topic}`;
    const mb = await member(b, filter);
    const mc = await member(c, filter);
    await known(b, 1);
    const p = await pool.connect(b.wsUrl, { protocolVersion: 5, clientId: uid('p') });
    const want = Array.from({ length: 30 }, (_, i) => `l${i}`);
    for (const w of want) await p.client.publishAsync(topic, w, { qos: 1 });
    await mb.inbox.waitFor(30);
    await sleep(300);
    exactlyOnce([mb.inbox, mc.inbox], want);
    expect(mc.inbox.msgs).toHaveLength(0);
  });

  it('a plain subscriber of the same filter on another node still gets every message; the group each once', async () => {
    const topic = uid('mixed');
    const filter = `$share/${uid('g')}/${topic}`;
    const mc = await member(c, filter);
    const plain = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('plain') });
    await plain.client.subscribeAsync(topic, { qos: 1 });
    await known(a, 1);
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
    const want = Array.from({ length: 20 }, (_, i) => `x${i}`);
    for (const w of want) await p.client.publishAsync(topic, w, { qos: 1 });
    expect((await plain.inbox.waitFor(20)).map((m) => m.payload)).toEqual(want);
    await mc.inbox.waitFor(20);
    await sleep(200);
    exactlyOnce([mc.inbox], want);
  });

  it('when the last member on a node leaves, the group\'s messages go to the members left on other nodes', async () => {
    const topic = uid('leave');
    const filter = `$share/${uid('g')}/${topic}`;
    const mb = await member(b, filter);
    const mc = await member(c, filter);
    await waitUntil('both nodes known on A', async () => (await metric(a, 'cluster_shared_remote_placements')) === 2);
    await mc.client.endAsync();
    // C announces that its group is gone; A then sends everything to B.
    await waitUntil('C\'s member gone for A', async () => (await metric(a, 'cluster_shared_remote_placements')) === 1);
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    const want = Array.from({ length: 20 }, (_, i) => `r${i}`);
    for (const w of want) await p.client.publishAsync(topic, w, { qos: 1 });
    expect((await mb.inbox.waitFor(20)).map((m) => m.payload).sort()).toEqual([...want].sort());
  });

  it.skipIf(!HAVE_MOSQUITTO)('mosquitto_sub on node C and MQTT.js on node B in one group: each message once', async () => {
    const topic = uid('mosq');
    const group = uid('g');
    const filter = `$share/${group}/${topic}`;
    const mb = await member(b, filter);
    let out = '';
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(c.tcpPort), '-V', 'mqttv5', '-q', '1', '-t', filter, '-i', uid('ms')]);
    sub.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitUntil('node A knows C\'s member too', async () => {
        const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('probe') });
        await p.client.publishAsync(topic, 'probe', { qos: 1 });
        await p.client.endAsync();
        await sleep(50);
        return out.includes('probe');
      });
      const before = mb.inbox.msgs.length;
      const outBefore = out.length;
      const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
      const want = Array.from({ length: 20 }, (_, i) => `q${i}`);
      for (const w of want) await p.client.publishAsync(topic, w, { qos: 1 });
      await waitUntil('20 deliveries', () => mb.inbox.msgs.length - before + out.slice(outBefore).trim().split('\n').filter((l) => l.startsWith('q')).length >= 20);
      await sleep(200);
      const fromMosq = out.slice(outBefore).trim().split('\n').filter((l) => l.startsWith('q'));
      const fromMb = mb.inbox.msgs.slice(before).map((m) => m.payload);
      expect([...fromMosq, ...fromMb].sort()).toEqual([...want].sort());
      expect(fromMosq.length).toBeGreaterThan(0);
    } finally {
      sub.kill();
    }
  });
});
