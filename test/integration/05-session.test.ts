/**
 * Sessions: persistence across connections (3.1.1 CleanSession=0, v5 Session Expiry),
 * queued and unacknowledged messages, redelivery with DUP, clean sessions, expiry.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { IClientOptions } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, TRANSPORTS, sharedBroker, sleep, uid, urlOf, within } from '../helpers/clients.js';
import type { Version } from '../helpers/raw-client.js';

const VERSIONS = [4, 5] as const;

/** Options for a persistent session with MQTT.js: CleanSession=0, or v5 Clean Start=0 + expiry. */
const persistent = (v: 4 | 5, clientId: string, expiry = 60): IClientOptions =>
  v === 5
    ? { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: expiry } }
    : { protocolVersion: 4, clientId, clean: false };

/** CONNECT fields for a persistent session with the raw client. */
const rawPersistent = (v: Version, clientId: string) =>
  v === 5 ? { clientId, clean: false, properties: { sessionExpiryInterval: 60 } } : { clientId, clean: false };

describe.each(TOPOLOGIES)('05 session (%s)', (topo) => {
  const ref = sharedBroker(topo);
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  describe.each(TRANSPORTS)('over %s', (tr) => {
    const url = () => urlOf(ref.b, tr);

    it.each(VERSIONS)('[MQTT-3.1.2-5][MQTT-3.1.2-4] v%i: QoS 1/2 messages published while offline are delivered in order on reconnect, Session Present=1; QoS 0 is not queued', async (v) => {
      const id = uid('s');
      const topic = uid('q');
      const s1 = await pool.connect(url(), persistent(v, id));
      await s1.client.subscribeAsync(topic, { qos: 2 });
      await s1.client.endAsync();
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      for (let i = 0; i < 20; i++) {
        await pub.client.publishAsync(topic, `q1-${i}`, { qos: 1 });
        await pub.client.publishAsync(topic, `q0-${i}`, { qos: 0 });
      }
      await pub.client.publishAsync(topic, 'q2-a', { qos: 2 });
      await pub.client.publishAsync(topic, 'q2-b', { qos: 2 });
      const s2 = await pool.connect(url(), persistent(v, id));
      expect(s2.connack.sessionPresent).toBe(true);
      await s2.inbox.waitFor(22);
      const msgs = await s2.inbox.settle(300);
      expect(msgs.filter((m) => m.packet.qos === 1).map((m) => m.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `q1-${i}`));
      expect(msgs.filter((m) => m.packet.qos === 2).map((m) => m.payload)).toEqual(['q2-a', 'q2-b']);
      expect(msgs.filter((m) => m.packet.qos === 0)).toEqual([]);
      // The session's subscription is still there: live messages keep coming.
      await pub.client.publishAsync(topic, 'live', { qos: 0 });
      expect((await s2.inbox.waitFor(23)).at(-1)!.payload).toBe('live');
    });

    it.each(VERSIONS)('[MQTT-4.4.0-1][MQTT-3.3.1-1] v%i: an unacknowledged QoS 1 message is resent with DUP=1 and the same packet id after reconnect', async (v) => {
      const id = uid('s');
      const topic = uid('dup');
      const c1 = await pool.raw(url(), v);
      await c1.connect(rawPersistent(v, id));
      c1.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
      await c1.next('suback');
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      await pub.client.publishAsync(topic, 'm1', { qos: 1 });
      const first = await c1.next('publish');
      expect([first.payload.toString(), first.qos, first.dup]).toEqual(['m1', 1, false]);
      // No PUBACK: the connection just goes away.
      c1.destroy();
      await c1.closed;
      const c2 = await pool.raw(url(), v);
      const connack = await c2.connect(rawPersistent(v, id));
      expect(connack.sessionPresent).toBe(true);
      const again = await c2.next('publish');
      expect([again.payload.toString(), again.qos, again.dup, again.messageId]).toEqual(['m1', 1, true, first.messageId]);
      c2.send({ cmd: 'puback', messageId: again.messageId });
      // Acknowledged now: not sent a third time, and new messages flow with DUP=0.
      await pub.client.publishAsync(topic, 'm2', { qos: 1 });
      const next = await c2.next('publish');
      expect([next.payload.toString(), next.dup]).toEqual(['m2', false]);
      c2.send({ cmd: 'puback', messageId: next.messageId });
      expect(await c2.collect(300, 'publish')).toEqual([]);
    });
  });

  it('[MQTT-4.4.0-1] QoS 2: a PUBREC-ed message is continued with PUBREL (not resent) after reconnect; an un-PUBREC-ed one is resent with DUP', async () => {
    const id = uid('s');
    const topic = uid('q2');
    const c1 = await pool.raw(ref.b.tcpUrl, 4);
    await c1.connect(rawPersistent(4, id));
    c1.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2 }] });
    await c1.next('suback');
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'a', { qos: 2 });
    await pub.client.publishAsync(topic, 'b', { qos: 2 });
    const a = await c1.next('publish');
    const b = await c1.next('publish');
    expect([a.payload.toString(), b.payload.toString()]).toEqual(['a', 'b']);
    c1.send({ cmd: 'pubrec', messageId: a.messageId });
    expect((await c1.next('pubrel')).messageId).toBe(a.messageId);
    c1.destroy(); // no PUBCOMP for a, no PUBREC for b
    await c1.closed;
    const c2 = await pool.raw(ref.b.wsUrl, 4);
    expect((await c2.connect(rawPersistent(4, id))).sessionPresent).toBe(true);
    const rel = await c2.next('pubrel');
    expect(rel.messageId).toBe(a.messageId);
    const b2 = await c2.next('publish');
    expect([b2.payload.toString(), b2.dup, b2.messageId]).toEqual(['b', true, b.messageId]);
    // Resent in the original order: the PUBREL for a came before b's PUBLISH.
    expect(c2.received.filter((p) => p.cmd !== 'connack').map((p) => p.cmd)).toEqual(['pubrel', 'publish']);
    c2.send({ cmd: 'pubcomp', messageId: a.messageId });
    c2.send({ cmd: 'pubrec', messageId: b2.messageId });
    expect((await c2.next('pubrel')).messageId).toBe(b2.messageId);
    c2.send({ cmd: 'pubcomp', messageId: b2.messageId });
    expect(await c2.collect(300)).toEqual([]);
  });

  it('[MQTT-4.4.0-1][MQTT-4.6.0-6] unacknowledged messages come back first, then the ones queued while offline, all in order', async () => {
    const id = uid('s');
    const topic = uid('ord');
    const willTopic = uid('gone');
    const c1 = await pool.raw(ref.b.tcpUrl, 5);
    // The will tells when the broker has seen the connection go (and detached the session):
    // only messages published after that are "queued while offline"; earlier ones may
    // still have been sent to the dying connection, and are then rightly resent with DUP.
    await c1.connect({ ...rawPersistent(5, id), will: { topic: willTopic, payload: Buffer.from('x'), qos: 0, retain: false } });
    c1.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
    await c1.next('suback');
    const pub = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.subscribeAsync(willTopic, { qos: 0 });
    for (const m of ['u1', 'u2', 'u3']) await pub.client.publishAsync(topic, m, { qos: 1 });
    const unacked: IPublishPacket[] = [];
    for (let i = 0; i < 3; i++) unacked.push(await c1.next('publish'));
    c1.destroy();
    await pub.inbox.waitFor(1, 2000, willTopic);
    for (const m of ['o1', 'o2']) await pub.client.publishAsync(topic, m, { qos: 1 });
    const c2 = await pool.raw(ref.b.tcpUrl, 5);
    expect((await c2.connect(rawPersistent(5, id))).sessionPresent).toBe(true);
    const got: IPublishPacket[] = [];
    for (let i = 0; i < 5; i++) {
      const p = await c2.next('publish');
      got.push(p);
      c2.send({ cmd: 'puback', messageId: p.messageId });
    }
    expect(got.map((p) => [p.payload.toString(), p.dup])).toEqual([
      ['u1', true],
      ['u2', true],
      ['u3', true],
      ['o1', false],
      ['o2', false],
    ]);
    expect(got.slice(0, 3).map((p) => p.messageId)).toEqual(unacked.map((p) => p.messageId));
  });

  it('[MQTT-3.1.2-6] (3.1.1) CleanSession=1 discards the stored session: no Session Present, no subscriptions, no queued messages', async () => {
    const id = uid('s');
    const topic = uid('c');
    const s1 = await pool.connect(ref.b.tcpUrl, persistent(4, id));
    await s1.client.subscribeAsync(topic, { qos: 1 });
    await s1.client.endAsync();
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'queued', { qos: 1 });
    const s2 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: id, clean: true });
    expect(s2.connack.sessionPresent).toBe(false);
    await pub.client.publishAsync(topic, 'live', { qos: 1 });
    expect(await s2.inbox.settle(300)).toEqual([]);
    await s2.client.endAsync();
    // And the clean session itself is gone after its connection.
    const s3 = await pool.connect(ref.b.tcpUrl, persistent(4, id));
    expect(s3.connack.sessionPresent).toBe(false);
    expect(await s3.inbox.settle(300)).toEqual([]);
  });

  it('[MQTT-3.1.2-4] v5 Clean Start=1 discards the stored session', async () => {
    const id = uid('s');
    const topic = uid('c');
    const s1 = await pool.connect(ref.b.wsUrl, persistent(5, id));
    await s1.client.subscribeAsync(topic, { qos: 1 });
    await s1.client.endAsync();
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'queued', { qos: 1 });
    const s2 = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: id, clean: true, properties: { sessionExpiryInterval: 60 } });
    expect(s2.connack.sessionPresent).toBe(false);
    await pub.client.publishAsync(topic, 'live', { qos: 1 });
    expect(await s2.inbox.settle(300)).toEqual([]);
  });

  it('[MQTT-3.1.4-3][MQTT-3.1.2-5] a takeover with Clean Start=0 keeps the session: subscriptions and unacknowledged messages move to the new connection', async () => {
    const id = uid('s');
    const topic = uid('tk');
    const c1 = await pool.raw(ref.b.tcpUrl, 5);
    await c1.connect(rawPersistent(5, id));
    c1.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
    await c1.next('suback');
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'pending', { qos: 1 });
    const pending = await c1.next('publish');
    // The first connection is still open when the second one arrives.
    const c2 = await pool.raw(ref.b.wsUrl, 5);
    const connack = await c2.connect(rawPersistent(5, id));
    expect(connack.sessionPresent).toBe(true);
    expect((await c1.next('disconnect')).reasonCode).toBe(0x8e);
    const again = await c2.next('publish');
    expect([again.payload.toString(), again.dup, again.messageId]).toEqual(['pending', true, pending.messageId]);
    c2.send({ cmd: 'puback', messageId: again.messageId });
    await pub.client.publishAsync(topic, 'after', { qos: 1 });
    expect((await c2.next('publish')).payload.toString()).toBe('after');
  });

  it.each(VERSIONS)('[MQTT-3.1.2-6] v%i: taking over a connection whose session has expiry 0 does not reuse that session', async (v) => {
    const id = uid('s');
    const topic = uid('tk0');
    // 3.1.1 CleanSession=1, or v5 Session Expiry 0: the session lasts as long as the connection.
    const first = await pool.connect(ref.b.tcpUrl, { protocolVersion: v, clientId: id, clean: true });
    await first.client.subscribeAsync(topic, { qos: 1 });
    const second = await pool.connect(ref.b.wsUrl, persistent(v, id));
    expect(second.connack.sessionPresent).toBe(false);
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'for the old subscription', { qos: 1 });
    expect(await second.inbox.settle(300)).toEqual([]);
  });

  it('[MQTT-4.1.0-2] v5 session ends when its Session Expiry Interval has passed', async () => {
    const id = uid('s');
    const s1 = await pool.connect(ref.b.tcpUrl, persistent(5, id, 1));
    await s1.client.subscribeAsync(uid('t'), { qos: 1 });
    await s1.client.endAsync();
    await sleep(1600);
    const s2 = await pool.connect(ref.b.tcpUrl, persistent(5, id, 1));
    expect(s2.connack.sessionPresent).toBe(false);
  });

  it('[MQTT-3.14.2-1] v5 DISCONNECT with Session Expiry Interval 0 ends a session that had 60', async () => {
    const id = uid('s');
    const c1 = await pool.raw(ref.b.tcpUrl, 5);
    await c1.connect(rawPersistent(5, id));
    await c1.disconnect({ reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    const c2 = await pool.raw(ref.b.tcpUrl, 5);
    expect((await c2.connect(rawPersistent(5, id))).sessionPresent).toBe(false);
  });

  it('[MQTT-3.14.2-1] v5 DISCONNECT can lengthen the Session Expiry Interval (1 s -> 30 s)', async () => {
    const id = uid('s');
    const c1 = await pool.raw(ref.b.tcpUrl, 5);
    await c1.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } });
    await c1.disconnect({ reasonCode: 0, properties: { sessionExpiryInterval: 30 } });
    await sleep(1600);
    const c2 = await pool.raw(ref.b.tcpUrl, 5);
    expect((await c2.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 30 } })).sessionPresent).toBe(true);
  });

  it('[MQTT-5 §3.14.2.2.2] v5 DISCONNECT setting a non-zero Session Expiry after CONNECT had 0 is a protocol error (DISCONNECT 0x82); no session is kept', async () => {
    const id = uid('s');
    const c1 = await pool.raw(ref.b.tcpUrl, 5);
    await c1.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 0 } });
    c1.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 30 } });
    expect((await c1.next('disconnect', 2000)).reasonCode).toBe(0x82);
    await within(c1.closed, 2000, 'connection closed');
    const c2 = await pool.raw(ref.b.tcpUrl, 5);
    expect((await c2.connect(rawPersistent(5, id))).sessionPresent).toBe(false);
  });
});

