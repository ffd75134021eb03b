/**
 * MQTT.js helpers for integration tests: a pool that closes every client it opened
 * (call `closeAll()` in afterEach), an inbox that records received messages and waits
 * for them, and unique names so tests can share one broker without seeing each other's
 * topics, retained messages or sessions.
 */
import { afterAll, beforeAll } from 'vitest';
import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket } from 'mqtt';
import type { IConnackPacket } from 'mqtt-packet';
import type { DeepPartial } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startTestBroker, type TestBroker, type TopologyName } from './broker.js';
import { RawClient, type Version } from './raw-client.js';

/**
 * One broker for every test of the enclosing describe (started in beforeAll, closed in
 * afterAll): a multi-thread broker takes seconds to start, so tests share it and keep
 * apart through unique client ids and topics (uid()).
 */
export function sharedBroker(topology: TopologyName, overrides: DeepPartial<Config> = {}): { b: TestBroker } {
  const ref = {} as { b: TestBroker };
  beforeAll(async () => {
    ref.b = await startTestBroker(topology, overrides);
  });
  afterAll(async () => {
    await ref.b?.close();
  });
  return ref;
}

/** Resolves with the promise's value, or rejects when it takes longer than `ms`. */
export function within<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

export type Transport = 'tcp' | 'ws';
export const TRANSPORTS: Transport[] = ['tcp', 'ws'];

export const urlOf = (b: { tcpUrl: string; wsUrl: string }, t: Transport): string => (t === 'tcp' ? b.tcpUrl : b.wsUrl);

let seq = 0;
/** A name unique in this process: `prefix-<pid>-<n>-<random>`. */
export function uid(prefix = 't'): string {
  return `${prefix}-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 50 ms until it holds; throws naming `what` after `ms`. */
export async function waitUntil(what: string, cond: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(50);
  }
}

export interface Received {
  topic: string;
  payload: string;
  packet: IPublishPacket;
}

export interface Inbox {
  readonly msgs: Received[];
  /** Resolves with the first `n` messages (optionally only those on `topic`) once they are there. */
  waitFor(n: number, timeoutMs?: number, topic?: string): Promise<Received[]>;
  /** Waits `ms` and returns everything received (use to assert that nothing arrives). */
  settle(ms: number): Promise<Received[]>;
}

export function inbox(client: MqttClient): Inbox {
  const msgs: Received[] = [];
  const waiters: Array<() => void> = [];
  client.on('message', (topic, payload, packet) => {
    msgs.push({ topic, payload: payload.toString(), packet });
    for (const w of [...waiters]) w();
  });
  return {
    msgs,
    waitFor(n, timeoutMs = 2500, topic) {
      const pick = () => (topic === undefined ? msgs : msgs.filter((m) => m.topic === topic));
      return new Promise((resolve, reject) => {
        const check = () => {
          const got = pick();
          if (got.length < n) return false;
          waiters.splice(waiters.indexOf(check), 1);
          clearTimeout(timer);
          resolve(got.slice(0, n));
          return true;
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(check), 1);
          reject(new Error(`timeout: ${pick().length} of ${n} messages after ${timeoutMs} ms (${JSON.stringify(msgs.map((m) => m.topic + ' ' + m.payload).slice(0, 10))})`));
        }, timeoutMs);
        waiters.push(check);
        check();
      });
    },
    async settle(ms) {
      await sleep(ms);
      return msgs;
    },
  };
}

export interface Opened {
  client: MqttClient;
  connack: IConnackPacket;
  inbox: Inbox;
}

export class ClientPool {
  private readonly mqttClients = new Set<MqttClient>();
  private readonly raws = new Set<RawClient>();

  /**
   * Connects an MQTT.js client (no reconnects, short connect timeout) and resolves with
   * its CONNACK. The inbox is attached before the connection opens, so messages sent
   * right after CONNACK (session resume, retained) are not missed. Rejects on a refused
   * CONNACK, with the error's `code` set to the return/reason code.
   */
  connect(url: string, opts: IClientOptions = {}): Promise<Opened> {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 3000, ...opts });
    this.mqttClients.add(client);
    closeEvents.set(client, new Promise((resolve) => client.once('close', () => resolve())));
    const box = inbox(client);
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      const onClose = () => {
        cleanup();
        reject(new Error('connection closed before CONNACK'));
      };
      const onConnect = (connack: IConnackPacket) => {
        cleanup();
        resolve({ client, connack, inbox: box });
      };
      const cleanup = () => {
        client.off('error', onError);
        client.off('close', onClose);
        client.off('connect', onConnect);
      };
      client.on('error', onError);
      client.on('close', onClose);
      client.on('connect', onConnect);
    });
  }

  /** A raw packet-level client (see raw-client.ts), closed by closeAll(). */
  async raw(url: string, version: Version = 4): Promise<RawClient> {
    const c = await RawClient.open(url, version);
    this.raws.add(c);
    return c;
  }

  /** Closes (forcibly) every client opened through the pool. */
  async closeAll(): Promise<void> {
    const all = [...this.mqttClients];
    this.mqttClients.clear();
    await Promise.all(
      all.map(
        (c) =>
          new Promise<void>((resolve) => {
            c.end(true, () => resolve());
          }),
      ),
    );
    for (const r of this.raws) r.destroy();
    await Promise.all([...this.raws].map((r) => r.closed));
    this.raws.clear();
  }
}

/** The first 'close' of every client opened by a ClientPool, recorded from the start. */
const closeEvents = new WeakMap<MqttClient, Promise<void>>();

/** Resolves when the MQTT.js client's connection closed (even if that already happened). */
export function closed(client: MqttClient): Promise<void> {
  return closeEvents.get(client) ?? new Promise((resolve) => client.once('close', () => resolve()));
}

/**
 * Abrupt close of an MQTT.js client: the socket goes away without DISCONNECT. Resolves
 * when the client saw its connection close (listener attached before the destroy).
 */
export function killSocket(client: MqttClient): Promise<void> {
  const done = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.stream.destroy();
  return done;
}
