/**
 * Fuzzing over real sockets: thousands of short sessions send mutated MQTT 3.1 / 3.1.1 /
 * 5.0 packets (test/helpers/fuzz.ts: bit flips, truncations, Remaining Length rewrites,
 * random and duplicated properties, invalid UTF-8, reserved flags, oversized variable
 * byte integers, random packet types before and after CONNECT) over TCP and WebSocket,
 * many of them subscribed next to the well-behaved clients, while well-behaved MQTT.js
 * clients (3.1.1 and 5.0, TCP and WebSocket) keep exchanging QoS 0 and QoS 1 messages.
 *
 * Afterwards: every QoS 1 message a well-behaved publisher had acknowledged reached every
 * well-behaved subscriber, none of them was disconnected, no actor failed on a message
 * (`actor_errors_total`), no thread was restarted, no delivery failed to encode, and the
 * connection and online-session gauges are back to the well-behaved clients alone.
 *
 * Seeded: the seed is printed; `FUZZ_SEED=<n> npx vitest run test/integration/34-fuzz.test.ts`
 * replays the same sessions (session k of a seed is always the same bytes; how many run,
 * and how they interleave, depends on the machine). `FUZZ_MS` sets the fuzzing time per
 * topology (default 10 s).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import net from 'node:net';
import WebSocket from 'ws';
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { startTestBroker, TOPOLOGIES, metric, type TestBroker, type TopologyName } from '../helpers/broker.js';
import * as F from '../helpers/fuzz.js';

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
/** Fuzzing time per topology (the whole file stays well under a minute on 2 cores). */
const FUZZ_MS = Number(process.env.FUZZ_MS ?? 10_000);
/** Sessions open at the same time. */
const CONCURRENCY = 24;
const MAX_SESSIONS = 20_000;

console.log(`fuzz seed ${SEED} (replay: FUZZ_SEED=${SEED} npx vitest run test/integration/34-fuzz.test.ts)`);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// ------------------------------------------------------------------ fuzz sessions
const GOOD_FILTERS = ['good/#', 'good/+/x', '#', '+/+/x', '+/#'];
const FILTERS = [...GOOD_FILTERS, 'fz/#', 'fz/+', '$SYS/#', '/default/im/u/fz', 'a//b', 'good/#/x', 'x+', '', '$share/g/good/#', 'fz/\u0000'];
const TOPICS = ['fz/a', 'fz/b', 'good/fz/x', 'good/fz', '/default/im/u/fz', '$SYS/x', 'fz/+', '', 'fz/é', 'x'.repeat(300)];

interface Step {
  bytes: Buffer;
  delay: number;
}
interface Session {
  /** Its own generator (chunking on TCP draws from it too): session n is the same in every run of a seed. */
  r: F.Rng;
  transport: 'tcp' | 'ws';
  steps: Step[];
  /** How long to stay connected after the last step (receiving the fan-out meanwhile). */
  linger: number;
  end: 'disconnect' | 'abort' | 'wait';
  version: F.Version;
}

interface Stats {
  sessions: number;
  tcp: number;
  ws: number;
  packets: number;
  mutated: number;
  bytes: number;
  closedByBroker: number;
}

function randomFilter(r: F.Rng): string | Buffer {
  return r.chance(0.1) ? F.fuzzString(r, 'fz/') : r.pick(FILTERS);
}