describe.each(TOPOLOGIES)('05 session with limits.maxSessionExpiryInterval = 1 (%s)', (topo) => {
  const ref = sharedBroker(topo, { limits: { maxSessionExpiryInterval: 1 } });
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  it('v5: a longer Session Expiry Interval is capped, and CONNACK says so', async () => {
    const id = uid('s');
    const s1 = await pool.connect(ref.b.tcpUrl, persistent(5, id, 3600));
    expect(s1.connack.properties?.sessionExpiryInterval).toBe(1);
    await s1.client.endAsync();
    await sleep(1600);
    expect((await pool.connect(ref.b.tcpUrl, persistent(5, id, 3600))).connack.sessionPresent).toBe(false);
  });

  it('3.1.1: CleanSession=0 sessions last limits.maxSessionExpiryInterval after disconnect', async () => {
    const id = uid('s');
    const s1 = await pool.connect(ref.b.tcpUrl, persistent(4, id));
    await s1.client.endAsync();
    expect((await pool.connect(ref.b.tcpUrl, persistent(4, id))).connack.sessionPresent).toBe(true);
    await pool.closeAll();
    await sleep(1600);
    expect((await pool.connect(ref.b.tcpUrl, persistent(4, id))).connack.sessionPresent).toBe(false);
  });
});
