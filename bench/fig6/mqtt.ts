/**
 * MQTT to Switchboard: the broker runs in this process (one thread, loopback, a temporary
 * data dir, a users file with alice and bob); MQTT.js clients speak 3.1.1 or 5.0 through
 * the counting proxy and send the project's binary IM payload to `/default/im/u/bob`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { loadConfig } from '../../src/config/load.js';
import { startBroker } from '../../src/broker.js';
import { addUser } from '../../src/auth/users-file.js';
import { encodeImPayload } from '../../src/im/index.js';
import { waitFor, type RunContext, type Variant } from './types.js';
import type { Server } from './servers.js';

export const PASSWORD = 'secret';
const NS = 'default';
const inbox = (uid: string): string => `/${NS}/im/u/${uid}`;

export async function startSwitchboard(): Promise<Server> {
  const dir = await mkdtemp(join(tmpdir(), 'fig6-switchboard-'));
  const usersFile = join(dir, 'users');
  for (const u of ['alice', 'bob']) await addUser(usersFile, u, PASSWORD);
  const config = loadConfig({
    env: {},
    overrides: {
      host: '127.0.0.1',
      dataDir: join(dir, 'data'),
      log: { level: 'silent' },
      threads: { gateways: 0, shards: 0 },
      auth: { usersFile, allowAnonymous: false },
      im: { defaultNamespace: NS },
      listeners: { tcp: { enabled: true, port: 0 }, ws: { enabled: true, port: 0, path: '/mqtt' } },
    },
  });
  const b = await startBroker(config);
  return {
    host: '127.0.0.1',
    port: b.tcpPort!,
    async stop() {
      await b.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface MqttOptions {
  version: 4 | 5;
  qos: 0 | 1;
  /** Clients SUBSCRIBE to their own inbox as a client of a plain broker would have to. */
  subscribe: boolean;
}

async function connect(ctx: RunContext, user: string, version: 4 | 5): Promise<MqttClient> {
  const c = mqtt.connect({
    host: ctx.host,
    port: ctx.port,
    protocol: 'mqtt',
    protocolVersion: version,
    clientId: `${user}/phone`,
    username: user,
    password: PASSWORD,
    clean: true,
    keepalive: 60,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  const s = (c as unknown as { stream?: { localPort?: number } }).stream;
  if (s?.localPort) ctx.addClientPort(s.localPort);
  return c;
}

export function mqttVariant(server: Server, o: MqttOptions): Variant {
  const v = o.version === 4 ? '3.1.1' : '5.0';
  return {
    id: `mqtt${o.version === 4 ? '311' : '5'}-qos${o.qos}${o.subscribe ? '-sub' : ''}`,
    label: `MQTT ${v} QoS ${o.qos}${o.subscribe ? ' + SUBSCRIBE' : ''}`,
    protocol: 'MQTT',
    transport: 'TCP',
    notes:
      `MQTT.js, protocol ${v}, clean session, keep-alive 60 s, username/password; ` +
      (o.subscribe
        ? 'both clients SUBSCRIBE to their inbox (QoS 1) after CONNACK, as on a broker without pre-subscription'
        : 'no SUBSCRIBE: the broker pre-subscribes each user to its inbox before CONNACK') +
      `; PUBLISH QoS ${o.qos} of the binary IM payload to /${NS}/im/u/bob`,
    server,
    async run(n, ctx) {
      let received = 0;
      const bob = await connect(ctx, 'bob', o.version);
      bob.on('message', () => received++);
      const alice = await connect(ctx, 'alice', o.version);
      if (o.subscribe) {
        await bob.subscribeAsync(inbox('bob'), { qos: 1 });
        await alice.subscribeAsync(inbox('alice'), { qos: 1 });
      }
      await ctx.endSetup();
      const payload = (): Buffer =>
        encodeImPayload({
          sender: 'alice',
          ts: Math.floor(Date.now() / 1000),
          kind: 0,
          media: 0,
          content: { con: [{ ty: 0, co: ctx.text }] },
        });
      const sent: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        const p = alice.publishAsync(inbox('bob'), payload(), { qos: o.qos });
        if (ctx.pace === 'lockstep') {
          await p;
          await waitFor(() => received > i, 5000, `MQTT message ${i + 1}`);
        } else sent.push(p);
      }
      await Promise.all(sent);
      await waitFor(() => received >= n, 10_000, `${n} MQTT messages`);
      await ctx.endMessages();
      await Promise.all([alice.endAsync(), bob.endAsync()]);
      return received;
    },
  };
}
