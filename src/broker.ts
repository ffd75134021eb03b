/**
 * The supervisor (main thread): computes the topology, creates the links between every
 * pair of threads, starts shard threads, then gateway threads (the first one binds the
 * listeners, the others share them), hosts the coordinator, restarts a thread that
 * crashed, and stops everything gracefully.
 *
 * Restart policy: a shard restarts alone (its sessions were in its memory: the gateways
 * close the connections whose session lived there, and clients reconnect). Gateways share
 * one TCP listening descriptor, and a dying thread closes it for all, so a gateway crash
 * restarts every gateway.
 */
import os from 'node:os';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { resolveThreads } from './config/schema.js';
import { ActorSystem } from './runtime/system.js';
import { createLinkPair, PortLink } from './runtime/port-link.js';
import {
  MAIN,
  gatewayCount,
  gatewayThread,
  placementOf,
  shardCount,
  shardThread,
  threadNames,
  type Topology,
} from './runtime/topology.js';
import { workerEntry } from './runtime/worker-url.js';
import { COORDINATOR, gatewayName, shardName, type GatewayMsg, type ShardMsg } from './protocol/messages.js';
import type { FromWorker, LinkSpec, ToWorker, WorkerInit } from './protocol/control.js';
import { CoordinatorActor } from './coordinator/coordinator-actor.js';
import { Metrics } from './admin/metrics.js';
import { DECLARED_COUNTERS } from './admin/render-metrics.js';
import { createLogger } from './log.js';
import { startGatewayHost, type GatewayHost } from './gateway/gateway-host.js';
import { startShardHost } from './session/shard-host.js';
import { MAX_GATEWAYS, firstConnId } from './gateway/conn-id.js';
import { findFreePort } from './transport/free-port.js';
import { loadSecureContext, tlsEnabled } from './transport/tls-context.js';
import { lockDataDir, openStore, storeDir } from './store/open.js';
import { reshardIfNeeded } from './store/reshard.js';
import { startCluster, type ClusterHandle } from './cluster/start.js';
import type { ShardActor } from './session/shard-actor.js';
import { createReadinessCell, setReadiness } from './runtime/readiness.js';

export const VERSION = '0.1.0';
/** Shards are a bitmask in the route table and in held acks (bits 0..28; 29 and 30 are the cluster link and the coordinator). */
const MAX_SHARDS = 29;

export interface BrokerHandle {
  tcpPort?: number;
  wsPort?: number;
  /** MQTT over TLS (listeners.tls). */
  tlsPort?: number;
  /** MQTT over secure WebSocket and HTTPS (listeners.wss). */
  wssPort?: number;
  /**
   * SIGHUP: every gateway re-reads tls.certFile / keyFile / caFile for new handshakes;
   * established connections keep going. Rejects (certificate unchanged) when the files
   * cannot be used. Nothing to do without a TLS listener.
   */
  reloadTls(): Promise<void>;
  topology: Topology;
  log: Logger;
  /** Test hook: make a worker thread crash with an uncaught exception. */
  crashThread(role: 'gateway' | 'shard', index: number): void;
  /** Resolves when the supervisor restarted the given role `count` times in total. */
  restarts: { gateway: number; shard: number };
  close(): Promise<void>;
}

interface ThreadRec {
  name: string;
  role: 'gateway' | 'shard';
  index: number;
  worker: Worker;
  stopping: boolean;
}

