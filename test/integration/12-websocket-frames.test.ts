/**
 * WebSocket framing rules of MQTT over WebSocket (MQTT 5.0 section 6), with a raw `ws`
 * client so the frames are exactly what the test says.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import WebSocket from 'ws';
import mqttPacket from 'mqtt-packet';
import { startTestBroker, metric, TOPOLOGIES, type TestBroker } from '../helpers/broker.js';

function open(url: string, protocol = 'mqtt'): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocol);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const closed = (ws: WebSocket) => new Promise<number>((r) => ws.once('close', (code) => r(code)));

describe.each(TOPOLOGIES)('websocket frames, %s topology', (topo) => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker(topo);
  });
  afterAll(async () => {
    await b.close();
  });

  it('[MQTT-6.0.0-2] the server answers subprotocol "mqtt"', async () => {
    const ws = await open(b.wsUrl);
    expect(ws.protocol).toBe('mqtt');
    ws.close();
  });

  it('[MQTT-6.0.0-1] a text frame closes the connection and is counted', async () => {
    const ws = await open(b.wsUrl);
    const gone = closed(ws);
    ws.send('not binary');
    await gone;
    expect(await metric(b, 'protocol_errors_total{reason="websocket_text_frame"}')).toBeGreaterThanOrEqual(1);
  });

  it('[MQTT-6.0.0-4] one MQTT packet split over several WebSocket frames is reassembled', async () => {
    const ws = await open(b.wsUrl);
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'ws-split', keepalive: 30 });
    const connack = new Promise<Buffer>((r) => ws.once('message', (d) => r(d as Buffer)));
    for (let i = 0; i < connect.length; i += 3) ws.send(connect.subarray(i, i + 3));
    const ack = await connack;
    expect(ack[0]).toBe(0x20); // CONNACK
    expect(ack[3]).toBe(0); // accepted
    ws.close();
  });
});
