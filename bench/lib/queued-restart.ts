/**
 * A broker restart with messages queued for offline persistent sessions (durability
 * scenario, bench/scenarios/durability.ts). Runs in the bench process (LeanClients, no
 * generator child: the broker is stopped and started in the middle):
 *
 *   1. `sessions` subscribers connect with a persistent session (clean false, v5 Session
 *      Expiry Interval), subscribe (QoS 1) to their own topic and DISCONNECT;
 *   2. `publishers` clean clients publish `perSession` QoS 1 messages to every topic
 *      (a window of unacknowledged publishes each) until every one is PUBACKed;
 *   3. right after the last PUBACK (or `signalDelayMs` later): SIGTERM or SIGKILL, start again on the same directory
 *      (BrokerHandle.restart): stop time, time to accept connections, RSS before the
 *      stop and after the start (before any client is back);
 *   4. the subscribers reconnect (same client ids, clean false): time until every resumed
 *      session has all its messages, or until nothing arrived for `idleMs`; exact counts
 *      per session (QueueTally): delivered, lost, duplicates, out of order.
 */
import { performance } from 'node:perf_hooks';
import { procSample, type BrokerHandle, type StopResult } from './brokers.js';
import { LeanClient, type ProtocolVersion } from './lean-client.js';
import type { Progress } from './scenario.js';

export interface QueuedRestartOptions {
  sessions: number;
  perSession: number;
  payloadSize: number;
  protocolVersion: ProtocolVersion;
  sessionExpiry: number;
  signal: 'SIGTERM' | 'SIGKILL';
  publishers: number;
  /** Unacknowledged publishes per publisher. */
  window: number;
  /** The drain ends when nothing arrived for this long (after every subscriber is back). */
  idleMs: number;
  /** Upper bound for filling and for draining, each. */
  capMs: number;
  /** Wait this long between the last PUBACK and the signal (default 0: right after it). */
  signalDelayMs?: number;
}

export interface QueuedRestartResult {
  /** Messages published and PUBACKed before the stop (the ones that must survive). */
  queued: number;
  published: number;
  fillMs: number;
  rssBeforeStopMB: number;
  stopped: StopResult;
  readyMs: number;
  rssAfterRestartMB: number;
  /** The first start, on an empty directory (readyMs of the handle as the run began; port polled every 10 ms, restarts every 5 ms). */
  emptyReadyMs: number;
  /** Subscribers whose CONNACK said Session Present. */
  sessionsResumed: number;
  connectMs: number;
  /** From the first reconnect to the last message that arrived. */
  drainMs: number;
  drainEnd: 'complete' | 'idle' | 'timeout';
  tally: TallyCounts;
  brokerCpuPct: number;
  genCpuPct: number;
  errors: string[];
}

export interface TallyCounts {
  /** Distinct (session, sequence) messages received by the session they were sent to. */
  delivered: number;
  duplicates: number;
  /** A message with a lower sequence than one its session already had. */
  reordered: number;
  /** Delivered to another session than the one it was sent to, or unreadable. */
  misrouted: number;
  /** Sessions that received all `perSession` messages. */
  completeSessions: number;
}

/** Marks a payload with (session, sequence, send time) in its first 16 bytes. */
export function markPayload(buf: Buffer, session: number, seq: number): Buffer {
  buf.writeUInt32LE(session, 0);
  buf.writeUInt32LE(seq, 4);
  buf.writeDoubleLE(performance.now(), 8);
  return buf;
}

/** Exact delivery counts per session for messages marked by markPayload (pure: tested). */
export class QueueTally {
  private readonly seen: Uint8Array;
  private readonly got: Uint32Array;
  private readonly maxSeq: Int32Array;
  readonly counts: TallyCounts = { delivered: 0, duplicates: 0, reordered: 0, misrouted: 0, completeSessions: 0 };

