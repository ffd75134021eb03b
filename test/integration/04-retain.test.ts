/**
 * Retained messages: stored per topic, sent with RETAIN=1 on subscribe, deleted by an
 * empty payload, RETAIN cleared on live delivery, v5 Retain Handling and expiry.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, TRANSPORTS, sharedBroker, sleep, uid, urlOf } from '../helpers/clients.js';

describe.each(TOPOLOGIES)('04 retain (%s)', (topo) => {
  const ref = sharedBroker(topo);
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  describe.each(TRANSPORTS)('over %s', (tr) => {
    const url = () => urlOf(ref.b, tr);

    it.each([4, 5] as const)('[MQTT-3.3.1-5][MQTT-3.3.1-6][MQTT-3.3.1-8] delivers retained messages on subscribe with RETAIN=1 (v%i subscriber)', async (v) => {
      const p = uid('r');
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      await pub.client.publishAsync(`${p}/a`, 'A', { qos: 1, retain: true });
      await pub.client.publishAsync(`${p}/b/c`, 'BC', { qos: 2, retain: true });
      await pub.client.publishAsync(`${p}/d`, 'not retained', { qos: 1, retain: false });
      const sub = await pool.connect(url(), { protocolVersion: v, clientId: uid('s') });
      await sub.client.subscribeAsync(`${p}/#`, { qos: 2 });
      await sub.inbox.waitFor(2);
      const msgs = await sub.inbox.settle(200);
      const got = msgs.map((m) => [m.topic, m.payload, m.packet.retain, m.packet.qos]).sort();
      expect(got).toEqual([
        [`${p}/a`, 'A', true, 1],
        [`${p}/b/c`, 'BC', true, 2],
      ]);
    });

    it('[MQTT-3.3.1-9] live delivery to a 3.1.1 subscriber has RETAIN=0 even when published with RETAIN=1', async () => {
      const topic = uid('live');
      const sub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('s') });
      await sub.client.subscribeAsync(topic, { qos: 1 });
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      await pub.client.publishAsync(topic, 'r', { qos: 1, retain: true });
      const [m] = await sub.inbox.waitFor(1);
      expect(m!.payload).toBe('r');
      expect(m!.packet.retain).toBe(false);
      // A new subscription to the same topic gets it as retained [MQTT-3.3.1-8].
      const late = await pool.connect(url(), { protocolVersion: 4, clientId: uid('late') });
      await late.client.subscribeAsync(topic, { qos: 1 });
      const [r] = await late.inbox.waitFor(1);
      expect(r!.packet.retain).toBe(true);
    });

    it('[MQTT-3.3.1-10][MQTT-3.3.1-11] an empty retained payload is delivered normally and deletes the retained message', async () => {
      const topic = uid('del');
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      await pub.client.publishAsync(topic, 'keep me?', { qos: 1, retain: true });
      const live = await pool.connect(url(), { protocolVersion: 4, clientId: uid('live') });
      await live.client.subscribeAsync(topic, { qos: 1 });
      await live.inbox.waitFor(1); // the retained one
      await pub.client.publishAsync(topic, '', { qos: 1, retain: true });
      const msgs = await live.inbox.waitFor(2);
      expect(msgs[1]!.payload).toBe(''); // processed as a normal message
      const late = await pool.connect(url(), { protocolVersion: 4, clientId: uid('late') });
      await late.client.subscribeAsync(topic, { qos: 1 });
      expect(await late.inbox.settle(300)).toEqual([]);
    });
  });

  it('[MQTT-3.3.1-5] only the last retained message of a topic is kept', async () => {
    const topic = uid('last');
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
    for (const v of ['1', '2', '3']) await pub.client.publishAsync(topic, v, { qos: 1, retain: true });
    const sub = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('s') });
    await sub.client.subscribeAsync(topic, { qos: 1 });
    await sub.inbox.waitFor(1);
    expect((await sub.inbox.settle(200)).map((m) => m.payload)).toEqual(['3']);
  });

  it('[MQTT-3.3.1-12] (3.1.1) a PUBLISH with RETAIN=0 neither stores nor replaces the retained message', async () => {
    const topic = uid('keep');
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'retained', { qos: 1, retain: true });
    await pub.client.publishAsync(topic, 'transient', { qos: 1, retain: false });
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('s') });
    await sub.client.subscribeAsync(topic, { qos: 1 });
    await sub.inbox.waitFor(1);
    expect((await sub.inbox.settle(200)).map((m) => m.payload)).toEqual(['retained']);
  });

  it('[MQTT-3.3.1-9][MQTT-3.3.1-10][MQTT-3.3.1-11] v5 Retain Handling 0: always, 1: only for a new subscription, 2: never', async () => {
    const topic = uid('rh');
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'R', { qos: 1, retain: true });
    const count = async (rh: 0 | 1 | 2): Promise<[number, number]> => {
      const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid(`s${rh}`) });
      await sub.client.subscribeAsync(topic, { qos: 1, rh });
      const first = (await sub.inbox.settle(300)).length;
      // Subscribing again to the same filter: the subscription exists now.
      await sub.client.subscribeAsync(topic, { qos: 1, rh });
      const total = (await sub.inbox.settle(300)).length;
      for (const m of sub.inbox.msgs) expect([m.payload, m.packet.retain]).toEqual(['R', true]);
      return [first, total - first];
    };
    expect(await count(0)).toEqual([1, 1]);
    expect(await count(1)).toEqual([1, 0]);
    expect(await count(2)).toEqual([0, 0]);
  });

  it('[MQTT-3.3.4-3] v5 retained messages sent on subscribe carry the Subscription Identifier', async () => {
    const topic = uid('rid');
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'R', { qos: 1, retain: true });
    const sub = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('s') });
    await sub.client.subscribeAsync(topic, { qos: 1, properties: { subscriptionIdentifier: 42 } });
    const [m] = await sub.inbox.waitFor(1);
    expect(m!.packet.retain).toBe(true);
    expect(m!.packet.properties?.subscriptionIdentifier).toBe(42);
  });

  it('[MQTT-3.3.2-5][MQTT-3.3.2-6] v5 retained messages expire: not sent after their Message Expiry Interval', async () => {
    const short = uid('rexp');
    const long = uid('rexp');
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(short, 'short', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
    await pub.client.publishAsync(long, 'long', { qos: 1, retain: true, properties: { messageExpiryInterval: 60 } });
    await sleep(1500);
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await sub.client.subscribeAsync([short, long], { qos: 1 });
    await sub.inbox.waitFor(1);
    const msgs = await sub.inbox.settle(300);
    expect(msgs.map((m) => m.payload)).toEqual(['long']);
    const left = msgs[0]!.packet.properties?.messageExpiryInterval;
    expect(left).toBeGreaterThanOrEqual(57);
    expect(left).toBeLessThanOrEqual(59);
  });
});
