/**
 * Shared subscriptions `$share/{ShareName}/{filter}` (MQTT 5.0 section 4.8.2; issue 9 item
 * 3) on a real broker in both topologies. In the multi topology (2 gateways + 2 shards)
 * the group's owner shard and its members' shards differ for some of the random client
 * ids, and publishers and members connect through either gateway.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IPublishPacket } from 'mqtt-packet';
import { startTestBroker, TOPOLOGIES, type TestBroker } from '../helpers/broker.js';
import { ClientPool, sharedBroker, sleep, uid, within, type Opened } from '../helpers/clients.js';
import { shardOf } from '../../src/runtime/sharding.js';
import { HAVE_MOSQUITTO } from '../helpers/peers.js';

if (!HAVE_MOSQUITTO) console.warn('35-shared-subscriptions: mosquitto_sub test SKIPPED: mosquitto-clients not on PATH');

/** Payloads an MQTT.js member received. */
const got = (o: Opened): string[] => o.inbox.msgs.map((m) => m.payload);

/** Waits until the members together received `n` messages (or fails after `ms`). */
async function together(members: Opened[], n: number, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (members.reduce((k, m) => k + m.inbox.msgs.length, 0) < n) {
    if (Date.now() > end) throw new Error(`members got ${members.map((m) => m.inbox.msgs.length).join('+')} of ${n} messages`);
    await sleep(10);
  }
}

