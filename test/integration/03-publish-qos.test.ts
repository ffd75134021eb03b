/**
 * PUBLISH and the QoS flows in both directions, ordering, v5 message properties and
 * Message Expiry, and the `$SYS` publish restriction.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { IPublishPacket } from 'mqtt-packet';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, TRANSPORTS, sharedBroker, sleep, uid, urlOf } from '../helpers/clients.js';

type QoS = 0 | 1 | 2;
const QOS: QoS[] = [0, 1, 2];

describe.each(TOPOLOGIES)('03 publish / QoS (%s)', (topo) => {
  const ref = sharedBroker(topo);
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  describe.each(TRANSPORTS)('over %s', (tr) => {
    const url = () => urlOf(ref.b, tr);

    it('[MQTT-3.8.4-6] every published QoS x granted QoS is delivered once, at min(published, granted)', async () => {
      const p = uid('m');
      const sub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('s') });
      await sub.client.subscribeAsync({ [`${p}/0/+`]: { qos: 0 }, [`${p}/1/+`]: { qos: 1 }, [`${p}/2/+`]: { qos: 2 } });
      const pub = await pool.connect(url(), { protocolVersion: 5, clientId: uid('p') });
      for (const g of QOS) for (const q of QOS) await pub.client.publishAsync(`${p}/${g}/${q}`, `${g}${q}`, { qos: q });
      await sub.inbox.waitFor(9);
      const msgs = await sub.inbox.settle(200);
      const got = msgs.map((m) => `${m.payload}:${m.packet.qos}`).sort();
      const want = QOS.flatMap((g) => QOS.map((q) => `${g}${q}:${Math.min(g, q)}`)).sort();
      expect(got).toEqual(want);
    });

    it('[MQTT-4.3.2-2][MQTT-4.3.3-2] inbound flows: QoS 1 gets PUBACK, QoS 2 gets PUBREC then PUBCOMP, with the packet ids', async () => {
      const topic = uid('in');
      const watcher = await pool.connect(url(), { protocolVersion: 4, clientId: uid('w') });
      await watcher.client.subscribeAsync(topic, { qos: 0 });
      const c = await pool.raw(url(), 4);
      await c.connect({ clientId: uid('c') });
      c.send({ cmd: 'publish', topic, payload: Buffer.from('zero'), qos: 0, dup: false, retain: false });
      c.send({ cmd: 'publish', topic, payload: Buffer.from('one'), qos: 1, messageId: 11, dup: false, retain: false });
      expect((await c.next('puback')).messageId).toBe(11);
      c.send({ cmd: 'publish', topic, payload: Buffer.from('two'), qos: 2, messageId: 12, dup: false, retain: false });
      expect((await c.next('pubrec')).messageId).toBe(12);
      c.send({ cmd: 'pubrel', messageId: 12 });
      expect((await c.next('pubcomp')).messageId).toBe(12);
      await watcher.inbox.waitFor(3);
      expect(watcher.inbox.msgs.map((m) => m.payload)).toEqual(['zero', 'one', 'two']);
    });

    it('[MQTT-4.3.3-2] a resent QoS 2 PUBLISH (DUP=1) before PUBREL is acknowledged again but not delivered twice', async () => {
      const topic = uid('dup');
      const watcher = await pool.connect(url(), { protocolVersion: 4, clientId: uid('w') });
      await watcher.client.subscribeAsync(topic, { qos: 2 });
      const c = await pool.raw(url(), 5);
      await c.connect({ clientId: uid('c') });
      const pkt: IPublishPacket = { cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 77, dup: false, retain: false };
      c.send(pkt);
      expect((await c.next('pubrec')).messageId).toBe(77);
      c.send({ ...pkt, dup: true });
      expect((await c.next('pubrec')).messageId).toBe(77);
      c.send({ cmd: 'pubrel', messageId: 77 });
      expect((await c.next('pubcomp')).messageId).toBe(77);
      await watcher.inbox.waitFor(1);
      expect((await watcher.inbox.settle(300)).map((m) => m.payload)).toEqual(['once']);
    });

    it('[MQTT-4.3.2-1][MQTT-4.3.3-1] outbound flows: QoS 1 waits for PUBACK; QoS 2 goes PUBLISH, PUBREC, PUBREL, PUBCOMP', async () => {
      const topic = uid('out');
      const c = await pool.raw(url(), 4);
      await c.connect({ clientId: uid('c') });
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2 }] });
      await c.next('suback');
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      await pub.client.publishAsync(topic, 'q1', { qos: 1 });
      const m1 = await c.next('publish');
      expect([m1.qos, m1.dup, m1.payload.toString()]).toEqual([1, false, 'q1']);
      expect(m1.messageId).toBeGreaterThan(0);
      c.send({ cmd: 'puback', messageId: m1.messageId });
      await pub.client.publishAsync(topic, 'q2', { qos: 2 });
      const m2 = await c.next('publish');
      expect([m2.qos, m2.dup, m2.payload.toString()]).toEqual([2, false, 'q2']);
      c.send({ cmd: 'pubrec', messageId: m2.messageId });
      const rel = await c.next('pubrel');
      expect(rel.messageId).toBe(m2.messageId); // [MQTT-2.3.1-6] same packet id
      c.send({ cmd: 'pubcomp', messageId: m2.messageId });
      await pub.client.publishAsync(topic, 'q0', { qos: 0 });
      const m0 = await c.next('publish');
      expect([m0.qos, m0.dup, m0.payload.toString()]).toEqual([0, false, 'q0']); // [MQTT-3.3.1-2]
      // Nothing is resent: every flow was completed.
      expect(await c.collect(300)).toEqual([]);
    });

    it.each([1, 2] as const)('[MQTT-4.6.0-5][MQTT-4.6.0-6] 200 QoS %i messages arrive in publish order', async (qos) => {
      const topic = uid('ord');
      const sub = await pool.connect(url(), { protocolVersion: 5, clientId: uid('s') });
      await sub.client.subscribeAsync(topic, { qos });
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      const n = 200;
      await Promise.all(Array.from({ length: n }, (_, i) => pub.client.publishAsync(topic, String(i), { qos })));
      const msgs = await sub.inbox.waitFor(n, 3000);
      expect(msgs.map((m) => Number(m.payload))).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(msgs.every((m) => m.packet.qos === qos)).toBe(true);
    });
  });

  it('[MQTT-3.3.4-7] v5: more unreleased QoS 2 PUBLISHes than the Receive Maximum in CONNACK gets DISCONNECT 0x93', async () => {
    const c = await pool.raw(ref.b.tcpUrl, 5);
    const connack = await c.connect({ clientId: uid('c') });
    const max = connack.properties!.receiveMaximum!;
    const topic = uid('rm');
    for (let i = 1; i <= max + 1; i++) c.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 2, messageId: i, dup: false, retain: false });
    expect((await c.next('disconnect', 2000)).reasonCode).toBe(0x93);
    expect(c.received.filter((p) => p.cmd === 'pubrec')).toHaveLength(max);
    expect(await c.closesWithin(2000)).toBe(true);
  });

  it('[MQTT-4.3.3-2] 3.1.1 has no Receive Maximum: 300 unreleased QoS 2 PUBLISHes are all acknowledged and delivered', async () => {
    const topic = uid('rm3');
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('s') });
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const c = await pool.raw(ref.b.tcpUrl, 4);
    await c.connect({ clientId: uid('c') });
    const n = 300;
    for (let i = 1; i <= n; i++) c.send({ cmd: 'publish', topic, payload: Buffer.from(String(i)), qos: 2, messageId: i, dup: false, retain: false });
    for (let i = 1; i <= n; i++) expect((await c.next('pubrec')).messageId).toBe(i);
    for (let i = 1; i <= n; i++) c.send({ cmd: 'pubrel', messageId: i });
    for (let i = 1; i <= n; i++) expect((await c.next('pubcomp')).messageId).toBe(i);
    const msgs = await sub.inbox.waitFor(n);
    expect(msgs.map((m) => Number(m.payload))).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(c.isClosed).toBe(false);
  });

  it('[MQTT-3.3.2-4][MQTT-3.3.2-15][MQTT-3.3.2-16][MQTT-3.3.2-17][MQTT-3.3.2-18][MQTT-3.3.2-20] v5 message properties pass through unchanged', async () => {
    const topic = uid('props');
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    const v3 = await pool.connect(ref.b.wsUrl, { protocolVersion: 4, clientId: uid('s3') });
    await sub.client.subscribeAsync(topic, { qos: 1 });
    await v3.client.subscribeAsync(topic, { qos: 1 });
    const pub = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('p') });
    const correlationData = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f]);
    const userProperties = { zeta: 'last?', alpha: ['1', '2', 'dup'], 'with space': 'ünïcødé' };
    await pub.client.publishAsync(topic, '{"x":1}', {
      qos: 1,
      properties: {
        payloadFormatIndicator: true,
        contentType: 'application/json; charset=utf-8',
        responseTopic: `${topic}/reply`,
        correlationData,
        userProperties,
      },
    });
    const [m] = await sub.inbox.waitFor(1);
    const props = m!.packet.properties!;
    expect(m!.payload).toBe('{"x":1}');
    expect(props.payloadFormatIndicator).toBe(true);
    expect(props.contentType).toBe('application/json; charset=utf-8');
    expect(props.responseTopic).toBe(`${topic}/reply`);
    expect(Buffer.from(props.correlationData!).equals(correlationData)).toBe(true);
    expect(props.userProperties).toEqual(userProperties);
    // Order of user properties is kept [MQTT-3.3.2-18].
    expect(Object.keys(props.userProperties!)).toEqual(Object.keys(userProperties));
    expect(props.messageExpiryInterval).toBeUndefined();
    // A 3.1.1 subscriber gets the same message without properties.
    const [m3] = await v3.inbox.waitFor(1);
    expect(m3!.payload).toBe('{"x":1}');
    expect(m3!.packet.properties).toBeUndefined();
  });

  it('[MQTT-3.3.2-6] v5 Message Expiry Interval is forwarded as what remains of it', async () => {
    const topic = uid('exp');
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'x', { qos: 1, properties: { messageExpiryInterval: 60 } });
    const [m] = await sub.inbox.waitFor(1);
    const left = m!.packet.properties?.messageExpiryInterval;
    expect(left).toBeGreaterThanOrEqual(59);
    expect(left).toBeLessThanOrEqual(60);
  });

  it('[MQTT-3.3.2-5][MQTT-3.3.2-6] v5 messages that expire while the subscriber is offline are not delivered; the others carry the remaining interval', async () => {
    const topic = uid('exp');
    const id = uid('s');
    const opts = { protocolVersion: 5 as const, clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const s1 = await pool.connect(ref.b.tcpUrl, opts);
    await s1.client.subscribeAsync(topic, { qos: 1 });
    await s1.client.endAsync();
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.client.publishAsync(topic, 'long', { qos: 1, properties: { messageExpiryInterval: 30 } });
    await pub.client.publishAsync(topic, 'forever', { qos: 1 });
    await sleep(1600);
    const s2 = await pool.connect(ref.b.wsUrl, opts);
    expect(s2.connack.sessionPresent).toBe(true);
    await s2.inbox.waitFor(2);
    const msgs = await s2.inbox.settle(300);
    expect(msgs.map((m) => m.payload)).toEqual(['long', 'forever']);
    const left = msgs[0]!.packet.properties?.messageExpiryInterval;
    expect(left).toBeGreaterThanOrEqual(27);
    expect(left).toBeLessThanOrEqual(29);
    expect(msgs[1]!.packet.properties?.messageExpiryInterval).toBeUndefined();
  });

  it('[MQTT-4.7.2-1] (broker policy: $SYS belongs to the broker) a client PUBLISH to $SYS/x reaches nobody; v5 gets PUBACK 0x87', async () => {
    const topic = `$SYS/${uid('x')}`;
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await sub.client.subscribeAsync([topic, '$SYS/#'], { qos: 1 });
    await sub.inbox.settle(200); // the broker's own retained $SYS tree arrives first
    const before = sub.inbox.msgs.length;
    const v3 = await pool.raw(ref.b.tcpUrl, 4);
    await v3.connect({ clientId: uid('p3') });
    v3.send({ cmd: 'publish', topic, payload: Buffer.from('forged'), qos: 1, messageId: 5, dup: false, retain: true });
    // 3.1.1 has no negative PUBACK: the message is dropped and still acknowledged.
    expect((await v3.next('puback')).messageId).toBe(5);
    const v5 = await pool.raw(ref.b.wsUrl, 5);
    await v5.connect({ clientId: uid('p5') });
    v5.send({ cmd: 'publish', topic, payload: Buffer.from('forged'), qos: 1, messageId: 6, dup: false, retain: true });
    const ack = await v5.next('puback');
    expect(ack.messageId).toBe(6);
    expect(ack.reasonCode).toBe(0x87);
    const after = await sub.inbox.settle(300);
    expect(after.slice(before).filter((m) => m.topic === topic)).toEqual([]);
    // Nor was it retained.
    const late = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('late') });
    await late.client.subscribeAsync(topic, { qos: 1 });
    expect(await late.inbox.settle(300)).toEqual([]);
  });

  it('[MQTT-3.3.2-2] v5 PUBLISH to a topic with a wildcard gets DISCONNECT 0x90 (Topic Name invalid)', async () => {
    const c = await pool.raw(ref.b.tcpUrl, 5);
    await c.connect({ clientId: uid('c') });
    c.send({ cmd: 'publish', topic: `${uid('w')}/+`, payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
    expect((await c.next('disconnect')).reasonCode).toBe(0x90);
    expect(await c.closesWithin(2000)).toBe(true);
  });
});
