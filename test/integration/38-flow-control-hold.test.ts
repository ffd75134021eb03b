/**
 * Lossless flow control (limits.queueFullPolicy hold, src/session/held-publishes.ts)
 * through real sockets, every topology: a slow QoS 1 subscriber (a raw client that
 * acknowledges when the test says so) with a small limits.maxQueuedMessages, and fast
 * publishers (MQTT.js over MQTT 5 and 3.1.1, mosquitto_pub -q 1). With hold, what a
 * publisher got acknowledged is delivered, exactly, and the publishers wait for the
 * subscriber; with drop (the default) the old behaviour: acknowledged at once, dropped and
 * counted. A subscriber that never reads costs its publishers maxAckHoldSeconds, no more.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import mqttPacket, { type IPublishPacket } from 'mqtt-packet';
import { metric, TOPOLOGIES, type TestBroker } from '../helpers/broker.js';
import { ClientPool, sharedBroker, sleep, uid } from '../helpers/clients.js';
import type { RawClient } from '../helpers/raw-client.js';
import { onPath } from '../helpers/peers.js';

const HAVE_MOSQUITTO = onPath('mosquitto_pub', '--help');
if (!HAVE_MOSQUITTO) console.warn('38-flow-control-hold: mosquitto_pub not on PATH: its publisher is left out');

/** The subscriber's queue and window: what the broker can take before a publisher must wait. */
const QUEUE = 10;
const WINDOW = 5;
/** The server's Receive Maximum (limits.maxInflight). */
const MAX_INFLIGHT = 20;
/** Messages per publisher. */
const N = 40;

const pub = (topic: string, messageId: number, payload = `m${messageId}`): IPublishPacket => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  messageId,
  dup: false,
  retain: false,
});

/** A raw MQTT 5 subscriber of `topic` at QoS 1 that acknowledges nothing until told. */
async function slowSubscriber(pool: ClientPool, b: TestBroker, topic: string, o: { clientId?: string; expiry?: number } = {}): Promise<RawClient> {
  const c = await pool.raw(b.tcpUrl, 5);
  await c.connect({
    clientId: o.clientId ?? uid('slow'),
    clean: o.expiry === undefined,
    properties: { receiveMaximum: WINDOW, ...(o.expiry !== undefined ? { sessionExpiryInterval: o.expiry } : {}) },
  });
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
  expect((await c.next('suback')).granted).toEqual([1]);
  return c;
}

/**
 * Takes PUBLISHes off the subscriber and acknowledges each (as fast as they come: its
 * window keeps it slow) until `n` arrived, or none came for `quietMs`. Payloads in order.
 */
async function receive(c: RawClient, n: number, quietMs = 3000): Promise<string[]> {
  const got: string[] = [];
  while (got.length < n) {
    let p: IPublishPacket;
    try {
      p = (await c.next('publish', quietMs)) as IPublishPacket;
    } catch {
      break;
    }
    got.push(p.payload.toString());
    c.send({ cmd: 'puback', messageId: p.messageId! });
  }
  return got;
}

/**
 * N QoS 1 publishes from an MQTT.js client, at most `window` unacknowledged (MQTT.js does
 * not keep to the server's Receive Maximum by itself); `acked` counts the PUBACKs.
 */
async function mqttjsPublisher(pool: ClientPool, b: TestBroker, topic: string, name: string, protocolVersion: 4 | 5, window: number) {
  const { client } = await pool.connect(b.tcpUrl, { protocolVersion, clientId: uid(name) });
  const state = { acked: 0, done: Promise.resolve() as Promise<unknown> };
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < N) {
      await client.publishAsync(topic, `${name}-${next++}`, { qos: 1 });
      state.acked++;
    }
  };
  state.done = Promise.all(Array.from({ length: window }, lane));
  return state;
}

/** mosquitto_pub -q 1 -l with N lines (MQTT 3.1.1, up to 40 in flight); resolves with its exit code. */
function mosquittoPublisher(b: TestBroker, topic: string, name: string): { proc: ChildProcess; exit: Promise<number | null>; out: () => string } {
  const proc = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.tcpPort), '-q', '1', '-M', '40', '-t', topic, '-i', uid(name), '-l'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stdin!.end(Array.from({ length: N }, (_, i) => `${name}-${i}\n`).join(''));
  return { proc, exit: new Promise((resolve) => proc.on('close', resolve)), out: () => out };
}

/** The messages of one publisher in `got`, in the order received. */
const from = (got: string[], name: string): string[] => got.filter((m) => m.startsWith(`${name}-`));
const expected = (name: string): string[] => Array.from({ length: N }, (_, i) => `${name}-${i}`);

