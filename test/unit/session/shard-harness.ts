/**
 * A ShardActor on an in-thread ActorSystem with fake gateways and a fake coordinator that
 * record what they receive, for the shard unit tests (shard-actor.test.ts, journal.test.ts).
 *
 * Not a test file: each test file that uses it runs `cleanups` in its own afterEach.
 */
import { vi } from 'vitest';
import type { Logger } from 'pino';
import { ActorSystem } from '../../../src/runtime/system.js';
import { ShardActor, type ShardOptions } from '../../../src/session/shard-actor.js';
import { Metrics } from '../../../src/admin/metrics.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import type { Store } from '../../../src/store/types.js';
import { makeConnId } from '../../../src/gateway/conn-id.js';
import {
  COORDINATOR,
  gatewayName,
  shardName,
  type AppMessage,
  type CoordinatorMsg,
  type GatewayMsg,
  type Outbound,
  type QoS,
  type ShardMsg,
  type SubRequest,
} from '../../../src/protocol/messages.js';

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

export const silentLog = {
  child: () => silentLog,
  info: () => {},
  warn: () => {},
  error: () => {},
  debug: () => {},
  trace: () => {},
} as unknown as Logger;

/** Run (and emptied) by each test file's afterEach, see runCleanups(). */
export const cleanups: Array<() => void> = [];

/** For afterEach: runs the registered cleanups and restores the real timers. */
export function runCleanups(): void {
  for (const c of cleanups.splice(0)) c();
  vi.useRealTimers();
}

export type ConnectMsg = Extract<ShardMsg, { t: 'connect' }>;
export type PublishMsg = Extract<ShardMsg, { t: 'publish' }>;

export interface ShardHarness {
  actor: ShardActor;
  sys: ActorSystem;
  /** The shard's store (options.store). */
  store: Store;
  shard: (m: ShardMsg) => void;
  /** Everything each gateway received, in order. */
  gw: GatewayMsg[][];
  coord: CoordinatorMsg[];
  metrics: Metrics;
  /** Takes (and forgets) what gateway `i` received so far. */
  take(i?: number): GatewayMsg[];
  /** Acknowledges every routeAdd that gateway `i` has seen so far. */
  ackRoutes(i?: number): void;
  connect(clientId: string, o?: Partial<ConnectMsg>): number;
  subscribe(clientId: string, connId: number, subs: Array<Partial<SubRequest> & { filter: string }>, subId?: number): void;
  publish(topic: string, qos: QoS, payload?: string, over?: Partial<AppMessage>, extra?: Partial<PublishMsg>): void;
  ack(clientId: string, connId: number, kind: 'puback' | 'pubrec' | 'pubcomp', packetId: number): void;
}

export interface ShardHarnessOptions {
  /**
   * Rebuild the sessions in the store before the shard takes any message (as
   * shard-host.ts does); the result is in `restored`.
   */
  restore?: boolean;
  /** The Retain Handling of subscribe() requests that do not set one (default 0). */
  retainHandling?: 0 | 1 | 2;
}

