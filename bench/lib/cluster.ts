/**
 * A Switchboard cluster under test (docs/cluster.md): one nats-server (with JetStream,
 * store in its temp dir: brokers.ts `natsBus`) and N Switchboard
 * node processes on this host, each started like the single broker of brokers.ts
 * (`node dist/src/cli.js start`, same environment for store.durability, its own free
 * loopback ports and temp data directory, under the leash, tracked for cleanup), plus
 * `--cluster-nats nats://HOST:PORT --node nI` and the per-node thread arguments.
 *
 * The handle is a BrokerHandle whose host/port/pid are node 0's (where the conns
 * scenario's publisher connects) and whose `cluster` lists every process. `exit` is set
 * as soon as any of them exits on its own; stop() sends SIGTERM to every node (SIGKILL
 * after the grace period, at least STOP_GRACE_MS), then to nats-server. Why a cluster at all: one process holds at
 * most ~19k connections here (20,000 descriptors, a hard limit), see
 * bench/scenarios/conns.md.
 */
import { performance } from 'node:perf_hooks';
import { startBroker, type BrokerExit, type BrokerHandle, type BrokerName, type ClusterInfo, type StopResult } from './brokers.js';

/** One thread per node (every actor on the main thread): measured best on 2 cores, see conns.md. */
export const ONE_THREAD_ARGS = ['--gateways', '0', '--shards', '0'];
/** The least time a node gets between SIGTERM and SIGKILL. */
export const STOP_GRACE_MS = 15_000;

export interface ClusterStartOptions {
  nodes: number;
  host?: string;
  /** Arguments for every node before extraArgs (e.g. ONE_THREAD_ARGS; [] = the default topology). */
  nodeArgs?: string[];
  /** Further Switchboard arguments (--switchboard-args). */
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Per process: spawn to accepting connections (nodes start in parallel). */
  readyTimeoutMs?: number;
}

/** Starts nats-server, then the N nodes in parallel; on any failure stops what started and throws. */
export async function startSwitchboardCluster(name: BrokerName, o: ClusterStartOptions): Promise<BrokerHandle & { cluster: ClusterInfo }> {
  if (!Number.isInteger(o.nodes) || o.nodes < 1) throw new Error(`a cluster needs at least one node (got ${o.nodes})`);
  const host = o.host ?? '127.0.0.1';
  const nodeArgs = o.nodeArgs ?? ONE_THREAD_ARGS;
  const t0 = performance.now();
  const nats = await startBroker('nats', { host, natsBus: true, readyTimeoutMs: o.readyTimeoutMs ?? 30_000 });
  const url = `nats://${host}:${nats.port}`;
  const started = await Promise.allSettled(
    Array.from({ length: o.nodes }, (_, i) =>
      startBroker(name, {
        host,
        env: o.env,
        readyTimeoutMs: o.readyTimeoutMs ?? 60_000,
        extraArgs: [...nodeArgs, ...(o.extraArgs ?? []), '--cluster-nats', url, '--node', `n${i}`],
      }),
    ),
  );
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(nodes.map((n) => n.stop(3000)));
    await nats.stop(3000);
    throw new Error(`cluster: a node did not start: ${(failed.reason as Error).message}`);
  }
  const n0 = nodes[0]!;
  const label = (i: number) => `n${i}`;

  const cluster: ClusterInfo = {
    nodes: nodes.map((n, i) => ({ name: label(i), host: n.host, port: n.port, ...(n.httpPort !== undefined ? { httpPort: n.httpPort } : {}), pid: n.pid })),
    nats: { name: 'nats-server', port: nats.port, pid: nats.pid },
    nodeArgs: [...nodeArgs, ...(o.extraArgs ?? [])],
    processes: () => [...nodes.map((n, i) => ({ name: label(i), pid: n.pid })), { name: 'nats-server', pid: nats.pid }],
  };

  const stop = async (graceMs = 3000): Promise<StopResult> => {
    const s0 = performance.now();
    // Nodes first (they leave NATS cleanly), then the server they met on. Several nodes
    // stopping at once on a busy 2-core host take longer than one broker: at least 15 s.
    const grace = Math.max(graceMs, STOP_GRACE_MS);
    const ns = await Promise.all(nodes.map((n) => n.stop(grace)));
    const bus = await nats.stop(grace);
    // nats-server exits with status 1 after a SIGTERM it handled: its clean stop.
    const busClean = !bus.unexpected && !bus.killed && (bus.code === 0 || bus.code === 1 || bus.signal === 'SIGTERM');
    const bad = ns.find((r) => r.unexpected || r.killed || (r.code !== 0 && r.signal !== 'SIGTERM'));
    const worst = bad ?? (busClean ? undefined : bus);
    return {
      code: worst ? worst.code : 0,
      signal: worst ? worst.signal : null,
      unexpected: [...ns, bus].some((r) => r.unexpected),
      killed: [...ns, bus].some((r) => r.killed),
      stopMs: Math.round(performance.now() - s0),
    };
  };

  const handle: BrokerHandle & { cluster: ClusterInfo } = {
    name,
    host,
    port: n0.port,
    ...(n0.httpPort !== undefined ? { httpPort: n0.httpPort } : {}),
    ...(n0.wsPort !== undefined ? { wsPort: n0.wsPort, wsPath: n0.wsPath } : {}),
    pid: n0.pid,
    child: n0.child,
    startMs: Math.round(performance.now() - t0),
    readyMs: Math.max(...nodes.map((n) => n.readyMs)),
    dir: n0.dir,
    output: () =>
      [...nodes.map((n, i) => [label(i), n] as const), ['nats-server', nats] as const]
        .flatMap(([who, h]) =>
          h
            .output()
            .split('\n')
            .filter((l) => l.trim())
            .map((l) => `${who}: ${l}`),
        )
        .join('\n'),
    /** The first process that exited on its own (a node or nats-server), else undefined. */
    get exit(): BrokerExit | undefined {
      return [...nodes, nats].map((h) => h.exit).find((e) => e !== undefined);
    },
    set exit(_e: BrokerExit | undefined) {
      /* derived from the processes */
    },
    stop,
    restart: () => Promise.reject(new Error('restart() is not supported for a cluster')),
    cluster,
  };
  return handle;
}