/** Counters are totals since the broker started: a test looks at what changed during it. */
async function counters(b: TestBroker) {
  const names = ['messages_dropped_total{reason="queue_full"}', 'messages_dropped_total{reason="hold_timeout"}', 'messages_held_total', 'publishers_paused_held_acks_total'] as const;
  const before = await Promise.all(names.map((n) => metric(b, n)));
  return async () => {
    const after = await Promise.all(names.map((n) => metric(b, n)));
    return { queueFull: after[0]! - before[0]!, holdTimeout: after[1]! - before[1]!, held: after[2]! - before[2]!, paused: after[3]! - before[3]! };
  };
}

describe.each(TOPOLOGIES)('38 flow control: queueFullPolicy hold (%s)', (topo) => {
  const pool = new ClientPool();
  const spawned: ChildProcess[] = [];
  afterEach(async () => {
    for (const p of spawned.splice(0)) p.kill();
    await pool.closeAll();
  });

  describe('hold, durability memory', () => {
    const ref = sharedBroker(topo, {
      store: { durability: 'memory' },
      limits: { queueFullPolicy: 'hold', maxQueuedMessages: QUEUE, maxInflight: MAX_INFLIGHT, maxHeldPerSession: 1000, maxAckHoldSeconds: 30 },
    });

    it('[MQTT-4.9.0-2] fast publishers (MQTT.js v5 and 3.1.1, mosquitto_pub) wait for a slow subscriber: every message acknowledged is delivered, exactly, none dropped', async () => {
      const topic = uid('fanin');
      const since = await counters(ref.b);
      const sub = await slowSubscriber(pool, ref.b, topic);
      // The v5 one within the server's Receive Maximum; the 3.1.1 one with all of its messages at once.
      const p5 = await mqttjsPublisher(pool, ref.b, topic, 'v5', 5, MAX_INFLIGHT / 2);
      const p4 = await mqttjsPublisher(pool, ref.b, topic, 'v4', 4, N);
      const mosq = HAVE_MOSQUITTO ? mosquittoPublisher(ref.b, topic, 'mosq') : undefined;
      if (mosq) spawned.push(mosq.proc);
      const total = N * (mosq ? 3 : 2);
      // The subscriber reads nothing yet: only what its window and queue hold is acknowledged.
      await sleep(500);
      expect(p5.acked + p4.acked).toBeLessThanOrEqual(QUEUE + WINDOW);
      expect(await metric(ref.b, 'messages_held')).toBeGreaterThan(0);
      // A 3.1.1 publisher with limits.maxInflight acks held is not read meanwhile (no Receive Maximum to tell it).
      expect((await since()).paused).toBeGreaterThan(0);

      const got = await receive(sub, total);
      await Promise.all([p5.done, p4.done]);
      expect(p5.acked + p4.acked).toBe(2 * N);
      if (mosq) expect(await mosq.exit, mosq.out()).toBe(0);
      expect(got).toHaveLength(total);
      // In order per publisher [MQTT-4.6.0-5][MQTT-4.6.0-6], each exactly once.
      expect(from(got, 'v5')).toEqual(expected('v5'));
      expect(from(got, 'v4')).toEqual(expected('v4'));
      if (mosq) expect(from(got, 'mosq')).toEqual(expected('mosq'));
      const d = await since();
      expect(d.queueFull).toBe(0);
      expect(d.holdTimeout).toBe(0);
      expect(d.held).toBeGreaterThan(0);
      expect(await metric(ref.b, 'messages_held')).toBe(0);
    });

    it('[MQTT-3.3.4-7] held PUBACKs count against the server\'s Receive Maximum: one QoS 1 PUBLISH more gets DISCONNECT 0x93', async () => {
      const topic = uid('rm');
      await slowSubscriber(pool, ref.b, topic);
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('p') });
      // The subscriber's window and queue take these: acknowledged.
      for (let id = 1; id <= QUEUE + WINDOW; id++) {
        c.send(pub(topic, id));
        expect((await c.next('puback')).messageId).toBe(id);
      }
      // These wait for room: their PUBACKs are held, and count.
      for (let id = QUEUE + WINDOW + 1; id <= QUEUE + WINDOW + MAX_INFLIGHT; id++) c.send(pub(topic, id));
      expect(await c.collect(300, 'puback')).toEqual([]);
      expect(c.isClosed).toBe(false);
      c.send({ cmd: 'pingreq' });
      // [MQTT-4.9.0-3] its send quota is zero, yet its other packets are answered.
      await c.next('pingresp');
      c.send(pub(topic, QUEUE + WINDOW + MAX_INFLIGHT + 1));
      const d = await c.next('disconnect', 3000);
      expect(d.reasonCode).toBe(0x93);
    });

    it('an offline persistent subscriber: publishers wait beyond its queue; its client coming back gets every message, in order, and they get their PUBACKs', async () => {
      const topic = uid('offline');
      const clientId = uid('away');
      const sub = await slowSubscriber(pool, ref.b, topic, { clientId, expiry: 300 });
      await sub.disconnect();
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('p') });
      c.sendBytes(Buffer.concat(Array.from({ length: QUEUE + 5 }, (_, i) => mqttPacket.generate(pub(topic, i + 1), { protocolVersion: 5 }))));
      const first = await c.collect(500, 'puback');
      expect(first.map((a) => (a as { messageId: number }).messageId)).toEqual(Array.from({ length: QUEUE }, (_, i) => i + 1));
      const back = await pool.raw(ref.b.tcpUrl, 5);
      const connack = await back.connect({ clientId, clean: false, properties: { receiveMaximum: WINDOW, sessionExpiryInterval: 300 } });
      expect(connack.sessionPresent).toBe(true);
      const got = await receive(back, QUEUE + 5);
      expect(got).toEqual(Array.from({ length: QUEUE + 5 }, (_, i) => `m${i + 1}`));
      const rest = [];
      for (let i = 0; i < 5; i++) rest.push((await c.next('puback')).messageId);
      expect(rest).toEqual([11, 12, 13, 14, 15]);
      await back.disconnect({ properties: { sessionExpiryInterval: 0 } });
    });
  });

  describe('hold, durability sync, maxAckHoldSeconds 1', () => {
    const ref = sharedBroker(topo, { limits: { queueFullPolicy: 'hold', maxQueuedMessages: QUEUE, maxInflight: MAX_INFLIGHT, maxAckHoldSeconds: 1 } });

    it('a subscriber that never reads: after maxAckHoldSeconds the parked messages are dropped (hold_timeout) and their publisher gets its PUBACKs', async () => {
      expect(ref.b.config.store.durability).toBe('sync');
      const topic = uid('dead');
      const since = await counters(ref.b);
      const sub = await slowSubscriber(pool, ref.b, topic);
      const c = await pool.raw(ref.b.tcpUrl, 5);
      await c.connect({ clientId: uid('p') });
      const t0 = Date.now();
      c.sendBytes(Buffer.concat(Array.from({ length: QUEUE + WINDOW + 3 }, (_, i) => mqttPacket.generate(pub(topic, i + 1), { protocolVersion: 5 }))));
      const ids: number[] = [];
      for (let i = 0; i < QUEUE + WINDOW + 3; i++) ids.push((await c.next('puback', 5000)).messageId!);
      expect(ids).toEqual(Array.from({ length: QUEUE + WINDOW + 3 }, (_, i) => i + 1));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      expect((await since()).holdTimeout).toBe(3);
      // The subscriber gets what was queued, not what timed out.
      const got = await receive(sub, QUEUE + WINDOW + 3, 500);
      expect(got).toEqual(Array.from({ length: QUEUE + WINDOW }, (_, i) => `m${i + 1}`));
    });
  });

  describe('drop (the default), durability memory', () => {
    const ref = sharedBroker(topo, { store: { durability: 'memory' }, limits: { maxQueuedMessages: QUEUE, maxInflight: MAX_INFLIGHT } });

    it('the same publishers and subscriber: acknowledged at once, what does not fit the queue is dropped and counted (queue_full)', async () => {
      expect(ref.b.config.limits.queueFullPolicy).toBe('drop');
      const topic = uid('fanin');
      const since = await counters(ref.b);
      const sub = await slowSubscriber(pool, ref.b, topic);
      // The v5 one within the server's Receive Maximum; the 3.1.1 one with all of its messages at once.
      const p5 = await mqttjsPublisher(pool, ref.b, topic, 'v5', 5, MAX_INFLIGHT / 2);
      const p4 = await mqttjsPublisher(pool, ref.b, topic, 'v4', 4, N);
      const mosq = HAVE_MOSQUITTO ? mosquittoPublisher(ref.b, topic, 'mosq') : undefined;
      if (mosq) spawned.push(mosq.proc);
      const total = N * (mosq ? 3 : 2);
      // Nobody waits for the subscriber.
      await Promise.all([p5.done, p4.done]);
      if (mosq) expect(await mosq.exit, mosq.out()).toBe(0);
      const got = await receive(sub, total, 500);
      const d = await since();
      expect(got.length).toBeLessThan(total);
      expect(d.queueFull).toBe(total - got.length);
      expect(d.held).toBe(0);
    });
  });
});