/** A shard with `opts` over the defaults below (a fresh MemoryStore unless `opts.store`). */
export function shardHarness(
  opts: Partial<ShardOptions> = {},
  ho: ShardHarnessOptions = {},
): ShardHarness & { restored?: ReturnType<ShardActor['restore']> } {
  const o: ShardOptions = {
    index: 0,
    gateways: 1,
    shards: 1,
    maxInflight: 10,
    maxQueuedMessages: 100,
    maxSubscriptionsPerClient: 50,
    maxSessions: 1000,
    maxAnonymousSessions: 1000,
    im: false,
    store: new MemoryStore(),
    evictAfterMs: null,
    dedupMaxAgeMs: 3_600_000,
    asyncLagMs: null,
    ...opts,
  };
  const retainHandling = ho.retainHandling ?? 0;
  const sys = new ActorSystem('t', () => 't');
  const gw: GatewayMsg[][] = [];
  const routeAdds: Array<Array<{ seq: number }>> = [];
  for (let i = 0; i < o.gateways; i++) {
    const box: GatewayMsg[] = [];
    const adds: Array<{ seq: number }> = [];
    gw.push(box);
    routeAdds.push(adds);
    sys.spawn<GatewayMsg>(gatewayName(i), {
      receive(m) {
        box.push(m);
        if (m.t === 'routeAdd') adds.push({ seq: m.seq });
      },
    });
  }
  const coord: CoordinatorMsg[] = [];
  sys.spawn<CoordinatorMsg>(COORDINATOR, { receive: (m) => void coord.push(m) });
  const metrics = new Metrics('shard0');
  cleanups.push(() => metrics.close());
  const actor = new ShardActor(o, sys, metrics, silentLog);
  // Like shard-host.ts: restore before the shard is spawned (takes messages).
  const restored = ho.restore ? actor.restore() : undefined;
  const ref = sys.spawn<ShardMsg>(shardName(o.index), actor);
  let counter = 0;
  return {
    actor,
    sys,
    store: o.store,
    restored,
    shard: (m) => ref.tell(m),
    gw,
    coord,
    metrics,
    take: (i = 0) => gw[i]!.splice(0),
    ackRoutes(i = 0) {
      for (const a of routeAdds[i]!.splice(0)) ref.tell({ t: 'routeAck', gw: i, seq: a.seq });
    },
    connect(clientId, over = {}) {
      const g = over.gw ?? 0;
      const connId = over.connId ?? makeConnId(++counter, g);
      ref.tell({ t: 'connect', gw: g, connId, clientId, protocolVersion: 5, cleanStart: true, expiry: 0, receiveMaximum: 65535, ...over });
      return connId;
    },
    subscribe(clientId, connId, subs, subId) {
      ref.tell({
        t: 'subscribe',
        connId,
        clientId,
        packetId: 1,
        subId,
        subs: subs.map((s) => ({ qos: 1, noLocal: false, retainAsPublished: false, retainHandling, code: 0, ...s })),
      });
    },
    publish(topic, qos, payload = 'p', over = {}, extra = {}) {
      ref.tell({ t: 'publish', msg: { topic, payload: Buffer.from(payload), qos, retain: false, ...over }, ...extra });
    },
    ack(clientId, connId, kind, packetId) {
      ref.tell({ t: 'ack', connId, clientId, kind, packetId });
    },
  };
}

/**
 * Connects, subscribes and completes the route handshake; returns the connId. `wait` is
 * how long to let the shard work after the acknowledgements (one turn by default).
 */
export async function online(
  h: ShardHarness,
  clientId: string,
  filters: Array<[string, QoS]>,
  over: Partial<ConnectMsg> = {},
  wait: () => Promise<void> = tick,
): Promise<number> {
  const connId = h.connect(clientId, over);
  h.subscribe(clientId, connId, filters.map(([filter, qos]) => ({ filter, qos })));
  await tick();
  for (let i = 0; i < h.gw.length; i++) h.ackRoutes(i);
  await wait();
  for (let i = 0; i < h.gw.length; i++) h.take(i);
  return connId;
}

/** The `pub` outbounds of the deliver messages in `msgs`. */
export function pubs(msgs: GatewayMsg[]): Array<Extract<Outbound, { k: 'pub' }> & { connId: number }> {
  const out: Array<Extract<Outbound, { k: 'pub' }> & { connId: number }> = [];
  for (const m of msgs) {
    if (m.t === 'deliver') for (const x of m.out) if (x.k === 'pub') out.push({ ...x, connId: m.connId });
    // A fan-out to several connections of one gateway travels as one group.
    if (m.t === 'deliverGroup')
      for (const it of m.items) out.push({ k: 'pub', msg: m.msg, qos: it.qos, packetId: it.packetId, dup: false, retain: it.retain, subIds: it.subIds, connId: it.connId });
  }
  return out;
}

/** The payloads of the `pub` outbounds in `msgs`, as text. */
export const payloads = (msgs: GatewayMsg[]): string[] => pubs(msgs).map((p) => Buffer.from(p.msg.payload).toString());
