// The shape of Switchboard's configuration, declared once.
//
// SCHEMA is the single source of truth: DEFAULTS is derived from it, the loader
// validates against it, the env-variable names are computed from it and the
// documentation table is generated from it. Its type (SchemaOf<Config>) mirrors
// the Config interface key for key, so adding a key to one without the other is
// a compile error, and a default whose type does not fit the key is too.
import { availableParallelism } from 'node:os';
import type { RoutingRule } from '../im/rules.js';
import type { DirectoryEntry } from '../im/presub.js';
import type { AuthMethodConfig } from '../auth/enhanced/registry.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const ACL_ACTIONS = ['allow', 'deny'] as const;
export type AclAction = (typeof ACL_ACTIONS)[number];

export const ACL_PERMISSIONS = ['publish', 'subscribe', 'all'] as const;
export type AclPermission = (typeof ACL_PERMISSIONS)[number];

/** One ACL rule. `topic` is an MQTT topic filter; wildcards must occupy whole levels. */
export interface AclRule {
  readonly action: AclAction;
  readonly permission: AclPermission;
  readonly topic: string;
  /** Rule applies only to this username (absent = any user). */
  readonly username?: string;
  /** Rule applies only to this client id (absent = any client). */
  readonly clientId?: string;
}

/** "auto" is resolved against the CPU count by resolveThreads(). */
export type ThreadCount = 'auto' | number;

export interface TcpListenerConfig {
  readonly enabled: boolean;
  readonly port: number;
}

export interface WsListenerConfig {
  readonly enabled: boolean;
  readonly port: number;
  readonly path: string;
  readonly corsOrigins: readonly string[];
}

export interface TlsListenerConfig {
  readonly enabled: boolean;
  readonly port: number;
}

export interface WssListenerConfig {
  readonly enabled: boolean;
  readonly port: number;
  readonly path: string;
}

export interface ListenersConfig {
  readonly tcp: TcpListenerConfig;
  readonly ws: WsListenerConfig;
  readonly tls: TlsListenerConfig;
  readonly wss: WssListenerConfig;
}

export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsVersion = (typeof TLS_VERSIONS)[number];

/** Certificates of the TLS listeners (MQTT over TLS and WebSocket over TLS share them). */
export interface TlsConfig {
  readonly certFile: string | null;
  readonly keyFile: string | null;
  readonly passphrase: string | null;
  readonly caFile: string | null;
  readonly requestClientCert: boolean;
  readonly requireClientCert: boolean;
  readonly clientCertUsername: boolean;
  readonly minVersion: TlsVersion;
}

export interface ThreadsConfig {
  readonly gateways: ThreadCount;
  readonly shards: ThreadCount;
}

export interface LimitsConfig {
  readonly maxConnections: number;
  readonly maxPacketSize: number;
  readonly maxInflight: number;
  readonly maxQueuedMessages: number;
  readonly maxSubscriptionsPerClient: number;
  readonly maxTopicLength: number;
  readonly maxTopicLevels: number;
  readonly maxClientIdLength: number;
  readonly maxSessionExpiryInterval: number;
  readonly maxRetainedMessages: number;
  readonly socketBufferHighWater: number;
  readonly maxKeepAlive: number;
  readonly connectTimeout: number;
  readonly maxSessions: number;
  readonly maxAnonymousSessions: number;
  readonly maxAnonymousSessionExpiry: number;
  readonly queueFullPolicy: QueueFullPolicy;
  readonly maxHeldPerSession: number;
  readonly maxAckHoldSeconds: number;
}

/** What a full session queue does to a client's QoS 1/2 message (src/session/held-publishes.ts). */
export const QUEUE_FULL_POLICIES = ['drop', 'hold'] as const;
export type QueueFullPolicy = (typeof QUEUE_FULL_POLICIES)[number];

/**
 * MQTT 5 capabilities announced in CONNACK and enforced by the channel handlers
 * (src/channel/*; see docs/mqtt5.md). Limits shared with MQTT 3.1.1 live in `limits`.
 */
export interface MqttConfig {
  readonly topicAliasMaximum: number;
  readonly topicAliasMaximumOut: number;
  readonly maximumQoS: number;
  readonly retainAvailable: boolean;
  readonly wildcardSubscriptionAvailable: boolean;
  readonly subscriptionIdentifiersAvailable: boolean;
  readonly serverKeepAlive: number | null;
  readonly responseInformation: string | null;
  readonly serverReference: string | null;
  readonly serverMoved: boolean;
  readonly validatePayloadFormat: boolean;
}

export interface JwtAuthConfig {
  readonly secret: string | null;
  readonly publicKeyFile: string | null;
  readonly jwksFile: string | null;
  readonly issuer: string | null;
  readonly audience: string | null;
}

