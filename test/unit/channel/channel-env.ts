/**
 * The pure channel's test environment, shared by the channel tests and the gateway tests:
 * the limits, a ChannelEnv builder, the CONNECT -> auth -> session-ready sequence that
 * leaves a channel `connected`, and readers for the effects the handlers return.
 */
import { expect } from 'vitest';
import type { IConnectPacket, IPublishPacket, Packet } from 'mqtt-packet';
import { afterAuth, handleIn, newChannelState, sessionReady, type AclView, type ChannelEnv, type ChannelLimits, type ChannelState, type Effect } from '../../../src/channel/index.js';
import { DEFAULTS, type MqttConfig } from '../../../src/config/schema.js';
import type { ImUser } from '../../../src/im/im-acl.js';
import type { ShardMsg } from '../../../src/protocol/messages.js';

export const LIMITS: ChannelLimits = {
  maxPacketSize: 1_048_576,
  maxInflight: 3,
  maxTopicLength: 256,
  maxTopicLevels: 16,
  maxClientIdLength: 64,
  maxSessionExpiryInterval: 3600,
  maxAnonymousSessionExpiry: 3600, // no extra cap for clients without a username here
  maxKeepAlive: 65535,
};

export const allowAll: AclView = { canPublish: () => true, canSubscribe: () => true };

/** Any ChannelEnv field; `limits` and `mqtt` are merged over LIMITS and DEFAULTS.mqtt. */
export type EnvOptions = Partial<Omit<ChannelEnv, 'limits' | 'mqtt'>> & { limits?: Partial<ChannelLimits>; mqtt?: Partial<MqttConfig> };

/**
 * A ChannelEnv: allow-all ACL, shard = client id length % 4, client ids auto-1, auto-2...
 * (recorded in `assigned`), LIMITS, no IM, no `mqtt` section unless given; `over` wins.
 */
export function makeEnv(over: EnvOptions = {}): ChannelEnv & { assigned: string[] } {
  const { limits, mqtt, ...rest } = over;
  const assigned: string[] = [];
  let n = 0;
  return {
    acl: allowAll,
    shardOf: (id: string) => id.length % 4,
    newClientId: () => {
      const id = `auto-${++n}`;
      assigned.push(id);
      return id;
    },
    im: null,
    ...rest,
    limits: { ...LIMITS, ...limits },
    ...(mqtt !== undefined ? { mqtt: { ...DEFAULTS.mqtt, ...mqtt } } : {}),
    assigned,
  };
}

export function connectPacket(version: 3 | 4 | 5, over: Partial<IConnectPacket> = {}): IConnectPacket {
  return {
    cmd: 'connect',
    protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: version,
    clientId: 'c1',
    clean: true,
    keepalive: 30,
    ...over,
  };
}

export interface OpenOptions {
  /** Over connectPacket(version). */
  connect?: Partial<IConnectPacket>;
  /** The IM identity handed to afterAuth. */
  im?: ImUser;
  /** The inbound QoS 2 ids the session remembers (sessionReady). */
  qos2In?: number[];
}

/** CONNECT -> auth ok -> session ready; returns the channel (phase `connected`) and the effects of sessionReady (the CONNACK). */
export function open(version: 3 | 4 | 5, env: ChannelEnv, o: OpenOptions = {}): { st: ChannelState; fx: Effect[] } {
  const st = newChannelState(1);
  handleIn(st, connectPacket(version, o.connect), env);
  afterAuth(st, 'ok', env, o.im);
  const fx = sessionReady(st, false, o.qos2In ?? [], env);
  expect(st.phase).toBe('connected');
  return { st, fx };
}

/** A channel in phase `connected` (see open). */
export const connectedState = (version: 3 | 4 | 5, env: ChannelEnv, o: OpenOptions = {}): ChannelState => open(version, env, o).st;

export function publish(over: Partial<IPublishPacket> = {}): IPublishPacket {
  return { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, ...over };
}

export const sent = (fx: Effect[]): Packet[] => fx.flatMap((e) => (e.e === 'send' ? [e.packet] : []));
export const routes = (fx: Effect[]) => fx.filter((e): e is Extract<Effect, { e: 'route' }> => e.e === 'route');
/** The PUBACK/PUBREC of accepted publishes: carried by the route effect, sent once routed (or committed). */
export const routedAcks = (fx: Effect[]) => routes(fx).flatMap((r) => (r.ack ? [r.ack] : []));
export const closeOf = (fx: Effect[]) => fx.find((e): e is Extract<Effect, { e: 'close' }> => e.e === 'close');
export const shardMsg = (fx: Effect[]): ShardMsg | undefined => fx.flatMap((e) => (e.e === 'shard' ? [e.msg] : []))[0];
