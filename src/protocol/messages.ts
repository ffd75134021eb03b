/**
 * Every message that crosses a thread boundary, in one place.
 *
 * Actors address each other by name (`gateway:0`, `shard:1`, `coordinator`,
 * `supervisor`); the runtime delivers a message to the named actor whether it lives in
 * this thread or another one. Messages are plain data (msgpackr-encodable: no classes,
 * no functions, Uint8Array for binary) and tagged with `t`.
 *
 * Bump PROTOCOL_VERSION whenever a message changes shape: threads of one process always
 * share a version; nodes of a cluster check it on every message (src/cluster/wire.ts).
 */
export const PROTOCOL_VERSION = 8;

import type { ImUser } from '../im/im-acl.js';
import type { RoutingRule } from '../im/rules.js';

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
  /**
   * Made by a routing rule from a message `origin` published: like an XMPP carbon it is
   * not delivered to the session that published the original.
   */
  carbon?: boolean;
  /** The publisher's connection (its gateway is inside the id), for flow control: `throttle`. */
  originConn?: number;
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
      /** IM identity of the connection (authenticated uid and its namespace), if any. */
      uid?: string;
      ns?: string;
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
  /**
   * `ack` (durability sync): answer `committed` to the publisher's gateway once the
   * message is durable here. `dedup` (QoS 2 from a client, durable store): the publisher's
   * packet id and which part of the publish this is (0 = the message, n = the n-th rule
   * copy), so a PUBLISH resent after a crash is not delivered twice [MQTT-4.3.3-10].
   */
  | {
      t: 'publish';
      msg: AppMessage;
      ack?: number;
      dedup?: { packetId: number; part: number };
      /**
       * Came from another node of the cluster: shared subscription groups here skip it (the
       * publishing node picked one node for each group: `shareRemote`).
       */
      remote?: true;
    }
  /** The publisher released (PUBREL) an inbound QoS 2 packet id, or every one (null: new session). */
  | { t: 'released'; origin: string; packetId: number | null }
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
  /** The coordinator's answer to `presubscribe`: the topics the session must hold on behalf of its user. */
  | { t: 'presubscription'; reqId: number; clientId: string; topics: string[]; qos: QoS; hold?: HoldRef }
  /**
   * The directory or templates changed: sessions of these users (null = every IM user) ask
   * again; with `reqId` the shard answers `presubRefreshed` once every change is routed.
   */
  | { t: 'presubRefresh'; uids: string[] | null; reqId?: number }
  /** Admin API operations on sessions; answered with `adminShardReply`. */
  | { t: 'admin'; reqId: number; op: AdminShardOp }
  /** Create the holding session of a directory user who never connected (im.presubscribe.holdNewUsers). */
  | { t: 'holdCreate'; clientId: string; uid: string; topics: string[]; qos: QoS }
  /** Hand the holding session's messages to the user's first real session, then drop it. */
  | { t: 'holdTransfer'; holdClientId: string; toShard: number; toClientId: string; reqId: number }
  /** The held messages, for the session waiting for them (sent by the holding session's shard). */
  | { t: 'heldMessages'; reqId: number; clientId: string; msgs: Array<{ msg: AppMessage; qos: QoS }> }
  | TakeoverMsg
  | SharedMsg
  | ControlMsg;

/**
 * Session takeover across the nodes of a cluster (src/session/cluster-takeover.ts,
 * docs/cluster.md "Sessions across nodes"). `claim` numbers a claim at the claiming node's
 * cluster link; with the claiming node's name it is unique in the cluster.
 */
export type TakeoverMsg =
  // ---- cluster link -> the claiming shard
  /** Every other live node answered the claim (or the claim timed out: those that did not are missing). */
  | { t: 'claimed'; reqId: number; claim: number; clientId: string; answers: ClaimAnswer[] }
  /** The winner's messages (null: it did not send them in time, or had none left). */
  | { t: 'claimDone'; reqId: number; clientId: string; state: SessionMessages | null }
  // ---- cluster link -> the shard that may own the client id here
  /** Node `from` claims `clientId`: kick its connection here (0x8E), keep the session leaving, answer `releaseReply`. */
  | { t: 'release'; claim: number; from: string; clientId: string; owner?: string; clean: boolean }
  /** The claim is settled: `take` = hand the messages over (`releaseDone`); otherwise drop the session. */
  | { t: 'releaseFinish'; claim: number; from: string; clientId: string; take: boolean };

/** One node's answer to a claim. */
export interface ClaimAnswer {
  node: string;
  /** The node has a session of the client id (not one a clean start would discard). */
  has: boolean;
  /** It belongs to another user: the connection is refused (as on one node). */
  refused?: 'owner';
  /** When the session was last connected (ms since the epoch; now when it was): the newest copy wins. */
  lastSeen?: number;
  meta?: SessionMeta;
}

/** A session without its messages: what the claiming node needs to route to it at once. */
export interface SessionMeta {
  protocolVersion: 3 | 4 | 5;
  expiry: number;
  subs: Array<[string, SubOptions]>;
  presub: string[];
  qos2In: number[];
  username?: string;
  uid?: string;
  ns?: string;
}

