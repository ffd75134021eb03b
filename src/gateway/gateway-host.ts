/**
 * Wires one gateway: its actor, the authenticator (scrypt off the event loop on a
 * piscina pool), the ACL, and the TCP and WebSocket/HTTP listeners. Used by the gateway
 * thread entry and, with `gateways: 0`, on the main thread.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ActorSystem } from '../runtime/system.js';
import { MAIN, shardCount, type Topology } from '../runtime/topology.js';
import { shardOf } from '../runtime/sharding.js';
import { gatewayName } from '../protocol/messages.js';
import { Metrics } from '../admin/metrics.js';
import { compileAcl } from '../auth/acl.js';
import { createAuthenticator } from '../auth/authenticator.js';
import { createHashPool, type HashPool } from '../auth/hash-pool.js';
import { loadUsersFileEntries } from '../auth/users-file.js';
import { createAuthMethods } from '../auth/enhanced/registry.js';
import type { ScramCredentials } from '../auth/enhanced/scram.js';
import { listenTcp, type TcpListener } from '../transport/tcp-listener.js';
import { listenWs, type HttpRoutes, type WsServer } from '../transport/ws-server.js';
import { listenTls, type TlsListener } from '../transport/tls-listener.js';
import { findFreePort } from '../transport/free-port.js';
import { GatewayActor, type Authenticate } from './gateway-actor.js';
import type { ChannelEnv } from '../channel/types.js';
import { createJwtVerifier } from '../auth/jwt.js';
import { createIdentify } from '../auth/identify.js';
import { registerAdminRoutes } from '../admin/admin-http.js';
import { registerFileRoutes } from '../im/files/index.js';
import { join } from 'node:path';
import { createCors } from '../transport/cors.js';
import { directoryViaAdmin, registerContactsRoute } from '../im/contacts-http.js';
import { registerWebRoutes, webClientConfig } from '../web/routes.js';
import { defaultWebDir } from '../web/bundle-dir.js';
import { readReadiness } from '../runtime/readiness.js';

export interface GatewayHost {
  actor: GatewayActor;
  tcpPort?: number;
  tcpFd?: number;
  wsPort?: number;
  tlsPort?: number;
  tlsFd?: number;
  wssPort?: number;
  /**
   * New TLS handshakes use the certificate files as they are now (SIGHUP); established
   * connections keep theirs. Rejects, keeping the old certificate, if the files cannot be used.
   */
  reloadTls(): Promise<void>;
  /** Graceful stop: clients are told, sockets flushed, uWS closed. */
  stop(): Promise<void>;
  /** Emergency close of native handles before a crashing thread exits. */
  closeNative(): void;
}

