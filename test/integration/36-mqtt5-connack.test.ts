/**
 * MQTT 5 capabilities through real sockets (config `mqtt`, docs/mqtt5.md): what CONNACK
 * announces and how it is enforced, inbound Topic Aliases (MQTT.js, the raw client and
 * mosquitto_pub), the server's Receive Maximum over QoS 1 and QoS 2 with acknowledgements
 * held until committed (durability sync), Maximum Packet Size, server redirection, and
 * Request Problem Information / Reason Strings. Every topology; named after the normative
 * statement checked (MQTT 5.0 OASIS Standard; a section where the spec has no statement id).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import mqttPacket, { type IPublishPacket } from 'mqtt-packet';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, sharedBroker, sleep, uid } from '../helpers/clients.js';
import { HAVE_MOSQUITTO_V5_PROPS } from '../helpers/peers.js';
import { publishPacket as pub } from '../helpers/packets.js';

if (!HAVE_MOSQUITTO_V5_PROPS) console.warn('36-mqtt5-connack: mosquitto_pub with -D (MQTT 5 properties) not on PATH: its topic alias test is skipped');

/** Several packets in one write: the broker handles them in one turn, before any commit comes back. */
const bytes = (...packets: IPublishPacket[]) => Buffer.concat(packets.map((p) => mqttPacket.generate(p, { protocolVersion: 5 })));

