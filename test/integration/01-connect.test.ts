/**
 * CONNECT / CONNACK: protocol versions, client identifiers, Session Present, session
 * takeover and keepalive, through real sockets (TCP and WebSocket) on every topology.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { IDisconnectPacket } from 'mqtt-packet';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, TRANSPORTS, closed, sharedBroker, sleep, uid, urlOf, within } from '../helpers/clients.js';

describe.each(TOPOLOGIES)('01 connect (%s)', (topo) => {
  const ref = sharedBroker(topo);
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  describe.each(TRANSPORTS)('over %s', (tr) => {
    const url = () => urlOf(ref.b, tr);

    it('[MQTT-3.2.2-1] v3.1.1 CONNECT with CleanSession=1 gets CONNACK 0x00 and Session Present 0', async () => {
      const { client, connack } = await pool.connect(url(), { protocolVersion: 4, clientId: uid('c') });
      expect(connack.returnCode).toBe(0);
      expect(connack.sessionPresent).toBe(false);
      expect(client.connected).toBe(true);
    });

    it('[MQTT-3.2.2-2] v5 CONNECT with Clean Start=1 gets CONNACK 0x00, Session Present 0 and the server limits', async () => {
      const { connack } = await pool.connect(url(), { protocolVersion: 5, clientId: uid('c') });
      expect(connack.reasonCode).toBe(0);
      expect(connack.sessionPresent).toBe(false);
      const p = connack.properties!;
      expect(p.receiveMaximum).toBe(ref.b.config.limits.maxInflight);
      expect(p.maximumPacketSize).toBe(ref.b.config.limits.maxPacketSize);
      expect(p.topicAliasMaximum).toBe(ref.b.config.mqtt.topicAliasMaximum);
      // The client chose its id, so none is assigned [MQTT-3.2.2-16 only applies to empty ids].
      expect(p.assignedClientIdentifier).toBeUndefined();
    });

    it('[MQTT-3.1.3-8][MQTT-3.1.3-9] v3.1.1 zero-length client id with CleanSession=0 gets CONNACK 0x02 and is closed', async () => {
      const c = await pool.raw(url(), 4);
      // mqtt-packet refuses to encode this CONNECT, so it is written by hand:
      // fixed header, "MQTT", level 4, flags 0x00 (CleanSession=0), keepalive 0, id "".
      c.sendBytes(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 0, 0, 0]));
      const connack = await c.next('connack');
      expect(connack.returnCode).toBe(0x02); // Identifier rejected
      expect(connack.sessionPresent).toBe(false);
      expect(await c.closesWithin(2000)).toBe(true);
    });

    it('[MQTT-3.1.3-6] v3.1.1 zero-length client id with CleanSession=1 is accepted and given a unique id', async () => {
      const topic = uid('t');
      // Two such clients at once: if they shared an id, the second would take the first over.
      const a = await pool.connect(url(), { protocolVersion: 4, clientId: '', clean: true });
      const b = await pool.connect(url(), { protocolVersion: 4, clientId: '', clean: true });
      expect(a.connack.returnCode).toBe(0);
      expect(b.connack.returnCode).toBe(0);
      expect(a.connack.properties).toBeUndefined(); // 3.1.1 CONNACK has no properties
      await a.client.subscribeAsync(topic, { qos: 1 });
      await b.client.subscribeAsync(topic, { qos: 1 });
      await b.client.publishAsync(topic, 'both', { qos: 1 });
      expect((await a.inbox.waitFor(1))[0]!.payload).toBe('both');
      expect((await b.inbox.waitFor(1))[0]!.payload).toBe('both');
      expect(a.client.connected && b.client.connected).toBe(true);
    });

    it('[MQTT-3.2.2-16][MQTT-3.1.3-7] v5 zero-length client id gets an Assigned Client Identifier in CONNACK', async () => {
      const a = await pool.connect(url(), { protocolVersion: 5, clientId: '' });
      const b = await pool.connect(url(), { protocolVersion: 5, clientId: '' });
      const idA = a.connack.properties?.assignedClientIdentifier;
      const idB = b.connack.properties?.assignedClientIdentifier;
      expect(a.connack.reasonCode).toBe(0);
      expect(typeof idA).toBe('string');
      expect(idA!.length).toBeGreaterThan(0);
      expect(idB).not.toBe(idA);
      // Both stay connected: the assigned ids are distinct sessions.
      await sleep(100);
      expect(a.client.connected && b.client.connected).toBe(true);
    });

    it('[MQTT-3.1.4-2] v3.1.1 session takeover: a second connection with the same client id closes the first', async () => {
      const id = uid('c');
      const topic = uid('t');
      const first = await pool.connect(url(), { protocolVersion: 4, clientId: id });
      const firstClosed = closed(first.client);
      const second = await pool.connect(url(), { protocolVersion: 4, clientId: id });
      await within(firstClosed, 2000, 'first connection closed');
      expect(second.connack.returnCode).toBe(0);
      // The new connection is fully usable.
      await second.client.subscribeAsync(topic, { qos: 1 });
      await second.client.publishAsync(topic, 'still here', { qos: 1 });
      expect((await second.inbox.waitFor(1))[0]!.payload).toBe('still here');
      expect(second.client.connected).toBe(true);
    });

    it('[MQTT-3.1.4-3] v5 session takeover: the first connection gets DISCONNECT 0x8E (Session taken over) and is closed', async () => {
      const id = uid('c');
      const first = await pool.connect(url(), { protocolVersion: 5, clientId: id });
      const disconnect = new Promise<IDisconnectPacket>((r) => first.client.once('disconnect', r));
      const firstClosed = closed(first.client);
      const second = await pool.connect(url(), { protocolVersion: 5, clientId: id });
      expect((await within(disconnect, 2000, 'DISCONNECT to the first connection')).reasonCode).toBe(0x8e);
      await within(firstClosed, 2000, 'first connection closed');
      expect(second.connack.reasonCode).toBe(0);
      expect(second.client.connected).toBe(true);
    });

    it('[MQTT-3.1.2-24] v3.1.1 keepalive: a silent client is closed after 1.5 x Keep Alive and its will is published', async () => {
      const id = uid('c');
      const willTopic = uid('will');
      const watcher = await pool.connect(url(), { protocolVersion: 4, clientId: uid('w') });
      await watcher.client.subscribeAsync(willTopic, { qos: 1 });
      const c = await pool.raw(url(), 4);
      const connack = await c.connect({ clientId: id, keepalive: 1, will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false } });
      expect(connack.returnCode).toBe(0);
      const t0 = Date.now();
      // The client now sends nothing at all, not even PINGREQ.
      expect(await c.closesWithin(3000)).toBe(true);
      const elapsed = Date.now() - t0;
      expect(elapsed).toBeGreaterThanOrEqual(1400);
      expect(elapsed).toBeLessThan(2700);
      const [will] = await watcher.inbox.waitFor(1, 2000);
      expect(will!.topic).toBe(willTopic);
      expect(will!.payload).toBe('gone');
    });

    it('[MQTT-3.1.2-22] v5 keepalive: a silent client gets DISCONNECT 0x8D (Keep Alive timeout) and its will is published', async () => {
      const willTopic = uid('will');
      const watcher = await pool.connect(url(), { protocolVersion: 5, clientId: uid('w') });
      await watcher.client.subscribeAsync(willTopic, { qos: 1 });
      const c = await pool.raw(url(), 5);
      const connack = await c.connect({ clientId: uid('c'), keepalive: 1, will: { topic: willTopic, payload: Buffer.from('timeout'), qos: 0, retain: false } });
      expect(connack.reasonCode).toBe(0);
      const t0 = Date.now();
      const disconnect = await c.next('disconnect', 3000);
      expect(disconnect.reasonCode).toBe(0x8d);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
      expect(await c.closesWithin(2000)).toBe(true);
      expect((await watcher.inbox.waitFor(1, 2000))[0]!.payload).toBe('timeout');
    });

    it('[MQTT-3.1.2-24][MQTT-3.12.4-1] a client that sends PINGREQ within the Keep Alive stays connected and gets PINGRESP', async () => {
      const c = await pool.raw(url(), 4);
      await c.connect({ clientId: uid('c'), keepalive: 1 });
      for (let i = 0; i < 5; i++) {
        await sleep(500);
        c.send({ cmd: 'pingreq' });
        await c.next('pingresp', 1000);
      }
      // 2.5 s in: past 1.5 x Keep Alive from CONNECT, still open.
      expect(c.isClosed).toBe(false);
    });
  });

  it('[MQTT-3.1.4-3] session takeover across transports and gateways (TCP first, WebSocket second)', async () => {
    const id = uid('c');
    const first = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: id });
    const disconnect = new Promise<IDisconnectPacket>((r) => first.client.once('disconnect', r));
    const second = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: id });
    expect((await within(disconnect, 2000, 'DISCONNECT 0x8E')).reasonCode).toBe(0x8e);
    await within(closed(first.client), 2000, 'first closed');
    // And back: the WebSocket connection is taken over by a new TCP one.
    const disconnect2 = new Promise<IDisconnectPacket>((r) => second.client.once('disconnect', r));
    const third = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: id });
    expect((await within(disconnect2, 2000, 'second DISCONNECT 0x8E')).reasonCode).toBe(0x8e);
    expect(third.client.connected).toBe(true);
  });

  it('[MQTT-3.2.2-1][MQTT-3.2.2-2][MQTT-3.2.2-3] v3.1.1 Session Present: 0 for a new session, 1 when resumed, 0 after CleanSession=1', async () => {
    const id = uid('c');
    const s1 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: id, clean: false });
    expect(s1.connack.sessionPresent).toBe(false); // [MQTT-3.2.2-3] no stored session yet
    await s1.client.subscribeAsync(uid('t'), { qos: 1 });
    await s1.client.endAsync();
    const s2 = await pool.connect(ref.b.wsUrl, { protocolVersion: 4, clientId: id, clean: false });
    expect(s2.connack.sessionPresent).toBe(true); // [MQTT-3.2.2-2]
    await s2.client.endAsync();
    const s3 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: id, clean: true });
    expect(s3.connack.sessionPresent).toBe(false); // [MQTT-3.2.2-1]
    await s3.client.endAsync();
    // CleanSession=1 ended the session at disconnect: nothing to resume.
    const s4 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: id, clean: false });
    expect(s4.connack.sessionPresent).toBe(false);
  });

  it('[MQTT-3.2.2-2][MQTT-3.2.2-3][MQTT-3.1.2-23] v5 Session Present follows Clean Start and the Session Expiry Interval', async () => {
    const id = uid('c');
    const opts = { protocolVersion: 5 as const, clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } };
    const s1 = await pool.connect(ref.b.tcpUrl, opts);
    expect(s1.connack.sessionPresent).toBe(false);
    await s1.client.endAsync();
    const s2 = await pool.connect(ref.b.tcpUrl, opts);
    expect(s2.connack.sessionPresent).toBe(true);
    await s2.client.endAsync();
    // Clean Start=1 discards the stored session [MQTT-3.1.2-4]; expiry 0 ends it at disconnect.
    const s3 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: id, clean: true, properties: { sessionExpiryInterval: 0 } });
    expect(s3.connack.sessionPresent).toBe(false);
    await s3.client.endAsync();
    const s4 = await pool.connect(ref.b.tcpUrl, opts);
    expect(s4.connack.sessionPresent).toBe(false);
  });

  it('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection', async () => {
    const c = await pool.raw(ref.b.tcpUrl, 4);
    c.send({ cmd: 'pingreq' });
    expect(await c.closesWithin(2000)).toBe(true);
    expect(c.received).toEqual([]);
  });

  it('[MQTT-3.1.0-2] a second CONNECT is a protocol error: v5 gets DISCONNECT 0x82 and is closed', async () => {
    const c = await pool.raw(ref.b.tcpUrl, 5);
    const id = uid('c');
    expect((await c.connect({ clientId: id })).reasonCode).toBe(0);
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: id });
    expect((await c.next('disconnect', 2000)).reasonCode).toBe(0x82);
    expect(await c.closesWithin(2000)).toBe(true);
  });
});
