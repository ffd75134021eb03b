import { describe, it, expect, afterAll } from 'vitest';
import mqtt from 'mqtt';
import { startTestBroker, TOPOLOGIES, metric } from '../helpers/broker.js';

describe.each(TOPOLOGIES)('smoke %s', (topo) => {
  it('pub/sub over tcp and ws', async () => {
    const b = await startTestBroker(topo);
    const sub = await mqtt.connectAsync(b.wsUrl, { protocolVersion: 5 });
    await sub.subscribeAsync('x/#', { qos: 1 });
    const got = new Promise<string>((r) => sub.on('message', (t, p) => r(t + ' ' + p.toString())));
    const pub = await mqtt.connectAsync(b.tcpUrl);
    await pub.publishAsync('x/y', 'hi', { qos: 1 });
    expect(await got).toBe('x/y hi');
    expect(await metric(b, 'messages_received_total{qos="1"}')).toBe(1);
    expect(await metric(b, 'payload_bytes_received_total{qos="1"}')).toBe(2);
    expect(await metric(b, 'payload_bytes_sent_total{qos="1"}')).toBe(2);
    await pub.endAsync(); await sub.endAsync();
    await b.close();
  });
});