export async function startBroker(config: Config, opts: { logger?: Logger } = {}): Promise<BrokerHandle> {
  const t = resolveThreads(config, os.availableParallelism());
  if (t.gateways > MAX_GATEWAYS) throw new Error(`threads.gateways: at most ${MAX_GATEWAYS}`);
  if (t.shards > MAX_SHARDS) throw new Error(`threads.shards: at most ${MAX_SHARDS}`);
  const topology: Topology = { gatewayThreads: t.gateways, shardThreads: t.shards };
  const log = opts.logger ?? createLogger(config.log.level, MAIN);
  // Certificate files that are missing, unreadable or do not match stop the start here,
  // with the key and the file named, before any thread or store is opened.
  if (tlsEnabled(config)) loadSecureContext(config.tls);
  const system = new ActorSystem(MAIN, placementOf(topology));
  system.onActorError = (actor, err) => log.error({ err, actor }, 'actor failed on a message');
  const connCounter = new Int32Array(new SharedArrayBuffer(4));
  const readiness = createReadinessCell();
  // The coordinator's store keeps the shard layout: a data dir written with another shard
  // count is redistributed before any shard opens its store.
  const unlock = config.store.durability === 'memory' ? () => {} : lockDataDir(config.dataDir);
  const coordinatorStore = openStore(config, 'coordinator');
  if (config.store.durability !== 'memory') await reshardIfNeeded(storeDir(config.dataDir), shardCount(topology), coordinatorStore, log);
  const metrics = new Metrics('main');
  for (const series of DECLARED_COUNTERS) metrics.inc(series, 0);
  metrics.mailboxDepth = () => system.mailboxDepth();
  metrics.actorErrors = () => system.actorErrors;
  const coordinator = new CoordinatorActor(
    {
      gateways: gatewayCount(topology),
      shards: shardCount(topology),
      maxRetainedMessages: config.limits.maxRetainedMessages,
      version: VERSION,
      sysInterval: 10,
      connCounter,
      im: config.im,
      dataDir: config.dataDir,
      topicLimits: config.limits,
      store: coordinatorStore,
    },
    system,
    metrics,
    log.child({ actor: COORDINATOR }),
  );
  system.spawn(COORDINATOR, coordinator);
  const threads = new Map<string, ThreadRec>();
  const restarts = { gateway: 0, shard: 0 };
  let closing = false;
  /** The node's cluster link (cluster.nats), once spawned. */
  let cluster: ClusterHandle | undefined;
  // /readyz (src/runtime/readiness.ts): ready once started, until a stop begins, and not
  // while a crashed thread is being replaced.
  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  let replacing = 0;
  const updateReadiness = (): void =>
    setReadiness(readiness, phase !== 'running' ? phase : replacing > 0 ? 'restarting' : 'ready');
  let listen: { tcpPort?: number; tcpFd?: number; wsPort?: number; tlsPort?: number; tlsFd?: number; wssPort?: number } = {};
  const localGateways: GatewayHost[] = [];

  /** New links from `name` to every live thread; returns the ends that `name` keeps. */
  const linkThread = (name: string): LinkSpec[] => {
    const mine: LinkSpec[] = [];
    for (const other of threadNames(topology)) {
      if (other === name) continue;
      if (other !== MAIN && !threads.has(other)) continue; // not started yet: it links when it starts
      const { a, b } = createLinkPair(new MessageChannel());
      mine.push({ thread: other, port: a.port, counters: a.counters, side: a.side });
      const theirs: LinkSpec = { thread: name, port: b.port, counters: b.counters, side: b.side };
      if (other === MAIN) system.addLink(name, new PortLink(b));
      else threads.get(other)!.worker.postMessage({ t: 'link', link: theirs } satisfies ToWorker, [b.port]);
    }
    return mine;
  };

  const spawn = (role: 'gateway' | 'shard', index: number, extra: Partial<WorkerInit> = {}): Promise<FromWorker> => {
    const name = role === 'gateway' ? gatewayThread(topology, index) : shardThread(topology, index);
    const links = linkThread(name);
    const init: WorkerInit = { role, index, thread: name, config, topology, links, connCounter, readiness, ...extra };
    const entry = workerEntry(role);
    const worker = new Worker(entry.url, {
      argv: entry.argv,
      workerData: init,
      transferList: links.map((l) => l.port),
      name,
    });
    const rec: ThreadRec = { name, role, index, worker, stopping: false };
    threads.set(name, rec);
    const first = new Promise<FromWorker>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    worker.on('error', (err) => log.error({ err, thread: name }, 'thread failed'));
    worker.on('exit', (code) => onExit(rec, code));
    return first;
  };

  const stopWorker = (rec: ThreadRec): Promise<void> =>
    new Promise<void>((resolve) => {
      rec.stopping = true;
      let last: NodeJS.Timeout | undefined;
      // A thread slow to stop (a loaded host) is not terminated at once: terminating a
      // gateway whose uWS app is still open aborts the whole process. It is told to crash
      // instead (its uncaught-exception path closes the native handles, then exits), and
      // terminated only if that does not end it either.
      const timer = setTimeout(() => {
        if (rec.role === 'gateway') rec.worker.postMessage({ t: 'crash' } satisfies ToWorker);
        last = setTimeout(() => void rec.worker.terminate().then(() => resolve()), rec.role === 'gateway' ? 10_000 : 0);
      }, 5000);
      rec.worker.once('exit', () => {
        clearTimeout(timer);
        clearTimeout(last);
        resolve();
      });
      rec.worker.on('message', (m: FromWorker) => {
        if (m.t !== 'stopped') return;
        clearTimeout(timer);
        void rec.worker.terminate().then(() => resolve());
      });
      rec.worker.postMessage({ t: 'stop' } satisfies ToWorker);
    });

  const onExit = (rec: ThreadRec, code: number): void => {
    if (threads.get(rec.name) === rec) threads.delete(rec.name);
    system.removeLink(rec.name);
    if (closing || rec.stopping) return;
    log.error({ thread: rec.name, code }, 'thread exited unexpectedly; restarting');
    if (rec.role === 'shard') void restartShard(rec.index);
    else void restartGateways();
  };

  const tellGateways = (m: GatewayMsg): void => {
    for (let g = 0; g < gatewayCount(topology); g++) system.ref<GatewayMsg>(gatewayName(g)).tell(m);
  };

  /** Tells an actor through its thread's control channel (ordered with `link`), or locally. */
  const tellOrdered = (actor: string, msg: GatewayMsg | ShardMsg): void => {
    const thread = placementOf(topology)(actor);
    const rec = threads.get(thread);
    if (thread === MAIN || !rec) system.ref<GatewayMsg | ShardMsg>(actor).tell(msg);
    else rec.worker.postMessage({ t: 'tell', to: actor, msg } satisfies ToWorker);
  };

  const restartShard = async (index: number): Promise<void> => {
    restarts.shard++;
    // Not ready until it is back (a restart that fails leaves the node not ready).
    replacing++;
    updateReadiness();
    coordinator.nodeCounters['thread_restarts_total{role="shard"}'] = restarts.shard;
    // At once: the gateways close the connections whose session lived there and stop
    // taking publishes that would go to it, until it is back (its sessions come back from
    // its store; a publish routed to a dead thread would be lost).
    // On the control channel, ahead of the new thread's links (see ToWorker 'tell').
    for (let g = 0; g < gatewayCount(topology); g++) tellOrdered(gatewayName(g), { t: 'shardDown', shard: index } satisfies GatewayMsg);
    cluster?.shardDown(index);
    // The other shards send nothing more to it (shared subscriptions) until it is back.
    for (let s = 0; s < shardCount(topology); s++) if (s !== index) tellOrdered(shardName(s), { t: 'peerDown', shard: index } satisfies ShardMsg);
    await spawn('shard', index);
    // Its shared subscription groups are rebuilt from their members before the gateways
    // ask for its routes, so the snapshot has their filters.
    await coordinator.resyncShared(index);
    tellGateways({ t: 'shardUp', shard: index });
    cluster?.shardUp(index);
    coordinator.shardRestarted(index);
    replacing--;
    updateReadiness();
    log.info({ shard: index }, 'shard restarted');
  };

  let gatewayRestart: Promise<void> | null = null;
  const restartGateways = (): Promise<void> => {
    if (gatewayRestart) return gatewayRestart;
    gatewayRestart = (async () => {
      restarts.gateway++;
      coordinator.nodeCounters['thread_restarts_total{role="gateway"}'] = restarts.gateway;
      replacing++;
      updateReadiness();
      const live = [...threads.values()].filter((r) => r.role === 'gateway');
      for (const r of live) r.stopping = true;
      // Stop the surviving gateways gracefully, not with terminate(): a thread torn down
      // with its uWS app still open aborts the whole process (uv_loop_close() with an
      // open poll handle).
      await Promise.all(live.map(stopWorker));
      for (let g = 0; g < gatewayCount(topology); g++)
        for (let s = 0; s < shardCount(topology); s++) system.ref<ShardMsg>(shardName(s)).tell({ t: 'gatewayDown', gw: g, before: firstConnId(restarts.gateway, g) });
      await startGateways(true);
      replacing--;
      updateReadiness();
      log.info('gateways restarted');
    })().finally(() => (gatewayRestart = null));
    return gatewayRestart;
  };

  const startGateways = async (fresh: boolean): Promise<void> => {
    // Gateway 0 binds (configured ports, or 0 = any); the others reuse its descriptor/ports.
    const firstPorts = fresh
      ? { tcpPort: listen.tcpPort, wsPort: listen.wsPort, tlsPort: listen.tlsPort, wssPort: listen.wssPort }
      : topology.gatewayThreads > 1 && config.listeners.ws.enabled && config.listeners.ws.port === 0
        ? { wsPort: await findFreePort(config.host) }
        : {};
    const r0 = (await spawn('gateway', 0, { ...firstPorts, generation: restarts.gateway })) as Extract<FromWorker, { t: 'listening' }>;
    listen = { tcpPort: r0.tcpPort, tcpFd: r0.tcpFd, wsPort: r0.wsPort, tlsPort: r0.tlsPort, tlsFd: r0.tlsFd, wssPort: r0.wssPort };
    const rest: Promise<FromWorker>[] = [];
    for (let g = 1; g < topology.gatewayThreads; g++) rest.push(spawn('gateway', g, { ...listen, generation: restarts.gateway }));
    await Promise.all(rest);
  };

  // A node of a cluster reaches NATS before anything else starts: unreachable, it stops here.
  const joining = config.cluster.nats !== null ? await startCluster(config, topology, system, metrics, log, coordinator) : undefined;
  // Shards first, so gateways get their route snapshots before they accept anything.
  const localShards: ShardActor[] = [];
  if (topology.shardThreads === 0) localShards.push(startShardHost({ system, index: 0, config, topology, log }));
  else await Promise.all(Array.from({ length: topology.shardThreads }, (_, i) => spawn('shard', i)));
  // Shared subscription groups (memory only at their owners) rebuilt from the restored sessions.
  await coordinator.resyncShared(null);
  // The cluster link asks the shards for their routes (subscribes on NATS) before the
  // gateways open: a client's SUBACK then already covers the other nodes.
  if (joining) {
    cluster = joining.spawn();
    await cluster.actor.discovered;
    await cluster.ready;
  }
  coordinator.createHolds();
  if (topology.gatewayThreads === 0) {
    const host = await startGatewayHost({ system, index: 0, config, topology, connCounter, readiness, log });
    localGateways.push(host);
    listen = { tcpPort: host.tcpPort, wsPort: host.wsPort, tlsPort: host.tlsPort, wssPort: host.wssPort };
  } else {
    await startGateways(false);
  }
  // State restored (sessions by the shards, retained and IM state by the coordinator) and
  // every configured listener open.
  phase = 'running';
  updateReadiness();

  /** One gateway thread's answer to reloadTls: undefined, or what went wrong. */
  const reloadThread = (rec: ThreadRec): Promise<string | undefined> =>
    new Promise((resolve) => {
      const done = (error: string | undefined) => {
        clearTimeout(timer);
        rec.worker.off('message', onMessage);
        rec.worker.off('exit', onExit);
        resolve(error);
      };
      const onMessage = (m: FromWorker) => {
        if (m.t === 'tlsReloaded') done(m.error);
      };
      // A thread that exits meanwhile comes back (restartGateways) reading the files anew.
      const onExit = () => done(undefined);
      const timer = setTimeout(() => done(`${rec.name} did not answer within 10 s`), 10_000);
      rec.worker.on('message', onMessage);
      rec.worker.once('exit', onExit);
      rec.worker.postMessage({ t: 'reloadTls' } satisfies ToWorker);
    });

  return {
    tcpPort: listen.tcpPort,
    wsPort: listen.wsPort,
    tlsPort: listen.tlsPort,
    wssPort: listen.wssPort,
    topology,
    async reloadTls() {
      if (!tlsEnabled(config) || closing) return;
      // Checked once here, so a bad file is one clear error and no gateway changes.
      loadSecureContext(config.tls);
      await gatewayRestart;
      const errors: string[] = [];
      for (const h of localGateways) await h.reloadTls().catch((err: unknown) => errors.push((err as Error).message));
      const answers = await Promise.all([...threads.values()].filter((r) => r.role === 'gateway').map(reloadThread));
      for (const e of answers) if (e !== undefined) errors.push(e);
      if (errors.length > 0) throw new Error(`TLS reload failed: ${errors.join('; ')}`);
      log.info('TLS certificates reloaded');
    },
    log,
    restarts,
    crashThread(role, index) {
      const name = role === 'gateway' ? gatewayThread(topology, index) : shardThread(topology, index);
      const rec = threads.get(name);
      if (!rec) throw new Error(`no ${role} thread ${index} (topology has it on the main thread?)`);
      rec.worker.postMessage({ t: 'crash' } satisfies ToWorker);
    },
    async close() {
      if (phase === 'stopping') return;
      phase = 'stopping';
      updateReadiness();
      // /readyz answers 503 from now on; connected clients and new ones are still served
      // for shutdownDrain seconds, so a load balancer polling /readyz moves traffic away
      // before the listeners close. A thread that crashes meanwhile is still replaced.
      if (config.shutdownDrain > 0) await new Promise((r) => setTimeout(r, config.shutdownDrain * 1000));
      closing = true;
      await gatewayRestart;
      // Gateways first (clients are told and flushed), then shards, then the coordinator.
      for (const h of localGateways) await h.stop();
      const all = [...threads.values()];
      await Promise.all(all.filter((r) => r.role === 'gateway').map(stopWorker));
      await Promise.all(all.filter((r) => r.role === 'shard').map(stopWorker));
      for (const sh of localShards) await sh.close();
      await cluster?.close();
      await coordinator.close();
      unlock();
      metrics.close();
      system.close();
    },
  };
}
