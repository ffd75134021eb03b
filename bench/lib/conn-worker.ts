/**
 * A child process of the conns scenario (bench/scenarios/conns.ts) that holds many MQTT
 * connections (at most ~19k: the per-process descriptor limit here is 20000).
 *
 * Spawned with an IPC channel: `node --import tsx bench/lib/conn-worker.ts`. It connects
 * clients first..first+count-1 at a given rate (to one broker port, or round-robin over
 * the ports of a cluster's nodes), each subscribing to push/all (and
 * push/k100, push/k1000 for global indices < 100, < 1000), reports progress, then records
 * when each client receives each push (payload bytes 0-3 = push id, u32 LE) and reports
 * per push: how many targets got it, the first and last receipt time
 * (performance.timeOrigin + performance.now(), comparable across processes), duplicates.
 * It exits when the parent asks (after disconnecting every client) or goes away.
 *
 * Import only types from this module: importing it runs the worker.
 */
import { performance } from 'node:perf_hooks';
import { encodeSubscribe, epochNow, MiniConn, type MiniQoS } from './mini-conn.js';

export type PushGroup = 'k100' | 'k1000' | 'all';

/** Global client indices below this bound subscribe to the group's topic. */
const GROUP_BOUND: Record<PushGroup, number> = { k100: 100, k1000: 1000, all: Infinity };

export interface ConnectRequest {
  type: 'connect';
  host: string;
  port: number;
  /**
   * Several broker ports (the nodes of a cluster): client g connects to ports[g % length]
   * (round-robin by global index, so the push/k100 and push/k1000 targets are spread
   * too). Absent: every client connects to `port`.
   */
  ports?: number[];
  /** Global index of this worker's first client, and how many it holds. */
  first: number;
  count: number;
  /** Client i binds sourceAddresses[i % length]; empty = no bind. */
  sourceAddresses: string[];
  /** Connection attempts per second for this worker (0 = as fast as `concurrency` allows). */
  rate: number;
  /** Handshakes (CONNECT .. SUBACK) in progress at once, at most. */
  concurrency: number;
  protocolVersion: 4 | 5;
  qos: MiniQoS;
  keepalive: number;
  clientIdPrefix: string;
  /** One attempt (TCP connect + CONNACK + SUBACK) fails after this long. */
  handshakeTimeoutMs: number;
  /** Further attempts after a failed one. */
  retries: number;
}

export type ToWorker =
  | ConnectRequest
  /** Expect push `pushId` on `group`; answer 'armed', then 'push' once every target got it (or cannot). */
  | { type: 'arm'; pushId: number; group: PushGroup; wantTimes: boolean }
  /** Answer 'push' now with what arrived so far (the parent's deadline passed). */
  | { type: 'report'; pushId: number }
  /** PINGREQ on every connection if the last one is older than keepalive / 2. */
  | { type: 'keepalive' }
  /** DISCONNECT every client, answer 'closed' and exit. */
  | { type: 'close' };

export interface PushReport {
  type: 'push';
  pushId: number;
  /** Clients of this worker subscribed to the group (including ones that died since). */
  expected: number;
  received: number;
  /** Every target got it (or is known dead): false = reported on the parent's request. */
  settled: boolean;
  firstAt: number;
  lastAt: number;
  duplicates: number;
  /** Receipt times (epoch ms), when asked for. */
  times?: number[];
}

export interface WorkerStats {
  subscribed: number;
  failed: number;
  retries: number;
  /** Subscribed clients whose connection closed without being asked to. */
  unexpectedCloses: number;
  /** A few error messages (connect failures, unexpected closes). */
  errorSamples: string[];
  /** Deliveries of a push that arrived after it had been reported, or to a client that is not a target. */
  late: number;
  stray: number;
  duplicates: number;
  protocolErrors: number;
  serverDisconnects: number;
}

export type FromWorker =
  | { type: 'ready'; pid: number }
  | { type: 'progress'; subscribed: number; failed: number }
  | ({ type: 'connected'; startedAt: number; endedAt: number } & WorkerStats)
  | { type: 'armed'; pushId: number; expected: number }
  | PushReport
  | ({ type: 'closed' } & WorkerStats)
  | { type: 'error'; message: string };

// ---------------------------------------------------------------------------

const send = (m: FromWorker): void => {
  process.send?.(m);
};

const enum St {
  Idle = 0,
  Connecting = 1,
  Subscribed = 2,
  Failed = 3,
  Dead = 4,
}