describe.each(TOPOLOGIES)('35 shared subscriptions (%s)', (topo) => {
  const ref = sharedBroker(topo);
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  const member = async (filter: string, version: 4 | 5 = 5, qos: 0 | 1 | 2 = 1): Promise<Opened> => {
    const o = await pool.connect(ref.b.tcpUrl, { protocolVersion: version, clientId: uid('m') });
    const granted = await o.client.subscribeAsync(filter, { qos });
    expect(granted[0]!.qos).toBe(qos);
    return o;
  };
  const publisher = async (): Promise<Opened> => pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('p') });

  it('[MQTT 4.8.2] each message goes to exactly one member of the group; round robin spreads them evenly', async () => {
    const t = uid('jobs');
    const members = [await member(`$share/workers/${t}/+`), await member(`$share/workers/${t}/+`), await member(`$share/workers/${t}/+`)];
    const pub = await publisher();
    const sent = Array.from({ length: 30 }, (_, i) => `m${i}`);
    for (const p of sent) await pub.client.publishAsync(`${t}/x`, p, { qos: 1 });
    await together(members, 30);
    await sleep(100); // nothing more comes
    const all = members.flatMap(got);
    expect(all.sort()).toEqual([...sent].sort()); // every message once, none twice
    expect(members.map((m) => got(m).length)).toEqual([10, 10, 10]);
  });

  it('[MQTT 4.8.2] two groups on the same filter each get every message; a normal subscriber alongside gets every message too', async () => {
    const t = uid('t');
    const a = [await member(`$share/a/${t}`), await member(`$share/a/${t}`)];
    const b = [await member(`$share/b/${t}`, 4), await member(`$share/b/${t}`)];
    const plain = await member(t);
    const pub = await publisher();
    for (let i = 0; i < 8; i++) await pub.client.publishAsync(t, `m${i}`, { qos: 1 });
    await together(a, 8);
    await together(b, 8);
    await plain.inbox.waitFor(8);
    await sleep(100);
    expect(a.flatMap(got).sort()).toEqual(b.flatMap(got).sort());
    expect(a.flatMap(got)).toHaveLength(8);
    expect(got(plain)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
  });

  it('[MQTT-4.8.2-3] each member gets messages at its own granted QoS', async () => {
    const t = uid('q');
    const q0 = await member(`$share/g/${t}`, 5, 0);
    const q1 = await member(`$share/g/${t}`, 5, 1);
    const pub = await publisher();
    for (let i = 0; i < 4; i++) await pub.client.publishAsync(t, `m${i}`, { qos: 2 });
    await together([q0, q1], 4);
    expect(q0.inbox.msgs.map((m) => m.packet.qos)).toEqual([0, 0]);
    expect(q1.inbox.msgs.map((m) => m.packet.qos)).toEqual([1, 1]);
  });

  it('[MQTT 4.8.2] a member that disconnects with unacknowledged QoS 1 messages has them redelivered to another member', async () => {
    const t = uid('redeliver');
    const filter = `$share/g/${t}`;
    // The raw client never acknowledges anything.
    const raw = await pool.raw(ref.b.tcpUrl, 5);
    await raw.connect({ clientId: uid('noack') });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] });
    expect((await raw.next('suback')).granted).toEqual([1]);
    const other = await member(filter);
    const pub = await publisher();
    const sent = Array.from({ length: 10 }, (_, i) => `m${i}`);
    for (const p of sent) await pub.client.publishAsync(t, p, { qos: 1 });
    const unacked: string[] = [];
    while (unacked.length < 5) unacked.push(Buffer.from(((await raw.next('publish')) as IPublishPacket).payload).toString());
    await other.inbox.waitFor(5);
    raw.destroy(); // connection lost; the session (expiry 0) ends with it
    await other.inbox.waitFor(10);
    await sleep(100);
    expect(got(other).sort()).toEqual([...sent].sort());
    expect(got(other).slice(5).sort()).toEqual(unacked.sort());
  });

  it('[MQTT 5.0 3.3.1.3] no retained messages are sent on subscribing to a shared subscription', async () => {
    const t = uid('ret');
    const pub = await publisher();
    await pub.client.publishAsync(t, 'kept', { qos: 1, retain: true });
    const shared = await member(`$share/g/${t}`);
    const plain = await member(t);
    await plain.inbox.waitFor(1);
    expect(plain.inbox.msgs[0]!.packet.retain).toBe(true);
    expect(await shared.inbox.settle(300)).toEqual([]);
    // A live retained publish reaches the group like any message (RETAIN cleared, not Retain As Published).
    await pub.client.publishAsync(t, 'live', { qos: 1, retain: true });
    await shared.inbox.waitFor(1);
    expect(shared.inbox.msgs.map((m) => [m.payload, m.packet.retain])).toEqual([['live', false]]);
    await pub.client.publishAsync(t, '', { qos: 1, retain: true });
  });

  it('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82', async () => {
    const raw = await pool.raw(ref.b.tcpUrl, 5);
    await raw.connect({ clientId: uid('nl') });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `$share/g/${uid('t')}`, qos: 1, nl: true }] });
    const d = await raw.next('disconnect');
    expect(d.reasonCode).toBe(0x82);
    expect(await raw.closesWithin(1000)).toBe(true);
  });

  it('[MQTT-4.8.2-1][MQTT-4.8.2-2] an empty ShareName, one with "+" or "#", or no filter after it: SUBACK 0x8F (3.1.1: 0x80)', async () => {
    const bad = ['$share//a', '$share/g+/a', '$share/g#/a', '$share/g', '$share/g/'];
    const raw = await pool.raw(ref.b.tcpUrl, 5);
    await raw.connect({ clientId: uid('bad') });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [...bad.map((topic) => ({ topic, qos: 1 as const })), { topic: '$share/ok/a', qos: 1 }] });
    expect((await raw.next('suback')).granted).toEqual([...bad.map(() => 0x8f), 1]);
    const v4 = await pool.raw(ref.b.tcpUrl, 4);
    await v4.connect({ clientId: uid('bad4') });
    v4.send({ cmd: 'subscribe', messageId: 1, subscriptions: bad.map((topic) => ({ topic, qos: 1 as const })) });
    expect((await v4.next('suback')).granted).toEqual(bad.map(() => 0x80));
  });

  it('3.1.1 clients may use $share too; unsubscribing leaves the group', async () => {
    const t = uid('v4');
    const a = await member(`$share/g/${t}`, 4);
    const b = await member(`$share/g/${t}`, 4);
    const pub = await publisher();
    for (let i = 0; i < 4; i++) await pub.client.publishAsync(t, `m${i}`, { qos: 1 });
    await together([a, b], 4);
    expect(got(a)).toHaveLength(2);
    await a.client.unsubscribeAsync(`$share/g/${t}`);
    for (let i = 4; i < 8; i++) await pub.client.publishAsync(t, `m${i}`, { qos: 1 });
    await together([a, b], 8);
    expect(got(a)).toHaveLength(2);
    expect(got(b)).toEqual(expect.arrayContaining(['m4', 'm5', 'm6', 'm7']));
  });

  it.skipIf(!HAVE_MOSQUITTO)('mosquitto_sub as a member: `mosquitto_sub -t $share/g/t`', async () => {
    const t = uid('mosq');
    const other = await member(`$share/g/${t}`);
    const proc = mosqSub(ref.b.tcpPort, `$share/g/${t}`, 2);
    try {
      await within(proc.subscribed, 5000, 'mosquitto_sub SUBACK');
      const pub = await publisher();
      for (let i = 0; i < 4; i++) await pub.client.publishAsync(t, `m${i}`, { qos: 1 });
      const out = await within(proc.exited, 8000, 'mosquitto_sub exit');
      await other.inbox.waitFor(2);
      expect(out.code).toBe(0);
      expect([...out.messages, ...got(other)].sort()).toEqual(['m0', 'm1', 'm2', 'm3']);
    } finally {
      proc.proc.kill('SIGKILL');
    }
  });
});

