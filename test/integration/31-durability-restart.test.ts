/**
 * Durable state across restarts (issue 8, docs/durability.md), with in-process brokers
 * stopped gracefully (SIGTERM path: broker.close()) and started again on the same data
 * directory. The crash (SIGKILL) tests are 30-durability-crash.test.ts.
 *
 *  - persistent sessions, their queued messages (in order) and unacknowledged ones (resent
 *    with DUP under the same packet id), over MQTT.js, a raw client and mosquitto_sub;
 *  - v5 clients get DISCONNECT 0x8B when the broker stops;
 *  - retained messages (an expired one purged), presence reset, expired sessions purged;
 *  - a data dir moved to another shard count; durability memory keeps nothing;
 *  - limits on anonymous sessions.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { metric, startTestBroker, TOPOLOGIES, type TestBroker, type TopologyName } from '../helpers/broker.js';
import { inbox, sleep, uid, within } from '../helpers/clients.js';
import { RawClient } from '../helpers/raw-client.js';
import type { DeepPartial } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { HAVE_MOSQUITTO } from '../helpers/peers.js';

const run = promisify(execFile);

const brokers: TestBroker[] = [];
const clients: MqttClient[] = [];
const raws: RawClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => {})));
  for (const r of raws.splice(0)) r.destroy();
  for (const b of brokers.splice(0)) await b.close().catch(() => {});
});

async function start(topology: TopologyName, dataDir: string, over: DeepPartial<Config> = {}): Promise<TestBroker> {
  const b = await startTestBroker(topology, { dataDir, ...over });
  brokers.push(b);
  return b;
}

/** Graceful stop (what SIGTERM does), then a new broker on the same data dir. */
async function restart(b: TestBroker, topology: TopologyName, over: DeepPartial<Config> = {}): Promise<TestBroker> {
  await b.close();
  brokers.splice(brokers.indexOf(b), 1);
  // New ports: clients reconnect to the new URLs (the state is in the data dir).
  return start(topology, b.config.dataDir, over);
}

async function connect(url: string, o: IClientOptions): Promise<MqttClient> {
  const c = await within(mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...o }), 8000, `CONNECT ${o.clientId ?? ''}`);
  clients.push(c);
  return c;
}

const persistent = (clientId: string): IClientOptions => ({ clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } });

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'sb-durable-'));

