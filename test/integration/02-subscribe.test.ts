/**
 * SUBSCRIBE / UNSUBSCRIBE: wildcard matching, `$` topics, overlapping subscriptions,
 * v5 subscription options and identifiers, SUBACK codes.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, TRANSPORTS, sharedBroker, uid, urlOf } from '../helpers/clients.js';

const subIdsOf = (p: { properties?: { subscriptionIdentifier?: number | number[] } }): number[] => {
  const s = p.properties?.subscriptionIdentifier;
  return s === undefined ? [] : Array.isArray(s) ? [...s].sort((a, b) => a - b) : [s];
};

describe.each(TOPOLOGIES)('02 subscribe (%s)', (topo) => {
  // "#" and "+/#" may match IM inboxes (/{ns}/im/u/...): the default IM ACL grants them
  // only to its superusers, such as this suite's "monitor" user.
  const ref = sharedBroker(topo, { im: { superusers: ['monitor'] } });
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  describe.each(TRANSPORTS)('over %s', (tr) => {
    const url = () => urlOf(ref.b, tr);

    it('[MQTT-4.7.1-2][MQTT-4.7.1-3] wildcard filters match exactly the topics the spec says', async () => {
      const p = uid('w');
      const topics = [
        `${p}/sport`,
        `${p}/sport/`,
        `${p}/sport/tennis`,
        `${p}/sport/tennis/player1`,
        `${p}/sport/tennis/player1/ranking`,
        `${p}/sport/tennis/player1/score/wimbledon`,
        `${p}/finance`,
      ];
      const [sport, sportEmpty, tennis, player1, ranking, wimbledon, finance] = topics;
      const expected: Record<string, string[]> = {
        // '#' matches the parent level too [MQTT-4.7.1-2].
        [`${p}/sport/tennis/player1/#`]: [player1!, ranking!, wimbledon!],
        [`${p}/sport/#`]: [sport!, sportEmpty!, tennis!, player1!, ranking!, wimbledon!],
        [`${p}/#`]: topics,
        // '+' matches exactly one level, which may be empty [MQTT-4.7.1-3].
        [`${p}/sport/+`]: [sportEmpty!, tennis!],
        [`${p}/+`]: [sport!, finance!],
        [`${p}/+/+`]: [sportEmpty!, tennis!],
        [`${p}/+/tennis/#`]: [tennis!, player1!, ranking!, wimbledon!],
        [`${p}/+/tennis/+/ranking`]: [ranking!],
        [`${p}/sport`]: [sport!],
      };
      const subs = await Promise.all(
        Object.keys(expected).map(async (filter) => {
          const o = await pool.connect(url(), { protocolVersion: 4, clientId: uid('s') });
          await o.client.subscribeAsync(filter, { qos: 1 });
          return { filter, o };
        }),
      );
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      for (const t of topics) await pub.client.publishAsync(t, t, { qos: 1 });
      for (const { filter, o } of subs) {
        await o.inbox.waitFor(expected[filter]!.length);
      }
      await subs[0]!.o.inbox.settle(200);
      for (const { filter, o } of subs) {
        expect({ filter, got: o.inbox.msgs.map((m) => m.topic) }).toEqual({ filter, got: expected[filter] });
      }
    });

    it('[MQTT-3.3.5-1] overlapping subscriptions (3.1.1) deliver one copy at the highest granted QoS', async () => {
      const p = uid('o');
      const sub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('s') });
      await sub.client.subscribeAsync({ [`${p}/a/#`]: { qos: 0 }, [`${p}/a/+`]: { qos: 2 }, [`${p}/+/b`]: { qos: 1 } });
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      await pub.client.publishAsync(`${p}/a/b`, 'q2', { qos: 2 });
      await pub.client.publishAsync(`${p}/a/b`, 'q1', { qos: 1 });
      await pub.client.publishAsync(`${p}/a/c/d`, 'only#', { qos: 2 }); // matches only the QoS 0 filter
      await sub.inbox.waitFor(3);
      const msgs = await sub.inbox.settle(300);
      // Sorted: order is only guaranteed per QoS (MQTT.js emits a QoS 2 message on PUBREL).
      expect(msgs.map((m) => [m.payload, m.packet.qos]).sort()).toEqual([
        ['only#', 0],
        ['q1', 1],
        ['q2', 2],
      ]);
    });

    it('[MQTT-3.10.4-2][MQTT-3.10.4-4] UNSUBSCRIBE stops delivery and is answered with UNSUBACK', async () => {
      const topic = uid('u');
      const sub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('s') });
      await sub.client.subscribeAsync(topic, { qos: 1 });
      const pub = await pool.connect(url(), { protocolVersion: 4, clientId: uid('p') });
      await pub.client.publishAsync(topic, 'before', { qos: 1 });
      await sub.inbox.waitFor(1);
      await sub.client.unsubscribeAsync(topic);
      await pub.client.publishAsync(topic, 'after', { qos: 1 });
      await pub.client.publishAsync(topic, 'after0', { qos: 0 });
      const msgs = await sub.inbox.settle(300);
      expect(msgs.map((m) => m.payload)).toEqual(['before']);
    });
  });

  it('[MQTT-4.7.2-1] $SYS topics are not matched by "#" or "+/..." filters but are by "$SYS/#"', async () => {
    const all = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('all'), username: 'monitor' });
    const plus = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('plus'), username: 'monitor' });
    const sys = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('sys') });
    await all.client.subscribeAsync('#', { qos: 0 });
    await plus.client.subscribeAsync(['+/broker/#', '+/broker/version', '+/#'], { qos: 0 });
    await sys.client.subscribeAsync('$SYS/#', { qos: 0 });
    // The broker keeps its $SYS tree as retained messages: "$SYS/#" gets them at once.
    const got = await sys.inbox.waitFor(1, 2500);
    expect(got[0]!.topic.startsWith('$SYS/')).toBe(true);
    expect(got[0]!.packet.retain).toBe(true);
    await sys.inbox.settle(200);
    expect(sys.inbox.msgs.map((m) => m.topic)).toContain('$SYS/broker/version');
    // Neither "#" nor "+/..." sees any of them (retained, or live if an update comes by).
    expect(all.inbox.msgs.filter((m) => m.topic.startsWith('$'))).toEqual([]);
    expect(plus.inbox.msgs.filter((m) => m.topic.startsWith('$'))).toEqual([]);
  });

  it('[MQTT-3.8.4-5][MQTT-3.9.3-1] SUBACK grants the requested QoS per filter, in order; delivery is at min(published, granted) [MQTT-3.8.4-6]', async () => {
    const p = uid('g');
    const c = await pool.raw(ref.b.tcpUrl, 4);
    await c.connect({ clientId: uid('s') });
    c.send({
      cmd: 'subscribe',
      messageId: 42,
      subscriptions: [
        { topic: `${p}/q0`, qos: 0 },
        { topic: `${p}/q1`, qos: 1 },
        { topic: `${p}/q2`, qos: 2 },
      ],
    });
    const suback = await c.next('suback');
    expect(suback.messageId).toBe(42);
    expect(suback.granted).toEqual([0, 1, 2]);
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
    for (const q of ['q0', 'q1', 'q2']) await pub.client.publishAsync(`${p}/${q}`, q, { qos: 2 });
    const qosOf: Record<string, number> = {};
    for (let i = 0; i < 3; i++) {
      const m = await c.next('publish');
      qosOf[m.topic] = m.qos;
      if (m.qos === 1) c.send({ cmd: 'puback', messageId: m.messageId });
      if (m.qos === 2) c.send({ cmd: 'pubrec', messageId: m.messageId });
    }
    expect(qosOf).toEqual({ [`${p}/q0`]: 0, [`${p}/q1`]: 1, [`${p}/q2`]: 2 });
  });

  it('[MQTT-4.7.1-2][MQTT-4.7.1-3][MQTT-3.8.4-5] invalid filters get SUBACK 0x80 (3.1.1); the valid ones in the same packet are granted', async () => {
    const p = uid('i');
    const c = await pool.raw(ref.b.tcpUrl, 4);
    await c.connect({ clientId: uid('s') });
    c.send({
      cmd: 'subscribe',
      messageId: 7,
      subscriptions: [
        { topic: `${p}/a#`, qos: 1 },
        { topic: `${p}/ok`, qos: 1 },
        { topic: `${p}/#/x`, qos: 0 },
        { topic: `${p}/a+`, qos: 2 },
        { topic: `${p}/+/ok/#`, qos: 2 },
      ],
    });
    const suback = await c.next('suback');
    expect(suback.granted).toEqual([0x80, 1, 0x80, 0x80, 2]);
    // The connection stays usable and the valid subscription works.
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
    await pub.client.publishAsync(`${p}/ok`, 'x', { qos: 0 });
    expect((await c.next('publish')).topic).toBe(`${p}/ok`);
  });

  it('[MQTT-4.7.1-2][MQTT-3.9.3-2] invalid filters get SUBACK 0x8F Topic Filter invalid (v5)', async () => {
    const p = uid('i');
    const c = await pool.raw(ref.b.wsUrl, 5);
    await c.connect({ clientId: uid('s') });
    c.send({
      cmd: 'subscribe',
      messageId: 8,
      subscriptions: [
        { topic: `${p}/a/#/b`, qos: 1 },
        { topic: `${p}/ok/+`, qos: 2 },
        { topic: `${p}/x+`, qos: 0 },
      ],
    });
    const suback = await c.next('suback');
    expect(suback.granted).toEqual([0x8f, 2, 0x8f]);
    expect(c.isClosed).toBe(false);
  });

  it('[MQTT-3.8.4-3] a SUBSCRIBE with an existing filter replaces the subscription (one copy, new QoS)', async () => {
    const topic = uid('r');
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('s') });
    await sub.client.subscribeAsync(topic, { qos: 0 });
    const granted = await sub.client.subscribeAsync(topic, { qos: 2 });
    expect(granted[0]!.qos).toBe(2);
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'x', { qos: 2 });
    await sub.inbox.waitFor(1);
    const msgs = await sub.inbox.settle(300);
    expect(msgs.map((m) => m.packet.qos)).toEqual([2]);
  });

  it('[MQTT-3.11.3-1] v5 UNSUBACK has one reason code per filter: 0x00 removed, 0x11 no subscription existed', async () => {
    const p = uid('u');
    const c = await pool.raw(ref.b.tcpUrl, 5);
    await c.connect({ clientId: uid('s') });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${p}/a`, qos: 1 }] });
    await c.next('suback');
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [`${p}/nope`, `${p}/a`] });
    const unsuback = await c.next('unsuback');
    expect(unsuback.messageId).toBe(2);
    expect(unsuback.granted).toEqual([0x11, 0x00]);
  });

  it('[MQTT-3.3.4-3][MQTT-3.3.4-4] v5 subscription identifiers come back with every matching message', async () => {
    const p = uid('id');
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await sub.client.subscribeAsync(`${p}/x/#`, { qos: 1, properties: { subscriptionIdentifier: 7 } });
    await sub.client.subscribeAsync(`${p}/x/+`, { qos: 1, properties: { subscriptionIdentifier: 300000 } });
    await sub.client.subscribeAsync(`${p}/plain/#`, { qos: 1 }); // no identifier
    const pub = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(`${p}/x/y`, 'both', { qos: 1 });
    await pub.client.publishAsync(`${p}/x/y/z`, 'deep', { qos: 1 });
    await pub.client.publishAsync(`${p}/plain/q`, 'none', { qos: 1 });
    const msgs = await sub.inbox.waitFor(3);
    const byPayload = Object.fromEntries(msgs.map((m) => [m.payload, subIdsOf(m.packet)]));
    expect(byPayload).toEqual({ both: [7, 300000], deep: [7], none: [] });
    await sub.inbox.settle(200);
    expect(sub.inbox.msgs).toHaveLength(3); // one copy for the overlapping pair
  });

  it('[MQTT-3.3.4-3] overlapping filters of one SUBSCRIBE share its identifier: sent once; the identifier twice is refused; the fan-out reaches everyone (issue 9 item 8)', async () => {
    const p = uid('same');
    // MQTT.js v5: one SUBSCRIBE for both filters, identifier 2 (it applies to each).
    const js = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('js') });
    await js.client.subscribeAsync([`${p}/+`, `${p}/#`], { qos: 1, properties: { subscriptionIdentifier: 2 } });
    // A raw v5 client, same SUBSCRIBE: the wire shows one Subscription Identifier property.
    const raw = await pool.raw(ref.b.wsUrl, 5);
    await raw.connect({ clientId: uid('raw') });
    raw.send({ cmd: 'subscribe', messageId: 1, properties: { subscriptionIdentifier: 2 }, subscriptions: [{ topic: `${p}/+`, qos: 1 }, { topic: `${p}/#`, qos: 0 }] });
    expect((await raw.next('suback')).granted).toEqual([1, 0]);
    // The fuzzer's SUBSCRIBE: the same, with its Subscription Identifier property given
    // twice. It once made every delivery to that client fail to encode, and the gateway
    // lost the whole fan-out batch with it. Now a Protocol Error.
    const bad = await pool.raw(ref.b.tcpUrl, 5);
    await bad.connect({ clientId: uid('bad') });
    const filters = Buffer.concat([`${p}/+`, `${p}/#`].map((f) => Buffer.concat([Buffer.from([0, f.length]), Buffer.from(f), Buffer.from([1])])));
    const body = Buffer.concat([Buffer.from([0, 1, 4, 0x0b, 2, 0x0b, 2]), filters]);
    bad.sendBytes(Buffer.concat([Buffer.from([0x82, body.length]), body]));
    expect(await bad.closesWithin(3000)).toBe(true);
    expect(bad.received.filter((x) => x.cmd === 'disconnect').map((x) => (x as { reasonCode?: number }).reasonCode)).toEqual([0x82]);
    expect(bad.received.some((x) => x.cmd === 'suback')).toBe(false);
    // Other recipients of the same fan-out: 3.1.1 and 5.0 without identifiers.
    const v4 = await pool.connect(ref.b.wsUrl, { protocolVersion: 4, clientId: uid('v4') });
    await v4.client.subscribeAsync(`${p}/#`, { qos: 1 });
    const v5 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('v5') });
    await v5.client.subscribeAsync(`${p}/x`, { qos: 0 });

    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(`${p}/x`, 'q1', { qos: 1 });
    await pub.client.publishAsync(`${p}/x`, 'q0', { qos: 0 });
    const got = await js.inbox.waitFor(2);
    expect(got.map((m) => [m.payload, m.packet.properties?.subscriptionIdentifier])).toEqual([
      ['q1', 2],
      ['q0', 2],
    ]);
    const rawPubs = [await raw.next('publish', 3000), await raw.next('publish', 3000)];
    expect(rawPubs.map((x) => [x.payload.toString(), x.qos, x.properties?.subscriptionIdentifier])).toEqual([
      ['q1', 1, 2],
      ['q0', 0, 2],
    ]);
    expect((await v4.inbox.waitFor(2)).map((m) => m.payload)).toEqual(['q1', 'q0']);
    expect((await v5.inbox.waitFor(2)).map((m) => [m.payload, m.packet.properties?.subscriptionIdentifier])).toEqual([
      ['q1', undefined],
      ['q0', undefined],
    ]);
    await js.inbox.settle(200);
    expect(js.inbox.msgs).toHaveLength(2); // one copy each for the overlapping pair
    expect(await raw.collect(0, 'publish')).toEqual([]);
  });

  it('[MQTT-3.8.3-3] v5 No Local: a client does not get its own messages back; others still do', async () => {
    const topic = uid('nl');
    const self = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('self') });
    const other = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('other') });
    await self.client.subscribeAsync(topic, { qos: 1, nl: true });
    await other.client.subscribeAsync(topic, { qos: 1, nl: false });
    await self.client.publishAsync(topic, 'from-self', { qos: 1 });
    await other.client.publishAsync(topic, 'from-other', { qos: 1 });
    await other.inbox.waitFor(2);
    await self.inbox.waitFor(1);
    await self.inbox.settle(200);
    expect(self.inbox.msgs.map((m) => m.payload)).toEqual(['from-other']);
    // Without No Local the publisher gets its own message.
    expect(other.inbox.msgs.map((m) => m.payload)).toEqual(['from-self', 'from-other']);
  });

  it('[MQTT-3.3.1-12][MQTT-3.3.1-13] v5 Retain As Published keeps RETAIN on live delivery; without it RETAIN is 0', async () => {
    const topic = uid('rap');
    const keep = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('keep') });
    const clear = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('clear') });
    await keep.client.subscribeAsync(topic, { qos: 1, rap: true });
    await clear.client.subscribeAsync(topic, { qos: 1, rap: false });
    const pub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await pub.client.publishAsync(topic, 'retained', { qos: 1, retain: true });
    await pub.client.publishAsync(topic, 'plain', { qos: 1, retain: false });
    const k = await keep.inbox.waitFor(2);
    const c = await clear.inbox.waitFor(2);
    expect(k.map((m) => [m.payload, m.packet.retain])).toEqual([
      ['retained', true],
      ['plain', false],
    ]);
    expect(c.map((m) => [m.payload, m.packet.retain])).toEqual([
      ['retained', false],
      ['plain', false],
    ]);
    await pub.client.publishAsync(topic, '', { qos: 1, retain: true }); // clean up the retained message
  });
});