describe.each(TOPOLOGIES)('35 shared subscriptions, sticky strategy (%s)', (topo) => {
  const ref = sharedBroker(topo, { sharedSubscriptions: { strategy: 'sticky' } });
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  it('sticky: one member gets every message while it is online, then another one', async () => {
    const t = uid('sticky');
    const members = await Promise.all([0, 1, 2].map(async () => {
      const o = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('m') });
      await o.client.subscribeAsync(`$share/g/${t}`, { qos: 1 });
      return o;
    }));
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    for (let i = 0; i < 6; i++) await pub.client.publishAsync(t, `a${i}`, { qos: 1 });
    await together(members, 6);
    const first = members.find((m) => m.inbox.msgs.length > 0)!;
    expect(got(first)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5']);
    await first.client.endAsync();
    const rest = members.filter((m) => m !== first);
    for (let i = 0; i < 4; i++) await pub.client.publishAsync(t, `b${i}`, { qos: 1 });
    await together(rest, 4);
    const second = rest.find((m) => m.inbox.msgs.length > 0)!;
    expect(got(second)).toEqual(['b0', 'b1', 'b2', 'b3']);
  });
});

describe.each(TOPOLOGIES)('35 shared subscriptions across a restart (%s)', (topo) => {
  const brokers: TestBroker[] = [];
  const pool = new ClientPool();
  afterEach(async () => {
    await pool.closeAll();
    for (const b of brokers.splice(0)) await b.close().catch(() => {});
  });

  it('[MQTT-3.1.2-4] a persistent member session\'s shared subscription survives a broker restart and still receives', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-shared-'));
    let b = await startTestBroker(topo, { dataDir });
    brokers.push(b);
    const id = uid('persist');
    const t = uid('dur');
    const opts = { protocolVersion: 5 as const, clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 } };
    const m1 = await pool.connect(b.tcpUrl, opts);
    await m1.client.subscribeAsync(`$share/g/${t}`, { qos: 1 });
    await m1.client.endAsync();
    await b.close();
    brokers.splice(0);
    b = await startTestBroker(topo, { dataDir });
    brokers.push(b);
    // While the member is offline: queued on it (the only member).
    const pub = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(t, 'offline', { qos: 1 });
    const m2 = await pool.connect(b.tcpUrl, opts);
    expect(m2.connack.sessionPresent).toBe(true);
    await m2.inbox.waitFor(1);
    await pub.client.publishAsync(t, 'online', { qos: 1 });
    await m2.inbox.waitFor(2);
    expect(got(m2)).toEqual(['offline', 'online']);
  });
});

