/**
 * A v5 message's Payload Format Indicator and Response Topic checked against its content
 * (src/channel/message-checks.ts, docs/mqtt5.md) through real sockets: MQTT.js, the raw
 * client and mosquitto_pub. Every topology.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, sharedBroker, uid } from '../helpers/clients.js';
import { HAVE_MOSQUITTO_V5_PROPS } from '../helpers/peers.js';
import { publishPacket as pub } from '../helpers/packets.js';

if (!HAVE_MOSQUITTO_V5_PROPS) console.warn('40-mqtt5-message-checks: mosquitto_pub with -D not on PATH: its tests are skipped');

const BAD_UTF8 = Buffer.from([0x61, 0xc3, 0x28]);

function mosquittoPub(port: number, args: string[]): Promise<{ code: number | null; out: string }> {
  const proc = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv5', '-d', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => proc.on('close', (code) => resolve({ code, out })));
}

describe.each(TOPOLOGIES)('40 MQTT 5 message checks (%s)', (topo) => {
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());
  const ref = sharedBroker(topo);

  it('Payload Format Indicator 1 with invalid UTF-8 (section 3.3.2.3.2): PUBACK 0x99 with a Reason String, nothing delivered, the connection stays', async () => {
    const topic = uid('pfi');
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const c = await pool.raw(ref.b.tcpUrl, 5);
    await c.connect({ clientId: uid('c') });
    c.send(pub(topic, { qos: 1, messageId: 1, payload: BAD_UTF8, properties: { payloadFormatIndicator: true } }));
    const ack = await c.next('puback');
    expect(ack.reasonCode).toBe(0x99);
    expect(ack.properties?.reasonString).toMatch(/not valid UTF-8/);
    // Valid UTF-8 with the indicator goes through, the indicator passed on [MQTT-3.3.2-4].
    c.send(pub(topic, { qos: 1, messageId: 2, payload: Buffer.from('héllo'), properties: { payloadFormatIndicator: true } }));
    expect((await c.next('puback')).reasonCode).toBe(0);
    const [m] = await sub.inbox.waitFor(1);
    expect(m!.payload).toBe('héllo');
    expect(m!.packet.properties?.payloadFormatIndicator).toBe(true);
    expect(await sub.inbox.settle(100)).toHaveLength(1);
  });

  it('Payload Format Indicator 1 with invalid UTF-8 at QoS 0: DISCONNECT 0x99', async () => {
    const c = await pool.raw(ref.b.tcpUrl, 5);
    await c.connect({ clientId: uid('c') });
    c.send(pub(uid('t'), { payload: BAD_UTF8, properties: { payloadFormatIndicator: true } }));
    expect((await c.next('disconnect')).reasonCode).toBe(0x99);
  });

  it('MQTT.js: a publish with Payload Format Indicator 1 and invalid UTF-8 fails with 0x99', async () => {
    const p = await pool.connect(ref.b.wsUrl, { protocolVersion: 5, clientId: uid('p') });
    await expect(p.client.publishAsync(uid('t'), BAD_UTF8, { qos: 1, properties: { payloadFormatIndicator: true } })).rejects.toThrow(/Payload format invalid|153/i);
    // Still connected: a good one is acknowledged.
    await p.client.publishAsync(uid('t'), 'ok', { qos: 1 });
  });

  it('[MQTT-3.3.2-14] a Response Topic with a wildcard: DISCONNECT 0x82 with a Reason String', async () => {
    const c = await pool.raw(ref.b.tcpUrl, 5);
    await c.connect({ clientId: uid('c') });
    c.send(pub(uid('t'), { qos: 1, messageId: 1, properties: { responseTopic: 'reply/#' } }));
    const d = await c.next('disconnect');
    expect(d.reasonCode).toBe(0x82);
    expect(d.properties?.reasonString).toMatch(/Response Topic/);
  });

  it('[MQTT-3.3.2-15] a valid Response Topic and Correlation Data reach the subscriber unaltered', async () => {
    const topic = uid('req');
    const sub = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('s') });
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const p = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, clientId: uid('p') });
    await p.client.publishAsync(topic, 'q', { qos: 1, properties: { responseTopic: 'reply/p1', correlationData: Buffer.from([1, 2, 3]) } });
    const [m] = await sub.inbox.waitFor(1);
    expect(m!.packet.properties?.responseTopic).toBe('reply/p1');
    expect([...(m!.packet.properties?.correlationData as Buffer)]).toEqual([1, 2, 3]);
  });

  it('a will with Payload Format Indicator 1 and invalid UTF-8: CONNACK 0x99', async () => {
    const c = await pool.raw(ref.b.tcpUrl, 5);
    const connack = await c.connect({
      clientId: uid('c'),
      will: { topic: 'w', payload: BAD_UTF8, qos: 0, retain: false, properties: { payloadFormatIndicator: true } },
    });
    expect(connack.reasonCode).toBe(0x99);
  });

  it.skipIf(!HAVE_MOSQUITTO_V5_PROPS)('mosquitto_pub -D publish payload-format-indicator 1 with invalid UTF-8: PUBACK 0x99 (153); response-topic r/+: disconnected', async () => {
    const file = join(tmpdir(), `${uid('bad')}.bin`);
    writeFileSync(file, BAD_UTF8);
    const a = await mosquittoPub(ref.b.tcpPort, ['-t', uid('t'), '-q', '1', '-f', file, '-D', 'publish', 'payload-format-indicator', '1']);
    expect(a.out).toMatch(/received PUBACK \(Mid: 1, RC:153\)/);
    const b = await mosquittoPub(ref.b.tcpPort, ['-t', uid('t'), '-q', '1', '-m', 'hi', '-D', 'publish', 'response-topic', 'r/+']);
    expect(b.out).not.toMatch(/received PUBACK/);
  });
});
