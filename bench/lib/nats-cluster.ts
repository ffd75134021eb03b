/**
 * The NATS peer as a NATS cluster (conns above ~19k connections; issue 10): K nats-server
 * processes on this host, each with JetStream (its MQTT listener needs it), an MQTT
 * listener, a monitoring port, and a `cluster` block with routes to every other server.
 * Each is started like the single NATS broker of brokers.ts (under the leash, tracked,
 * temp dir, StartOptions.natsCluster). MQTT's streams and consumers are not replicated
 * (`stream_replicas: 1`, `consumer_replicas: 1`, both in nats-server 2.9's `mqtt` block):
 * R1 keeps them on one server each (placed by the JetStream meta leader) without a Raft
 * group per asset, as close to the one-server setup as a cluster gets.
 *
 * The handle's host/port/pid are s0's (where the conns publisher connects), `cluster`
 * lists every server (`nodes`, the clients spread round-robin over their MQTT ports). The
 * run starts once every server accepts MQTT connections, the cluster has formed (every
 * server's /routez: K - 1 routes; /jsz: a meta leader, meta group of K), and every server
 * took a probe MQTT client with a QoS 1 subscription (which also creates its MQTT streams
 * before the RSS baseline, as the publisher does on a single server). stop():
 * first waits (at most STOP_DRAIN_MS) until the servers have deleted the JetStream
 * consumers of the clients that left (clean sessions: 150-400 deletions/s here; a server
 * stopped in the middle of that takes longer than the grace and logs a warning per
 * consumer), then SIGTERM to every server at once (SIGKILL after STOP_GRACE_MS). Any
 * failure while starting stops what started.
 */
import { performance } from 'node:perf_hooks';
import { freePort, startBroker, type BrokerExit, type BrokerHandle, type ClusterInfo, type StopResult } from './brokers.js';
import { STOP_GRACE_MS } from './cluster.js';
import { encodeSubscribe, MiniConn } from './mini-conn.js';
import { cpuNsOf } from './proc-fine.js';

export interface NatsServerPorts {
  client: number;
  cluster: number;
  mqtt: number;
  http: number;
}

export const NATS_CLUSTER_NAME = 'bench-mqtt';
/** stop(): the longest wait for the consumers of departed clients to be deleted. */
export const STOP_DRAIN_MS = 300_000;
/**
 * stop(): polls of /jsz (1 s apart) without a change and with the servers idle (less than
 * DRAIN_IDLE_CPU_PCT of a core together) after which the consumer count is taken as final:
 * the first deletions can take many seconds to show while the servers work through the
 * disconnects, and a deletion whose request timed out in the server never shows.
 */
export const DRAIN_QUIET_POLLS = 5;
export const DRAIN_IDLE_CPU_PCT = 20;
export const natsServerName = (i: number): string => `bench-s${i}`;

/** The configuration of server i of a NATS cluster with these ports (pure: tested). */
export function natsClusterConfig(i: number, o: { host: string; ports: NatsServerPorts[]; storeDir: string }): string {
  const me = o.ports[i];
  if (!me) throw new Error(`no ports for server ${i} of ${o.ports.length}`);
  const routes = o.ports.flatMap((p, k) => (k === i ? [] : [`nats-route://${o.host}:${p.cluster}`]));
  return [
    `server_name: ${natsServerName(i)}`,
    `listen: ${o.host}:${me.client}`,
    `http: ${o.host}:${me.http}`,
    `jetstream { store_dir: ${JSON.stringify(o.storeDir)} }`,
    'cluster {',
    `  name: ${NATS_CLUSTER_NAME}`,
    `  listen: ${o.host}:${me.cluster}`,
    `  routes: [${routes.join(', ')}]`,
    '}',
    // Sessions, messages and retained messages (streams) and the QoS 1 subscriptions
    // (consumers) stay on one server each: no replication between the K processes.
    'mqtt {',
    `  listen: ${o.host}:${me.mqtt}`,
    '  stream_replicas: 1',
    '  consumer_replicas: 1',
    '}',
    '',
  ].join('\n');
}

/** What one server's monitoring port said (undefined: no answer). */
export interface NatsServerStatus {
  routes?: number;
  metaLeader?: string;
  metaSize?: number;
}

/** Why a cluster of k servers has not formed yet, or undefined once it has (pure: tested). */
export function natsClusterNotFormed(k: number, statuses: NatsServerStatus[]): string | undefined {
  const why: string[] = [];
  statuses.forEach((s, i) => {
    if (s.routes === undefined || s.routes < k - 1) why.push(`s${i}: ${s.routes ?? '?'}/${k - 1} routes`);
    if (!s.metaLeader) why.push(`s${i}: no JetStream meta leader`);
    else if (s.metaSize === undefined || s.metaSize < k) why.push(`s${i}: meta group of ${s.metaSize ?? '?'}/${k}`);
  });
  if (statuses.length < k) why.push(`${statuses.length} of ${k} servers answered`);
  return why.length ? why.join('; ') : undefined;
}

