/**
 * Will messages: published when a connection is lost (not after a normal DISCONNECT),
 * v5 DISCONNECT 0x04, retained wills, will properties, takeover, and the v5 Will Delay
 * Interval (including a reconnect within the delay, and a session that ends first).
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { IClientOptions } from 'mqtt';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, TRANSPORTS, killSocket, sharedBroker, sleep, uid, urlOf, within } from '../helpers/clients.js';

const VERSIONS = [4, 5] as const;

describe.each(TOPOLOGIES)('07 will (%s)', (topo) => {
  const ref = sharedBroker(topo);
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  /** A subscriber to `topic` (QoS 2), connected over TCP. */
  const watch = async (topic: string, v: 4 | 5 = 5) => {
    const w = await pool.connect(ref.b.tcpUrl, { protocolVersion: v, clientId: uid('watch') });
    await w.client.subscribeAsync(topic, { qos: 2 });
    return w;
  };

  describe.each(TRANSPORTS)('over %s', (tr) => {
    const url = () => urlOf(ref.b, tr);

    it.each(VERSIONS)('[MQTT-3.1.2-8] v%i: the will is published when the connection is lost without DISCONNECT', async (v) => {
      const topic = uid('will');
      const w = await watch(topic);
      const c = await pool.connect(url(), { protocolVersion: v, clientId: uid('c'), will: { topic, payload: Buffer.from('lost'), qos: 1, retain: false } });
      void killSocket(c.client);
      const [m] = await w.inbox.waitFor(1, 2000);
      expect([m!.topic, m!.payload, m!.packet.qos, m!.packet.retain]).toEqual([topic, 'lost', 1, false]);
    });

    it.each(VERSIONS)('[MQTT-3.1.2-10][MQTT-3.14.4-3] v%i: the will is discarded after a normal DISCONNECT', async (v) => {
      const topic = uid('will');
      const w = await watch(topic);
      const c = await pool.connect(url(), { protocolVersion: v, clientId: uid('c'), will: { topic, payload: Buffer.from('no'), qos: 1, retain: false } });
      await c.client.endAsync();
      expect(await w.inbox.settle(500)).toEqual([]);
    });

    it('[MQTT-3.14.4-3] v5 DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the will', async () => {
      const topic = uid('will');
      const w = await watch(topic);
      const c = await pool.raw(url(), 5);
      await c.connect({ clientId: uid('c'), will: { topic, payload: Buffer.from('asked for'), qos: 0, retain: false } });
      await c.disconnect({ reasonCode: 0x04 });
      const [m] = await w.inbox.waitFor(1, 2000);
      expect(m!.payload).toBe('asked for');
    });
  });

  it('[MQTT-3.1.2-17][MQTT-3.1.2-16] a will with Will Retain=1 is published retained; with 0 it is not retained', async () => {
    const retained = uid('will-r');
    const plain = uid('will-p');
    const a = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('c'), will: { topic: retained, payload: Buffer.from('R'), qos: 1, retain: true } });
    const b = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('c'), will: { topic: plain, payload: Buffer.from('P'), qos: 1, retain: false } });
    const live = await watch(retained, 4);
    void killSocket(a.client);
    const bClosed = killSocket(b.client);
    // A live 3.1.1 subscriber gets it with RETAIN=0 [MQTT-3.3.1-9].
    const [m] = await live.inbox.waitFor(1, 2000);
    expect([m!.payload, m!.packet.retain]).toEqual(['R', false]);
    await within(bClosed, 2000, 'b closed');
    await sleep(200);
    // A later subscriber gets the retained will, and nothing for the non-retained one.
    const late = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('late') });
    await late.client.subscribeAsync([retained, plain], { qos: 1 });
    await late.inbox.waitFor(1);
    const msgs = await late.inbox.settle(300);
    expect(msgs.map((x) => [x.topic, x.payload, x.packet.retain])).toEqual([[retained, 'R', true]]);
    const cleaner = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, clientId: uid('clean') });
    await cleaner.client.publishAsync(retained, '', { qos: 1, retain: true });
  });

  it('[MQTT-3.3.2-4][MQTT-3.3.2-15][MQTT-3.3.2-16][MQTT-3.3.2-17][MQTT-3.3.2-20] v5 will properties are passed on with the will', async () => {
    const topic = uid('will');
    const w = await watch(topic);
    const c = await pool.raw(ref.b.wsUrl, 5);
    await c.connect({
      clientId: uid('c'),
      will: {
        topic,
        payload: Buffer.from('{"status":"offline"}'),
        qos: 1,
        retain: false,
        properties: {
          payloadFormatIndicator: true,
          contentType: 'application/json',
          responseTopic: `${topic}/reply`,
          correlationData: Buffer.from([1, 2, 3]),
          userProperties: { reason: 'test' },
        },
      },
    });
    c.destroy();
    const [m] = await w.inbox.waitFor(1, 2000);
    const p = m!.packet.properties!;
    expect(p.payloadFormatIndicator).toBe(true);
    expect(p.contentType).toBe('application/json');
    expect(p.responseTopic).toBe(`${topic}/reply`);
    expect([...Buffer.from(p.correlationData!)]).toEqual([1, 2, 3]);
    expect(p.userProperties).toEqual({ reason: 'test' });
  });

  it('[MQTT-3.1.4-3] v5 takeover: the will of the taken-over connection (no delay) is published', async () => {
    const topic = uid('will');
    const id = uid('c');
    const w = await watch(topic);
    await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: id, will: { topic, payload: Buffer.from('taken'), qos: 1, retain: false } });
    await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: id });
    const [m] = await w.inbox.waitFor(1, 2000);
    expect(m!.payload).toBe('taken');
  });

  it('[MQTT-3.1.2-8] v5 Will Delay Interval: the will is published only after the delay', async () => {
    const topic = uid('will');
    const w = await watch(topic);
    const c = await pool.raw(ref.b.tcpUrl, 5);
    await c.connect({
      clientId: uid('c'),
      clean: true,
      properties: { sessionExpiryInterval: 10 },
      will: { topic, payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
    });
    const t0 = Date.now();
    c.destroy();
    expect(await w.inbox.settle(600)).toEqual([]);
    const [m] = await w.inbox.waitFor(1, 2000);
    expect(m!.payload).toBe('late');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });

  it.each(TRANSPORTS)('[MQTT-3.1.3-9] v5 Will Delay Interval: no will when the client reconnects to the session within the delay (%s)', async (tr) => {
    const topic = uid('will');
    const id = uid('c');
    const w = await watch(topic);
    const opts: IClientOptions = {
      protocolVersion: 5,
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 10 },
      will: { topic, payload: Buffer.from('never'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
    };
    const c1 = await pool.connect(urlOf(ref.b, tr), opts);
    await within(killSocket(c1.client), 2000, 'closed');
    await sleep(300);
    const c2 = await pool.connect(urlOf(ref.b, tr), { ...opts, will: undefined });
    expect(c2.connack.sessionPresent).toBe(true);
    expect(await w.inbox.settle(1500)).toEqual([]);
  });

  it('[MQTT-3.1.3-9] v5 takeover within the will delay (Clean Start=0): the will is not published', async () => {
    const topic = uid('will');
    const id = uid('c');
    const w = await watch(topic);
    const opts: IClientOptions = {
      protocolVersion: 5,
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 10 },
      will: { topic, payload: Buffer.from('never'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
    };
    await pool.connect(ref.b.tcpUrl, opts);
    const c2 = await pool.connect(ref.b.wsUrl, { ...opts, will: undefined });
    expect(c2.connack.sessionPresent).toBe(true);
    expect(await w.inbox.settle(1500)).toEqual([]);
  });

  it('[MQTT-3.1.2-8] v5 a reconnect with Clean Start=1 within the will delay ends the old session, so its will is published', async () => {
    const topic = uid('will');
    const id = uid('c');
    const w = await watch(topic);
    const c1 = await pool.raw(ref.b.tcpUrl, 5);
    await c1.connect({
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 30 },
      will: { topic, payload: Buffer.from('session over'), qos: 1, retain: false, properties: { willDelayInterval: 30 } },
    });
    c1.destroy();
    await sleep(300);
    expect(w.inbox.msgs).toEqual([]);
    const c2 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: id, clean: true });
    expect(c2.connack.sessionPresent).toBe(false);
    const [m] = await w.inbox.waitFor(1, 1000);
    expect(m!.payload).toBe('session over');
  });

  it('[MQTT-3.1.2-8] v5 a session that expires before the will delay publishes the will when it ends', async () => {
    const topic = uid('will');
    const w = await watch(topic);
    const c = await pool.raw(ref.b.tcpUrl, 5);
    await c.connect({
      clientId: uid('c'),
      clean: true,
      properties: { sessionExpiryInterval: 1 },
      will: { topic, payload: Buffer.from('expired'), qos: 0, retain: false, properties: { willDelayInterval: 60 } },
    });
    c.destroy();
    const [m] = await w.inbox.waitFor(1, 2500);
    expect(m!.payload).toBe('expired');
  });

  it('(broker policy: $SYS belongs to the broker) a will on a $SYS topic is refused at CONNECT: v5 0x87, 3.1.1 0x05', async () => {
    const topic = `$SYS/${uid('forged')}`;
    const w = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('w') });
    await w.client.subscribeAsync(topic, { qos: 1 });
    const c5 = await pool.raw(ref.b.tcpUrl, 5);
    const ack5 = await c5.connect({ clientId: uid('c'), will: { topic, payload: Buffer.from('x'), qos: 0, retain: true } });
    expect(ack5.reasonCode).toBe(0x87);
    const c3 = await pool.raw(ref.b.wsUrl, 4);
    const ack3 = await c3.connect({ clientId: uid('c'), will: { topic, payload: Buffer.from('x'), qos: 0, retain: true } });
    expect(ack3.returnCode).toBe(0x05);
    expect(await c5.closesWithin(2000)).toBe(true);
    expect(await c3.closesWithin(2000)).toBe(true);
    expect(await w.inbox.settle(300)).toEqual([]);
  });
});
