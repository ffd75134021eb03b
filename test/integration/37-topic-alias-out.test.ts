/**
 * MQTT 5 Topic Aliases from the server to clients (issue 9 item 2, docs/mqtt5.md "Topic
 * aliases"; MQTT 5.0 section 3.3.2.3.4) through real sockets, every topology: MQTT.js
 * resolves them to the right topics, a raw client checks the PUBLISH packets themselves,
 * clients that did not ask (or 3.1.1) never get one. Named after the normative statement
 * checked (MQTT 5.0 OASIS Standard; a section where the spec has no statement id).
 *
 * mosquitto_sub: libmosquitto 2.0 (Debian 12 has 2.0.11) lets a client announce
 * topic-alias-maximum but treats every PUBLISH with an empty Topic Name as a protocol error
 * (lib/handle_publish.c), so it cannot take an alias alone [MQTT-3.3.2-10]. It is tested
 * with PUBLISHes that carry topic and alias (set and replaced), and with
 * mqtt.topicAliasMaximumOut 0, the setting for such clients.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import type { IPublishPacket } from 'mqtt-packet';
import { metric, TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, sharedBroker, uid, within } from '../helpers/clients.js';
import type { RawClient } from '../helpers/raw-client.js';

const HAVE_MOSQUITTO_SUB = (() => {
  const r = spawnSync('mosquitto_sub', ['--help'], { encoding: 'utf8' });
  return r.error === undefined && /-D\b/.test(`${r.stdout}${r.stderr}`);
})();
/** mosquitto_sub's debug lines (-d) sit in stdio's buffer when stdout is a pipe: stdbuf makes them lines. */
const HAVE_STDBUF = spawnSync('stdbuf', ['--version']).error === undefined;

/**
 * mosquitto_sub -V mqttv5 -D connect topic-alias-maximum `max` on `filter` at QoS 1 until it
 * has `count` messages; resolves with its "topic|alias|payload" lines (alias blank when the
 * PUBLISH had none; %A reads it right, the JSON output of 2.0.11 does not). `publish` runs
 * once mosquitto_sub has its SUBACK.
 */
async function mosquittoSub(port: number, filter: string, max: number, count: number, publish: () => Promise<void>): Promise<string[]> {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv5', '-D', 'connect', 'topic-alias-maximum', String(max)];
  args.push('-t', filter, '-q', '1', '-F', '%t|%A|%p', '-d', '-C', String(count), '-W', '20');
  const proc = HAVE_STDBUF
    ? spawn('stdbuf', ['-oL', 'mosquitto_sub', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let subscribed = (): void => {};
  const suback = new Promise<void>((r) => (subscribed = r));
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('received SUBACK')) subscribed();
  });
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('close', resolve));
  try {
    await within(suback, 5000, `mosquitto_sub's SUBACK (${out})`);
    await publish();
    expect(await within(exited, 10_000, 'mosquitto_sub to exit'), out).toBe(0);
  } finally {
    proc.kill();
  }
  return out.split('\n').filter((l) => l.includes('|'));
}
if (!HAVE_MOSQUITTO_SUB) console.warn('37-topic-alias-out: mosquitto_sub with -D (MQTT 5 properties) not on PATH: its test is skipped');

