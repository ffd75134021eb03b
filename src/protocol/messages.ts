/**
 * Every message that crosses a thread boundary, in one place.
 *
 * Actors address each other by name (`gateway:0`, `shard:1`, `coordinator`,
 * `supervisor`); the runtime delivers a message to the named actor whether it lives in
 * this thread or another one. Messages are plain data (msgpackr-encodable: no classes,
 * no functions, Uint8Array for binary) and tagged with `t`.
 *
 * Bump PROTOCOL_VERSION whenever a message changes shape: threads of one process always
 * share a version, but the cluster bus (a later issue) will check it.
 */
export const PROTOCOL_VERSION = 3;

export type QoS = 0 | 1 | 2;

/** MQTT 5 properties of an application message that the broker passes through unchanged. */
export interface MessageProps {
  payloadFormatIndicator?: boolean;
  /** Absolute expiry time in ms since the epoch (converted back to a remaining interval on delivery). */
  expiresAt?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  userProperties?: Record<string, string | string[]>;
}

/** An application message as it travels through the broker. */
export interface AppMessage {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  props?: MessageProps;
  /** Client id of the publisher, for the v5 No Local option; absent for broker-made messages. */
  origin?: string;
}

/** A subscription request after the gateway validated and authorised it. */
export interface SubRequest {
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  /** Reason code already decided by the gateway (>= 0x80 means refused; the shard keeps it). */
  code: number;
}

/** Options a session keeps per subscription. */
export interface SubOptions {
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  subId?: number;
}

export interface WillMessage {
  msg: AppMessage;
  /** Seconds (v5 Will Delay Interval); 0 for MQTT 3.1.1. */
  delay: number;
}

/** One packet the shard asks a gateway to write to a client. */
export type Outbound =
  | { k: 'pub'; msg: AppMessage; qos: QoS; packetId: number; dup: boolean; retain: boolean; subIds?: number[] }
  | { k: 'pubrel'; packetId: number };

// ---------------------------------------------------------------- to a session shard
export type ShardMsg =
  | {
      t: 'connect';
      gw: number;
      connId: number;
      clientId: string;
      username?: string;
      protocolVersion: 3 | 4 | 5;
      cleanStart: boolean;
      /** Session Expiry Interval in seconds after the gateway applied the configured cap. */
      expiry: number;
      /** Client's Receive Maximum (v5) or the default; bounds the inflight window. */
      receiveMaximum: number;
      will?: WillMessage;
    }
  | {
      t: 'disconnect';
      connId: number;
      clientId: string;
      /** Publish the will (connection lost, keepalive expiry, or v5 DISCONNECT 0x04). */
      publishWill: boolean;
      /** v5 DISCONNECT may change the Session Expiry Interval. */
      expiry?: number;
      /** Inbound QoS 2 packet ids still waiting for PUBREL, kept with the session. */
      qos2In: number[];
    }
  | { t: 'subscribe'; connId: number; clientId: string; packetId: number; subs: SubRequest[]; subId?: number }
  | { t: 'unsubscribe'; connId: number; clientId: string; packetId: number; filters: string[] }
  | { t: 'publish'; msg: AppMessage }
  | { t: 'ack'; connId: number; clientId: string; kind: 'puback' | 'pubrec' | 'pubcomp'; packetId: number }
  | { t: 'routeAck'; gw: number; seq: number }
  /** The gateway closed a connection the shard kicked (takeover), or no longer had it. */
  | { t: 'kicked'; connId: number; clientId: string }
  /**
   * Sent by the supervisor when a gateway thread died: its connections (ids below
   * `before`, the first id of the next generation) are gone.
   */
  | { t: 'gatewayDown'; gw: number; before: number }
  | { t: 'routeSync'; gw: number }
  | { t: 'retained'; clientId: string; connId: number; msgs: Array<{ msg: AppMessage; opts: SubOptions }> }
  | ControlMsg;

// ---------------------------------------------------------------- to a gateway
export type GatewayMsg =
  | { t: 'connack'; connId: number; sessionPresent: boolean; qos2In: number[]; refused?: 'quota' }
  | { t: 'deliver'; connId: number; out: Outbound[] }
  | { t: 'suback'; connId: number; packetId: number; codes: number[] }
  | { t: 'unsuback'; connId: number; packetId: number; codes: number[] }
  | { t: 'kick'; connId: number; clientId: string; reason: number; message: string }
  | { t: 'routeAdd'; shard: number; filters: string[]; seq: number }
  | { t: 'routeDel'; shard: number; filters: string[] }
  | { t: 'routeSnapshot'; shard: number; filters: string[] }
  | { t: 'shardDown'; shard: number }
  | { t: 'metricsText'; reqId: number; text: string }
  | ControlMsg;

// ---------------------------------------------------------------- to the coordinator
export type CoordinatorMsg =
  | { t: 'retain'; msg: AppMessage }
  | {
      t: 'retainedRequest';
      shard: number;
      clientId: string;
      connId: number;
      subs: Array<{ filter: string; opts: SubOptions }>;
    }
  | { t: 'metricsRequest'; reqId: number; gw: number }
  | { t: 'metricsReport'; reqId: number; snapshot: MetricsSnapshot };

// ---------------------------------------------------------------- runtime control, any thread
export type ControlMsg = { t: 'collectMetrics'; reqId: number };
// (The crash test hook is a supervisor control message: src/protocol/control.ts.)

/** What a thread reports for /metrics. Counters are totals since the thread started. */
export interface MetricsSnapshot {
  thread: string;
  counters: Record<string, number>;
  gauges: Record<string, number>;
  /** Event loop delay of the thread, ms (p50, p99, max over the last interval). */
  loopDelay: { p50: number; p99: number; max: number };
  mailboxDepth: number;
}

export type AnyMsg = ShardMsg | GatewayMsg | CoordinatorMsg;

/** Actor names. Placement (which thread hosts which actor) is decided by the topology. */
export const gatewayName = (i: number): string => `gateway:${i}`;
export const shardName = (i: number): string => `shard:${i}`;
export const COORDINATOR = 'coordinator';