  constructor(
    readonly sessions: number,
    readonly perSession: number,
  ) {
    this.seen = new Uint8Array(sessions * perSession);
    this.got = new Uint32Array(sessions);
    this.maxSeq = new Int32Array(sessions).fill(-1);
  }

  /** A message received by session `receiver`. */
  record(receiver: number, payload: Buffer): void {
    if (payload.length < 8) {
      this.counts.misrouted++;
      return;
    }
    const session = payload.readUInt32LE(0);
    const seq = payload.readUInt32LE(4);
    if (session !== receiver || session >= this.sessions || seq >= this.perSession) {
      this.counts.misrouted++;
      return;
    }
    const k = session * this.perSession + seq;
    if (this.seen[k]) {
      this.counts.duplicates++;
      return;
    }
    this.seen[k] = 1;
    this.counts.delivered++;
    if (++this.got[session]! === this.perSession) this.counts.completeSessions++;
    if (seq < this.maxSeq[session]!) this.counts.reordered++;
    else this.maxSeq[session] = seq;
  }

  /** Messages session `s` received. */
  receivedBy(s: number): number {
    return this.got[s]!;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function connectAll(list: LeanClient[], concurrency: number): Promise<boolean[]> {
  const present: boolean[] = new Array(list.length).fill(false);
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const i = next++;
      const ack = await list[i]!.connect();
      present[i] = !!ack.sessionPresent;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker));
  return present;
}

let counter = 0;