export async function startGatewayHost(o: {
  system: ActorSystem;
  index: number;
  config: Config;
  topology: Topology;
  connCounter: Int32Array;
  /** The node's readiness cell (src/runtime/readiness.ts), answered on /readyz. */
  readiness: Int32Array;
  generation?: number;
  log: Logger;
  tcpFd?: number;
  tcpPort?: number;
  wsPort?: number;
  tlsFd?: number;
  tlsPort?: number;
  wssPort?: number;
}): Promise<GatewayHost> {
  const { config, system, index } = o;
  const log = o.log.child({ actor: gatewayName(index) });
  const shards = shardCount(o.topology);
  const limits = config.limits;
  const env: ChannelEnv = {
    limits,
    acl: compileAcl(config.auth.acl, config.auth.aclDefault),
    shardOf: (clientId) => shardOf(clientId, shards),
    newClientId: () => `auto-${randomBytes(9).toString('base64url')}`,
    im: config.im.enabled ? { senderCheck: config.im.senderCheck, superusers: new Set(config.im.superusers) } : null,
    // Held until the shards answered: committed (sync/async), or queued (queueFullPolicy hold).
    holdAcks: config.store.durability !== 'memory' || limits.queueFullPolicy === 'hold',
    sharedSubscriptions: config.sharedSubscriptions.enabled,
    mqtt: config.mqtt,
  };
  // No users file: no password table, so only the anonymous rule applies and the pool
  // that would verify hashes is never started.
  const entries = config.auth.usersFile ? await loadUsersFileEntries(config.auth.usersFile) : null;
  const users = entries && new Map([...entries].map(([name, e]) => [name, e.hash]));
  // MQTT 5 enhanced authentication: SCRAM-SHA-256 for the users with SCRAM credentials, and
  // the plug-in methods of auth.enhanced.methods (a module that fails to load stops the start).
  const scram = new Map<string, ScramCredentials>();
  for (const [name, e] of entries ?? []) if (e.scram) scram.set(name, e.scram);
  const enhanced = config.auth.enhanced;
  const authMethods = await createAuthMethods({
    scram: entries && enhanced.scram ? { credentials: scram, dataDir: config.dataDir } : null,
    methods: enhanced.methods,
    log: {
      info: (obj, msg) => log.info(obj, msg),
      warn: (obj, msg) => log.warn(obj, msg),
      error: (obj, msg) => log.error(obj, msg),
    },
  });
  if (authMethods.size > 0) env.enhancedAuth = { methods: new Set(authMethods.keys()), maxSteps: enhanced.maxSteps };
  const pool: HashPool | undefined = users ? createHashPool({ maxThreads: 1 }) : undefined;
  const auth = createAuthenticator({
    allowAnonymous: config.auth.allowAnonymous,
    users,
    pool: pool ?? { verify: async () => false },
  });
  const identify = createIdentify(auth, await createJwtVerifier(config.auth.jwt));
  // A username vouched for by a verified client certificate (tls.clientCertUsername) needs no password.
  const authenticate: Authenticate = (u, p, certified) => (certified && u !== undefined ? identify.certificate(u) : identify.mqtt(u, p));
  const metrics = new Metrics(system.thread === 'main' ? `main/gateway:${index}` : `gw${index}`);
  // A gateway thread's failed actor messages (on the main thread the supervisor counts them).
  if (system.thread !== MAIN) metrics.actorErrors = () => system.actorErrors;
  const actor = new GatewayActor(
    {
      index,
      shards,
      maxConnections: limits.maxConnections,
      socketBufferHighWater: limits.socketBufferHighWater,
      maxPacketSize: limits.maxPacketSize,
      connectTimeout: limits.connectTimeout,
      authMethods,
      reauthTimeout: enhanced.reauthTimeout,
      generation: o.generation ?? 0,
      connCounter: o.connCounter,
      durability: config.store.durability,
      queueFullPolicy: limits.queueFullPolicy,
      cluster: config.cluster.nats !== null,
    },
    system,
    env,
    authenticate,
    metrics,
    log,
  );
  system.spawn(gatewayName(index), actor);
  await actor.ready;

  let tcp: TcpListener | undefined;
  let ws: WsServer | undefined;
  let tlsL: TlsListener | undefined;
  let wss: WsServer | undefined;
  // The HTTP side of the ws and wss listeners: the same endpoints on both.
  const httpRoutes: HttpRoutes = {
    get: {
      '/healthz': (reply) => reply('200 OK', 'text/plain', 'ok\n'),
      // Liveness is /healthz; /readyz is 200 only while the node takes traffic: state
      // restored, every listener open, no thread being replaced, no stop begun (a load
      // balancer drains it on 503). The body names the state.
      '/readyz': (reply) => {
        const state = readReadiness(o.readiness);
        reply(state === 'ready' ? '200 OK' : '503 Service Unavailable', 'text/plain', `${state}\n`);
      },
      '/metrics': (reply) =>
        actor.requestMetrics((text) => reply('200 OK', 'text/plain; version=0.0.4; charset=utf-8', text)),
    },
    configure: (app) => {
      const cors = createCors(config.listeners.ws.corsOrigins);
      cors.preflight(app, ['/files', '/files/:id/:name', '/api/v1/*', '/im/contacts']);
      registerAdminRoutes(app, config.admin.token, (req, reply) => actor.requestAdmin(req, reply), (series) => metrics.inc(series), cors.wrap);
      if (config.im.enabled && config.im.files.enabled) {
        registerFileRoutes(
          app,
          { dir: join(config.dataDir, 'files'), maxBytes: config.im.files.maxBytes, publicUrl: config.im.files.publicUrl },
          (authorization, token) => identify.http(authorization, token),
          { count: (series, n) => metrics.inc(series, n), log },
          cors.wrap,
        );
      }
      if (config.im.enabled) {
        const directory = directoryViaAdmin((req, reply) => actor.requestAdmin(req, reply));
        registerContactsRoute(app, config.im.defaultNamespace, (authorization, token) => identify.http(authorization, token), directory, log, cors.wrap);
      }
      // The browser client (docs/web-client.md): `/`, `/sw.js`, `/assets/*`, `/web/config`.
      if (config.web.enabled) registerWebRoutes(app, config.web.dir ?? defaultWebDir(), webClientConfig(config));
    },
  };
  // A WebSocket message may carry one whole MQTT packet plus framing slack.
  const maxPayloadLength = limits.maxPacketSize + 16;
  try {
    if (config.listeners.tcp.enabled) {
      tcp = await listenTcp({ host: config.host, port: o.tcpPort ?? config.listeners.tcp.port, fd: o.tcpFd }, actor.accept);
    }
    if (config.listeners.ws.enabled) {
      ws = await listenWs({ host: config.host, port: o.wsPort ?? config.listeners.ws.port, path: config.listeners.ws.path, maxPayloadLength }, actor.accept, httpRoutes);
    }
    if (config.listeners.tls.enabled) {
      tlsL = await listenTls(
        {
          host: config.host,
          port: o.tlsPort ?? config.listeners.tls.port,
          fd: o.tlsFd,
          tls: config.tls,
          handshakeTimeout: limits.connectTimeout * 1000,
          onHandshakeError: (err) => {
            metrics.inc('tls_handshake_failures_total');
            log.debug({ err: err.message }, 'TLS handshake failed');
          },
        },
        actor.accept,
      );
    }
    if (config.listeners.wss.enabled) {
      const t = config.tls;
      // A reload listens again on the same port (SO_REUSEPORT), which Linux refuses for a
      // port the kernel picked for port 0: pick a free one first.
      const port = o.wssPort ?? (config.listeners.wss.port || (await findFreePort(config.host)));
      wss = await listenWs(
        {
          host: config.host,
          port,
          path: config.listeners.wss.path,
          maxPayloadLength,
          ssl: { certFile: t.certFile!, keyFile: t.keyFile!, ...(t.passphrase !== null ? { passphrase: t.passphrase } : {}) },
        },
        actor.accept,
        httpRoutes,
      );
    }
  } catch (err) {
    // A listener that could not open: what did open must not outlive this gateway (a live
    // uWS app at thread exit aborts the process).
    ws?.close();
    wss?.close();
    throw err;
  }
  log.debug({ tcp: tcp?.port, ws: ws?.port, tls: tlsL?.port, wss: wss?.port }, 'gateway listening');
  let nativeClosed = false;
  const closeNative = () => {
    if (nativeClosed) return;
    nativeClosed = true;
    ws?.close();
    wss?.close();
  };
  return {
    actor,
    tcpPort: tcp?.port,
    tcpFd: tcp?.fd,
    wsPort: ws?.port,
    tlsPort: tlsL?.port,
    tlsFd: tlsL?.fd,
    wssPort: wss?.port,
    reloadTls: async () => {
      tlsL?.reload();
      await wss?.reload();
      metrics.inc('tls_reloads_total');
      log.debug({ tls: tlsL?.port, wss: wss?.port }, 'TLS certificates reloaded');
    },
    closeNative,
    stop: async () => {
      // The TCP and TLS descriptors are shared by every gateway thread; closing them stops
      // accepting for all, which is what a node-wide stop (or a restart of every gateway)
      // wants. First thing: once one thread closed a shared descriptor, its number may be
      // reused by a new socket, while this thread's listener still has that number in its
      // event loop (docs/architecture.md, "Supervision").
      const listenersClosed = Promise.all([
        tcp && new Promise<void>((r) => tcp!.server.close(() => r())),
        // A connection still in its TLS handshake is not the gateway's yet (shutdown()
        // does not end it) and would hold the close until its handshake timeout: wait for
        // the others only (ended ones go within 2 s).
        tlsL &&
          new Promise<void>((r) => {
            tlsL!.server.close(() => r());
            setTimeout(r, 2500).unref();
          }),
      ]);
      actor.shutdown();
      // Let the DISCONNECTs reach the sockets before uWS goes away.
      await new Promise((r) => setTimeout(r, 50));
      closeNative();
      // uWS closes its sockets and loop handles on the next turns; a thread torn down with
      // a live uWS handle aborts the process.
      await new Promise((r) => setTimeout(r, 50));
      await listenersClosed;
      await pool?.close();
      metrics.close();
    },
  };
}
