/**
 * A cluster of three broker nodes over one real nats-server (docs/cluster.md,
 * src/cluster/): cross-node publish/subscribe at QoS 0/1/2 with MQTT.js and the mosquitto
 * clients, wildcards and topics NATS reserves characters of, no loops, retained messages
 * and wills across nodes, a SUBACK that covers the other nodes, unsubscribe, and a NATS
 * restart. Node A runs every actor on one thread, nodes B and C have 2 gateway and 2
 * shard threads, so both paths to the cluster link are used.
 */
import { describe, it, expect, afterAll, beforeAll, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { startTestBroker, metric, type TestBroker } from '../helpers/broker.js';
import { ClientPool, uid, waitUntil } from '../helpers/clients.js';
import { HAVE_NATS, NatsServer } from '../helpers/nats.js';
import { decodeImPayload, encodeImPayload, ImMedia } from '../../src/im/index.js';
import { HAVE_MOSQUITTO } from '../helpers/peers.js';

if (!HAVE_NATS) console.warn('43-cluster: nats-server not on PATH (Debian package nats-server): the cluster tests are skipped');

function mosquitto(cmd: 'mosquitto_pub' | 'mosquitto_sub', args: string[]): { done: Promise<string>; out(): string } {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return { done: new Promise((r) => p.on('close', () => r(out))), out: () => out };
}

describe.skipIf(!HAVE_NATS)('43 cluster over NATS', () => {
  let nats: NatsServer;
  let a: TestBroker;
  let b: TestBroker;
  let c: TestBroker;
  const pool = new ClientPool();

  beforeAll(async () => {
    nats = await NatsServer.start();
    const node = (name: string) => ({ cluster: { nats: nats.url, node: name, flushTimeout: 2 } });
    a = await startTestBroker('single', node('a'));
    b = await startTestBroker('multi', node('b'));
    c = await startTestBroker('multi', node('c'));
  }, 60_000);

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    await nats?.stop();
  }, 60_000);

  afterEach(() => pool.closeAll());

  it('QoS 0, 1 and 2 published on node A reach MQTT.js subscribers on nodes B and C, once each, in order per QoS [MQTT-4.6.0-6]', async () => {
    const topic = `${uid('x')}/chat`;
    const sb = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('sb') });
    const sc = await pool.connect(c.wsUrl, { protocolVersion: 4, clientId: uid('sc') });
    await sb.client.subscribeAsync(topic, { qos: 2 });
    await sc.client.subscribeAsync(topic, { qos: 2 });
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    for (let i = 0; i < 30; i++) await p.client.publishAsync(topic, `m${i}`, { qos: (i % 3) as 0 | 1 | 2 });
    for (const s of [sb, sc]) {
      const got = await s.inbox.waitFor(30);
      expect(await s.inbox.settle(150)).toHaveLength(30);
      // The order is kept per QoS (the spec's Ordered Topic is per topic and QoS); a QoS 2
      // message may be overtaken by QoS 0 ones published after it.
      for (const qos of [0, 1, 2]) {
        const want = Array.from({ length: 30 }, (_, i) => i).filter((i) => i % 3 === qos).map((i) => `m${i}`);
        expect(got.filter((m) => m.packet.qos === qos).map((m) => m.payload)).toEqual(want);
      }
    }
  });

  it('a subscriber on the publishing node gets a message once: nothing loops back through NATS', async () => {
    const topic = uid('loop');
    const local = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('l') });
    const remote = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('r') });
    await local.client.subscribeAsync(topic, { qos: 1 });
    await remote.client.subscribeAsync(topic, { qos: 1 });
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await p.client.publishAsync(topic, 'once', { qos: 1 });
    for (const s of [local, remote]) expect((await s.inbox.settle(300)).map((m) => m.payload)).toEqual(['once']);
  });

  it('[MQTT-4.7.1-2][MQTT-4.7.1-3] wildcards across nodes, and topic levels NATS reserves characters of (".", "*", ">", "~", spaces, empty levels)', async () => {
    const root = uid('w');
    const s = await pool.connect(c.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await s.client.subscribeAsync([`${root}/+/x`, `${root}/deep/#`], { qos: 1 });
    const p = await pool.connect(a.wsUrl, { protocolVersion: 5, clientId: uid('p') });
    const topics = [`${root}/a.b/x`, `${root}/*/x`, `${root}/>/x`, `${root}/with space/x`, `${root}//x`, `${root}/deep`, `${root}/deep/er/~7E`, `${root}/a/y`];
    for (const t of topics) await p.client.publishAsync(t, t, { qos: 1 });
    const want = topics.filter((t) => !t.endsWith('/y'));
    const got = await s.inbox.waitFor(want.length);
    expect(got.map((m) => m.topic).sort()).toEqual([...want].sort());
    expect(await s.inbox.settle(200)).toHaveLength(want.length);
  });

  it('a SUBACK on one node covers publishes made right after it on another node', async () => {
    for (let i = 0; i < 5; i++) {
      const topic = uid('race');
      const s = await pool.connect(b.tcpUrl, { protocolVersion: 4, clientId: uid('s') });
      const p = await pool.connect(c.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
      await s.client.subscribeAsync(topic, { qos: 1 });
      await p.client.publishAsync(topic, 'now', { qos: 1 });
      expect((await s.inbox.waitFor(1))[0]!.payload).toBe('now');
    }
  });

  it('retained messages are kept by every node: a later subscriber on another node gets it [MQTT-3.3.1-6]', async () => {
    const topic = uid('ret');
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await p.client.publishAsync(topic, 'kept', { qos: 1, retain: true });
    await waitUntil('the retained message on node C', async () => {
      const s = await pool.connect(c.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
      await s.client.subscribeAsync(topic, { qos: 1 });
      const got = await s.inbox.settle(100);
      await s.client.endAsync();
      return got.some((m) => m.payload === 'kept' && m.packet.retain);
    });
  });

  it('a will published by node A reaches a subscriber on node B [MQTT-3.1.2-8]', async () => {
    const topic = uid('will');
    const s = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await s.client.subscribeAsync(topic, { qos: 1 });
    const w = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('w'), will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } });
    w.client.stream.destroy();
    expect((await s.inbox.waitFor(1))[0]!.payload).toBe('gone');
  });

  it.skipIf(!HAVE_MOSQUITTO)('mosquitto_pub on node C to mosquitto_sub on node A, QoS 1', async () => {
    const topic = uid('mosq');
    const before = await metric(a, 'cluster_subscriptions');
    const sub = mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(a.tcpPort), '-t', topic, '-q', '1', '-C', '3', '-W', '10', '-d']);
    // Its stdout is a pipe (block-buffered until it exits): node A's NATS subscription is the sign.
    await waitUntil('mosquitto_sub subscribed on node A', async () => (await metric(a, 'cluster_subscriptions')) > before);
    await new Promise((r) => setTimeout(r, 100));
    for (const m of ['one', 'two', 'three']) {
      const out = await mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(c.tcpPort), '-t', topic, '-q', '1', '-m', m]).done;
      expect(out).toBe('');
    }
    const out = await sub.done;
    const lines = out.split('\n').filter((l) => l.length > 0 && !l.startsWith('Client ') && !l.startsWith('Subscribed'));
    expect(lines, out).toEqual(['one', 'two', 'three']);
  });

  it('unsubscribing removes the node\'s NATS subscription; the other nodes stop sending to it', async () => {
    const topic = uid('unsub');
    const before = await metric(c, 'cluster_subscriptions');
    const s = await pool.connect(c.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await s.client.subscribeAsync(topic, { qos: 1 });
    expect(await metric(c, 'cluster_subscriptions')).toBe(before + 1);
    await s.client.unsubscribeAsync(topic);
    await waitUntil('the subscription gone', async () => (await metric(c, 'cluster_subscriptions')) === before);
    const inBefore = await metric(c, 'cluster_messages_in_total');
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await p.client.publishAsync(topic, 'nobody', { qos: 1 });
    await new Promise((r) => setTimeout(r, 200));
    expect(await metric(c, 'cluster_messages_in_total')).toBe(inBefore);
  });

  it('IM figure 3 across nodes: Alice\'s PC (node A) writes to Jim; Jim\'s PC (node C) and phone (node A) get it, Alice\'s phone (node B) gets the copy, her PC nothing back', async () => {
    const ns = 'default';
    const inbox = (u: string) => `/${ns}/im/u/${u}`;
    const alice = uid('alice').replace(/-/g, '_');
    const jim = uid('jim').replace(/-/g, '_');
    // Persistent sessions, pre-subscribed to the user's inbox before CONNACK (no SUBSCRIBE).
    const device = (url: string, user: string, name: string) =>
      pool.connect(url, { protocolVersion: 5, clientId: `${user}/${name}`, username: user, clean: false, properties: { sessionExpiryInterval: 600 } });
    const alicePc = await device(a.tcpUrl, alice, 'pc');
    const alicePhone = await device(b.wsUrl, alice, 'phone');
    const jimPc = await device(c.tcpUrl, jim, 'pc');
    const jimPhone = await device(a.tcpUrl, jim, 'phone');
    const payload = encodeImPayload({ sender: alice, ts: Math.floor(Date.now() / 1000), kind: 0, media: ImMedia.TEXT, content: { con: [{ ty: 0, co: 'hi Jim' }] } });
    await alicePc.client.publishAsync(inbox(jim), payload, { qos: 1 });
    for (const d of [jimPc, jimPhone, alicePhone]) {
      const [m] = await d.inbox.waitFor(1);
      expect(decodeImPayload(m!.packet.payload as Buffer).content.con[0]!.co).toBe('hi Jim');
    }
    expect(await alicePc.inbox.settle(300)).toHaveLength(0);
  });

  it('every node hears the others; a node that stops is noticed as gone within seconds', async () => {
    await waitUntil('three nodes seen', async () => (await metric(a, 'cluster_nodes')) === 3 && (await metric(c, 'cluster_nodes')) === 3);
    const d = await startTestBroker('single', { cluster: { nats: nats.url, node: 'd' } });
    await waitUntil('node d joined', async () => (await metric(a, 'cluster_nodes')) === 4);
    await d.close();
    await waitUntil('node d gone', async () => (await metric(a, 'cluster_nodes')) === 3, 8000);
    expect(await metric(a, 'cluster_node_events_total{kind="gone"}')).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it('NATS restarts: the nodes reconnect, restore their subscriptions, and cross-node delivery goes on', async () => {
    const topic = uid('restart');
    const s = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await s.client.subscribeAsync(topic, { qos: 1 });
    await nats.stop();
    await waitUntil('nodes see NATS gone', async () => (await metric(b, 'cluster_nats_connected')) === 0 && (await metric(a, 'cluster_nats_connected')) === 0);
    await nats.start();
    await waitUntil('nodes reconnected', async () => (await metric(b, 'cluster_nats_connected')) === 1 && (await metric(a, 'cluster_nats_connected')) === 1, 20_000);
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await p.client.publishAsync(topic, 'after', { qos: 1 });
    expect((await s.inbox.waitFor(1))[0]!.payload).toBe('after');
    expect(await metric(a, 'cluster_nats_reconnects_total')).toBeGreaterThanOrEqual(1);
  }, 40_000);
});
