/**
 * Sessions across the nodes of a cluster (docs/cluster.md, "Sessions across nodes";
 * src/session/cluster-takeover.ts, src/cluster/takeover-link.ts): a client id lives on one
 * node at a time; a connection on another node kicks the old one with 0x8E and takes the
 * session over with its subscriptions, queue and unacknowledged messages. Three nodes on
 * one real nats-server; MQTT.js, a raw packet client and mosquitto_sub.
 */
import { describe, it, expect, afterAll, beforeAll, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IDisconnectPacket } from 'mqtt-packet';
import { startTestBroker, metric, type TestBroker } from '../helpers/broker.js';
import { ClientPool, closed, sleep, uid, waitUntil } from '../helpers/clients.js';
import { HAVE_NATS, NatsServer } from '../helpers/nats.js';
import { HAVE_MOSQUITTO } from '../helpers/peers.js';

if (!HAVE_NATS) console.warn('45-cluster-takeover: nats-server not on PATH (Debian package nats-server): skipped');

const persistent = (clientId: string) => ({
  protocolVersion: 5 as const,
  clientId,
  clean: false,
  properties: { sessionExpiryInterval: 300 },
});

describe.skipIf(!HAVE_NATS)('45 sessions across cluster nodes', () => {
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

  afterEach(() => pool.closeAll());

  it('[MQTT-3.1.4-3] a connection on another node kicks the old one with 0x8E and resumes its session: subscriptions follow', async () => {
    const id = uid('move');
    const topic = uid('t');
    const first = await pool.connect(a.tcpUrl, persistent(id));
    await first.client.subscribeAsync(topic, { qos: 1 });
    const kicked = new Promise<number | undefined>((r) => first.client.once('disconnect', (p: IDisconnectPacket) => r(p.reasonCode)));
    const moved0 = await metric(b, 'cluster_sessions_moved_in_total');
    const second = await pool.connect(b.wsUrl, persistent(id));
    expect(second.connack.sessionPresent).toBe(true);
    expect(await kicked).toBe(0x8e);
    await closed(first.client);
    expect(await metric(b, 'cluster_sessions_moved_in_total')).toBe(moved0 + 1);
    // The subscription moved with the session: a publish on a third node reaches the new connection only.
    const p = await pool.connect(c.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await p.client.publishAsync(topic, 'after', { qos: 1 });
    expect((await second.inbox.waitFor(1))[0]!.payload).toBe('after');
    expect(first.inbox.msgs).toHaveLength(0);
  });

  it('[MQTT-3.1.2-4] an offline session\'s queued messages are delivered, in order, to its client reconnecting on another node', async () => {
    const id = uid('q');
    const topic = uid('t');
    const s = await pool.connect(a.tcpUrl, persistent(id));
    await s.client.subscribeAsync(topic, { qos: 1 });
    await s.client.endAsync();
    const p = await pool.connect(c.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    for (let i = 0; i < 50; i++) await p.client.publishAsync(topic, `m${i}`, { qos: 1 });
    // The messages went to node A, where the session is (offline).
    await waitUntil('50 messages queued on node A', async () => (await metric(a, 'messages_queued')) >= 50).catch(() => {});
    const back = await pool.connect(b.tcpUrl, persistent(id));
    expect(back.connack.sessionPresent).toBe(true);
    const got = await back.inbox.waitFor(50, 5000);
    expect(got.map((m) => m.payload)).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    expect(await back.inbox.settle(200)).toHaveLength(50);
  });

  it('[MQTT-4.4.0-1] unacknowledged QoS 1 messages move under their packet ids and are resent with DUP on the new node', async () => {
    const id = uid('inflight');
    const topic = uid('t');
    const raw = await pool.raw(a.tcpUrl, 5);
    await raw.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
    await raw.next('suback');
    const p = await pool.connect(c.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    for (let i = 0; i < 3; i++) await p.client.publishAsync(topic, `u${i}`, { qos: 1 });
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await raw.next('publish'));
    // Never acknowledged; the client comes back on node B as a raw client too.
    const raw2 = await pool.raw(b.tcpUrl, 5);
    const connack = await raw2.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } });
    expect(connack.sessionPresent).toBe(true);
    const again = [];
    for (let i = 0; i < 3; i++) again.push(await raw2.next('publish'));
    expect(again.map((x) => [x.messageId, x.dup, x.payload.toString()])).toEqual(sent.map((x) => [x.messageId, true, x.payload.toString()]));
    for (const x of again) raw2.send({ cmd: 'puback', messageId: x.messageId! });
    expect(await raw.closesWithin(2000)).toBe(true);
  });

  it('no QoS 1 message is lost while a subscriber moves between nodes under a steady stream', async () => {
    const id = uid('stream');
    const topic = uid('t');
    const s1 = await pool.connect(a.tcpUrl, persistent(id));
    await s1.client.subscribeAsync(topic, { qos: 1 });
    const p = await pool.connect(c.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    const N = 300;
    let sent = 0;
    const sending = (async () => {
      for (; sent < N; sent++) {
        await p.client.publishAsync(topic, `s${sent}`, { qos: 1 });
        if (sent % 10 === 0) await sleep(2);
      }
    })();
    await waitUntil('the stream under way', () => sent > 60);
    const s2 = await pool.connect(b.tcpUrl, persistent(id));
    await sending;
    const want = Array.from({ length: N }, (_, i) => `s${i}`);
    await waitUntil('every message at one of the two connections', () => {
      const got = new Set([...s1.inbox.msgs, ...s2.inbox.msgs].map((m) => m.payload));
      return want.every((w) => got.has(w));
    });
    // What the new connection got is in publish order (a message the old connection never acknowledged may come again first).
    const second = s2.inbox.msgs.map((m) => Number(m.payload.slice(1)));
    const firstNew = second.findIndex((n, i) => i > 0 && n < second[i - 1]!);
    expect(firstNew).toBe(-1);
  });

  it('[MQTT-3.1.2-4] a clean start on another node discards the session there: no subscriptions, the old connection is kicked', async () => {
    const id = uid('clean');
    const topic = uid('t');
    const old = await pool.connect(b.tcpUrl, persistent(id));
    await old.client.subscribeAsync(topic, { qos: 1 });
    const fresh = await pool.connect(c.tcpUrl, { protocolVersion: 5, clientId: id, clean: true });
    expect(fresh.connack.sessionPresent).toBe(false);
    await closed(old.client);
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await p.client.publishAsync(topic, 'nobody', { qos: 1 });
    expect(await fresh.inbox.settle(300)).toHaveLength(0);
  });

  it('[MQTT-3.1.4-3] an MQTT 3.1.1 client connected on node A is closed when its client id connects on node C', async () => {
    const id = uid('v4');
    const old = await pool.connect(a.wsUrl, { protocolVersion: 4, clientId: id });
    await pool.connect(c.tcpUrl, { protocolVersion: 4, clientId: id });
    await closed(old.client);
  });

  it('a session of another user is neither taken over nor kicked from another node', async () => {
    const id = uid('owned');
    const owner = await pool.connect(a.tcpUrl, { ...persistent(id), username: 'alice' });
    await expect(pool.connect(b.tcpUrl, { ...persistent(id), username: 'mallory' })).rejects.toThrow();
    expect(owner.client.connected).toBe(true);
  });

  it.skipIf(!HAVE_MOSQUITTO)('mosquitto_sub resumes on node C a session it left on node B, with the messages queued meanwhile', async () => {
    const id = uid('mosq');
    const topic = uid('t');
    const run = (port: number, count: number): Promise<string> =>
      new Promise((resolve) => {
        const proc = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv5', '-i', id, '-c', '-x', '300', '-q', '1', '-t', topic, '-C', String(count), '-W', '10']);
        let out = '';
        proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
        proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
        proc.on('close', () => resolve(out));
      });
    // First: subscribe (one message to know it is there), then exit with a normal DISCONNECT.
    const first = run(b.tcpPort, 1);
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await waitUntil('mosquitto_sub subscribed on B', async () => {
      await p.client.publishAsync(topic, 'hello', { qos: 1 });
      return (await Promise.race([first.then(() => true), sleep(200).then(() => false)]));
    });
    expect(await first).toContain('hello');
    for (let i = 0; i < 5; i++) await p.client.publishAsync(topic, `q${i}`, { qos: 1 });
    await sleep(200);
    const second = await run(c.tcpPort, 5);
    expect(second.trim().split('\n').filter((l) => l.startsWith('q'))).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
  });

  it('a node that died is not waited for: its clients connect to another node with a new session', async () => {
    const d = await startTestBroker('single', node('d'));
    const id = uid('dead');
    const s = await pool.connect(d.tcpUrl, persistent(id));
    await s.client.subscribeAsync(uid('t'), { qos: 1 });
    await waitUntil('node D known to node A', async () => (await metric(a, 'cluster_nodes')) === 4);
    await d.close();
    await waitUntil('node D gone for node A', async () => (await metric(a, 'cluster_nodes')) === 3, 10_000);
    const timeouts = await metric(a, 'cluster_errors_total{op="claim_timeout"}');
    const again = await pool.connect(a.tcpUrl, persistent(id));
    // Its session died with the node (the memory store here; a node restarted on its data dir brings it back).
    expect(again.connack.sessionPresent).toBe(false);
    // Nobody waited for D: the claim settled with the live nodes' answers.
    expect(await metric(a, 'cluster_errors_total{op="claim_timeout"}')).toBe(timeouts);
  });
  it('a node restarted on its data directory brings its sessions back, and another node takes one over with its stored messages', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-node-e-'));
    const conf = { ...node('e'), dataDir, store: { durability: 'sync' as const } };
    let e = await startTestBroker('multi', conf);
    const id = uid('stored');
    const topic = uid('t');
    const s = await pool.connect(e.tcpUrl, persistent(id));
    await s.client.subscribeAsync(topic, { qos: 1 });
    await s.client.endAsync();
    const p = await pool.connect(a.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    for (let i = 0; i < 5; i++) await p.client.publishAsync(topic, `k${i}`, { qos: 1 });
    await waitUntil('5 messages queued on node E', async () => (await metric(e, 'messages_queued')) === 5);
    await e.close();
    e = await startTestBroker('multi', conf);
    try {
      const back = await pool.connect(b.tcpUrl, persistent(id));
      expect(back.connack.sessionPresent).toBe(true);
      expect((await back.inbox.waitFor(5, 5000)).map((m) => m.payload)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
      // Moved, not copied: node E no longer has it.
      await waitUntil('the session gone from node E', async () => (await metric(e, 'sessions')) === 0);
    } finally {
      await e.close();
    }
  });
});