/** One packet a client might send (or a hostile one) once connected. */
function randomPacket(r: F.Rng, v: F.Version, ids: { n: number }): Buffer {
  const id = r.chance(0.05) ? 0 : (ids.n = (ids.n % 65535) + 1);
  const k = r.int(100);
  if (k < 35) {
    const topic = r.chance(0.1) ? F.fuzzString(r, 'fz/') : r.pick(TOPICS);
    return F.publish(r, v, topic, r.bytes(r.int(r.chance(0.05) ? 5000 : 40)), r.pick([0, 0, 1, 1, 2]), id, { retain: r.chance(0.1), dup: r.chance(0.1) });
  }
  if (k < 55) {
    const opts = () => (r.chance(0.9) ? r.int(3) | (v === 5 ? r.int(64) & 0x3c : 0) : r.int(256));
    const subs = Array.from({ length: r.range(1, 3) }, () => ({ filter: randomFilter(r), opts: opts() }));
    if (v === 5 && r.chance(0.25)) {
      // The case that broke the gateway: overlapping subscriptions in one SUBSCRIBE whose
      // Subscription Identifier is given twice, next to the well-behaved subscribers.
      const overlapping = [r.pick(GOOD_FILTERS), r.pick(GOOD_FILTERS)].map((filter) => ({ filter, opts: opts() }));
      return F.subscribe(r, v, id, overlapping, F.fuzzProps(r, 'subscribe', F.duplicated(0x0b, F.varint(r.range(1, 3)))));
    }
    return F.subscribe(r, v, id, subs);
  }
  if (k < 60) return F.unsubscribe(r, v, id, Array.from({ length: r.range(1, 2) }, () => randomFilter(r)));
  if (k < 70) return F.ack(r, v, r.pick([4, 5, 6, 7] as const), id);
  if (k < 78) return Buffer.from([0xc0, 0x00]); // PINGREQ
  if (k < 81) return F.disconnect(r, v);
  if (k < 84) return F.auth(r);
  if (k < 89) return Buffer.from([r.pick([0x20, 0x90, 0xb0, 0xd0, 0x00, 0xf0]), 0x02, 0x00, 0x01]); // server-only or reserved types
  if (k < 92) return F.connect(r, v, { clientId: `fz-again-${r.int(1e6)}` }); // a second CONNECT
  return F.mutate(r, F.publish(r, v, 'fz/a', r.bytes(8), 1, id), r.pick(F.MUTATIONS));
}

function buildSession(r: F.Rng, n: number): Session {
  const version = r.pick([3, 4, 4, 5, 5, 5] as const);
  const steps: Step[] = [];
  const ids = { n: 0 };
  const mutateMaybe = (b: Buffer, p: number): Buffer => (r.chance(p) ? F.mutate(r, b, r.pick(F.MUTATIONS)) : b);
  if (r.chance(0.06)) {
    // Packets before CONNECT [MQTT-3.1.0-1].
    for (let i = r.range(1, 3); i > 0; i--) steps.push({ bytes: mutateMaybe(randomPacket(r, version, ids), 0.3), delay: 0 });
  }
  const clientId = r.chance(0.05) ? '' : r.chance(0.05) ? F.fuzzString(r, 'fz').toString('latin1') : `fz-${SEED}-${n}`;
  const will = r.chance(0.15) ? { topic: r.pick(TOPICS), payload: r.bytes(r.int(20)), qos: r.int(r.chance(0.9) ? 3 : 4), retain: r.chance(0.2) } : undefined;
  const conn = F.connect(r, version, {
    clientId,
    clean: r.chance(0.85),
    keepalive: r.pick([0, 0, 0, 1, 60, 65535]),
    will,
    username: r.chance(0.1) ? 'fz' : undefined,
    password: r.chance(0.05) ? r.bytes(4) : undefined,
  });
  // Half of the sessions send on before CONNACK could arrive (packets held by the gateway).
  steps.push({ bytes: mutateMaybe(conn, 0.2), delay: r.chance(0.5) ? 0 : r.range(5, 30) });
  for (let i = r.range(0, 8); i > 0; i--) steps.push({ bytes: mutateMaybe(randomPacket(r, version, ids), 0.3), delay: r.chance(0.7) ? 0 : r.range(1, 15) });
  return {
    r,
    transport: r.chance(0.3) ? 'ws' : 'tcp',
    steps,
    linger: r.chance(0.5) ? r.range(0, 20) : r.range(20, 250),
    end: r.pick(['disconnect', 'abort', 'wait'] as const),
    version,
  };
}