/** A leaving session's messages: the unacknowledged ones under their packet ids, then the queue. */
export interface SessionMessages {
  inflight: Array<{ packetId: number; msg: AppMessage; qos: QoS; retain: boolean; subIds?: number[]; state: 'publish' | 'pubrel' }>;
  queue: Array<{ msg: AppMessage; qos: QoS; retain: boolean; subIds?: number[] }>;
}

/**
 * Shared subscriptions (docs/architecture.md, "Shared subscriptions"). `key` is the whole
 * `$share/{ShareName}/{filter}`: it names the group, whose owner is the shard
 * shardOf(key); the members' sessions live on their own shards (by client id). The owner
 * keeps the group's members and its route (src/session/shared-groups.ts); a member's
 * shard keeps the subscription in the session (src/session/shared-member.ts).
 */
export type SharedMsg =
  // ---- member shard -> owner
  /** A session subscribed (or re-subscribed); `reqId` > 0: answer `shareJoined` once the group is routed everywhere. */
  | { t: 'shareJoin'; key: string; clientId: string; shard: number; online: boolean; reqId: number }
  | { t: 'shareLeave'; key: string; clientId: string }
  /** The member's session got or lost its connection (the owner prefers online members). */
  | { t: 'shareState'; clientId: string; keys: string[]; online: boolean }
  /**
   * A `shareDeliver` the member could not take: its session or subscription is gone
   * (`gone`: the owner forgets the member). The owner gives the message to another member.
   */
  | { t: 'shareBounce'; key: string; clientId: string; msg: AppMessage; id?: number; gone: boolean }
  /** Messages the member got from the group and never acknowledged, given back: its connection or session ended. */
  | { t: 'shareRequeue'; key: string; clientId: string; msgs: AppMessage[] }
  /** Deliveries (`shareDeliver.id`) now durable in the members' sessions. */
  | { t: 'shareCommitted'; ids: number[] }
  /**
   * Every membership that shard `shard` holds for groups owned by the receiver: it replaces
   * what the owner knew of that shard (at start, and after a shard thread restarted).
   * `answer`: count it for `reqId` (answer `shareResynced` once every shard's came).
   */
  | { t: 'shareSync'; reqId: number; shard: number; members: Array<{ key: string; clientId: string; online: boolean }>; answer: boolean }
  // ---- owner -> member shard
  | { t: 'shareJoined'; reqId: number }
  /**
   * One message for one member (QoS, Retain As Published and Subscription Identifier come
   * from the member's subscription). `id`: the publisher waits for it to be durable
   * (durability sync): answer `shareCommitted`.
   */
  | { t: 'shareDeliver'; key: string; clientId: string; msg: AppMessage; id?: number }
  // ---- coordinator -> every shard
  /**
   * Tell the owners your memberships (`shareSync`): `owner` null = every owner (broker
   * start); a shard index = that shard restarted (it tells every owner of its own members).
   */
  | { t: 'shareResync'; reqId: number; owner: number | null }
  // ---- supervisor -> every other shard
  /** A shard thread died (it restarts): nothing goes to it until its `shareSync` comes. */
  | { t: 'peerDown'; shard: number }
  // ---- cluster link -> owner
  /** Another node picked this node's group `key` for a message published there: one member gets it. */
  | { t: 'shareRemote'; key: string; msg: AppMessage };

/** The holding session a first connection adopts: where it lives. */
export interface HoldRef {
  clientId: string;
  shard: number;
}

export type AdminShardOp =
  | { op: 'list'; uid?: string }
  | { op: 'get'; clientId: string }
  | { op: 'kick'; clientId: string; discard: boolean }
  | { op: 'sub'; clientId: string; filter: string; qos: QoS }
  | { op: 'unsub'; clientId: string; filter: string };

/** One recipient of a grouped delivery: the message itself travels once per group. */
export interface DeliverItem {
  connId: number;
  qos: QoS;
  packetId: number;
  retain: boolean;
  subIds?: number[];
}

// ---------------------------------------------------------------- to a gateway
export type GatewayMsg =
  /** `refused`: 'quota' = maxSessions reached; 'owner' = the session belongs to another user. */
  | { t: 'connack'; connId: number; sessionPresent: boolean; qos2In: number[]; refused?: 'quota' | 'owner' }
  | { t: 'deliver'; connId: number; out: Outbound[] }
  /** One publish to many connections of this gateway (fan-out): encoded once per shape. */
  | { t: 'deliverGroup'; msg: AppMessage; items: DeliverItem[] }
  /** Durability sync: these publishes (`ack` tokens of this gateway) are committed at the sender. */
  | { t: 'committed'; ids: number[] }
  | { t: 'suback'; connId: number; packetId: number; codes: number[] }
  | { t: 'unsuback'; connId: number; packetId: number; codes: number[] }
  | { t: 'kick'; connId: number; clientId: string; reason: number; message: string }
  /** Flow control: this publisher's messages overflow a session queue; stop reading it for `ms`. */
  | { t: 'throttle'; connId: number; ms: number }
  | { t: 'routeAdd'; shard: number; filters: string[]; seq: number }
  | { t: 'routeDel'; shard: number; filters: string[] }
  | { t: 'routeSnapshot'; shard: number; filters: string[] }
  /** A shard thread died: its sessions' connections close; publishes that would reach it are refused until `shardUp`. */
  | { t: 'shardDown'; shard: number }
  /** The shard is back (restored from its store): ask for its routes. */
  | { t: 'shardUp'; shard: number }
  | { t: 'metricsText'; reqId: number; text: string }
  /** IM profile of an authenticated uid (namespace, groups), for the IM ACL. */
  | { t: 'imProfile'; reqId: number; user: ImUser }
  /** The directory changed for this uid: live connections update their IM ACL view. */
  | { t: 'imUserUpdate'; user: ImUser }
  /** The routing rules (the coordinator is the authority; gateways compile a copy). */
  | { t: 'imRules'; rules: RoutingRule[]; version: number }
  | { t: 'adminReply'; reqId: number; status: number; body: unknown }
  | ControlMsg;