describe.each(TOPOLOGIES)('durable state across a graceful restart (%s)', (topology) => {
  it('[MQTT-3.1.2-4][MQTT-4.4.0-1] a persistent v5 session gets its queued QoS 1 and QoS 2 messages after a restart, in order; v5 clients were told 0x8B', async () => {
    let b = await start(topology, tempDir());
    const id = uid('phone');
    const sub = await connect(b.tcpUrl, persistent(id));
    await sub.subscribeAsync('dur/#', { qos: 2 });
    await sub.endAsync();
    clients.splice(clients.indexOf(sub), 1);

    const pub = await connect(b.tcpUrl, { protocolVersion: 5 });
    for (let i = 0; i < 50; i++) await pub.publishAsync(`dur/q${(i % 2) + 1}`, `m${i}`, { qos: ((i % 2) + 1) as 1 | 2 });
    const watcher = await connect(b.tcpUrl, { protocolVersion: 5 });
    const reason = new Promise<number | undefined>((resolve) => watcher.on('disconnect', (p) => resolve(p.reasonCode)));
    expect(await metric(b, 'messages_queued')).toBe(50);

    b = await restart(b, topology);
    // Server shutting down [MQTT-4.13.2-1]: 0x8B before the close.
    expect(await within(reason, 5000, 'DISCONNECT at shutdown')).toBe(0x8b);
    expect(await metric(b, 'sessions')).toBeGreaterThanOrEqual(1);
    expect(await metric(b, 'messages_queued')).toBe(50);

    const back = mqtt.connect(b.tcpUrl, { ...persistent(id), reconnectPeriod: 0 });
    clients.push(back);
    const box = inbox(back);
    const connack = await within(new Promise<{ sessionPresent: boolean }>((r) => back.once('connect', r)), 5000, 'CONNACK');
    expect(connack.sessionPresent).toBe(true);
    await waitFor('50 messages', () => box.msgs.length >= 50);
    // In order per topic [MQTT-4.6.0-5] (MQTT.js hands a QoS 2 message over on PUBREL, so
    // the two topics interleave differently on the client side), each at its QoS.
    for (const q of [1, 2]) {
      const got = box.msgs.filter((m) => m.topic === `dur/q${q}`);
      expect(got.map((m) => m.payload)).toEqual(Array.from({ length: 25 }, (_, i) => `m${2 * i + q - 1}`));
      expect(new Set(got.map((m) => m.packet.qos))).toEqual(new Set([q]));
    }
    // Consumed entries are compacted: only the session record and the store's own documents remain.
    await waitFor('the queue to drain', async () => (await metric(b, 'messages_queued')) === 0);
  });

  it('[MQTT-4.4.0-1] a message sent and not acknowledged before the restart is resent with DUP under its packet id', async () => {
    let b = await start(topology, tempDir());
    const id = uid('raw');
    let raw = await RawClient.open(b.tcpUrl, 5);
    raws.push(raw);
    await raw.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 600 } });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'unacked/t', qos: 1 }] });
    await raw.next('suback');
    const pub = await connect(b.tcpUrl, { protocolVersion: 5 });
    await pub.publishAsync('unacked/t', 'keep me', { qos: 1 });
    const first = await raw.next('publish', 5000);
    expect(first.dup).toBe(false);

    b = await restart(b, topology); // never acknowledged
    raw = await RawClient.open(b.tcpUrl, 5);
    raws.push(raw);
    const connack = await raw.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 600 } });
    expect(connack.sessionPresent).toBe(true);
    const again = await raw.next('publish', 5000);
    expect(again.dup).toBe(true);
    expect(again.messageId).toBe(first.messageId);
    expect(again.payload.toString()).toBe('keep me');
    raw.send({ cmd: 'puback', messageId: again.messageId });
  });

  it('[MQTT-3.3.1-5] retained messages survive a restart; one whose Message Expiry ran out meanwhile is purged [MQTT-3.3.2-5]', async () => {
    let b = await start(topology, tempDir());
    const pub = await connect(b.tcpUrl, { protocolVersion: 5 });
    await pub.publishAsync('ret/keep', 'kept', { qos: 1, retain: true });
    await pub.publishAsync('ret/short', 'short-lived', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
    await pub.publishAsync('ret/gone', 'x', { qos: 1, retain: true });
    await pub.publishAsync('ret/gone', '', { qos: 1, retain: true }); // deleted [MQTT-3.3.1-10]
    await sleep(1100);
    b = await restart(b, topology);
    const sub = await connect(b.tcpUrl, { protocolVersion: 5 });
    const box = inbox(sub);
    await sub.subscribeAsync('ret/#', { qos: 1 });
    await waitFor('the retained message', () => box.msgs.length >= 1);
    await sleep(200);
    expect(box.msgs.map((m) => `${m.topic} ${m.payload}`)).toEqual(['ret/keep kept']);
    expect(box.msgs[0]!.packet.retain).toBe(true);
  });

  it('[MQTT-3.1.2-23] a session whose expiry ran out while the broker was down is purged at start', async () => {
    let b = await start(topology, tempDir());
    const id = uid('brief');
    const c = await connect(b.tcpUrl, { ...persistent(id), properties: { sessionExpiryInterval: 1 } });
    await c.subscribeAsync('brief/t', { qos: 1 });
    await c.endAsync();
    clients.splice(clients.indexOf(c), 1);
    await b.close();
    brokers.splice(brokers.indexOf(b), 1);
    await sleep(1300);
    b = await start(topology, b.config.dataDir);
    expect(await metric(b, 'sessions_expired_total')).toBe(1);
    const back = await connect(b.tcpUrl, persistent(id));
    expect((back as unknown as { connackPacket?: { sessionPresent: boolean } }).connackPacket?.sessionPresent ?? false).toBe(false);
  });

  it('durability async keeps sessions and messages across a graceful restart too', async () => {
    const over: DeepPartial<Config> = { store: { durability: 'async' } };
    let b = await start(topology, tempDir(), over);
    const id = uid('async');
    const sub = await connect(b.tcpUrl, persistent(id));
    await sub.subscribeAsync('async/t', { qos: 1 });
    await sub.endAsync();
    clients.splice(clients.indexOf(sub), 1);
    const pub = await connect(b.tcpUrl, { protocolVersion: 5 });
    for (let i = 0; i < 20; i++) await pub.publishAsync('async/t', `a${i}`, { qos: 1 });
    b = await restart(b, topology, over);
    const back = mqtt.connect(b.tcpUrl, { ...persistent(id), reconnectPeriod: 0 });
    clients.push(back);
    const box = inbox(back);
    await waitFor('20 messages', () => box.msgs.length >= 20);
    expect(box.msgs.map((m) => m.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `a${i}`));
  });

  it('durability memory keeps nothing: the session is gone after a restart', async () => {
    const over: DeepPartial<Config> = { store: { durability: 'memory' } };
    let b = await start(topology, tempDir(), over);
    const id = uid('mem');
    const sub = await connect(b.tcpUrl, persistent(id));
    await sub.subscribeAsync('mem/t', { qos: 1 });
    await sub.endAsync();
    clients.splice(clients.indexOf(sub), 1);
    b = await restart(b, topology, over);
    expect(existsSync(join(b.config.dataDir, 'store'))).toBe(false);
    expect(await metric(b, 'sessions')).toBe(0);
  });
});