export async function queuedRestart(b: BrokerHandle, o: QueuedRestartOptions, progress: Progress): Promise<QueuedRestartResult> {
  const emptyReadyMs = b.readyMs;
  const runId = `${(++counter).toString(36)}${Date.now().toString(36).slice(-5)}`;
  const common = { host: b.host, port: b.port, protocolVersion: o.protocolVersion };
  const persistent = { clean: false, sessionExpiry: o.sessionExpiry };
  const topics = Array.from({ length: o.sessions }, (_, i) => Buffer.from(`bench/durable/${runId}/${i}`));
  const subscriber = (i: number) => new LeanClient({ ...common, ...persistent, clientId: `dq-${runId}-s${i}` });
  const errors: string[] = [];

  // 1. Persistent sessions, subscribed, then offline.
  const subs = Array.from({ length: o.sessions }, (_, i) => subscriber(i));
  await connectAll(subs, 32);
  const granted = await Promise.all(subs.map((c, i) => c.subscribe([{ topic: topics[i]!.toString(), qos: 1 }])));
  const refused = granted.filter((g) => g[0]! >= 0x80).length;
  if (refused) throw new Error(`${refused} subscriptions refused`);
  await Promise.all(subs.map((c) => c.disconnect(3000)));

  // 2. Fill: every topic gets perSession messages, each PUBACKed.
  const total = o.sessions * o.perSession;
  const nPubs = Math.max(1, Math.min(o.publishers, o.sessions));
  const pubs = Array.from({ length: nPubs }, (_, p) => new LeanClient({ ...common, clientId: `dq-${runId}-p${p}`, maxInflight: o.window }));
  await connectAll(pubs, 32);
  // Publisher p owns sessions p, p + P, p + 2P...; it sends message k to each of them in turn.
  const owned = pubs.map((_, p) => topics.map((_, i) => i).filter((i) => i % nPubs === p));
  const cursor = pubs.map(() => 0);
  const payload = Buffer.alloc(Math.max(16, o.payloadSize), 0x61);
  let published = 0;
  let acked = 0;
  let allAcked!: () => void;
  const done = new Promise<void>((r) => (allAcked = r));
  const pump = (p: number) => {
    const c = pubs[p]!;
    const mine = owned[p]!;
    const end = mine.length * o.perSession;
    while (cursor[p]! < end && c.canSendQos1()) {
      const n = cursor[p]!;
      const session = mine[n % mine.length]!;
      if (!c.publish(topics[session]!, markPayload(payload, session, Math.floor(n / mine.length)), 1)) break;
      cursor[p]!++;
      published++;
    }
  };
  const f0 = performance.now();
  pubs.forEach((c, p) => {
    c.onAck = () => {
      acked++;
      if (acked === total) allAcked();
      else pump(p);
      if (acked % 1000 === 0) progress.update(`fill ${b.name}`, acked, total);
    };
    pump(p);
  });
  const filled = await Promise.race([done.then(() => true), sleep(o.capMs).then(() => false)]);
  const fillMs = Math.round(performance.now() - f0);
  progress.done();
  if (!filled) errors.push(`fill: only ${acked} of ${total} publishes acknowledged after ${o.capMs} ms`);
  const closedEarly = pubs.filter((c) => c.closed).length;
  if (closedEarly) errors.push(`fill: ${closedEarly} publisher connection(s) closed by the broker`);

  // 3. Stop right after the last PUBACK, start again on the same data.
  if (o.signalDelayMs) await sleep(o.signalDelayMs);
  const rssBeforeStopMB = procSample(b.pid)?.rssMB ?? NaN;
  for (const c of pubs) c.closing = true;
  const restarted = await b.restart({ signal: o.signal });
  const rssAfterRestartMB = procSample(b.pid)?.rssMB ?? NaN;
  for (const c of pubs) c.close();

  // 4. The subscribers come back.
  const tally = new QueueTally(o.sessions, o.perSession);
  const again = Array.from({ length: o.sessions }, (_, i) => subscriber(i));
  let last = performance.now();
  again.forEach((c, i) => {
    c.onMessage = (_t, p) => {
      tally.record(i, p);
      last = performance.now();
    };
  });
  const cpu0 = process.cpuUsage();
  const s0 = procSample(b.pid);
  const d0 = performance.now();
  last = d0;
  const present = await connectAll(again, 32);
  const connectMs = Math.round(performance.now() - d0);
  // Idle time counts from the last arrival or from the last subscriber being back.
  last = Math.max(last, performance.now());
  const resumed = present.map((p, i) => (p ? i : -1)).filter((i) => i >= 0);
  let drainEnd: QueuedRestartResult['drainEnd'] = 'timeout';
  for (;;) {
    const complete = resumed.every((i) => tally.receivedBy(i) >= o.perSession);
    if (complete) {
      drainEnd = 'complete';
      break;
    }
    const now = performance.now();
    if (now - last > o.idleMs) {
      drainEnd = 'idle';
      break;
    }
    if (now - d0 > o.capMs) break;
    progress.update(`drain ${b.name}`, tally.counts.delivered, total);
    await sleep(5);
  }
  progress.done();
  const drainMs = Math.round((drainEnd === 'timeout' ? performance.now() : last) - d0);
  const wall = performance.now() - d0;
  const s1 = procSample(b.pid);
  const cpu = process.cpuUsage(cpu0);
  const closes = again.filter((c) => c.closed && !c.closing).length;
  if (closes) errors.push(`drain: ${closes} subscriber connection(s) closed by the broker`);
  for (const c of [...again, ...pubs]) for (const e of c.protocolErrors.slice(0, 1)) if (errors.length < 5) errors.push(`${c.clientId}: ${e}`);
  await Promise.all(again.map((c) => c.disconnect(2000)));

  return {
    queued: acked,
    published,
    fillMs,
    rssBeforeStopMB,
    stopped: restarted.stopped,
    readyMs: restarted.readyMs,
    rssAfterRestartMB,
    emptyReadyMs,
    sessionsResumed: resumed.length,
    connectMs,
    drainMs,
    drainEnd,
    tally: { ...tally.counts },
    brokerCpuPct: s0 && s1 ? Math.round(((s1.cpuMs - s0.cpuMs) / wall) * 100) : NaN,
    genCpuPct: Math.round(((cpu.user + cpu.system) / 1000 / wall) * 100),
    errors,
  };
}