/** MQTT 5 enhanced authentication (AUTH packets; docs/authentication.md). */
export interface EnhancedAuthConfig {
  readonly scram: boolean;
  readonly methods: readonly AuthMethodConfig[];
  readonly maxSteps: number;
  readonly reauthTimeout: number;
}

export interface AuthConfig {
  readonly allowAnonymous: boolean;
  readonly usersFile: string | null;
  readonly jwt: JwtAuthConfig;
  readonly enhanced: EnhancedAuthConfig;
  readonly aclDefault: AclAction;
  readonly acl: readonly AclRule[];
}

export const SENDER_CHECKS = ['refuse', 'rewrite'] as const;
export type SenderCheck = (typeof SENDER_CHECKS)[number];

export interface PresubscribeConfig {
  readonly templates: readonly string[];
  readonly qos: number;
  readonly directory: readonly DirectoryEntry[];
  readonly holdNewUsers: boolean;
}

export interface FilesConfig {
  readonly enabled: boolean;
  readonly maxBytes: number;
  readonly publicUrl: string | null;
}

export interface ImConfig {
  readonly enabled: boolean;
  readonly defaultNamespace: string;
  readonly senderCheck: SenderCheck;
  readonly superusers: readonly string[];
  readonly presubscribe: PresubscribeConfig;
  readonly rules: readonly RoutingRule[];
  readonly presence: boolean;
  readonly files: FilesConfig;
}

export const DURABILITIES = ['sync', 'async', 'memory'] as const;
export type Durability = (typeof DURABILITIES)[number];

/** How the owner of a shared subscription picks the member that gets a message (src/session/shared-strategy.ts). */
export const SHARED_STRATEGIES = ['round_robin', 'random', 'sticky', 'hash'] as const;
export type SharedStrategy = (typeof SHARED_STRATEGIES)[number];

/** MQTT 5 Shared Subscriptions, `$share/{ShareName}/{filter}` (also offered to 3.1.1 clients). */
export interface SharedSubscriptionsConfig {
  readonly enabled: boolean;
  readonly strategy: SharedStrategy;
}

export interface StoreConfig {
  readonly durability: Durability;
  readonly asyncMaxLag: number;
  readonly evictOfflineAfter: number;
}

export interface AdminConfig {
  readonly token: string | null;
}

/** The browser IM client served at `/` (src/web/routes.ts, docs/web-client.md). */
export interface WebConfig {
  readonly enabled: boolean;
  readonly dir: string | null;
}

/** Several broker processes as one (docs/cluster.md); `nats` null = a single node. */
export interface ClusterConfig {
  readonly nats: string | null;
  readonly node: string | null;
  readonly subjectPrefix: string;
  readonly connectTimeout: number;
  readonly reconnectWait: number;
  readonly flushTimeout: number;
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;
  readonly takeoverTimeoutMs: number;
}

export interface LogConfig {
  readonly level: LogLevel;
}

/**
 * The full, validated configuration. Objects returned by the loader are deeply
 * frozen: the config is shared by every thread and must not drift at runtime.
 */
export interface Config {
  readonly host: string;
  readonly dataDir: string;
  readonly store: StoreConfig;
  readonly shutdownTimeout: number;
  readonly shutdownDrain: number;
  readonly listeners: ListenersConfig;
  readonly tls: TlsConfig;
  readonly threads: ThreadsConfig;
  readonly limits: LimitsConfig;
  readonly mqtt: MqttConfig;
  readonly auth: AuthConfig;
  readonly im: ImConfig;
  readonly sharedSubscriptions: SharedSubscriptionsConfig;
  readonly cluster: ClusterConfig;
  readonly admin: AdminConfig;
  readonly web: WebConfig;
  readonly log: LogConfig;
}

// ---------------------------------------------------------------------------
// Field specs: the declarative part.

interface FieldBase {
  /** One-line description, used in docs/configuration.md. */
  readonly doc: string;
}

export interface IntField extends FieldBase {
  readonly kind: 'int';
  readonly min: number;
  readonly max: number;
  /** Also accepts the string "auto". */
  readonly auto?: boolean;
  /** null is allowed; an empty string (env vars cannot spell null) or "null" is normalised to null. */
  readonly nullable?: boolean;
  readonly default: number | 'auto' | null;
}

export interface NumberField extends FieldBase {
  readonly kind: 'number';
  readonly min?: number;
  readonly max?: number;
  readonly default: number;
}

export interface BoolField extends FieldBase {
  readonly kind: 'bool';
  readonly default: boolean;
}

export interface StringField extends FieldBase {
  readonly kind: 'string';
  /** null is allowed; an empty string is normalised to null (env vars cannot spell null). */
  readonly nullable?: boolean;
  /** Values must match; patternDoc says how, in words, for error messages. */
  readonly pattern?: RegExp;
  readonly patternDoc?: string;
  readonly default: string | null;
}