/** Sends a session's bytes (split into random chunks on TCP), ignores what comes back. */
function runTcp(port: number, s: Session): Promise<boolean> {
  const r = s.r;
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    let byBroker = true;
    const hard = setTimeout(() => sock.destroy(), 3000);
    sock.on('error', () => {});
    sock.resume();
    sock.on('close', () => {
      clearTimeout(hard);
      resolve(byBroker);
    });
    sock.once('connect', async () => {
      for (const st of s.steps) {
        if (sock.destroyed || sock.writableEnded) return;
        if (st.bytes.length > 4 && r.chance(0.2)) {
          const cut = r.range(1, st.bytes.length - 1);
          sock.write(st.bytes.subarray(0, cut));
          await sleep(1);
          if (sock.destroyed) return;
          sock.write(st.bytes.subarray(cut));
        } else sock.write(st.bytes);
        if (st.delay) await sleep(st.delay);
      }
      await sleep(s.linger);
      if (sock.destroyed) return;
      byBroker = false;
      if (s.end === 'disconnect') sock.end(Buffer.from([0xe0, 0x00]));
      else if (s.end === 'abort') sock.destroy();
      else setTimeout(() => sock.destroy(), 150);
    });
  });
}

function runWs(url: string, s: Session): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'mqtt');
    let byBroker = true;
    const hard = setTimeout(() => ws.terminate(), 3000);
    ws.on('error', () => {});
    ws.on('close', () => {
      clearTimeout(hard);
      resolve(byBroker);
    });
    ws.once('open', async () => {
      for (const st of s.steps) {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(st.bytes);
        if (st.delay) await sleep(st.delay);
      }
      await sleep(s.linger);
      if (ws.readyState !== WebSocket.OPEN) return;
      byBroker = false;
      if (s.end === 'disconnect') {
        ws.send(Buffer.from([0xe0, 0x00]));
        ws.close();
      } else if (s.end === 'abort') ws.terminate();
      else setTimeout(() => ws.terminate(), 150);
    });
  });
}

async function fuzz(b: TestBroker, seed: number, ms: number): Promise<Stats> {
  const stats: Stats = { sessions: 0, tcp: 0, ws: 0, packets: 0, mutated: 0, bytes: 0, closedByBroker: 0 };
  const end = Date.now() + ms;
  let n = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < end && n < MAX_SESSIONS) {
      // Session n depends on (seed, n) only, whatever the timing: a seed replays the same sessions.
      const s = buildSession(new F.Rng(seed ^ Math.imul(n + 1, 0x9e3779b1)), n);
      n++;
      stats.sessions++;
      stats[s.transport]++;
      stats.packets += s.steps.length;
      for (const st of s.steps) stats.bytes += st.bytes.length;
      const byBroker = s.transport === 'tcp' ? await runTcp(b.tcpPort, s) : await runWs(b.wsUrl, s);
      if (byBroker) stats.closedByBroker++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return stats;
}

// ------------------------------------------------------------------ well-behaved clients
interface GoodSub {
  name: string;
  client: MqttClient;
  got: Set<string>;
  /** Per publisher: how many of its QoS 1 messages were acknowledged before this subscription (not expected). */
  since?: Record<string, number>;
  /** Messages whose Subscription Identifiers were not exactly the expected ones. */
  badSubIds: string[];
  closes: number;
}

async function goodClient(url: string, o: IClientOptions): Promise<MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 10_000, keepalive: 30, ...o });
}

async function goodSub(name: string, url: string, v: 4 | 5, filters: string[], subId?: number): Promise<GoodSub> {
  // `subId`: every filter matches the well-behaved topics and carries that identifier.
  const client = await goodClient(url, { protocolVersion: v, clientId: `good-${name}-${SEED}` });
  const s: GoodSub = { name, client, got: new Set(), badSubIds: [], closes: 0 };
  client.on('close', () => s.closes++);
  client.on('error', (err) => console.log(`well-behaved ${name}: ${err.message}`));
  client.on('disconnect', (p) => console.log(`well-behaved ${name}: DISCONNECT ${p.reasonCode} ${p.properties?.reasonString ?? ''}`));
  client.on('message', (topic, payload, packet) => {
    if (!/^good\/p\d\w*\/x$/.test(topic)) return; // fuzzers publish under good/ too
    const text = payload.toString();
    s.got.add(text);
    if (subId !== undefined) {
      const ids = packet.properties?.subscriptionIdentifier;
      // Both filters match and carry the same identifier: it is sent once [MQTT-3.3.4-3].
      if (ids !== subId) s.badSubIds.push(`${text}: ${JSON.stringify(ids)}`);
    }
  });
  // One SUBSCRIBE for all the filters, so the identifier applies to each of them.
  await client.subscribeAsync(filters, { qos: 1, ...(subId !== undefined ? { properties: { subscriptionIdentifier: subId } } : {}) });
  return s;
}

