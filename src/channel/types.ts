/**
 * The per-connection protocol state machine is pure: a handler takes the channel state,
 * an incoming packet and the environment, mutates only that state, and returns effects.
 * The gateway actor carries the effects out (writes, messages to shards, closing), so
 * handlers are tested without sockets or threads.
 */
import type { IConnectPacket, Packet } from 'mqtt-packet';
import type { AppMessage, ShardMsg } from '../protocol/messages.js';
import type { ImUser } from '../im/im-acl.js';
import { DEFAULTS, type MqttConfig, type SenderCheck } from '../config/schema.js';
import { SmallSet } from '../runtime/small-collections.js';

export type Phase = 'new' | 'auth' | 'connecting' | 'connected' | 'closed';

export interface ChannelState {
  readonly connId: number;
  phase: Phase;
  version: 3 | 4 | 5;
  clientId: string;
  /** True when the broker made the client id up (v5 Assigned Client Identifier). */
  assignedClientId: boolean;
  username?: string;
  /** Effective keepalive in seconds (0 = none). */
  keepalive: number;
  /** Set when the broker overrides the client's keepalive (v5 Server Keep Alive). */
  serverKeepAlive?: number;
  shard: number;
  /**
   * Inbound QoS 2 packet ids received and not yet released by PUBREL [MQTT-4.3.3-3]. Most
   * connections never hold one: a SmallSet makes no Set for none or one id.
   */
  qos2In: SmallSet<number>;
  sessionExpiry: number;
  /** The Session Expiry the client asked for when the broker capped it (reported in CONNACK). */
  expiryCapped: boolean;
  /** v5 Maximum Packet Size the client accepts; larger messages are not sent to it [MQTT-3.1.2-25]. */
  maxPacketSizeOut: number;
  receiveMaximum: number;
  /**
   * v5 inbound Topic Aliases of this connection: alias -> topic, at most
   * mqtt.topicAliasMaximum entries; made on the first alias, gone with the connection
   * [MQTT-3.3.2-7].
   */
  topicAliases?: Map<number, string>;
  /**
   * v5 outbound Topic Aliases: the most this connection may be sent, min(the client's
   * CONNECT Topic Alias Maximum, mqtt.topicAliasMaximumOut); 0 (3.1.1, absent or 0 from
   * the client, or off) = none [MQTT-3.1.2-26][MQTT-3.1.2-27]. The topic -> alias map is
   * the gateway's, per connection (src/gateway/topic-aliases-out.ts).
   */
  topicAliasMaxOut: number;
  /** v5 Request Problem Information (default 1): 0 = no Reason String on acks [MQTT-3.1.2-29]. */
  requestProblemInfo: boolean;
  /** v5 Request Response Information = 1: CONNACK may carry Response Information [MQTT-3.1.2-28]. */
  requestResponseInfo: boolean;
  /**
   * PUBACK/PUBREC of this client's QoS 1/2 PUBLISHes that the gateway holds and has not
   * written yet (durability sync/async: until committed; a refusal queued behind them).
   * Maintained by the gateway (gateway-actor.ts route/apply/releaseAck); with qos2In it is
   * what the client counts against our Receive Maximum [MQTT-3.3.4-7].
   */
  acksHeld: number;
  /** CONNECT kept while authentication runs off the event loop. */
  connect?: IConnectPacket;
  /** IM identity: the authenticated uid, its namespace and groups (absent: not an IM user). */
  im?: ImUser;
  /** v5 enhanced authentication (auth.ts): set when the CONNECT named an Authentication Method. */
  enhanced?: EnhancedAuthState;
}

/** An enhanced-authentication connection (MQTT 5.0 section 4.12; src/channel/auth.ts). */
export interface EnhancedAuthState {
  /** The CONNECT's Authentication Method: every AUTH, both ways, and the CONNACK carry it [MQTT-4.12.0-5]. */
  readonly method: string;
  /**
   * Whose move it is in the exchange under way: 'client' (the server sent AUTH 0x18 and
   * waits for the client's), 'server' (the method works on the client's data); absent: no
   * exchange (connected; the client may start a re-authentication with AUTH 0x19).
   */
  turn?: 'client' | 'server';
  /** The exchange under way is a re-authentication of a live connection [MQTT-4.12.1-1]. */
  reauth: boolean;
  /** AUTH 0x18 challenges sent in this exchange (bounded: auth.enhanced.maxSteps). */
  steps: number;
  /** The last step's server data, for the CONNACK of a successful CONNECT exchange. */
  finalData?: Buffer;
}

export interface AclView {
  canPublish(ctx: { username?: string; clientId: string }, topic: string): boolean;
  canSubscribe(ctx: { username?: string; clientId: string }, filter: string): boolean;
}

export interface ChannelLimits {
  maxPacketSize: number;
  maxInflight: number;
  maxTopicLength: number;
  maxTopicLevels: number;
  maxClientIdLength: number;
  maxSessionExpiryInterval: number;
  maxAnonymousSessionExpiry: number;
  maxKeepAlive: number;
}