export interface EnumField extends FieldBase {
  readonly kind: 'enum';
  readonly values: readonly string[];
  readonly default: string;
}

export interface AclRulesField extends FieldBase {
  readonly kind: 'aclRules';
  readonly default: readonly AclRule[];
}

/** What the items of a list setting are; each kind has its own validator in load.ts. */
export type ListItem = 'username' | 'origin' | 'topicTemplate' | 'routingRule' | 'directoryEntry' | 'authMethod';

export interface ListField extends FieldBase {
  readonly kind: 'list';
  readonly item: ListItem;
  readonly default: readonly unknown[];
}

export type FieldSpec = IntField | NumberField | BoolField | StringField | EnumField | AclRulesField | ListField;

/** A field spec whose default has type T (so `kind` and the key's type must agree). */
export type Leaf<T> = FieldSpec & { readonly default: T };

/** Mirrors T: nested objects become nested schemas, everything else a Leaf. */
export type SchemaOf<T> = {
  readonly [K in keyof T]-?: [T[K]] extends [readonly unknown[]]
    ? Leaf<T[K]>
    : [T[K]] extends [object]
      ? SchemaOf<T[K]>
      : Leaf<T[K]>;
};

/** Untyped view of a schema section, for code that walks it generically. */
export interface SchemaSection {
  readonly [key: string]: SchemaSection | FieldSpec;
}

// 2^31 - 1: "no practical cap" for counters, while staying a small integer in V8.
const INT32_MAX = 2_147_483_647;

const int = (def: number, min: number, max: number, doc: string): IntField & { default: number } => ({ kind: 'int', default: def, min, max, doc });
const threads = (doc: string): IntField & { default: 'auto' } => ({ kind: 'int', default: 'auto', min: 0, max: 64, auto: true, doc });
const bool = (def: boolean, doc: string): BoolField => ({ kind: 'bool', default: def, doc });
const str = (def: string, doc: string, pattern?: RegExp, patternDoc?: string): StringField & { default: string } =>
  ({ kind: 'string', default: def, doc, pattern, patternDoc });
const enumOf = <T extends string>(values: readonly T[], def: T, doc: string): EnumField & { default: T } =>
  ({ kind: 'enum', values, default: def, doc });

const NON_EMPTY = /\S/;
const nullableStr = (doc: string): StringField & { default: null } => ({ kind: 'string', nullable: true, default: null, doc });
const nullableInt = (min: number, max: number, doc: string): IntField & { default: null } => ({ kind: 'int', nullable: true, default: null, min, max, doc });
const list = <T>(item: ListItem, def: readonly T[], doc: string): ListField & { default: readonly T[] } => ({ kind: 'list', item, default: def, doc });