interface GoodPub {
  name: string;
  client: MqttClient;
  acked: string[];
  sent: number;
  closes: number;
  run: Promise<void>;
}

function goodPub(name: string, client: MqttClient, stop: { now: boolean }): GoodPub {
  const p: GoodPub = { name, client, acked: [], sent: 0, closes: 0, run: Promise.resolve() };
  client.on('close', () => p.closes++);
  client.on('error', (err) => console.log(`well-behaved ${name}: ${err.message}`));
  client.on('disconnect', (d) => console.log(`well-behaved ${name}: DISCONNECT ${d.reasonCode} ${d.properties?.reasonString ?? ''}`));
  p.run = (async () => {
    let n = 0;
    while (!stop.now && client.connected) {
      n++;
      const qos = (n % 2) as 0 | 1;
      const payload = `${name}:${n}:q${qos}`;
      p.sent++;
      if (qos === 1) {
        // A failed publish shows up as a disconnection (closes) or as missing acks.
        const ok = await client.publishAsync(`good/${name}/x`, payload, { qos: 1 }).then(() => true, () => false);
        if (ok) p.acked.push(payload);
      } else client.publish(`good/${name}/x`, payload, { qos: 0 }, () => {});
      await sleep(4);
    }
  })();
  return p;
}

// ------------------------------------------------------------------ the test
describe.each(TOPOLOGIES)('fuzz, %s topology', (topo: TopologyName) => {
  let b: TestBroker;
  const subs: GoodSub[] = [];
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    b = await startTestBroker(topo, { limits: { maxPacketSize: 64 * 1024, connectTimeout: 2 } });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await b?.close();
  });

  it('mutated packets from thousands of sessions: no message lost, no actor failure, nothing leaks', async () => {
    subs.push(await goodSub('s5tcp', b.tcpUrl, 5, ['good/+/x', 'good/#'], 2));
    subs.push(await goodSub('s5ws', b.wsUrl, 5, ['good/#']));
    subs.push(await goodSub('s4ws', b.wsUrl, 4, ['good/+/x']));
    subs.push(await goodSub('s4tcp', b.tcpUrl, 4, ['good/#', '+/+/x']));
    clients.push(...subs.map((s) => s.client));
    const p5 = await goodClient(b.wsUrl, { protocolVersion: 5, clientId: `good-p5-${SEED}` });
    const p4 = await goodClient(b.tcpUrl, { protocolVersion: 4, clientId: `good-p4-${SEED}` });
    clients.push(p5, p4);
    const tcpGauge = 'connections{transport="tcp"}';
    const wsGauge = 'connections{transport="ws"}';
    const base = { tcp: 3, ws: 3 };
    await waitFor('the well-behaved clients alone', async () => (await metric(b, tcpGauge)) === base.tcp && (await metric(b, wsGauge)) === base.ws);

    const stop = { now: false };
    const pubs = [goodPub('p5', p5, stop), goodPub('p4', p4, stop)];
    const t0 = Date.now();
    const seed = (SEED + (topo === 'single' ? 0 : 1)) >>> 0;
    // Subscribers that arrive while the fuzzers are subscribed already: in a fan-out their
    // deliveries come after the fuzzers' ones (a failing delivery must not take them along).
    const late = (async (): Promise<void> => {
      for (let i = 0; i < 4 && !stop.now; i++) {
        await sleep(FUZZ_MS / 5);
        const s = await goodSub(`late${i}`, i % 2 ? b.wsUrl : b.tcpUrl, 5, i % 2 ? ['good/#'] : ['good/+/x', 'good/#'], i % 2 ? undefined : 9 + i);
        // At most one QoS 1 publish per publisher is in flight: the ones acknowledged after
        // the SUBACK but one must arrive.
        s.since = Object.fromEntries(pubs.map((p) => [p.name, p.acked.length + 1]));
        subs.push(s);
        clients.push(s.client);
        base[i % 2 ? 'ws' : 'tcp']++;
      }
    })();
    const stats = await fuzz(b, seed, FUZZ_MS);
    await late.catch((err: Error) => expect.fail(`a late well-behaved subscriber: ${err.message}`));
    const fuzzMs = Date.now() - t0;
    stop.now = true;
    await Promise.all(pubs.map((p) => p.run));
    console.log(
      `fuzz ${topo}: seed ${seed}, ${stats.sessions} sessions (${stats.tcp} tcp, ${stats.ws} ws), ${stats.packets} packets, ` +
        `${stats.bytes} bytes in ${fuzzMs} ms; ${stats.closedByBroker} closed by the broker; ` +
        `well-behaved: ${pubs.map((p) => `${p.name} ${p.sent} sent, ${p.acked.length} QoS 1 acked`).join('; ')}`,
    );

    // What the broker made of it (the close reasons show how deep the fuzzing went).
    const text = await (await fetch(`${b.httpUrl}/metrics`)).text();
    const reasons = text
      .split('\n')
      .filter((l) => /^switchboard_(protocol_errors_total|packets_malformed_total|auth_failures_total|connect_timeouts_total|messages_dropped_total)/.test(l))
      .map((l) => l.replace('switchboard_', ''));
    console.log(`fuzz ${topo}: ${reasons.join(', ')}`);

    // Every acknowledged QoS 1 message reached every subscriber.
    const missing = (s: GoodSub) => pubs.flatMap((p) => p.acked.slice(s.since?.[p.name] ?? 0).filter((m) => !s.got.has(m)));
    await waitFor('every QoS 1 message at every subscriber', async () => subs.every((s) => missing(s).length === 0)).catch(() => {});
    // One comparison, so that a failure shows everything that went wrong at once.
    const outcome = {
      lost: Object.fromEntries(subs.map((s) => [s.name, missing(s).length])),
      badSubIds: Object.fromEntries(subs.map((s) => [s.name, s.badSubIds.slice(0, 3)])),
      disconnected: Object.fromEntries([...subs, ...pubs].map((c) => [c.name, c.closes])),
      // The broker is up and nothing failed inside it.
      actorErrors: await metric(b, 'actor_errors_total'),
      encodeErrors: await metric(b, 'messages_dropped_total{reason="encode_error"}'),
      restarts: (await metric(b, 'thread_restarts_total{role="gateway"}')) + (await metric(b, 'thread_restarts_total{role="shard"}')),
    };
    expect(outcome).toEqual({
      lost: Object.fromEntries(subs.map((s) => [s.name, 0])),
      badSubIds: Object.fromEntries(subs.map((s) => [s.name, []])),
      disconnected: Object.fromEntries([...subs, ...pubs].map((c) => [c.name, 0])),
      actorErrors: 0,
      encodeErrors: 0,
      restarts: 0,
    });
    expect(pubs.every((p) => p.acked.length > 10), 'well-behaved traffic flowed').toBe(true);
    // A sanity floor (a loaded CI machine runs fewer sessions; ~2,000-4,000 are usual).
    expect(stats.sessions).toBeGreaterThan(300);
    // Nothing leaks: connections and online sessions are the well-behaved clients' alone.
    const online = () => base.tcp + base.ws;
    let last = { tcp: -1, ws: -1, online: -1 };
    await waitFor('gauges back to the baseline', async () => {
      last = { tcp: await metric(b, tcpGauge), ws: await metric(b, wsGauge), online: await metric(b, 'sessions_online') };
      return last.tcp === base.tcp && last.ws === base.ws && last.online === online();
    }).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}, baseline ${JSON.stringify({ ...base, online: online() })}`);
    });
  }, 60_000);
});