/** The longest session expiry this client may have: anonymous clients get a shorter cap. */
export function expiryCap(st: ChannelState, limits: ChannelLimits): number {
  const anonymous = st.username === undefined && st.im === undefined;
  return anonymous ? Math.min(limits.maxSessionExpiryInterval, limits.maxAnonymousSessionExpiry) : limits.maxSessionExpiryInterval;
}

/** The IM layer's settings the channel needs; null when im.enabled is false. */
export interface ImEnv {
  senderCheck: SenderCheck;
  superusers: ReadonlySet<string>;
}

export interface ChannelEnv {
  limits: ChannelLimits;
  im: ImEnv | null;
  acl: AclView;
  shardOf(clientId: string): number;
  newClientId(): string;
  /**
   * Durability `sync`/`async` or limits.queueFullPolicy `hold`: the gateway sends a
   * publish's PUBACK/PUBREC only once every destination answered (committed it; with hold,
   * queued it), so an inbound QoS 2 id is remembered at that point (the gateway does it),
   * not when the PUBLISH arrives.
   */
  holdAcks?: boolean;
  /**
   * sharedSubscriptions.enabled: `$share/{ShareName}/{filter}` is a shared subscription
   * (v5 and 3.1.1). Off or absent: refused (v5 0x9E Shared Subscriptions not supported).
   */
  sharedSubscriptions?: boolean;
  /** The `mqtt` config section (MQTT 5 capabilities); absent: its defaults. */
  mqtt?: MqttConfig;
  /**
   * Enhanced authentication (auth.enhanced): the Authentication Methods offered, and the
   * most AUTH 0x18 challenges of one exchange. Absent: none offered (every method is 0x8C).
   */
  enhancedAuth?: { methods: ReadonlySet<string>; maxSteps: number };
}

/** The MQTT 5 capabilities in force (config `mqtt`). */
export function mqttOf(env: ChannelEnv): MqttConfig {
  return env.mqtt ?? DEFAULTS.mqtt;
}

export type Effect =
  | { e: 'send'; packet: Packet }
  | { e: 'shard'; msg: ShardMsg }
  /**
   * Route a client's message; `from` is who published it, for the routing rules; `ack`
   * is the PUBACK/PUBREC to send once routed (at once, or once committed: `holdAcks`).
   */
  | { e: 'route'; msg: AppMessage; from?: { uid?: string; clientId: string }; ack?: AckPacket }
  /** The client released an inbound QoS 2 packet id (PUBREL) [MQTT-4.3.3-11]. */
  | { e: 'released'; packetId: number }
  | { e: 'log'; msg: string; data: Record<string, unknown> }
  | { e: 'auth'; username?: string; password?: Buffer }
  /**
   * Enhanced authentication: the gateway hands `data` to the exchange of `method`, a new
   * one (`start`: the CONNECT's or an AUTH 0x19's data) or the one under way (an AUTH
   * 0x18's data), and gives the method's answer to authStep (auth.ts).
   */
  | { e: 'authExchange'; method: string; data?: Buffer; start: boolean }
  /** A CONNECT exchange succeeded as `user`: the gateway resolves the IM identity, then afterAuth. */
  | { e: 'identified'; user: string }
  /**
   * Close the connection; for v5 a DISCONNECT with `reason` is sent first when given,
   * with `text` (else `why`) as its Reason String.
   */
  | { e: 'close'; reason?: number; why: string; counter?: string; text?: string }
  | { e: 'count'; series: string; n?: number };

export interface AckPacket {
  cmd: 'puback' | 'pubrec';
  messageId: number;
}

export type Handler<P> = (st: ChannelState, packet: P, env: ChannelEnv) => Effect[];

export function newChannelState(connId: number): ChannelState {
  return {
    connId,
    phase: 'new',
    version: 4,
    clientId: '',
    assignedClientId: false,
    keepalive: 0,
    shard: 0,
    qos2In: new SmallSet<number>(),
    sessionExpiry: 0,
    expiryCapped: false,
    maxPacketSizeOut: 268435455,
    topicAliasMaxOut: 0,
    receiveMaximum: 65535,
    requestProblemInfo: true,
    requestResponseInfo: false,
    acksHeld: 0,
    // Set by CONNECT: declared here so that they live in the object, not in a separate
    // property array (16 bytes less per connection).
    username: undefined,
    connect: undefined,
    im: undefined,
  };
}

/**
 * A protocol error: v5 gets DISCONNECT with the reason, 3.1.1 a plain close [MQTT-4.8.0-1].
 * `text`: the DISCONNECT's Reason String, saying why (default: `why`).
 */
export function protocolError(st: ChannelState, reason: number, why: string, text?: string): Effect[] {
  const close: Effect = { e: 'close', reason: st.version === 5 ? reason : undefined, why, counter: `protocol_errors_total{reason="${why}"}` };
  if (text !== undefined) close.text = text;
  return [close];
}