interface Armed {
  pushId: number;
  bound: number;
  expected: number;
  /** Targets alive when armed: the push is settled when received + lost reaches it. */
  live: number;
  received: number;
  lost: number;
  duplicates: number;
  firstAt: number;
  lastAt: number;
  times: Float64Array | undefined;
  reported: boolean;
}

let req!: ConnectRequest;
let conns: (MiniConn | undefined)[] = [];
let state: Uint8Array = new Uint8Array(0);
let attempts: Uint8Array = new Uint8Array(0);
/** Last push id each client received (-1: none). */
let lastPush: Int32Array = new Int32Array(0);
let armed: Armed | undefined;
let lastPingAt = 0;

const stats: WorkerStats = {
  subscribed: 0,
  failed: 0,
  retries: 0,
  unexpectedCloses: 0,
  errorSamples: [],
  late: 0,
  stray: 0,
  duplicates: 0,
  protocolErrors: 0,
  serverDisconnects: 0,
};

function sample(msg: string): void {
  if (stats.errorSamples.length < 8 && !stats.errorSamples.includes(msg)) stats.errorSamples.push(msg);
}

const isTarget = (i: number, bound: number): boolean => req.first + i < bound && (state[i] === St.Subscribed || state[i] === St.Dead);

function onPush(i: number, payload: Buffer, at: number): void {
  const pushId = payload.length >= 4 ? payload.readUInt32LE(0) : -1;
  if (lastPush[i] === pushId) {
    stats.duplicates++;
    if (armed && armed.pushId === pushId) armed.duplicates++;
    return;
  }
  lastPush[i] = pushId;
  const a = armed;
  if (!a || a.pushId !== pushId) {
    stats.late++;
    return;
  }
  if (!isTarget(i, a.bound)) {
    stats.stray++;
    return;
  }
  if (a.reported) {
    stats.late++;
    return;
  }
  if (a.times) a.times[a.received] = at;
  a.received++;
  if (a.received === 1) a.firstAt = at;
  if (at > a.lastAt) a.lastAt = at;
  checkSettled();
}

function onClose(i: number, c: MiniConn, unexpected: boolean): void {
  if (c.protocolError) stats.protocolErrors++;
  if (c.serverDisconnect !== undefined) stats.serverDisconnects++;
  if (conns[i] !== c || state[i] !== St.Subscribed) return;
  state[i] = St.Dead;
  if (!unexpected) return;
  stats.unexpectedCloses++;
  sample(`client ${req.first + i} closed: ${c.error ?? (c.serverDisconnect !== undefined ? `server DISCONNECT 0x${c.serverDisconnect.toString(16)}` : 'by the broker')}`);
  const a = armed;
  if (a && !a.reported && req.first + i < a.bound && lastPush[i] !== a.pushId) {
    a.lost++;
    checkSettled();
  }
}

function checkSettled(): void {
  const a = armed;
  if (!a || a.reported || a.received + a.lost < a.live) return;
  report(true);
}

function report(settled: boolean): void {
  const a = armed!;
  a.reported = true;
  const m: PushReport = {
    type: 'push',
    pushId: a.pushId,
    expected: a.expected,
    received: a.received,
    settled,
    firstAt: a.firstAt,
    lastAt: a.lastAt,
    duplicates: a.duplicates,
  };
  if (a.times) m.times = Array.from(a.times.subarray(0, a.received));
  send(m);
}

// ---------------------------------------------------------------------------
// Ramp

function filtersFor(g: number): number {
  return g < 100 ? 2 : g < 1000 ? 1 : 0;
}