describe.each(TOPOLOGIES)('36 MQTT 5 CONNACK capabilities (%s)', (topo) => {
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  describe('defaults', () => {
    const ref = sharedBroker(topo);

    it('[MQTT-3.2.2-9] CONNACK announces Topic Alias Maximum 16, Receive Maximum, Maximum Packet Size, everything available and no Maximum QoS (= 2)', async () => {
      const { connack } = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('c') });
      expect(connack.properties).toMatchObject({
        topicAliasMaximum: 16,
        receiveMaximum: ref.b.config.limits.maxInflight,
        maximumPacketSize: ref.b.config.limits.maxPacketSize,
        retainAvailable: true,
        wildcardSubscriptionAvailable: true,
        subscriptionIdentifiersAvailable: true,
        sharedSubscriptionAvailable: true,
      });
      expect(connack.properties?.maximumQoS).toBeUndefined();
      expect(connack.properties?.serverKeepAlive).toBeUndefined();
    });

    it('[MQTT-3.3.2-12] MQTT.js with autoAssignTopicAlias: every message arrives with its whole topic (v5 and 3.1.1 subscribers)', async () => {
      const topic = `${uid('alias')}/a/rather/long/topic/name`;
      const s5 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s5') });
      const s4 = await pool.connect(ref.b.wsUrl, { protocolVersion: 4, clientId: uid('s4') });
      await s5.client.subscribeAsync(topic, { qos: 1 });
      await s4.client.subscribeAsync(topic, { qos: 1 });
      const p = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p'), autoAssignTopicAlias: true });
      for (let i = 0; i < 3; i++) await p.client.publishAsync(topic, `m${i}`, { qos: 1 });
      for (const box of [s5.inbox, s4.inbox]) {
        const got = await box.waitFor(3);
        expect(got.map((m) => [m.topic, m.payload])).toEqual([0, 1, 2].map((i) => [topic, `m${i}`]));
        // The publisher's alias is not passed on.
        expect(got.every((m) => m.packet.properties?.topicAlias === undefined)).toBe(true);
      }
    });

    it('[MQTT-3.3.2-12] raw client: an alias set with a Topic Name, used with an empty one, then replaced', async () => {
      const t1 = uid('t1');
      const t2 = uid('t2');
      const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
      await sub.client.subscribeAsync([t1, t2], { qos: 1 });
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send(pub(t1, { payload: Buffer.from('a'), qos: 1, messageId: 1, properties: { topicAlias: 16 } }));
      c.send(pub('', { payload: Buffer.from('b'), qos: 1, messageId: 2, properties: { topicAlias: 16 } }));
      c.send(pub(t2, { payload: Buffer.from('c'), qos: 1, messageId: 3, properties: { topicAlias: 16 } }));
      c.send(pub('', { payload: Buffer.from('d'), qos: 1, messageId: 4, properties: { topicAlias: 16 } }));
      for (let id = 1; id <= 4; id++) expect(await c.next('puback')).toMatchObject({ messageId: id, reasonCode: 0 });
      const got = await sub.inbox.waitFor(4);
      expect(got.map((m) => `${m.topic === t1 ? 't1' : m.topic === t2 ? 't2' : m.topic}:${m.payload}`)).toEqual(['t1:a', 't1:b', 't2:c', 't2:d']);
    });

    it('[MQTT-3.3.2-8] Topic Alias 0 gets DISCONNECT 0x94 with a Reason String', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send(pub(uid('t'), { properties: { topicAlias: 0 } }));
      const d = await c.next('disconnect');
      expect(d.reasonCode).toBe(0x94);
      expect(d.properties?.reasonString).toBe('Topic Alias 0 is not permitted');
      expect(await c.closesWithin(2000)).toBe(true);
    });

    it('[MQTT-3.3.2-9][MQTT-3.2.2-17] an alias above the Topic Alias Maximum gets DISCONNECT 0x94', async () => {
      const c = await pool.raw(ref.b.wsUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send(pub(uid('t'), { properties: { topicAlias: 17 } }));
      expect((await c.next('disconnect')).reasonCode).toBe(0x94);
    });

    it('section 3.3.2.3.4: an empty Topic Name with an unknown alias gets DISCONNECT 0x82', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send(pub('', { properties: { topicAlias: 5 } }));
      const d = await c.next('disconnect');
      expect(d.reasonCode).toBe(0x82);
      expect(d.properties?.reasonString).toContain('Topic Alias 5');
    });

    it('section 3.3.2.1: an empty Topic Name without an alias (the hand parser\'s path) gets DISCONNECT 0x82', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      // PUBLISH QoS 0, topic length 0, Property Length 0, payload "x".
      c.sendBytes(Buffer.from([0x30, 4, 0, 0, 0, 0x78]));
      expect((await c.next('disconnect')).reasonCode).toBe(0x82);
    });

    it('[MQTT-3.3.2-7] an alias mapping is not carried to the next connection of the client', async () => {
      const id = uid('c');
      const a = await pool.raw(ref.b.tcpUrl, 5);
      await a.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
      a.send(pub(uid('t'), { qos: 1, messageId: 1, properties: { topicAlias: 1 } }));
      await a.next('puback');
      await a.disconnect();
      const b = await pool.raw(ref.b.tcpUrl, 5);
      const connack = await b.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
      expect(connack.sessionPresent).toBe(true);
      b.send(pub('', { qos: 1, messageId: 2, properties: { topicAlias: 1 } }));
      expect((await b.next('disconnect')).reasonCode).toBe(0x82);
    });

    it.skipIf(!HAVE_MOSQUITTO_V5_PROPS)('[MQTT-3.3.2-12] mosquitto_pub -D publish topic-alias: later lines go with the alias alone and arrive whole', async () => {
      const topic = `${uid('mosq')}/alias/topic`;
      const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
      await sub.client.subscribeAsync(topic, { qos: 1 });
      const args = ['-h', '127.0.0.1', '-p', String(ref.b.tcpPort), '-V', 'mqttv5', '-q', '1', '-t', topic, '-D', 'publish', 'topic-alias', '3', '-l', '-d'];
      const proc = spawn('mosquitto_pub', args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
      proc.stdin.end('one\ntwo\nthree\n');
      const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
      expect(code, out).toBe(0);
      // libmosquitto sends the topic once, then an empty Topic Name with the alias.
      expect(out).toMatch(/sending PUBLISH \([^)]*'\(null\)'/);
      const got = await sub.inbox.waitFor(3);
      expect(got.map((m) => [m.topic, m.payload])).toEqual([
        [topic, 'one'],
        [topic, 'two'],
        [topic, 'three'],
      ]);
    });

    it('[MQTT-3.1.2-29] Request Problem Information 0: a negative PUBACK has no Reason String; by default it says why', async () => {
      const quiet = await pool.raw(ref.b.tcpUrl, 5);
      await quiet.connect({ clientId: uid('q'), properties: { requestProblemInformation: false } });
      quiet.send(pub('$x/y', { qos: 1, messageId: 1 }));
      const a = await quiet.next('puback');
      expect(a.reasonCode).toBe(0x87);
      expect(a.properties?.reasonString).toBeUndefined();
      const talky = await pool.raw(ref.b.tcpUrl, 5);
      await talky.connect({ clientId: uid('t') });
      talky.send(pub('$x/y', { qos: 1, messageId: 1 }));
      const b = await talky.next('puback');
      expect(b.reasonCode).toBe(0x87);
      expect(b.properties?.reasonString).toBe('topics starting with "$" belong to the broker');
    });

    it('[MQTT-3.1.2-29] a refused SUBACK says which filter and why (unless Request Problem Information is 0)', async () => {
      const talky = await pool.raw(ref.b.tcpUrl, 5);
      await talky.connect({ clientId: uid('t') });
      talky.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: uid('ok'), qos: 1 }, { topic: 'a/#/b', qos: 1 }] });
      const s = await talky.next('suback');
      expect(s.granted).toEqual([1, 0x8f]);
      expect(s.properties?.reasonString).toBe('refused: filter 2: Topic Filter invalid');
      const quiet = await pool.raw(ref.b.tcpUrl, 5);
      await quiet.connect({ clientId: uid('q'), properties: { requestProblemInformation: false } });
      quiet.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'a/#/b', qos: 1 }] });
      const q = await quiet.next('suback');
      expect(q.granted).toEqual([0x8f]);
      expect(q.properties?.reasonString).toBeUndefined();
    });

    it('[MQTT-3.2.2-7] a refused CONNECT gets a CONNACK with a Reason String, then the close', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      const connack = await c.connect({ clientId: 'x'.repeat(ref.b.config.limits.maxClientIdLength + 1) });
      expect(connack.reasonCode).toBe(0x85);
      expect(connack.properties?.reasonString).toMatch(/client id too long/);
      expect(await c.closesWithin(2000)).toBe(true);
    });
  });

  describe('restricted capabilities', () => {
    const ref = sharedBroker(topo, {
      limits: { maxInflight: 2, maxPacketSize: 2048 },
      sharedSubscriptions: { enabled: false },
      mqtt: {
        topicAliasMaximum: 0,
        maximumQoS: 1,
        retainAvailable: false,
        wildcardSubscriptionAvailable: false,
        subscriptionIdentifiersAvailable: false,
        serverKeepAlive: 30,
        responseInformation: 'reply/{clientid}/',
      },
    });

    it('[MQTT-3.2.2-9][MQTT-3.2.2-21] CONNACK announces what the configuration allows, and a Server Keep Alive', async () => {
      const { connack } = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('c'), keepalive: 300 });
      expect(connack.properties).toMatchObject({
        topicAliasMaximum: 0,
        maximumQoS: 1,
        retainAvailable: false,
        wildcardSubscriptionAvailable: false,
        subscriptionIdentifiersAvailable: false,
        sharedSubscriptionAvailable: false,
        serverKeepAlive: 30,
        receiveMaximum: 2,
        maximumPacketSize: 2048,
      });
      expect(connack.properties?.responseInformation).toBeUndefined(); // not asked for
    });

    it('[MQTT-3.1.2-28] Response Information goes to a client that sets Request Response Information', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      const id = uid('c');
      const connack = await c.connect({ clientId: id, properties: { requestResponseInformation: true } });
      expect(connack.properties?.responseInformation).toBe(`reply/${id}/`);
    });

    it('[MQTT-3.2.2-11] a PUBLISH above Maximum QoS gets DISCONNECT 0x9B; at the maximum it is accepted', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send(pub(uid('t'), { qos: 1, messageId: 1 }));
      expect((await c.next('puback')).reasonCode).toBe(0);
      c.send(pub(uid('t'), { qos: 2, messageId: 2 }));
      const d = await c.next('disconnect');
      expect(d.reasonCode).toBe(0x9b);
      expect(d.properties?.reasonString).toBe('QoS 2 is above the Maximum QoS 1');
    });

    it('[MQTT-3.2.2-11] MQTT 3.1.1 cannot be told the Maximum QoS: a QoS 2 PUBLISH closes its connection', async () => {
      const c = await pool.raw(ref.b.wsUrl, 4);
      await c.connect({ clientId: uid('c') });
      c.send(pub(uid('t'), { qos: 2, messageId: 2 }));
      expect(await c.closesWithin(2000)).toBe(true);
    });

    it('[MQTT-3.2.2-12] a will QoS above Maximum QoS gets CONNACK 0x9B', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      const connack = await c.connect({ clientId: uid('c'), will: { topic: uid('w'), payload: Buffer.from('bye'), qos: 2, retain: false } });
      expect(connack.reasonCode).toBe(0x9b);
      expect(await c.closesWithin(2000)).toBe(true);
    });

    it('[MQTT-3.2.2-13] a retained will without Retain Available gets CONNACK 0x9A', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      const connack = await c.connect({ clientId: uid('c'), will: { topic: uid('w'), payload: Buffer.from('bye'), qos: 0, retain: true } });
      expect(connack.reasonCode).toBe(0x9a);
      expect(connack.properties?.reasonString).toContain('Retain Available');
    });

    it('[MQTT-3.2.2-14] a retained PUBLISH without Retain Available gets DISCONNECT 0x9A', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send(pub(uid('t'), { retain: true }));
      expect((await c.next('disconnect')).reasonCode).toBe(0x9a);
    });

    it('[MQTT-3.2.2-10] a SUBSCRIBE at QoS 2 is accepted and granted Maximum QoS 1', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: uid('t'), qos: 2 }] });
      expect((await c.next('suback')).granted).toEqual([1]);
    });

    it('section 3.2.2.3.11: without Wildcard Subscription Available a wildcard filter gets SUBACK 0xA2 with a Reason String', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${uid('t')}/+`, qos: 1 }, { topic: uid('t'), qos: 1 }] });
      const s = await c.next('suback');
      expect(s.granted).toEqual([0xa2, 1]);
      expect(s.properties?.reasonString).toBe('refused: filter 1: Wildcard Subscriptions not supported');
    });

    it('section 3.2.2.3.12: a Subscription Identifier without Subscription Identifiers Available gets DISCONNECT 0xA1', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: uid('t'), qos: 1 }], properties: { subscriptionIdentifier: 4 } });
      expect((await c.next('disconnect')).reasonCode).toBe(0xa1);
    });

    it('[MQTT-3.2.2-18] with Topic Alias Maximum 0 any Topic Alias gets DISCONNECT 0x94', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send(pub(uid('t'), { properties: { topicAlias: 1 } }));
      expect((await c.next('disconnect')).reasonCode).toBe(0x94);
    });

    it('[MQTT-3.2.2-15] a packet above the Maximum Packet Size gets DISCONNECT 0x95', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send(pub(uid('t'), { payload: Buffer.alloc(2100, 1) }));
      expect((await c.next('disconnect')).reasonCode).toBe(0x95);
    });

    it('[MQTT-3.3.4-7] with acks held until committed, one QoS 1 PUBLISH more than Receive Maximum gets DISCONNECT 0x93', async () => {
      expect(ref.b.config.store.durability).toBe('sync');
      const topic = uid('rm');
      // A subscriber, so that the publishes have a destination to commit at before their PUBACK.
      const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
      await sub.client.subscribeAsync(topic, { qos: 1 });
      const ok = await pool.raw(ref.b.tcpUrl, 5);
      await ok.connect({ clientId: uid('ok') });
      ok.sendBytes(bytes(...[1, 2].map((id) => pub(topic, { qos: 1, messageId: id }))));
      expect((await ok.next('puback')).messageId).toBe(1);
      expect((await ok.next('puback')).messageId).toBe(2);
      // Written PUBACKs free their places.
      ok.sendBytes(bytes(...[3, 4].map((id) => pub(topic, { qos: 1, messageId: id }))));
      expect((await ok.next('puback')).messageId).toBe(3);
      expect((await ok.next('puback')).messageId).toBe(4);
      expect(await ok.closesWithin(300)).toBe(false);
      const over = await pool.raw(ref.b.tcpUrl, 5);
      await over.connect({ clientId: uid('over') });
      over.sendBytes(bytes(...[1, 2, 3].map((id) => pub(topic, { qos: 1, messageId: id }))));
      const d = await over.next('disconnect', 3000);
      expect(d.reasonCode).toBe(0x93);
      expect(d.properties?.reasonString).toContain('Receive Maximum (2)');
    });

    it('[MQTT-3.3.4-7] a refused PUBLISH counts until its negative PUBACK is written (queued behind a held one)', async () => {
      const topic = uid('rm');
      const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
      await sub.client.subscribeAsync(topic, { qos: 1 });
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.sendBytes(bytes(pub(topic, { qos: 1, messageId: 1 }), pub('$x/y', { qos: 1, messageId: 2 }), pub(topic, { qos: 1, messageId: 3 })));
      expect((await c.next('disconnect', 3000)).reasonCode).toBe(0x93);
    });
  });

  describe('Receive Maximum over QoS 2', () => {
    const ref = sharedBroker(topo, { limits: { maxInflight: 2 } });

    it('[MQTT-3.3.4-7] QoS 2 PUBLISHes count until PUBREL: with two awaiting it, a QoS 1 PUBLISH gets DISCONNECT 0x93', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      c.send(pub(uid('t'), { qos: 2, messageId: 1 }));
      expect((await c.next('pubrec')).messageId).toBe(1);
      c.send(pub(uid('t'), { qos: 2, messageId: 2 }));
      expect((await c.next('pubrec')).messageId).toBe(2);
      // Released: the place is free again.
      c.send({ cmd: 'pubrel', messageId: 1 });
      expect((await c.next('pubcomp')).messageId).toBe(1);
      c.send(pub(uid('t'), { qos: 1, messageId: 3 }));
      expect((await c.next('puback')).messageId).toBe(3);
      c.send(pub(uid('t'), { qos: 2, messageId: 4 }));
      expect((await c.next('pubrec')).messageId).toBe(4);
      // Ids 2 and 4 await PUBREL: one more is one too many.
      c.send(pub(uid('t'), { qos: 1, messageId: 5 }));
      expect((await c.next('disconnect')).reasonCode).toBe(0x93);
    });

    it('[MQTT-4.3.3-10] resending a QoS 2 PUBLISH awaiting PUBREL is not one more', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('c') });
      const t = uid('t');
      c.send(pub(t, { qos: 2, messageId: 1 }));
      await c.next('pubrec');
      c.send(pub(t, { qos: 2, messageId: 2 }));
      await c.next('pubrec');
      c.send(pub(t, { qos: 2, messageId: 2, dup: true }));
      expect((await c.next('pubrec')).messageId).toBe(2);
      await sleep(100);
      expect(c.isClosed).toBe(false);
    });
  });

  describe('server redirection', () => {
    const ref = sharedBroker(topo, { mqtt: { serverReference: 'mqtt2.example.com:1883' } });

    it('section 4.11: every v5 CONNECT gets CONNACK 0x9C Use another server with the Server Reference', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 5);
      const connack = await c.connect({ clientId: uid('c') });
      expect(connack.reasonCode).toBe(0x9c);
      expect(connack.properties?.serverReference).toBe('mqtt2.example.com:1883');
      expect(await c.closesWithin(2000)).toBe(true);
      // MQTT.js reports it as a refusal with that code.
      const err = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('m') }).then(
        () => undefined,
        (e: { code?: number }) => e,
      );
      expect(err?.code).toBe(0x9c);
    });

    it('section 4.11: MQTT 3.1.1 cannot be redirected and gets CONNACK 0x03 Server unavailable', async () => {
      const c = await pool.raw(ref.b.tcpUrl, 4);
      expect((await c.connect({ clientId: uid('c') })).returnCode).toBe(3);
    });
  });
});