/** `n` distinct topics under `base`, long enough to be aliased (6 characters or more). */
const topicsUnder = (base: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${base}/sensor-${i}`);

/**
 * A stream over `topics` that reuses some (hits) and cycles through more topics than a small
 * map holds (replacements): each topic twice in a row, round after round.
 */
const streamOver = (topics: string[], rounds = 2): string[] => Array.from({ length: rounds }, () => topics.flatMap((t) => [t, t])).flat();

/** The PUBLISHes a raw client receives, `n` of them (it acknowledges none). */
async function publishesOf(c: RawClient, n: number): Promise<IPublishPacket[]> {
  const out: IPublishPacket[] = [];
  for (let i = 0; i < n; i++) out.push(await c.next('publish', 3000));
  return out;
}

const shape = (ps: IPublishPacket[]) => ps.map((p) => [p.topic, p.properties?.topicAlias]);

describe.each(TOPOLOGIES)('37 MQTT 5 Topic Aliases to clients (%s)', (topo) => {
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  describe('defaults (mqtt.topicAliasMaximumOut 16)', () => {
    const ref = sharedBroker(topo);

    /** An MQTT.js publisher sending `stream` in order, QoS 1 (each acknowledged before the next). */
    async function publish(stream: string[], qos: 0 | 1 = 1): Promise<void> {
      const p = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
      for (let i = 0; i < stream.length; i++) await p.client.publishAsync(stream[i]!, `${stream[i]}#${i}`, { qos });
    }

    it('[MQTT-3.3.2-10] MQTT.js with topicAliasMaximum 4 (TCP and WebSocket) gets every message with its topic, over 10 topics: aliases set, reused and replaced', async () => {
      const base = uid('mqttjs');
      const topics = topicsUnder(base, 10);
      const subs = await Promise.all(
        [ref.b.tcpUrl, ref.b.wsUrl].map((url) => pool.connect(url, { protocolVersion: 5, clientId: uid('s'), properties: { topicAliasMaximum: 4 } })),
      );
      for (const s of subs) await s.client.subscribeAsync(`${base}/#`, { qos: 1 });
      const stream = streamOver(topics);
      await publish(stream);
      for (const s of subs) {
        const got = await s.inbox.waitFor(stream.length, 5000);
        // MQTT.js resolved every alias: each message has the topic it was published to.
        expect(got.map((m) => [m.topic, m.payload])).toEqual(stream.map((t, i) => [t, `${t}#${i}`]));
        const aliases = got.map((m) => m.packet.properties?.topicAlias);
        expect(aliases.every((a) => a !== undefined && a >= 1 && a <= 4)).toBe(true);
        // Each topic's second message in a row went with the alias alone.
        expect(got.filter((m) => m.packet.topic === '').length).toBe(stream.length / 2);
      }
      expect(await metric(ref.b, 'topic_aliases_sent_total{kind="replaced"}')).toBeGreaterThan(0);
      expect(await metric(ref.b, 'topic_aliases_sent_total{kind="reused"}')).toBeGreaterThanOrEqual(stream.length);
    });

    it('section 3.3.2.3.4: raw client, the first PUBLISH of a topic carries the topic and an alias, the next ones an empty topic and the same alias', async () => {
      const base = uid('raw');
      const [a, b] = topicsUnder(base, 2) as [string, string];
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c'), properties: { topicAliasMaximum: 8 } });
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/#`, qos: 0 }] });
      await c.next('suback');
      await publish([a, a, b, a, b, b]);
      expect(shape(await publishesOf(c, 6))).toEqual([
        [a, 1],
        ['', 1],
        [b, 2],
        ['', 1],
        ['', 2],
        ['', 2],
      ]);
    });

    it('[MQTT-3.1.2-26][MQTT-3.3.2-11] never an alias above the client\'s Topic Alias Maximum: with 2, the least recently used topic\'s alias is taken over', async () => {
      const base = uid('max');
      const [a, b, c3] = topicsUnder(base, 3) as [string, string, string];
      const c = await pool.raw(ref.b.wsUrl, 5);
      await c.connect({ clientId: uid('c'), properties: { topicAliasMaximum: 2 } });
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/#`, qos: 1 }] });
      await c.next('suback');
      await publish([a, b, a, c3, b, c3, a]);
      const got = await publishesOf(c, 7);
      expect(shape(got)).toEqual([
        [a, 1],
        [b, 2],
        ['', 1],
        [c3, 2], // b was the least recently used
        [b, 1], // now a was
        ['', 2],
        [a, 1], // and now b
      ]);
      expect(got.map((p) => String(p.payload))).toEqual([a, b, a, c3, b, c3, a].map((t, i) => `${t}#${i}`));
    });

    it('[MQTT-3.1.2-27] no Topic Alias Maximum in CONNECT, or 0: never an alias', async () => {
      const base = uid('none');
      const [t] = topicsUnder(base, 1) as [string];
      const absent = await pool.raw(ref.b.tcpUrl, 5);
      await absent.connect({ clientId: uid('c') });
      const zero = await pool.raw(ref.b.tcpUrl, 5);
      await zero.connect({ clientId: uid('c'), properties: { topicAliasMaximum: 0 } });
      for (const c of [absent, zero]) {
        c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/#`, qos: 1 }] });
        await c.next('suback');
      }
      await publish([t, t, t]);
      for (const c of [absent, zero]) expect(shape(await publishesOf(c, 3))).toEqual([0, 1, 2].map(() => [t, undefined]));
    });

    it('MQTT 3.1.1 clients never get aliases (MQTT.js and raw)', async () => {
      const base = uid('v4');
      const [t] = topicsUnder(base, 1) as [string];
      const js = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('s') });
      await js.client.subscribeAsync(`${base}/#`, { qos: 1 });
      const raw = await pool.raw(ref.b.wsUrl, 4);
      await raw.connect({ clientId: uid('c') });
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/#`, qos: 0 }] });
      await raw.next('suback');
      await publish([t, t, t]);
      expect((await js.inbox.waitFor(3)).map((m) => [m.packet.topic, m.payload])).toEqual([0, 1, 2].map((i) => [t, `${t}#${i}`]));
      expect((await publishesOf(raw, 3)).map((p) => p.topic)).toEqual([t, t, t]);
    });

    it('topics under 6 characters go without an alias', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c'), properties: { topicAliasMaximum: 8 } });
      // A short topic, unique to this test through its own client id as the only subscriber.
      const t = `s${Math.random().toString(36).slice(2, 6)}`;
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: t, qos: 0 }] });
      await c.next('suback');
      await publish([t, t]);
      expect(shape(await publishesOf(c, 2))).toEqual([
        [t, undefined],
        [t, undefined],
      ]);
    });

    it('[MQTT-3.3.2-7] aliases die with the connection: QoS 1 resent (DUP) on the next one carries its topic again', async () => {
      const base = uid('resend');
      const [t] = topicsUnder(base, 1) as [string];
      const id = uid('c');
      const first = await pool.raw(ref.b.tcpUrl, 5);
      await first.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 60, topicAliasMaximum: 4 } });
      first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${base}/#`, qos: 1 }] });
      await first.next('suback');
      await publish([t, t]);
      // Not acknowledged: both stay in the session's inflight window.
      expect(shape(await publishesOf(first, 2))).toEqual([
        [t, 1],
        ['', 1],
      ]);
      first.destroy();
      await first.closed;
      const second = await pool.raw(ref.b.tcpUrl, 5);
      const connack = await second.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 0, topicAliasMaximum: 4 } });
      expect(connack.sessionPresent).toBe(true);
      const again = await publishesOf(second, 2);
      expect(again.map((p) => [p.topic, p.properties?.topicAlias, p.dup])).toEqual([
        [t, 1, true],
        ['', 1, true],
      ]);
    });

    it.skipIf(!HAVE_MOSQUITTO_SUB)('[MQTT-3.3.2-10] mosquitto_sub -D connect topic-alias-maximum 10: 12 topics in turn, each PUBLISH sets or takes over an alias, every message has its topic', async () => {
      const base = uid('mosq');
      const topics = topicsUnder(base, 12);
      // Cycling through more topics than aliases, the least recently used is always the next
      // one: no alias alone (which libmosquitto 2.0 refuses), aliases 1..10 over and over.
      const stream = [...topics, ...topics];
      const lines = await mosquittoSub(ref.b.tcpPort, `${base}/#`, 10, stream.length, () => publish(stream));
      expect(lines).toEqual(stream.map((t, i) => `${t}|${(i % 10) + 1}|${t}#${i}`));
    });
  });

  describe('mqtt.topicAliasMaximumOut 0', () => {
    const ref = sharedBroker(topo, { mqtt: { topicAliasMaximumOut: 0 } });

    it.skipIf(!HAVE_MOSQUITTO_SUB)('[MQTT-3.1.2-26] mosquitto_sub announcing topic-alias-maximum 10 gets no alias, repeated topics included', async () => {
      const base = uid('mosq');
      const stream = streamOver(topicsUnder(base, 3));
      const lines = await mosquittoSub(ref.b.tcpPort, `${base}/#`, 10, stream.length, async () => {
        const p = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
        for (let i = 0; i < stream.length; i++) await p.client.publishAsync(stream[i]!, `${stream[i]}#${i}`, { qos: 1 });
      });
      expect(lines).toEqual(stream.map((t, i) => `${t}||${t}#${i}`));
    });

    it('[MQTT-3.1.2-26] a client allowing 10 aliases is sent none', async () => {
      const base = uid('off');
      const [t] = topicsUnder(base, 1) as [string];
      const s = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s'), properties: { topicAliasMaximum: 10 } });
      await s.client.subscribeAsync(`${base}/#`, { qos: 1 });
      const p = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
      for (let i = 0; i < 3; i++) await p.client.publishAsync(t, `m${i}`, { qos: 1 });
      const got = await s.inbox.waitFor(3);
      expect(got.map((m) => [m.packet.topic, m.packet.properties?.topicAlias, m.payload])).toEqual([0, 1, 2].map((i) => [t, undefined, `m${i}`]));
    });
  });
});