describe('durable state: more than one start', () => {
  it('a data dir written with 2 shards starts with 1 shard (and back): sessions and queued messages move to their new shard', async () => {
    const dir = tempDir();
    let b = await start('multi', dir);
    const ids = Array.from({ length: 8 }, (_, i) => uid(`mv${i}`));
    for (const id of ids) {
      const c = await connect(b.tcpUrl, persistent(id));
      await c.subscribeAsync(`mv/${id}`, { qos: 1 });
      await c.endAsync();
      clients.splice(clients.indexOf(c), 1);
    }
    const pub = await connect(b.tcpUrl, { protocolVersion: 5 });
    for (const id of ids) for (let i = 0; i < 3; i++) await pub.publishAsync(`mv/${id}`, `${id}-${i}`, { qos: 1 });
    b = await restart(b, 'single'); // 1 shard now
    expect(await metric(b, 'sessions')).toBe(8);
    b = await restart(b, 'multi'); // 2 again
    for (const id of ids) {
      const c = mqtt.connect(b.tcpUrl, { ...persistent(id), reconnectPeriod: 0 });
      clients.push(c);
      const box = inbox(c);
      await waitFor(`the 3 messages of ${id}`, () => box.msgs.length >= 3);
      expect(box.msgs.map((m) => m.payload)).toEqual([0, 1, 2].map((i) => `${id}-${i}`));
    }
  });

  it('limits.maxAnonymousSessions: a new persistent session of a client without a username is refused with 0x97; maxAnonymousSessionExpiry caps the expiry', async () => {
    const b = await start('single', tempDir(), { limits: { maxAnonymousSessions: 2, maxAnonymousSessionExpiry: 120 } });
    const a = await connect(b.tcpUrl, persistent(uid('anon1')));
    // The capped Session Expiry Interval is reported in CONNACK [MQTT-3.2.2-3].
    expect((a as unknown as { connackPacket?: { properties?: { sessionExpiryInterval?: number } } }).connackPacket?.properties?.sessionExpiryInterval).toBe(120);
    await connect(b.tcpUrl, persistent(uid('anon2')));
    const err = await mqtt.connectAsync(b.tcpUrl, { ...persistent(uid('anon3')), reconnectPeriod: 0, connectTimeout: 5000 }).then(
      (c) => {
        clients.push(c);
        return undefined;
      },
      (e: { code?: number }) => e.code,
    );
    expect(err).toBe(0x97);
    // Clean sessions are not counted.
    await connect(b.tcpUrl, { clientId: uid('clean'), protocolVersion: 5 });
    expect(await metric(b, 'connections_rejected_total{reason="max_anonymous_sessions"}')).toBe(1);
  });

  it('one broker per data dir: a second broker process on the same data dir is refused (exit 2, the owner named)', async () => {
    const b = await start('single', tempDir());
    const child = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--host', '127.0.0.1', '--tcp-port', '0', '--ws-port', '0', '--data-dir', b.config.dataDir], {
      timeout: 30_000,
      env: { ...process.env, SWITCHBOARD_CONFIG: '' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code, stderr: e.stderr ?? '' }),
    );
    expect(child.code).toBe(2);
    expect(child.stderr).toContain(`is in use by another broker (pid ${process.pid})`);
  });

  it.skipIf(!HAVE_MOSQUITTO)('mosquitto_sub: a persistent 3.1.1 session keeps its QoS 1 messages across a restart', async () => {
    let b = await start('single', tempDir());
    const common = ['-h', '127.0.0.1', '-p', String(b.tcpPort), '-c', '-i', uid('mosq'), '-q', '1', '-t', 'mosq/t'];
    await run('mosquitto_sub', [...common, '-E'], { timeout: 10_000 });
    const lines = Array.from({ length: 100 }, (_, i) => `line-${i}`).join('\n') + '\n';
    await new Promise<void>((resolve, reject) => {
      const p = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.tcpPort), '-q', '1', '-t', 'mosq/t', '-l'], { stdio: ['pipe', 'ignore', 'pipe'] });
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited ${code}`))));
      p.stdin.end(lines);
    });
    b = await restart(b, 'single');
    const { stdout } = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.tcpPort), ...common.slice(4), '-C', '100', '-W', '10'], { timeout: 15_000 });
    expect(stdout.trim().split('\n')).toEqual(Array.from({ length: 100 }, (_, i) => `line-${i}`));
  });
});