export const SCHEMA: SchemaOf<Config> = {
  host: str('0.0.0.0', 'Listen address for all listeners.', NON_EMPTY, 'a non-empty string'),
  dataDir: str('./data', 'Directory where state and uploaded files live (relative to the working directory).', NON_EMPTY, 'a non-empty string'),
  store: {
    durability: enumOf(
      DURABILITIES,
      'sync',
      'sync: persistent sessions, their messages and retained messages are kept in LMDB under dataDir, and a QoS 1/2 PUBLISH is acknowledged only once committed; async: the same store, acknowledged before the commit (a crash may lose up to store.asyncMaxLag ms of them); memory: nothing is written (a restart loses every session).',
    ),
    asyncMaxLag: int(100, 1, 60_000, 'Durability async: milliseconds of acknowledged messages a crash may lose at most; when the store falls further behind, acknowledgements wait for it (as in sync) until it catches up.'),
    evictOfflineAfter: int(60, 0, INT32_MAX, 'Seconds an offline persistent session keeps its messages in memory; then they live only in the store until its client reconnects (sync and async; with memory they stay in memory).'),
  },
  shutdownTimeout: int(10, 1, 3600, 'Seconds a graceful stop (SIGTERM/SIGINT) may take: clients are told (v5 DISCONNECT 0x8B), stores flushed; then the process exits anyway.'),
  shutdownDrain: int(0, 0, 3600, 'Seconds a graceful stop first keeps serving with /readyz answering 503, so a load balancer that polls /readyz sends new connections elsewhere before the listeners close (0 = close at once). shutdownTimeout counts after it.'),
  listeners: {
    tcp: {
      enabled: bool(true, 'Accept plain MQTT over TCP.'),
      port: int(1883, 0, 65535, 'TCP port for MQTT (0 = any free port).'),
    },
    ws: {
      enabled: bool(true, 'Accept MQTT over WebSocket; HTTP /metrics and /healthz are served on the same port.'),
      port: int(8083, 0, 65535, 'Port for MQTT over WebSocket and HTTP (0 = any free port).'),
      path: str('/mqtt', 'URL path on which WebSocket upgrades are accepted.', /^\/\S*$/, 'a path starting with "/" without spaces'),
      corsOrigins: list<string>('origin', [], 'Browser origins (e.g. https://chat.example.com, or *) allowed to call /files and /api/v1 from another origin (CORS); [] = none.'),
    },
    tls: {
      enabled: bool(false, 'Accept MQTT over TLS (mqtts://); needs tls.certFile and tls.keyFile.'),
      port: int(8883, 0, 65535, 'Port for MQTT over TLS (0 = any free port).'),
    },
    wss: {
      enabled: bool(false, 'Accept MQTT over WebSocket over TLS (wss://), with the HTTP endpoints of the ws listener over HTTPS; needs tls.certFile and tls.keyFile.'),
      port: int(8084, 0, 65535, 'Port for MQTT over secure WebSocket and HTTPS (0 = any free port).'),
      path: str('/mqtt', 'URL path on which secure WebSocket upgrades are accepted.', /^\/\S*$/, 'a path starting with "/" without spaces'),
    },
  },
  tls: {
    certFile: nullableStr('PEM certificate file of the TLS listeners (the server certificate, then any intermediates); re-read on SIGHUP.'),
    keyFile: nullableStr('PEM private key file of tls.certFile; re-read on SIGHUP.'),
    passphrase: nullableStr('Passphrase of an encrypted tls.keyFile; null = the key is not encrypted.'),
    caFile: nullableStr('PEM file of the CA(s) that sign client certificates; needed by requestClientCert / requireClientCert.'),
    requestClientCert: bool(false, 'MQTT over TLS: ask clients for a certificate; one that does not verify against tls.caFile is ignored (the client logs in as usual).'),
    requireClientCert: bool(false, 'MQTT over TLS: refuse the handshake of a client without a certificate signed by tls.caFile (not supported with listeners.wss).'),
    clientCertUsername: bool(false, 'MQTT over TLS: the subject CN of a verified client certificate is the username of a CONNECT that has none (or the same one), authenticated by the certificate without a password.'),
    minVersion: enumOf(TLS_VERSIONS, 'TLSv1.2', 'Oldest TLS version accepted by the MQTT over TLS listener (WSS always accepts TLS 1.2 and 1.3).'),
  },
  threads: {
    gateways: threads('I/O (gateway) threads; 0 = run the gateway in the main thread; "auto" = half the CPUs, at least 1 (with shards "auto" on a host of at most 2 CPUs: 0, the whole broker in one thread, measured faster there).'),
    shards: threads('Session shard threads; 0 = run shards in the main thread; "auto" = the CPUs left after gateways, at least 1 (with gateways "auto" on a host of at most 2 CPUs: 0).'),
  },
  limits: {
    maxConnections: int(100_000, 1, INT32_MAX, 'Maximum concurrent client connections on this node.'),
    // 268435455 is the largest length the MQTT remaining-length varint can encode.
    maxPacketSize: int(1_048_576, 1, 268_435_455, 'Largest incoming packet in bytes; also advertised as MQTT 5 Maximum Packet Size.'),
    // 65535 is the MQTT 5 Receive Maximum ceiling (two-byte field).
    maxInflight: int(1000, 1, 65_535, 'Per session: unacknowledged outbound QoS 1/2 messages (MQTT 5 clients can lower it with Receive Maximum); also the Receive Maximum announced to v5 clients.'),
    maxQueuedMessages: int(1000, 0, INT32_MAX, 'Per session: messages waiting while offline or beyond the inflight window (0 = none).'),
    maxSubscriptionsPerClient: int(1000, 1, INT32_MAX, 'Maximum subscriptions one client may hold.'),
    // MQTT strings are length-prefixed with two bytes, so 65535 is the hard cap.
    maxTopicLength: int(65_535, 1, 65_535, 'Maximum topic (or filter) length in bytes.'),
    maxTopicLevels: int(128, 1, 65_535, 'Maximum number of "/"-separated levels in a topic or filter.'),
    // MQTT 3.1.1 [MQTT-3.1.3-5] requires servers to accept client ids of 1..23 characters.
    maxClientIdLength: int(256, 23, 65_535, 'Maximum client id length.'),
    // 4294967295 (0xFFFFFFFF) is the MQTT 5 "never expires" value of the four-byte property.
    maxSessionExpiryInterval: int(604_800, 0, 4_294_967_295, 'Seconds; caps what MQTT 5 clients ask for and is the expiry of MQTT 3.1.1 persistent sessions.'),
    maxRetainedMessages: int(100_000, 0, INT32_MAX, 'Maximum retained messages stored on the broker.'),
    socketBufferHighWater: int(1_048_576, 1, INT32_MAX, 'Bytes queued on a slow socket before QoS 0 messages to it are dropped.'),
    // Keep Alive is a two-byte field; MQTT 5 servers may impose it via Server Keep Alive.
    maxKeepAlive: int(65_535, 1, 65_535, 'Maximum keep-alive in seconds granted to clients.'),
    // A socket that never completes CONNECT must not hold a descriptor forever.
    connectTimeout: int(10, 1, 3600, 'Seconds a new connection may take to send CONNECT and be accepted before it is closed.'),
    // Offline persistent sessions outlive their connections, so maxConnections does not bound them.
    maxSessions: int(1_000_000, 1, INT32_MAX, 'Sessions per node, online and offline (split evenly over the shards); a new session beyond it is refused (v5 CONNACK 0x97, 3.1.1 0x03).'),
    // Anyone can open a persistent session when anonymous access is on; these bound what
    // clients that never come back can leave behind.
    maxAnonymousSessions: int(100_000, 0, INT32_MAX, 'Persistent sessions (expiry > 0) of clients without a username, per node (split over the shards); a new one beyond it is refused (v5 0x97, 3.1.1 0x03).'),
    maxAnonymousSessionExpiry: int(86_400, 0, 4_294_967_295, 'Seconds; caps the session expiry of clients without a username (v5 CONNACK reports the capped value).'),
    queueFullPolicy: enumOf(
      QUEUE_FULL_POLICIES,
      'drop',
      'A client\'s QoS 1/2 message for a session whose queue (maxQueuedMessages) is full. drop: dropped and counted (queue_full), the publisher acknowledged and paused for 20 ms. hold: parked beyond the queue and the publisher\'s PUBACK/PUBREC held until it entered the queue (with any store.durability), so every message acknowledged is delivered; the publisher slows to the subscriber\'s pace (v5: within Receive Maximum; 3.1.1: not read while maxInflight acks are held), bounded by maxHeldPerSession and maxAckHoldSeconds.',
    ),
    // Memory: a parked message is a reference to a body shared by its copies, plus a few words.
    maxHeldPerSession: int(1000, 0, INT32_MAX, 'queueFullPolicy hold: messages one session may have parked beyond its full queue; one more is dropped (queue_full) as with drop. Lossless while the unacknowledged windows of the publishers to the session add up to at most this (v5 publishers: at most maxInflight each).'),
    // A subscriber that never reads must not stop its publishers for ever.
    maxAckHoldSeconds: int(30, 1, 3600, 'queueFullPolicy hold: the longest a message stays parked; then it is dropped (messages_dropped_total{reason="hold_timeout"}) and its publisher gets the ack.'),
  },
  mqtt: {
    // Two-byte property. Each alias holds a topic of up to limits.maxTopicLength bytes, so
    // this bounds the memory one connection can pin with aliases.
    topicAliasMaximum: int(16, 0, 65_535, 'MQTT 5 Topic Alias Maximum announced in CONNACK: the highest Topic Alias a client may use; each connection keeps at most this many topics. 0 = no topic aliases (an alias is then DISCONNECT 0x94).'),
    // The other direction: the gateway keeps topic -> alias per connection (least recently
    // used replaced when full), so this too bounds what one connection holds. Costs a map
    // lookup per PUBLISH to such clients, and their own encoding in a QoS 0 fan-out.
    topicAliasMaximumOut: int(16, 0, 65_535, 'Most Topic Aliases the broker uses towards one MQTT 5 connection: min(this, the Topic Alias Maximum of the client\'s CONNECT; none when the client sent none). The first PUBLISH of a topic carries the topic and an alias, later ones the alias alone; when all are taken the least recently used topic\'s alias is reused. Topics under 6 characters get no alias. 0 = never send topic aliases.'),
    maximumQoS: int(2, 0, 2, 'Highest QoS a client may publish with (announced as MQTT 5 Maximum QoS when below 2): a PUBLISH above it is DISCONNECT 0x9B (3.1.1: closed), a will above it CONNACK 0x9B (3.1.1: 0x05); SUBSCRIBE is granted at most this QoS.'),
    validatePayloadFormat: bool(true, 'Check that a v5 PUBLISH or will with Payload Format Indicator 1 carries valid UTF-8; if not, PUBACK/PUBREC 0x99 (QoS 0: DISCONNECT 0x99; will: CONNACK 0x99). false = pass any payload on.'),
    retainAvailable: bool(true, 'Accept retained PUBLISHes and wills (MQTT 5 Retain Available). false: a retained PUBLISH is DISCONNECT 0x9A (3.1.1: closed), a retained will CONNACK 0x9A (3.1.1: 0x05).'),
    wildcardSubscriptionAvailable: bool(true, 'Accept topic filters with "+" or "#" (MQTT 5 Wildcard Subscription Available). false: such a filter gets SUBACK 0xA2 (3.1.1: 0x80).'),
    subscriptionIdentifiersAvailable: bool(true, 'Accept MQTT 5 Subscription Identifiers (Subscription Identifiers Available). false: a SUBSCRIBE with one is DISCONNECT 0xA1.'),
    serverKeepAlive: nullableInt(1, 65_535, 'Seconds; MQTT 5 Server Keep Alive imposed on every v5 client (at most limits.maxKeepAlive). null = the client\'s Keep Alive, unless it exceeds limits.maxKeepAlive (or is 0 while limits.maxKeepAlive is below 65535).'),
    responseInformation: {
      kind: 'string',
      nullable: true,
      default: null,
      pattern: /^[^+#\u0000]+$/,
      patternDoc: 'a topic prefix without "+" or "#"',
      doc: 'MQTT 5 Response Information returned in CONNACK to clients that set Request Response Information to 1, the basis of their response topics; "{clientid}" is replaced by the client id (e.g. "reply/{clientid}/"). null = none.',
    },
    serverReference: {
      kind: 'string',
      nullable: true,
      default: null,
      pattern: NON_EMPTY,
      patternDoc: 'a non-empty string',
      doc: 'MQTT 5 server redirection: when set (e.g. "mqtt2.example.com:1883"), every new connection is refused, v5 with CONNACK 0x9C Use another server (0x9D with mqtt.serverMoved) and this Server Reference, 3.1.1 with CONNACK 0x03. null = serve clients.',
    },
    serverMoved: bool(false, 'With mqtt.serverReference: refuse with 0x9D Server moved (the client should use the other server from now on) instead of 0x9C Use another server (for now).'),
  },
  auth: {
    allowAnonymous: bool(true, 'Accept clients that send no username.'),
    usersFile: { kind: 'string', nullable: true, default: null, doc: 'Path to a users file: username:scrypt-hash lines, optionally with :SCRAM-SHA-256 credentials (written by `switchboard passwd`; docs/authentication.md); null = no users file.' },
    jwt: {
      secret: nullableStr('HS256 secret for JWT bearer tokens sent as the MQTT password (or HTTP Bearer); the token\'s `sub` is the uid. null = no HS256.'),
      publicKeyFile: nullableStr('PEM (SPKI) public key file for RS256 JWTs; null = none.'),
      jwksFile: nullableStr('JWKS (JSON) file with RS256 public keys; null = none.'),
      issuer: nullableStr('Required `iss` claim of JWTs; null = not checked.'),
      audience: nullableStr('Required `aud` claim of JWTs; null = not checked.'),
    },
    enhanced: {
      scram: bool(true, 'MQTT 5 enhanced authentication: offer SCRAM-SHA-256 (Authentication Method "SCRAM-SHA-256") to the users of auth.usersFile whose line has SCRAM credentials (written by `switchboard passwd`). Without a users file it is not offered.'),
      methods: list<AuthMethodConfig>('authMethod', [], 'Further enhanced authentication methods: { name, module, options? }; `module` is an ES module (path relative to the working directory, or a package) whose default export makes the method from `options` (docs/authentication.md). Loaded by every gateway thread at start.'),
      // Each step is a round trip the client drives; a method that never concludes must not
      // hold a connection (or a re-authentication) open for ever.
      maxSteps: int(10, 1, 100, 'Most AUTH 0x18 challenges the server sends in one enhanced authentication exchange; one more fails it (CONNACK or DISCONNECT 0x87).'),
      reauthTimeout: int(30, 1, 3600, 'Seconds a re-authentication (client AUTH 0x19) may take to conclude; then DISCONNECT 0x87. The CONNECT exchange is bounded by limits.connectTimeout.'),
    },
    aclDefault: enumOf(ACL_ACTIONS, 'allow', 'What happens when no ACL rule matches.'),
    acl: { kind: 'aclRules', default: [], doc: 'ACL rules: { action: allow|deny, permission: publish|subscribe|all, topic, username?, clientId? }.' },
  },
  im: {
    enabled: bool(true, 'The IM layer on `/{ns}/im/...` topics: payload validation, sender identity, IM ACL, pre-subscription, routing rules, presence, files.'),
    defaultNamespace: str('default', 'Namespace of users whose token or directory entry names none.', /^[^/+#$\u0000][^/+#\u0000]{0,127}$/, 'one topic level (no "/", "+", "#")'),
    senderCheck: enumOf(SENDER_CHECKS, 'refuse', 'A payload whose Sender is not the publisher\'s uid: refuse it (v5 0x87), or rewrite Sender.'),
    superusers: list<string>('username', [], 'Usernames exempt from the IM ACL and the sender check (bridges, bots, monitoring).'),
    presubscribe: {
      templates: list<string>('topicTemplate', ['/{ns}/im/u/{uid}'], 'Topics every new session of a user is subscribed to before CONNACK; {ns}, {uid}, {clientid} are filled in.'),
      qos: int(1, 0, 2, 'QoS of the subscriptions made on behalf of users.'),
      directory: list<DirectoryEntry>('directoryEntry', [], 'Initial user directory: { uid, ns?, groups?, topics? } (runtime changes through the admin API are kept in dataDir).'),
      holdNewUsers: bool(false, 'Keep messages for directory users who never connected, and hand them to their first session.'),
    },
    rules: list<RoutingRule>(
      'routingRule',
      [{ id: 'carbons', source: '/+/im/u/+', action: 'copy', destination: '/{1}/im/u/{sender}' }],
      'Routing rules { id, source, action: copy|move|drop, destination? }; the default copies each message to the sender\'s other devices.',
    ),
    presence: bool(true, 'Maintain the retained presence topic `/{ns}/im/p/{uid}` from connects and disconnects.'),
    files: {
      enabled: bool(true, 'HTTP file upload (POST /files) and download (GET /files/{id}/{name}) on the WebSocket port.'),
      maxBytes: int(104_857_600, 1, Number.MAX_SAFE_INTEGER, 'Largest file accepted for upload, in bytes.'),
      publicUrl: nullableStr('Base URL written into download links (e.g. https://im.example.com); null = http:// plus the request\'s Host.'),
    },
  },
  sharedSubscriptions: {
    enabled: bool(true, 'Accept shared subscriptions `$share/{ShareName}/{filter}` (MQTT 5, and 3.1.1 clients too): each message goes to one member of each group. false: refused (v5 SUBACK 0x9E, 3.1.1 0x80).'),
    strategy: enumOf(
      SHARED_STRATEGIES,
      'round_robin',
      'Which member of a group gets a message (online members first): round_robin in turn; random; sticky the same member while it stays online; hash of the publisher\'s client id (the topic for broker-made messages), so one publisher\'s messages go to one member while the online members do not change.',
    ),
  },
  cluster: {
    nats: nullableStr('NATS server URL(s), comma-separated (e.g. "nats://127.0.0.1:4222"): this node joins the cluster of every broker using the same NATS and subjectPrefix (docs/cluster.md). null = a single node, no NATS.'),
    node: {
      kind: 'string',
      nullable: true,
      default: null,
      pattern: /^[A-Za-z0-9_-]{1,64}$/,
      patternDoc: '1-64 of A-Z a-z 0-9 _ -',
      doc: 'This node\'s name, unique in the cluster (NATS connection name, logs, metrics). null = "{hostname}-{pid}".',
    },
    subjectPrefix: str('sb', 'First token of every NATS subject the cluster uses; clusters sharing one NATS need different prefixes.', /^[A-Za-z0-9_-]{1,32}$/, '1-32 of A-Z a-z 0-9 _ -'),
    connectTimeout: int(10, 1, 600, 'Seconds the broker waits for NATS at start; then it exits with the error.'),
    reconnectWait: int(1, 1, 60, 'Seconds between reconnection attempts after NATS went away (for ever; subscriptions are restored, buffered messages sent).'),
    flushTimeout: int(2, 1, 60, 'Seconds a SUBACK or a held PUBACK waits for NATS to confirm a subscription or a message; then it goes anyway (counted, cluster_errors_total{op="flush"}): nothing hangs while NATS is down.'),
    heartbeatMs: int(1000, 100, 60_000, 'Milliseconds between the heartbeats every node publishes (membership: who else is in the cluster).'),
    deadAfterMs: int(3500, 300, 600_000, 'Milliseconds without a heartbeat after which a node is taken for gone (logged, counted; claims stop waiting for it). A node whose event loop is blocked longer than this is taken for gone too until its next heartbeat: raise it on hosts that run many nodes on few cores.'),
    takeoverTimeoutMs: int(3000, 100, 120_000, 'Milliseconds a connect waits for the other nodes to answer the claim of its client id, and then for the winning node to hand the session\'s messages over (cluster_errors_total{op="claim_timeout"/"handover"}); a session another node claimed stays where it is if the claim does not settle within twice this.'),
  },
  admin: {
    token: nullableStr('Bearer token for the admin API under /api/v1; null = the admin API is disabled.'),
  },
  web: {
    enabled: bool(true, 'Serve the web IM client at / on the WebSocket/HTTP port (and the WSS/HTTPS one): log in, contacts with presence, chats, files. It is built by `npm run build` (web/ into dist/web); until then / answers 503 saying so.'),
    dir: nullableStr('Directory of the built web client (index.html, sw.js, assets/); null = dist/web of this installation.'),
  },
  log: {
    level: enumOf(LOG_LEVELS, 'info', 'Log level.'),
  },
};

// ---------------------------------------------------------------------------
// Helpers over the schema.

export function isField(node: SchemaSection | FieldSpec): node is FieldSpec {
  // Sections are plain key maps; no config key is named "kind", so a string
  // "kind" unambiguously marks a leaf.
  return typeof (node as { kind?: unknown }).kind === 'string';
}

export interface FieldEntry {
  /** Dotted key path, e.g. "limits.maxInflight". */
  readonly path: string;
  readonly spec: FieldSpec;
}

/** Every leaf of the schema, in declaration order. */
export function listFields(section: SchemaSection = SCHEMA as unknown as SchemaSection, prefix = ''): FieldEntry[] {
  const out: FieldEntry[] = [];
  for (const [key, node] of Object.entries(section)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (isField(node)) out.push({ path, spec: node });
    else out.push(...listFields(node, path));
  }
  return out;
}

/** Looks up a dotted path; undefined if it names nothing. */
export function schemaAt(path: string): SchemaSection | FieldSpec | undefined {
  let node: SchemaSection | FieldSpec = SCHEMA as unknown as SchemaSection;
  for (const key of path.split('.')) {
    if (isField(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key]!;
  }
  return node;
}

/** "an integer between 0 and 65535" etc.: the phrase used in error messages. */
export function describeType(spec: FieldSpec): string {
  switch (spec.kind) {
    case 'int': {
      const range = `an integer between ${spec.min} and ${spec.max}`;
      return spec.auto ? `"auto" or ${range}` : spec.nullable ? `${range} or null` : range;
    }
    case 'number':
      if (spec.min !== undefined && spec.max !== undefined) return `a number between ${spec.min} and ${spec.max}`;
      if (spec.min !== undefined) return `a number >= ${spec.min}`;
      if (spec.max !== undefined) return `a number <= ${spec.max}`;
      return 'a number';
    case 'bool':
      return 'true or false';
    case 'string': {
      const base = spec.patternDoc ?? 'a string';
      return spec.nullable ? `${base} or null` : base;
    }
    case 'enum':
      return `one of ${spec.values.map((v) => `"${v}"`).join(', ')}`;
    case 'aclRules':
      return 'a list of ACL rules';
    case 'list':
      return LIST_ITEM_DOC[spec.item];
  }
}

export const LIST_ITEM_DOC: Record<ListItem, string> = {
  username: 'a list of usernames',
  origin: 'a list of origins (scheme://host[:port], or *)',
  topicTemplate: 'a list of topic templates',
  routingRule: 'a list of routing rules',
  directoryEntry: 'a list of directory entries',
  authMethod: 'a list of { name, module, options? } entries',
};

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function defaultsOf(section: SchemaSection): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, node] of Object.entries(section)) {
    // Arrays are copied so the frozen DEFAULTS never alias the schema's objects.
    out[key] = isField(node) ? (Array.isArray(node.default) ? [...node.default] : node.default) : defaultsOf(node);
  }
  return out;
}

/** Every default, deeply frozen. */
export const DEFAULTS: Config = deepFreeze(defaultsOf(SCHEMA as unknown as SchemaSection) as unknown as Config);

export interface ResolvedThreads {
  readonly gateways: number;
  readonly shards: number;
}

/**
 * Turns "auto" thread counts into numbers for a machine with `cpus` CPUs.
 * Both "auto" on a host with at most SMALL_HOST_CPUS CPUs: 0 + 0, the whole broker in the
 * main thread. Measured on a 2-core host (docs/performance.md, "Topology"): one thread
 * carried 1.3-1.4x the messages of 1 gateway + 1 shard thread in pairs and fan-in with a
 * lower latency, because the hop between threads (a batch per turn, encoding) costs more
 * than a second core gives when the clients or the kernel's network stack need that core
 * too. Larger hosts: gateways = max(1, floor(cpus / 2)); shards = max(1, cpus - gateways).
 * Explicit numbers are kept (0 = run that role in the main thread). Shards are computed
 * from the resolved gateway count so an explicit gateway count leaves the remaining CPUs
 * to the shards.
 */
export const SMALL_HOST_CPUS = 2;

export function resolveThreads(cfg: Pick<Config, 'threads'>, cpus: number = availableParallelism()): ResolvedThreads {
  const n = Math.max(1, Math.floor(Number.isFinite(cpus) ? cpus : 1));
  if (cfg.threads.gateways === 'auto' && cfg.threads.shards === 'auto' && n <= SMALL_HOST_CPUS) return { gateways: 0, shards: 0 };
  const gateways = cfg.threads.gateways === 'auto' ? Math.max(1, Math.floor(n / 2)) : cfg.threads.gateways;
  const shards = cfg.threads.shards === 'auto' ? Math.max(1, n - gateways) : cfg.threads.shards;
  return { gateways, shards };
}