function runConnect(r: ConnectRequest): void {
  req = r;
  conns = new Array<MiniConn | undefined>(r.count);
  state = new Uint8Array(r.count);
  attempts = new Uint8Array(r.count);
  lastPush = new Int32Array(r.count).fill(-1);
  // Three SUBSCRIBE packets serve every client: [all], [all, k1000], [all, k1000, k100].
  const subs = [['push/all'], ['push/all', 'push/k1000'], ['push/all', 'push/k1000', 'push/k100']].map((f) =>
    encodeSubscribe(f, r.qos, r.protocolVersion),
  );
  const startedAt = epochNow();
  const t0 = performance.now();
  let next = 0;
  let started = 0;
  let inflight = 0;
  const retryQueue: number[] = [];
  let finished = false;

  const progress = setInterval(() => send({ type: 'progress', subscribed: stats.subscribed, failed: stats.failed }), 250);

  const settle = (): void => {
    inflight--;
    if (!finished && stats.subscribed + stats.failed === r.count) {
      finished = true;
      clearInterval(timer);
      clearInterval(progress);
      lastPingAt = performance.now();
      send({ type: 'connected', startedAt, endedAt: epochNow(), ...stats });
    } else pump();
  };

  const open = (i: number): void => {
    const g = r.first + i;
    const c = new MiniConn({
      host: r.host,
      port: r.ports?.length ? r.ports[g % r.ports.length]! : r.port,
      ...(r.sourceAddresses.length ? { localAddress: r.sourceAddresses[g % r.sourceAddresses.length]! } : {}),
      clientId: `${r.clientIdPrefix}${g}`,
      protocolVersion: r.protocolVersion,
      keepalive: r.keepalive,
    });
    conns[i] = c;
    state[i] = St.Connecting;
    c.onPublish = (payload, _qos, at) => onPush(i, payload, at);
    c.onClose = (unexpected) => onClose(i, c, unexpected);
    const timeout = setTimeout(() => c.close(`handshake timeout after ${r.handshakeTimeoutMs} ms`), r.handshakeTimeoutMs);
    c.connect()
      .then(() => c.subscribeEncoded(subs[filtersFor(g)]!))
      .then(
        (granted) => {
          clearTimeout(timeout);
          if (granted.some((x) => x >= 0x80)) throw Object.assign(new Error(`SUBACK refused (${granted.join(',')})`), { final: true });
          state[i] = St.Subscribed;
          stats.subscribed++;
          settle();
        },
      )
      .catch((e: Error & { final?: boolean }) => {
        clearTimeout(timeout);
        c.close();
        state[i] = St.Idle;
        if (!e.final && ++attempts[i]! <= r.retries) {
          stats.retries++;
          setTimeout(() => {
            retryQueue.push(i);
            pump();
          }, 500);
          inflight--;
          return;
        }
        state[i] = St.Failed;
        stats.failed++;
        sample(`client ${g}: ${e.message}`);
        settle();
      });
  };

  const pump = (): void => {
    if (finished) return;
    const allowed = r.rate > 0 ? Math.floor(((performance.now() - t0) / 1000) * r.rate) + 1 : Infinity;
    while (inflight < r.concurrency && started < allowed) {
      let i: number;
      if (retryQueue.length) i = retryQueue.shift()!;
      else if (next < r.count) i = next++;
      else break;
      started++;
      inflight++;
      open(i);
    }
  };
  const timer = setInterval(pump, 5);
  if (r.count === 0) {
    inflight++;
    settle();
  } else pump();
}

// ---------------------------------------------------------------------------

function arm(pushId: number, bound: number, wantTimes: boolean): void {
  let expected = 0;
  let live = 0;
  for (let i = 0; i < state.length; i++) {
    if (!isTarget(i, bound)) continue;
    expected++;
    if (state[i] === St.Subscribed) live++;
  }
  armed = {
    pushId,
    bound,
    expected,
    live,
    received: 0,
    lost: 0,
    duplicates: 0,
    firstAt: 0,
    lastAt: 0,
    times: wantTimes ? new Float64Array(live) : undefined,
    reported: false,
  };
  send({ type: 'armed', pushId, expected });
  checkSettled();
}

function keepalive(): void {
  if (conns.length === 0 || performance.now() - lastPingAt < (req.keepalive * 1000) / 2) return;
  lastPingAt = performance.now();
  for (let i = 0; i < conns.length; i++) if (state[i] === St.Subscribed) conns[i]!.ping();
}

async function closeAll(): Promise<void> {
  const all: Promise<void>[] = [];
  for (let i = 0; i < conns.length; i++) {
    const c = conns[i];
    if (c && !c.closed) all.push(c.disconnect(5000));
  }
  await Promise.all(all);
  send({ type: 'closed', ...stats });
}

process.on('message', (m: ToWorker) => {
  try {
    switch (m.type) {
      case 'connect':
        runConnect(m);
        return;
      case 'arm':
        arm(m.pushId, GROUP_BOUND[m.group], m.wantTimes);
        return;
      case 'report':
        if (armed && armed.pushId === m.pushId && !armed.reported) report(false);
        return;
      case 'keepalive':
        keepalive();
        return;
      case 'close':
        void closeAll().then(() => {
          process.disconnect?.();
          setTimeout(() => process.exit(0), 200).unref();
        });
        return;
    }
  } catch (e) {
    send({ type: 'error', message: (e as Error).stack ?? String(e) });
  }
});
// The parent went away: nothing left to do.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
