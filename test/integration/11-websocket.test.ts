/**
 * MQTT over WebSocket (uWebSockets.js, `/mqtt`, subprotocol `mqtt`) with MQTT.js 3.1.1 and
 * 5.0 clients, mixed with TCP clients, and the HTTP endpoints served on the same port:
 * /healthz, /metrics (Prometheus text), the web client at /, 404 for anything else. Both topologies.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { startTestBroker, TOPOLOGIES, metric, type TestBroker } from '../helpers/broker.js';

let seq = 0;
const uniq = (base: string) => `${base}/${process.pid}-${++seq}`;

function nextMessage(c: MqttClient, ms = 5000): Promise<{ topic: string; payload: string; qos: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.off('message', on);
      reject(new Error(`no message within ${ms} ms`));
    }, ms);
    const on = (topic: string, payload: Buffer, packet: mqtt.IPublishPacket) => {
      clearTimeout(timer);
      c.off('message', on);
      resolve({ topic, payload: payload.toString(), qos: packet.qos });
    };
    c.on('message', on);
  });
}

async function get(url: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

/** A raw WebSocket upgrade request: resolves with the status and the chosen subprotocol. */
function upgrade(port: number, path: string, protocols: string): Promise<{ status: number; protocol?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        'Sec-WebSocket-Protocol': protocols,
      },
      timeout: 5000,
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode!, protocol: res.headers['sec-websocket-protocol'] as string | undefined });
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode! });
    });
    req.on('timeout', () => req.destroy(new Error('upgrade timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.each(TOPOLOGIES)('websocket + http, %s topology', (topo) => {
  let b: TestBroker;
  const clients: MqttClient[] = [];
  const connect = async (url: string, protocolVersion: 4 | 5) => {
    const c = await mqtt.connectAsync(url, { protocolVersion, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    b = await startTestBroker(topo);
  });
  afterAll(async () => {
    await b?.close();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });

  it('accepts the upgrade on /mqtt and answers with subprotocol mqtt', async () => {
    expect(await upgrade(b.wsPort, '/mqtt', 'mqtt')).toEqual({ status: 101, protocol: 'mqtt' });
    // MQTT 3.1 clients ask for "mqttv3.1"; a list picks the one the server speaks.
    expect(await upgrade(b.wsPort, '/mqtt', 'mqttv3.1')).toEqual({ status: 101, protocol: 'mqttv3.1' });
    expect(await upgrade(b.wsPort, '/mqtt', 'foo, mqtt')).toEqual({ status: 101, protocol: 'mqtt' });
    // Only the configured path upgrades.
    expect((await upgrade(b.wsPort, '/elsewhere', 'mqtt')).status).toBe(404);
  });

  for (const v of [4, 5] as const) {
    const name = v === 5 ? 'v5' : 'v3.1.1';
    it(`MQTT.js ${name} over ws:// publishes and subscribes, mixed with TCP clients`, async () => {
      const topic = uniq(`ws/${name}`);
      const wsSub = await connect(b.wsUrl, v);
      const tcpSub = await connect(b.tcpUrl, v);
      const wsPub = await connect(b.wsUrl, v);
      const tcpPub = await connect(b.tcpUrl, v);
      await wsSub.subscribeAsync(`${topic}/#`, { qos: 2 });
      await tcpSub.subscribeAsync(`${topic}/#`, { qos: 1 });

      // ws -> ws and ws -> tcp
      let toWs = nextMessage(wsSub);
      let toTcp = nextMessage(tcpSub);
      await wsPub.publishAsync(`${topic}/from-ws`, 'over websocket', { qos: 2 });
      expect(await toWs).toEqual({ topic: `${topic}/from-ws`, payload: 'over websocket', qos: 2 });
      expect(await toTcp).toEqual({ topic: `${topic}/from-ws`, payload: 'over websocket', qos: 1 });

      // tcp -> ws and tcp -> tcp
      toWs = nextMessage(wsSub);
      toTcp = nextMessage(tcpSub);
      await tcpPub.publishAsync(`${topic}/from-tcp`, 'over tcp', { qos: 1 });
      expect(await toWs).toEqual({ topic: `${topic}/from-tcp`, payload: 'over tcp', qos: 1 });
      expect(await toTcp).toEqual({ topic: `${topic}/from-tcp`, payload: 'over tcp', qos: 1 });

      // A binary payload larger than one TCP segment survives WebSocket framing intact.
      const big = randomBytes(200_000);
      const gotBig = new Promise<Buffer>((resolve) => wsSub.on('message', (t, p) => t.endsWith('/big') && resolve(p)));
      await tcpPub.publishAsync(`${topic}/big`, big, { qos: 1 });
      expect((await gotBig).equals(big)).toBe(true);
    });
  }

  it('counts ws and tcp connections separately in /metrics', async () => {
    // No client is open between tests; wait until the broker has seen the last ones close.
    const baseWs = 0;
    const baseTcp = 0;
    await waitFor('no open connections', async () =>
      (await metric(b, 'connections{transport="ws"}')) === 0 && (await metric(b, 'connections{transport="tcp"}')) === 0,
    );
    const w1 = await connect(b.wsUrl, 5);
    const w2 = await connect(b.wsUrl, 4);
    const t1 = await connect(b.tcpUrl, 5);
    expect(await metric(b, 'connections{transport="ws"}')).toBe(baseWs + 2);
    expect(await metric(b, 'connections{transport="tcp"}')).toBe(baseTcp + 1);
    await Promise.all([w1.endAsync(), w2.endAsync(), t1.endAsync()]);
    await waitFor('connections to return to the baseline', async () =>
      (await metric(b, 'connections{transport="ws"}')) === baseWs && (await metric(b, 'connections{transport="tcp"}')) === baseTcp,
    );
  });

  it('GET /healthz returns ok', async () => {
    const r = await get(`${b.httpUrl}/healthz`);
    expect(r.status).toBe(200);
    expect(r.body.trim()).toBe('ok');
  });

  it('GET /metrics is Prometheus text with connections, messages, per-thread loop delay and mailbox depth', async () => {
    // Make sure there is traffic to count.
    const c = await connect(b.wsUrl, 5);
    await c.subscribeAsync(uniq('metrics/x'), { qos: 1 });
    // QoS 0 first: the PUBACK of the QoS 1 one proves both were handled.
    await c.publishAsync(uniq('metrics/y'), 'm', { qos: 0 });
    await c.publishAsync(uniq('metrics/y'), 'm', { qos: 1 });

    const r = await get(`${b.httpUrl}/metrics`);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const lines = r.body.trimEnd().split('\n');

    // Text exposition format 0.0.4: comments, then `name{labels} value` samples, every
    // sample after the # TYPE line of its metric.
    const typed = new Map<string, string>();
    for (const line of lines) {
      const t = /^# TYPE (\w+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (t) {
        expect(typed.has(t[1]!), `duplicate TYPE for ${t[1]}`).toBe(false);
        typed.set(t[1]!, t[2]!);
        continue;
      }
      if (line.startsWith('# HELP ')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? (-?[0-9.]+(e[+-]?\d+)?|NaN|[+-]Inf)$/.exec(line);
      expect(m, `not a Prometheus sample line: ${line}`).not.toBeNull();
      expect(typed.has(m![1]!), `sample before its # TYPE: ${line}`).toBe(true);
    }
    const sample = (name: string) => lines.filter((l) => l.startsWith(name));

    expect(typed.get('switchboard_connections')).toBe('gauge');
    expect(sample('switchboard_connections{transport="ws"} ').length).toBe(1);
    expect(sample('switchboard_connections{transport="tcp"} ').length).toBe(1);
    expect(Number(sample('switchboard_connections{transport="ws"} ')[0]!.split(' ')[1])).toBeGreaterThanOrEqual(1);

    expect(typed.get('switchboard_messages_received_total')).toBe('counter');
    expect(sample('switchboard_messages_received_total{qos="1"} ').length).toBe(1);
    expect(sample('switchboard_messages_received_total{qos="0"} ').length).toBe(1);

    // Event-loop delay and mailbox depth per thread of the topology. A thread that hosts
    // several actors (the main thread in the single topology) may report one labelled
    // series per actor (`main/gateway:0`), so labels are matched by thread prefix.
    const threads = topo === 'single' ? ['main'] : ['main', 'gw0', 'gw1', 'shard0', 'shard1'];
    const threadOf = (label: string) => label.split('/')[0]!;
    expect(typed.get('switchboard_event_loop_delay_ms')).toBe('gauge');
    expect(typed.get('switchboard_mailbox_depth')).toBe('gauge');
    const loopLabels = new Set(sample('switchboard_event_loop_delay_ms{').map((l) => /thread="([^"]+)"/.exec(l)![1]!));
    const mailboxLabels = new Set(sample('switchboard_mailbox_depth{').map((l) => /thread="([^"]+)"/.exec(l)![1]!));
    expect([...new Set([...loopLabels].map(threadOf))].sort()).toEqual([...threads].sort());
    expect([...new Set([...mailboxLabels].map(threadOf))].sort()).toEqual([...threads].sort());
    for (const label of loopLabels) {
      for (const q of ['0.5', '0.99', '1'])
        expect(sample(`switchboard_event_loop_delay_ms{thread="${label}",quantile="${q}"} `).length, `${label} q${q}`).toBe(1);
    }
  });

  it('unknown paths are 404 (`/` is the web client: docs/web-client.md)', async () => {
    for (const path of ['/nope', '/metrics/extra', '/mqttx']) {
      const r = await get(`${b.httpUrl}${path}`);
      expect(r.status, path).toBe(404);
    }
    // The server is still fine afterwards.
    expect((await get(`${b.httpUrl}/healthz`)).status).toBe(200);
  });

  it('a plain GET on /mqtt (no upgrade) does not break the listener', async () => {
    const r = await fetch(`${b.httpUrl}/mqtt`, { signal: AbortSignal.timeout(5000) }).then(
      (res) => res.status,
      () => 'error',
    );
    expect(r === 'error' || (typeof r === 'number' && r >= 400)).toBe(true);
    const c = await connect(b.wsUrl, 5);
    expect(c.connected).toBe(true);
  });
});