/**
 * Successive /jsz polls, 1 s apart: the consumer count summed over the servers and the
 * servers' CPU since the previous poll (% of one core). Done when the count is down to
 * `floor` (MQTT's own consumers, one per server for retained messages), or when it has not
 * changed over the last `quiet` polls while the servers were idle (pure: tested).
 */
export function consumersSettled(history: Array<{ consumers: number; cpuPct: number }>, floor: number, quiet = DRAIN_QUIET_POLLS): boolean {
  const last = history[history.length - 1];
  if (last === undefined) return false;
  if (last.consumers <= floor) return true;
  const tail = history.slice(-(quiet + 1));
  return tail.length === quiet + 1 && tail.every((h) => h.consumers === last.consumers) && tail.slice(1).every((h) => h.cpuPct < DRAIN_IDLE_CPU_PCT);
}

async function getJson(url: string, timeoutMs = 2000): Promise<Record<string, unknown> | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return r.ok ? ((await r.json()) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

async function serverStatus(host: string, httpPort: number): Promise<NatsServerStatus> {
  const [routez, jsz] = await Promise.all([getJson(`http://${host}:${httpPort}/routez`), getJson(`http://${host}:${httpPort}/jsz`)]);
  const meta = jsz?.['meta_cluster'] as { leader?: string; cluster_size?: number } | undefined;
  return {
    ...(typeof routez?.['num_routes'] === 'number' ? { routes: routez['num_routes'] } : {}),
    ...(meta?.leader ? { metaLeader: meta.leader } : {}),
    ...(typeof meta?.cluster_size === 'number' ? { metaSize: meta.cluster_size } : {}),
  };
}

/**
 * One MQTT client on a server: CONNECT (the first on a server creates its MQTT streams)
 * and a QoS 1 SUBSCRIBE (a JetStream consumer), then DISCONNECT. Undefined when it worked,
 * else why not.
 */
async function mqttProbe(host: string, port: number, i: number): Promise<string | undefined> {
  const c = new MiniConn({ host, port, clientId: `bench-probe-s${i}`, protocolVersion: 4, keepalive: 60 });
  const timer = setTimeout(() => c.close('no answer after 10 s'), 10_000);
  try {
    await c.connect();
    const granted = await c.subscribeEncoded(encodeSubscribe(['bench/probe'], 1, 4));
    if (granted.some((g) => g >= 0x80)) return `SUBACK refused (${granted.join(',')})`;
    await c.disconnect(2000);
    return undefined;
  } catch (e) {
    c.close();
    return (e as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

/** n distinct free loopback ports (freePort may hand out a port twice in a row). */
async function distinctFreePorts(host: string, n: number): Promise<number[]> {
  const got = new Set<number>();
  for (let tries = 0; got.size < n; tries++) {
    if (tries > n * 10) throw new Error(`could not find ${n} distinct free ports`);
    got.add(await freePort(host));
  }
  return [...got];
}

export interface NatsClusterStartOptions {
  servers: number;
  host?: string;
  /** Per server: spawn to its MQTT port accepting connections (servers start in parallel). */
  readyTimeoutMs?: number;
  /** All servers accepting to the cluster formed (routes, meta leader). */
  formTimeoutMs?: number;
}

/** Starts K nats-servers as one cluster and waits until it has formed; on any failure stops them all and throws. */
export async function startNatsCluster(o: NatsClusterStartOptions): Promise<BrokerHandle & { cluster: ClusterInfo }> {
  const k = o.servers;
  if (!Number.isInteger(k) || k < 2) throw new Error(`a NATS cluster needs at least 2 servers (got ${k})`);
  const host = o.host ?? '127.0.0.1';
  const t0 = performance.now();
  const flat = await distinctFreePorts(host, 4 * k);
  const ports: NatsServerPorts[] = Array.from({ length: k }, (_, i) => ({ client: flat[4 * i]!, cluster: flat[4 * i + 1]!, mqtt: flat[4 * i + 2]!, http: flat[4 * i + 3]! }));
  const started = await Promise.allSettled(
    ports.map((p, i) =>
      startBroker('nats', {
        host,
        readyTimeoutMs: o.readyTimeoutMs ?? 30_000,
        natsCluster: { port: p.mqtt, config: (dir) => natsClusterConfig(i, { host, ports, storeDir: `${dir}/js` }) },
      }),
    ),
  );
  const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stopAll = (grace: number) => Promise.all(servers.map((s) => s.stop(grace)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopAll(3000);
    throw new Error(`NATS cluster: a server did not start: ${(failed.reason as Error).message}`);
  }
  const label = (i: number) => `s${i}`;
  const exitOf = () => servers.map((h) => h.exit).find((e) => e !== undefined);

  // Formed: every server routed to every other, and a JetStream meta leader they all know;
  // then ready: every server takes an MQTT client with a QoS 1 subscription (right after
  // the meta leader's election the first MQTT client can still be refused).
  const formDeadline = performance.now() + (o.formTimeoutMs ?? 60_000);
  let probed = new Array<string | undefined>(k).fill('not tried');
  for (;;) {
    const exited = servers.findIndex((h) => h.exit !== undefined);
    const statuses = await Promise.all(ports.map((p) => serverStatus(host, p.http)));
    let why = natsClusterNotFormed(k, statuses);
    if (!why) {
      probed = await Promise.all(ports.map((p, i) => (probed[i] === undefined ? undefined : mqttProbe(host, p.mqtt, i))));
      const bad = probed.flatMap((r, i) => (r === undefined ? [] : [`s${i}: MQTT probe: ${r}`]));
      why = bad.length ? bad.join('; ') : undefined;
    }
    if (!why && exited < 0) break;
    if (exited >= 0 || performance.now() > formDeadline) {
      const out = servers.map((h, i) => h.output().split('\n').slice(-5).map((l) => `${label(i)}: ${l}`).join('\n')).join('\n');
      await stopAll(3000);
      const what = exited >= 0 ? `${label(exited)} exited (code ${servers[exited]!.exit!.code})` : `not ready after ${o.formTimeoutMs ?? 60_000} ms (${why})`;
      throw new Error(`NATS cluster of ${k}: ${what}:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const formedMs = Math.round(performance.now() - t0);

  const cluster: ClusterInfo = {
    nodes: servers.map((h, i) => ({ name: label(i), host, port: h.port, httpPort: ports[i]!.http, pid: h.pid })),
    nodeArgs: [],
    processes: () => servers.map((h, i) => ({ name: label(i), pid: h.pid })),
  };
  const consumers = async () => {
    // A server busy deleting consumers may answer late.
    const js = await Promise.all(ports.map((p) => getJson(`http://${host}:${p.http}/jsz`, 10_000)));
    return js.some((j) => typeof j?.['consumers'] !== 'number') ? NaN : js.reduce((a, j) => a + (j!['consumers'] as number), 0);
  };
  const stop = async (graceMs = 3000): Promise<StopResult> => {
    const s0 = performance.now();
    const pids = servers.map((h) => h.pid);
    const seen: Array<{ consumers: number; cpuPct: number }> = [];
    let unanswered = 0;
    let cpu = { ns: cpuNsOf(pids), at: performance.now() };
    while (!exitOf() && performance.now() - s0 < STOP_DRAIN_MS) {
      const n = await consumers();
      const now = { ns: cpuNsOf(pids), at: performance.now() };
      const cpuPct = ((now.ns - cpu.ns) / 1e6 / Math.max(1, now.at - cpu.at)) * 100;
      cpu = now;
      // No answer from a server: counts as no change (ten in a row: give up waiting).
      if (Number.isNaN(n)) {
        if (++unanswered >= 10) break;
        if (seen.length) seen.push({ consumers: seen[seen.length - 1]!.consumers, cpuPct });
      } else {
        unanswered = 0;
        seen.push({ consumers: n, cpuPct });
      }
      if (consumersSettled(seen, k)) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const drainS = Math.round((performance.now() - s0) / 1000);
    if (seen.length > 1) {
      const [first, last] = [seen[0]!.consumers, seen[seen.length - 1]!.consumers];
      const capped = drainS * 1000 >= STOP_DRAIN_MS ? ` (gave up after ${STOP_DRAIN_MS / 1000} s)` : '';
      process.stderr.write(`  NATS cluster: ${drainS} s for the departed clients' consumers before SIGTERM, ${first} -> ${last}${capped}\n`);
    }
    const rs = await stopAll(Math.max(graceMs, STOP_GRACE_MS));
    // nats-server exits with status 1 after a SIGTERM it handled: its clean stop.
    const bad = rs.find((r) => r.unexpected || r.killed || !(r.code === 0 || r.code === 1 || r.signal === 'SIGTERM'));
    return {
      code: bad ? bad.code : 0,
      signal: bad ? bad.signal : null,
      unexpected: rs.some((r) => r.unexpected),
      killed: rs.some((r) => r.killed),
      stopMs: Math.round(performance.now() - s0),
    };
  };
  const s0 = servers[0]!;
  return {
    name: 'nats',
    host,
    port: s0.port,
    httpPort: ports[0]!.http,
    pid: s0.pid,
    child: s0.child,
    startMs: formedMs,
    readyMs: Math.max(...servers.map((h) => h.readyMs)),
    dir: s0.dir,
    output: () =>
      servers
        .flatMap((h, i) =>
          h
            .output()
            .split('\n')
            .filter((l) => l.trim())
            .map((l) => `${label(i)}: ${l}`),
        )
        .join('\n'),
    /** The first server that exited on its own, else undefined. */
    get exit(): BrokerExit | undefined {
      return exitOf();
    },
    set exit(_e: BrokerExit | undefined) {
      /* derived from the processes */
    },
    stop,
    restart: () => Promise.reject(new Error('restart() is not supported for a cluster')),
    cluster,
  };
}
