/**
 * The device's MQTT connection (MQTT.js over WebSocket): MQTT 5, a persistent session
 * (clean start off, session expiry) so messages sent while the tab is closed or offline
 * wait at the broker and arrive in order at the next connection, QoS 1, and automatic
 * reconnection. The inbox and groups need no SUBSCRIBE (the broker pre-subscribes the
 * session); presence is subscribed at every connection to get the retained states.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { ConnectionStatus } from './state.js';

/** How long the broker keeps this device's session and its messages while it is away. */
export const SESSION_EXPIRY_SECONDS = 7 * 24 * 3600;

const SESSION_TAKEN_OVER = 0x8e;
/** CONNACK codes that retrying cannot fix (v5 bad credentials / not authorized, 3.1.1 4 and 5). */
const REFUSED = new Set([0x86, 0x87, 4, 5]);

export interface ConnectionOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** Subscribed (QoS 0) at every connection. */
  subscriptions: string[];
  onMessage(topic: string, payload: Uint8Array): void;
  onStatus(status: ConnectionStatus, detail?: string): void;
}

export interface Connection {
  /** Resolves on PUBACK; rejects with the broker's reason (e.g. 0x87, 0x99). Queued while offline. */
  publish(topic: string, payload: Uint8Array): Promise<void>;
  /** forget: end the session at the broker too (log out), so nothing more is kept for this device. */
  end(forget: boolean): Promise<void>;
}

/** The MQTT-over-WebSocket URL on the page's own host. */
export function mqttUrl(loc: { protocol: string; host: string }, paths: { ws: string; wss: string }): string {
  return loc.protocol === 'https:' ? `wss://${loc.host}${paths.wss}` : `ws://${loc.host}${paths.ws}`;
}

export function openConnection(o: ConnectionOptions): Connection {
  const client: MqttClient = mqtt.connect(o.url, {
    protocolVersion: 5,
    clientId: o.clientId,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    clean: false,
    properties: { sessionExpiryInterval: SESSION_EXPIRY_SECONDS },
    keepalive: 30,
    reconnectPeriod: 2000,
    connectTimeout: 15_000,
    // Presence is subscribed again at each connection instead (retained states come with it).
    resubscribe: false,
  });
  let stopped = false;
  const stop = (status: ConnectionStatus, detail: string): void => {
    stopped = true;
    client.end(true);
    o.onStatus(status, detail);
  };
  client.on('connect', () => {
    o.onStatus('online');
    for (const f of o.subscriptions) client.subscribe(f, { qos: 0 });
  });
  client.on('reconnect', () => !stopped && o.onStatus('connecting'));
  client.on('offline', () => !stopped && o.onStatus('offline'));
  client.on('disconnect', (packet) => {
    // The same device name logged in elsewhere (another tab): two tabs taking the session
    // from each other forever helps nobody.
    if (packet.reasonCode === SESSION_TAKEN_OVER) stop('replaced', 'this device name is now used by another tab or browser');
  });
  client.on('error', (err) => {
    const code = (err as { code?: number }).code;
    if (code !== undefined && REFUSED.has(code)) stop('offline', `the broker refused the login (${err.message})`);
  });
  client.on('message', (topic, payload) => o.onMessage(topic, payload));
  return {
    publish: async (topic, payload) => {
      await client.publishAsync(topic, payload as Buffer, { qos: 1 });
    },
    end: (forget) =>
      new Promise<void>((resolve) => {
        stopped = true;
        // Session Expiry 0 in DISCONNECT: the broker drops the session at once.
        const opts = forget ? { reasonCode: 0, properties: { sessionExpiryInterval: 0 } } : {};
        if (!client.connected) {
          client.end(true, {}, () => resolve());
          return;
        }
        client.end(false, opts, () => resolve());
      }),
  };
}