describe('35 shared subscriptions when a shard thread restarts (multi)', () => {
  const pool = new ClientPool();
  let b: TestBroker | undefined;
  afterEach(async () => {
    await pool.closeAll();
    await b?.close();
    b = undefined;
  });
  /** A name from `make` that lands on shard `shard` of 2 (client ids, group keys). */
  const on = (shard: number, make: (i: number) => string): string => {
    for (let i = 0; ; i++) if (shardOf(make(i), 2) === shard) return make(i);
  };
  /** Unique client ids `{prefix}-{pid}-...-{i}` (one base per call, so `on` sees stable names). */
  const named = (prefix: string): ((i: number) => string) => {
    const base = uid(prefix);
    return (i) => `${base}-${i}`;
  };
  const waitFor = async (what: string, ok: () => boolean, ms = 10_000): Promise<void> => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  };

  it('the owner\'s thread restarts: the group is rebuilt from its members before the gateways route to it again', async () => {
    b = await startTestBroker('multi');
    const t = uid('own');
    const key = on(0, (i) => `$share/g${i}/${t}`);
    const m = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: on(1, named('m')) });
    await m.client.subscribeAsync(key, { qos: 1 });
    const pub = await pool.connect(b.wsUrl, { protocolVersion: 5, clientId: on(1, named('p')) });
    b.crashThread('shard', 0);
    await waitFor('shard 0 to be restarted', () => b!.restarts.shard === 1);
    await sleep(50);
    // Routed to the restarting owner: held by the gateway until its snapshot (with the group) is in.
    await pub.client.publishAsync(t, 'after', { qos: 1 });
    await m.inbox.waitFor(1, 8000);
    expect(got(m)).toEqual(['after']);
  });

  it('a member\'s shard restarts: its members that are gone leave their groups, the others get every message', async () => {
    b = await startTestBroker('multi');
    const t = uid('mem');
    const key = on(0, (i) => `$share/g${i}/${t}`);
    const gone = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: on(1, named('gone')) });
    await gone.client.subscribeAsync(key, { qos: 1 });
    const stays = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: on(0, named('stays')) });
    await stays.client.subscribeAsync(key, { qos: 1 });
    const pub = await pool.connect(b.wsUrl, { protocolVersion: 5, clientId: on(0, named('p')) });
    b.crashThread('shard', 1);
    await waitFor('shard 1 to be restarted', () => b!.restarts.shard === 1);
    await waitFor('the member on shard 1 to be disconnected', () => !gone.client.connected);
    await sleep(50);
    for (let i = 0; i < 4; i++) await pub.client.publishAsync(t, `m${i}`, { qos: 1 });
    await stays.inbox.waitFor(4, 8000);
    expect(got(stays)).toEqual(['m0', 'm1', 'm2', 'm3']);
  });
});

/** mosquitto_sub with -d (to see its SUBACK), one line per message, exits after `count` messages. */
function mosqSub(port: number, topic: string, count: number): { proc: ChildProcess; subscribed: Promise<void>; exited: Promise<{ code: number | null; messages: string[] }> } {
  const proc = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-q', '1', '-d', '-W', '10', '-C', String(count), '-F', 'MSG|%p', '-t', topic], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let onSub: () => void = () => {};
  const subscribed = new Promise<void>((r) => (onSub = r));
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (d: string) => {
    out += d;
    if (/received SUBACK/.test(out)) onSub();
  });
  const exited = new Promise<{ code: number | null; messages: string[] }>((resolve) =>
    proc.on('close', (code) => resolve({ code, messages: out.split('\n').filter((l) => l.startsWith('MSG|')).map((l) => l.slice(4)) })),
  );
  return { proc, subscribed, exited };
}
