/**
 * The gateway tests' environment (as ../channel/channel-env.ts is the channel's): a real
 * GatewayActor on an in-thread ActorSystem, with a fake shard 0 that records what it is
 * sent, a coordinator that ignores everything, a silent logger and a ChannelEnv from
 * makeEnv. Each test file drives it through fake sockets (ConnIO) of its own.
 *
 * Every gateway built is shut down by closeGateways: call it in the file's afterEach.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { Logger } from 'pino';
import { ActorSystem } from '../../../src/runtime/system.js';
import { GatewayActor, type GatewayOptions } from '../../../src/gateway/gateway-actor.js';
import { Metrics } from '../../../src/admin/metrics.js';
import type { ChannelEnv } from '../../../src/channel/index.js';
import { COORDINATOR, gatewayName, shardName, type GatewayMsg, type ShardMsg } from '../../../src/protocol/messages.js';
import { makeEnv, type EnvOptions } from '../channel/channel-env.js';

/** One turn of the event loop (setImmediate). */
export const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A pino-like logger that says nothing; its `error` calls are pushed to `errors` when given. */
export function silentLogger(errors?: Array<Record<string, unknown>>): Logger {
  const log = {
    child: () => log,
    info: () => {},
    warn: () => {},
    debug: () => {},
    trace: () => {},
    error: (o: Record<string, unknown>) => void errors?.push(o),
  };
  return log as unknown as Logger;
}

/** The GatewayOptions of gatewayEnv before its `gateway` overrides. */
export const GATEWAY_OPTIONS: Readonly<Omit<GatewayOptions, 'connCounter'>> = {
  index: 0,
  shards: 1,
  maxConnections: 100,
  socketBufferHighWater: 1 << 20,
  maxPacketSize: 1 << 20,
  connectTimeout: 10,
  generation: 0,
  durability: 'memory',
};

export interface GatewayEnvOptions {
  /**
   * Over the ChannelEnv (see makeEnv): limits.maxInflight 100 (other limits: LIMITS), every
   * client id on shard 0, `auto` for a client that sent none, allow-all ACL, no IM.
   */
  env?: EnvOptions;
  /** Over GATEWAY_OPTIONS (and a fresh connCounter). */
  gateway?: Partial<GatewayOptions>;
  /** Default: silentLogger(errors), i.e. the `errors` returned record every `log.error`. */
  log?: Logger;
}

const gateways: Array<() => void> = [];

/** Shuts down the gateways (and their metrics) built since the last call. */
export function closeGateways(): void {
  for (const c of gateways.splice(0)) c();
}

/** A GatewayActor spawned as gateway 0; authentication always succeeds. */
export function gatewayEnv(o: GatewayEnvOptions = {}) {
  const sys = new ActorSystem('t', () => 't');
  /** Everything shard 0 was sent, in order. */
  const shard: ShardMsg[] = [];
  sys.spawn<ShardMsg>(shardName(0), { receive: (m) => void shard.push(m) });
  sys.spawn(COORDINATOR, { receive: () => {} });
  const metrics = new Metrics('gw0');
  /** What was logged with `log.error` (default logger only). */
  const errors: Array<Record<string, unknown>> = [];
  const log = o.log ?? silentLogger(errors);
  const env: ChannelEnv = makeEnv({
    shardOf: () => 0,
    newClientId: () => 'auto',
    ...o.env,
    limits: { maxInflight: 100, ...o.env?.limits },
  });
  const gw = new GatewayActor(
    { ...GATEWAY_OPTIONS, connCounter: new Int32Array(new SharedArrayBuffer(4)), ...o.gateway },
    sys,
    env,
    async () => ({ result: 'ok' }),
    metrics,
    log,
  );
  const ref = sys.spawn<GatewayMsg>(gatewayName(0), gw);
  gateways.push(() => {
    gw.shutdown();
    metrics.close();
  });
  return { sys, gw, ref, shard, metrics, env, errors };
}

/** The packets in the bytes a gateway wrote to one socket. */
export function parsePackets(written: Buffer[], version: 3 | 4 | 5): Packet[] {
  const parser = mqttPacket.parser({ protocolVersion: version });
  const out: Packet[] = [];
  parser.on('packet', (p: Packet) => out.push(p));
  parser.parse(Buffer.concat(written));
  return out;
}
