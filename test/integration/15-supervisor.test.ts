/**
 * The supervisor restarts crashed worker threads (multi topology: 2 gateways + 2 shards).
 *  - A shard crash restarts that shard alone: clients whose session lived there are
 *    disconnected, reconnect (MQTT.js reconnectPeriod) and resubscribe, and traffic flows
 *    again; clients on the other shard never notice.
 *  - A gateway crash restarts every gateway (they share the TCP listening descriptor):
 *    every client is disconnected, reconnects, and traffic flows again.
 * The crash is the `crashThread` test hook: an uncaught exception in the thread.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { shardOf } from '../../src/runtime/sharding.js';
import { startTestBroker, metric, type TestBroker } from '../helpers/broker.js';

let seq = 0;
/** A client id whose session lives on shard `shard` of `shards`. */
function idOnShard(shard: number, shards = 2): string {
  for (;;) {
    const id = `sv-${process.pid}-${++seq}`;
    if (shardOf(id, shards) === shard) return id;
  }
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Rejects with `what` when `p` takes longer than `ms`: a hang says where it hung. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms))),
  ]);
}

interface Tracked {
  c: MqttClient;
  id: string;
  connects: number;
  closes: number;
  got: string[];
}

describe('supervisor restarts crashed threads (multi topology)', () => {
  let b: TestBroker;
  const tracked: Tracked[] = [];

  /** An MQTT.js client that reconnects quickly and resubscribes; counts its connects and closes. */
  async function client(id: string, url?: string): Promise<Tracked> {
    const c = mqtt.connect(url ?? b.tcpUrl, {
      clientId: id,
      protocolVersion: 5,
      reconnectPeriod: 100,
      connectTimeout: 2000,
      resubscribe: true,
    });
    const t: Tracked = { c, id, connects: 0, closes: 0, got: [] };
    tracked.push(t);
    c.on('connect', () => t.connects++);
    c.on('close', () => t.closes++);
    c.on('error', () => {});
    c.on('message', (topic, p) => t.got.push(`${topic} ${p.toString()}`));
    await waitFor(`${id} to connect`, () => t.connects === 1);
    return t;
  }

  /** Publishes `payload` to `topic` from `from` every 100 ms until `to` got it (resubscription may lag a reconnect). */
  async function deliverEventually(from: Tracked, to: Tracked, topic: string, payload: string): Promise<void> {
    const want = `${topic} ${payload}`;
    const end = Date.now() + 15_000;
    while (!to.got.includes(want)) {
      if (Date.now() > end) throw new Error(`${to.id} never got ${want} (got ${JSON.stringify(to.got)})`);
      if (from.c.connected) from.c.publish(topic, payload, { qos: 1 });
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Exactly-once round trip on a connection that must already work. */
  async function deliverNow(from: Tracked, to: Tracked, topic: string, payload: string): Promise<void> {
    await within(from.c.publishAsync(topic, payload, { qos: 1 }), 5000, `PUBACK for ${from.id} on ${topic}`);
    await waitFor(`${to.id} to get ${topic} ${payload}`, () => to.got.includes(`${topic} ${payload}`), 3000);
  }

  beforeEach(async () => {
    b = await startTestBroker('multi');
  });
  afterEach(async () => {
    await Promise.all(tracked.splice(0).map((t) => t.c.endAsync(true)));
    await b?.close();
  });

  it('a crashed shard is restarted; its clients reconnect and resubscribe; the other shard is untouched', async () => {
    const a0 = await client(idOnShard(0)); // session on shard 0
    const a1 = await client(idOnShard(1)); // session on shard 1
    const p1 = await client(idOnShard(1)); // a publisher on shard 1
    await within(a0.c.subscribeAsync('sv/a', { qos: 1 }), 5000, 'SUBACK a0');
    await within(a1.c.subscribeAsync('sv/b', { qos: 1 }), 5000, 'SUBACK a1');
    await deliverNow(p1, a0, 'sv/a', 'before');
    await deliverNow(p1, a1, 'sv/b', 'before');

    b.crashThread('shard', 0);
    await waitFor('the supervisor to restart shard 0', () => b.restarts.shard === 1);
    // The shard's clients were disconnected, and MQTT.js reconnected them.
    await waitFor('a0 to be disconnected and reconnect', () => a0.closes >= 1 && a0.connects >= 2 && a0.c.connected);

    // These are clean sessions (nothing kept): MQTT.js resubscribed, so messages flow to a0 again.
    await deliverEventually(p1, a0, 'sv/a', 'after');
    // Sessions on shard 0 can publish again too.
    await deliverNow(a0, a1, 'sv/b', 'from a0 after');

    // Clients of the other shard never noticed.
    expect(a1.closes).toBe(0);
    expect(p1.closes).toBe(0);
    expect(a1.connects).toBe(1);
    await deliverNow(p1, a1, 'sv/b', 'still');
    expect(b.restarts).toEqual({ gateway: 0, shard: 1 });
    expect(await within(metric(b, 'thread_restarts_total{role="shard"}'), 5000, 'GET /metrics')).toBe(1);

    // And a brand-new client on shard 0 works.
    const n0 = await client(idOnShard(0));
    await within(n0.c.subscribeAsync('sv/n', { qos: 1 }), 5000, 'SUBACK n0');
    await deliverNow(a1, n0, 'sv/n', 'fresh');
  }, 60_000);

  it('a crashed gateway restarts every gateway; all clients reconnect and traffic flows again', async () => {
    const subs = [await client(idOnShard(0)), await client(idOnShard(1)), await client(idOnShard(0), b.wsUrl)];
    const pub = await client(idOnShard(1));
    for (const s of subs) await within(s.c.subscribeAsync('gw/all', { qos: 1 }), 5000, `SUBACK ${s.id}`);
    await within(pub.c.publishAsync('gw/all', 'before', { qos: 1 }), 5000, 'PUBACK before the crash');
    for (const s of subs) await waitFor(`${s.id} to get the first message`, () => s.got.includes('gw/all before'));

    b.crashThread('gateway', 0);
    await waitFor('the supervisor to restart the gateways', () => b.restarts.gateway === 1);
    // Every connection went away with its gateway; each client reconnects.
    for (const t of [...subs, pub])
      await waitFor(`${t.id} to be disconnected and reconnect`, () => t.closes >= 1 && t.connects >= 2 && t.c.connected);

    // Traffic flows again (MQTT.js resubscribes on reconnect).
    for (const s of subs) await deliverEventually(pub, s, 'gw/all', `after-${s.id}`);
    expect(b.restarts).toEqual({ gateway: 1, shard: 0 });
    expect(await within(metric(b, 'thread_restarts_total{role="gateway"}'), 5000, 'GET /metrics')).toBe(1);

    // New connections are accepted on both listeners, and HTTP works.
    const fresh = await mqtt.connectAsync(b.tcpUrl, { reconnectPeriod: 0, connectTimeout: 3000 });
    await fresh.endAsync(true);
    const freshWs = await mqtt.connectAsync(b.wsUrl, { reconnectPeriod: 0, connectTimeout: 3000 });
    await freshWs.endAsync(true);
    expect((await fetch(`${b.httpUrl}/healthz`, { signal: AbortSignal.timeout(5000) })).status).toBe(200);

    // Again, with the other gateway: restarts are repeatable (same ports re-bound).
    const closesBefore = [...subs, pub].map((t) => t.closes);
    b.crashThread('gateway', 1);
    await waitFor('the second gateway restart', () => b.restarts.gateway === 2);
    for (const [i, t] of [...subs, pub].entries())
      await waitFor(`${t.id} to reconnect again`, () => t.closes > closesBefore[i]! && t.c.connected);
    for (const s of subs) await deliverEventually(pub, s, 'gw/all', `again-${s.id}`);
    expect(await within(metric(b, 'thread_restarts_total{role="gateway"}'), 5000, 'GET /metrics')).toBe(2);
  }, 60_000);
});