// ---------------------------------------------------------------- to the coordinator
export type CoordinatorMsg =
  /** Keep (or delete, empty payload) a retained message; `ack` as for a shard's `publish`. */
  | { t: 'retain'; msg: AppMessage; ack?: number }
  | {
      t: 'retainedRequest';
      shard: number;
      clientId: string;
      connId: number;
      subs: Array<{ filter: string; opts: SubOptions }>;
    }
  | { t: 'metricsRequest'; reqId: number; gw: number }
  | { t: 'metricsReport'; reqId: number; snapshot: MetricsSnapshot }
  /** A gateway (re)started: it needs the routing rules. */
  | { t: 'imHello'; gw: number }
  /** A gateway compiled this version of the rules (an admin edit is answered after every gateway did). */
  | { t: 'imRulesApplied'; gw: number; version: number }
  /** IM profile lookup at CONNECT; ns/groups are hints from the token, the directory wins. */
  | { t: 'imProfileRequest'; reqId: number; gw: number; uid: string; ns?: string; groups?: string[] }
  /** A new session of an IM user: which topics must it hold (answered with `presubscription`). */
  | { t: 'presubscribe'; reqId: number; shard: number; clientId: string; uid: string; ns: string; first: boolean }
  /** A session of `uid` came online (+1) or went offline (-1). */
  | { t: 'presence'; uid: string; ns: string; delta: 1 | -1; shard: number }
  | { t: 'adminRequest'; reqId: number; gw: number; method: string; path: string; query: Record<string, string>; body: unknown }
  | { t: 'adminShardReply'; reqId: number; shard: number; status: number; body: unknown }
  | { t: 'presubRefreshed'; reqId: number; shard: number }
  /** A shard has every member shard's memberships for `shareResync` `reqId`. */
  | { t: 'shareResynced'; reqId: number; shard: number };

// ---------------------------------------------------------------- to the cluster link (main thread)
export type ClusterMsg =
  /** A shard's routes, as gateways get them: the node subscribes on NATS to what its sessions want. */
  | Extract<GatewayMsg, { t: 'routeAdd' | 'routeDel' | 'routeSnapshot' }>
  /**
   * A message published on this node (by a client, a will), for the other nodes. `gw`/`ack`:
   * the publisher's held PUBACK/PUBREC (durability sync/async) waits for `committed` from
   * here, sent once the NATS server has the message.
   */
  | { t: 'forward'; msg: AppMessage; gw?: number; ack?: number }
  /** A connect for `clientId` on this node: ask the other nodes (answered with `claimed`). */
  | { t: 'claim'; shard: number; reqId: number; clientId: string; owner?: string; clean: boolean }
  /** The claim is settled: `winner` hands its messages over (answered with `claimDone`), the others drop theirs. */
  | { t: 'claimFinish'; shard: number; reqId: number; claim: number; clientId: string; winner: string | null }
  /**
   * Shared subscription groups this shard owns, for the other nodes (src/cluster/shared-link.ts):
   * `full` replaces what the link knew of the shard (its answer to `routeSync`).
   */
  | { t: 'shareGroups'; shard: number; add: Array<[key: string, filter: string]>; del: string[]; full: boolean }
  /** This shard's answer to a `release`. */
  | { t: 'releaseReply'; claim: number; to: string; answer: ClaimAnswer }
  /** The messages of a session handed over (`releaseFinish` with take). */
  | { t: 'releaseDone'; claim: number; to: string; state: SessionMessages }
  /** From the supervisor: a shard thread died (its routes are dropped) / is back (ask for its routes). */
  | { t: 'shardDown'; shard: number }
  | { t: 'shardUp'; shard: number };

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

export type AnyMsg = ShardMsg | GatewayMsg | CoordinatorMsg | ClusterMsg;

/** Actor names. Placement (which thread hosts which actor) is decided by the topology. */
export const gatewayName = (i: number): string => `gateway:${i}`;
export const shardName = (i: number): string => `shard:${i}`;
export const COORDINATOR = 'coordinator';
/** The node's NATS link (cluster.nats set), on the main thread. */
export const CLUSTER = 'cluster';
