/**
 * Node-wide limits that refuse cleanly: maxSessions (offline persistent sessions count)
 * and maxConnections.
 */
import { describe, it, expect, afterEach } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import net from 'node:net';
import { startTestBroker, metric, TOPOLOGIES, type TestBroker } from '../helpers/broker.js';

const opened: Array<MqttClient | TestBroker> = [];
afterEach(async () => {
  for (const x of opened.splice(0).reverse()) {
    if ('endAsync' in x) await x.endAsync(true);
    else await x.close();
  }
});

function connackOf(url: string, opts: mqtt.IClientOptions): Promise<{ code: number | undefined }> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, ...opts });
    opened.push(c);
    c.once('connect', (p) => resolve({ code: p.reasonCode ?? p.returnCode ?? 0 }));
    c.once('error', (e) => resolve({ code: (e as { code?: number }).code }));
  });
}

describe.each(TOPOLOGIES)('limits, %s topology', (topo) => {
  it('limits.maxSessions: a new session beyond the limit gets v5 0x97 / 3.1.1 0x03; offline sessions count', async () => {
    // One session per shard: 'multi' has 2 shards, so ask for 2 in total and fill both.
    const shards = topo === 'multi' ? 2 : 1;
    const b = await startTestBroker(topo, { limits: { maxSessions: shards } });
    opened.push(b);
    // Fill every shard with a persistent session, then disconnect: the sessions stay.
    let filled = 0;
    for (let i = 0; filled < shards && i < 200; i++) {
      const r = await connackOf(b.tcpUrl, { clientId: `keep-${i}`, clean: false, protocolVersion: 4 });
      if (r.code === 0) filled++;
    }
    expect(filled).toBe(shards);
    for (const c of opened.filter((x): x is MqttClient => 'endAsync' in x)) await c.endAsync();
    const v5 = await connackOf(b.tcpUrl, { clientId: 'one-too-many', protocolVersion: 5 });
    expect(v5.code).toBe(0x97);
    const v3 = await connackOf(b.tcpUrl, { clientId: 'one-more', protocolVersion: 4 });
    expect(v3.code).toBe(3);
    expect(await metric(b, 'connections_rejected_total{reason="max_sessions"}')).toBeGreaterThanOrEqual(2);
    // The kept sessions still resume.
    const back = await connackOf(b.tcpUrl, { clientId: 'keep-0', clean: false, protocolVersion: 4 });
    expect(back.code).toBe(0);
  });

  it('limits.maxConnections: sockets beyond the limit are closed at once and counted; the others keep working', async () => {
    const b = await startTestBroker(topo, { limits: { maxConnections: 2 } });
    opened.push(b);
    const a = await mqtt.connectAsync(b.tcpUrl, { reconnectPeriod: 0 });
    const c = await mqtt.connectAsync(b.tcpUrl, { reconnectPeriod: 0 });
    opened.push(a, c);
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(b.tcpPort, '127.0.0.1');
      s.on('close', () => resolve(true));
      s.on('error', () => {});
      setTimeout(() => resolve(false), 3000);
    });
    expect(refused).toBe(true);
    expect(await metric(b, 'connections_rejected_total{reason="max_connections"}')).toBe(1);
    await c.subscribeAsync('lim/t', { qos: 1 });
    const got = new Promise<string>((r) => c.once('message', (_t, p) => r(p.toString())));
    await a.publishAsync('lim/t', 'still works', { qos: 1 });
    expect(await got).toBe('still works');
  });
});
