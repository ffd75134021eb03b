/**
 * Load generator: a child process of the bench (bench/lib/generator-pool.ts, spawned with
 * an IPC channel), one thread, all clients are LeanClients. It waits for {type:'run'}
 * requests, runs one scenario against the given broker port and answers with a RunResult.
 * It exits when the parent goes away.
 *
 * A request with a `part` is this process's share of a run spread over several generator
 * processes: it connects and subscribes its clients, waits for the parent's `go`,
 * publishes and measures on the shared clock, and sends its progress (PartProgress)
 * straight to the other parts over UDP on loopback: the end-to-end windows and the drain
 * then see every part's counts (see bench/lib/types.ts).
 *
 * Every payload carries (source index u32 LE, sequence u32 LE, send time f64 LE), so the
 * receiver can count duplicates, reordering and losses exactly and sample latency. Source
 * indexes are global over the parts; send times are on the shared clock (sharedClockMs).
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { encodeImPayload } from '../../src/im/index.js';
import * as hdr from 'hdr-histogram-js';
import { LeanClient, selfCheckEncoder, type CloseInfo, type QoS } from './lean-client.js';
import { sharedClockMs, type CpuSpan, type GenToParent, type ParentToGen, type PartProgress, type RunPart, type RunRequest, type RunResult } from './types.js';

const send = (m: GenToParent) => process.send?.(m);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** sharedClockMs, cheaply: performance.now() runs on the same monotonic clock. */
const clockOffset = sharedClockMs() - performance.now();
const clock = () => performance.now() + clockOffset;
const sleepUntil = (t: number) => sleep(Math.max(0, t - clock()));

/**
 * A part of a run spread over several processes: the parent's `go` (or abort), and the
 * progress reports between the parts, straight from process to process (UDP on loopback:
 * the parent stays out of the way; a report lost or late is made good by the next, each
 * carries the latest counts).
 */
class Gate {
  private release!: (startAt: number) => void;
  private fail!: (e: Error) => void;
  /** Resolves with the start time (shared clock) once every part is subscribed. */
  readonly go = new Promise<number>((resolve, reject) => {
    this.release = resolve;
    this.fail = reject;
  });
  private readonly socket = dgram.createSocket('udp4');
  /** The port the other parts' reports come to. */
  readonly port: Promise<number>;
  private ports: number[] = [];
  /** The other parts' latest progress, by part index. */
  readonly peers: (PartProgress | undefined)[] = [];
  onPeer?: (report: PartProgress, previous: PartProgress | undefined) => void;

  constructor(readonly part: RunPart) {
    // An abort before the run waits for `go` is not an unhandled rejection: the wait throws it.
    this.go.catch(() => undefined);
    this.port = new Promise((resolve) => this.socket.bind(0, '127.0.0.1', () => resolve(this.socket.address().port)));
    this.socket.on('error', () => undefined);
    this.socket.on('message', (buf) => {
      let r: PartProgress;
      try {
        r = JSON.parse(buf.toString()) as PartProgress;
      } catch {
        return;
      }
      const previous = this.peers[r.part];
      this.peers[r.part] = r;
      this.onPeer?.(r, previous);
    });
  }

  handle(m: ParentToGen): void {
    if (m.type === 'go') {
      this.ports = m.ports;
      this.release(m.startAt);
    } else if (m.type === 'abort') this.fail(new Error(m.reason));
  }

  report(r: PartProgress): void {
    const buf = Buffer.from(JSON.stringify(r));
    this.ports.forEach((port, i) => i !== this.part.index && this.socket.send(buf, port, '127.0.0.1'));
  }

  close(): void {
    this.socket.close();
  }
}
const gates = new Map<string, Gate>();

/** Which (source, sequence) pairs arrived, exactly. */
class Tracker {
  private readonly seen: Uint8Array[];
  /** Highest sequence seen per source (-1 = none yet). */
  readonly maxSeq: Int32Array;
  unique = 0;
  duplicates = 0;
  reordered = 0;
  badSource = 0;

  constructor(readonly sources: number) {
    this.seen = Array.from({ length: sources }, () => new Uint8Array(256));
    this.maxSeq = new Int32Array(sources).fill(-1);
  }

  record(src: number, seq: number): void {
    if (src < 0 || src >= this.sources) {
      this.badSource++;
      return;
    }
    let s = this.seen[src]!;
    if (seq >= s.length) {
      const bigger = new Uint8Array(Math.max(seq + 1, s.length * 2));
      bigger.set(s);
      this.seen[src] = s = bigger;
    }
    if (s[seq]) {
      this.duplicates++;
      return;
    }
    s[seq] = 1;
    this.unique++;
    if (seq < this.maxSeq[src]!) this.reordered++;
    else this.maxSeq[src] = seq;
  }
}

function cpuSpan(from: NodeJS.CpuUsage, wallMs: number): CpuSpan {
  const d = process.cpuUsage(from);
  const userMs = d.user / 1000;
  const systemMs = d.system / 1000;
  return { userMs: round(userMs), systemMs: round(systemMs), wallMs: round(wallMs), ratio: round((userMs + systemMs) / wallMs, 3) };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}


async function connectAll(list: LeanClient[], concurrency: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const c = list[next++]!;
      await c.connect();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker));
}

async function runScenario(req: RunRequest, gate?: Gate): Promise<RunResult> {
  const sc = req.scenario;
  const part = req.part;
  const runStart = performance.now();
  const cpuStart = process.cpuUsage();
  const qos: QoS = sc.qos;
  const common = { host: req.host, port: req.port, protocolVersion: sc.protocolVersion, wsPath: req.wsPath };

  const all: LeanClient[] = [];
  const closeSamples: CloseInfo[] = [];
  let unexpectedCloses = 0;
  // Persistent sessions (clean false, v5 expiry) for the subscribers, when asked for.
  const persistent = sc.kind !== 'fanout' && sc.sessionExpiry !== undefined ? { clean: false, sessionExpiry: sc.sessionExpiry } : {};
  const make = (clientId: string, window: number, username?: string, session: { clean?: boolean; sessionExpiry?: number; ackRate?: number } = {}) => {
    const c = new LeanClient({ ...common, clientId, maxInflight: window, username, ...session });
    c.onUnexpectedClose = (info) => {
      unexpectedCloses++;
      if (closeSamples.length < 20) closeSamples.push({ ...info, at: round(performance.now() - runStart) });
    };
    all.push(c);
    return c;
  };

  // Publishers (local index i = global source pubBase + i), their topic and the
  // subscribers; the tracker counts source src at src - trackBase. This part's clients
  // only, when the run is spread over several processes (`part`, global indexes).
  let pubs: LeanClient[];
  let topics: Buffer[];
  let subs: { client: LeanClient; filter: string }[];
  let sources: number;
  let pubBase = 0;
  let trackBase = 0;
  /** Publishers of the whole run (the offered rate is shared by all of them). */
  let pubsInRun: number;
  let misrouted = 0;
  let expectedSource: ((receiverIndex: number, src: number) => boolean) | undefined;
  const hub = part?.hub ?? true;
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  if (sc.kind === 'fanout') {
    // Subscribers first: every one of them must hold the subscription before the first publish.
    subs = range(part?.from ?? 0, part?.to ?? sc.subscribers).map((g) => ({ client: make(`qb-${req.runId}-s${g}`, 100), filter: 'bench/fanout' }));
    pubs = hub ? [make(`qb-${req.runId}-pub`, 100)] : [];
    topics = pubs.map(() => Buffer.from('bench/fanout'));
    sources = 1;
    pubsInRun = 1;
  } else if (sc.kind === 'fanin') {
    const sub = hub ? make(`qb-${req.runId}-sub`, 100, undefined, sc.subscriberAckRate !== undefined ? { ...persistent, ackRate: sc.subscriberAckRate } : persistent) : undefined;
    subs = sub ? [{ client: sub, filter: 'bench/fanin/#' }] : [];
    pubBase = part?.from ?? 0;
    pubs = range(pubBase, part?.to ?? sc.publishers).map((g) => make(`qb-${req.runId}-pub${g}`, sc.window));
    topics = pubs.map((_, i) => Buffer.from(`bench/fanin/${pubBase + i}`));
    sources = sc.publishers;
    pubsInRun = sc.publishers;
  } else {
    // Whole pairs per part: both partners, their tracking and latency stay in this process.
    pubBase = trackBase = (part?.from ?? 0) * 2;
    const uid = (k: number) => `${req.runId}-${k}`;
    // Each client logs in as its user (the uid), so Switchboard's IM checks (sender =
    // uid, own inbox only) pass as they would for real users; `default` is its default namespace.
    // Every client subscribes to its inbox: all of them are subscribers (persistent if asked).
    const ks = range(pubBase, (part?.to ?? sc.pairs) * 2);
    pubs = ks.map((k) => make(`qb-${uid(k)}`, sc.window, uid(k), persistent));
    // k and k^1 are partners: k publishes into its partner's inbox.
    topics = ks.map((k) => Buffer.from(`/default/im/u/${uid(k ^ 1)}`));
    subs = pubs.map((client, i) => ({ client, filter: `/default/im/u/${uid(ks[i]!)}` }));
    sources = ks.length;
    pubsInRun = sc.pairs * 2;
    expectedSource = (receiver, src) => ((trackBase + receiver) ^ 1) === src;
  }

  const tracker = new Tracker(sources);
  // Fan-out: every message has `subscribers` recipients, so each keeps its own tracker.
  const trackers = sc.kind === 'fanout' ? subs.map(() => new Tracker(1)) : undefined;
  const multiplicity = sc.kind === 'fanout' ? sc.subscribers : 1;
  /** Fan-out: the trackers' unique deliveries, kept as they arrive (the pacing asks for it at every delivery). */
  let fanoutUnique = 0;
  const uniqueTotal = (): number => (trackers ? fanoutUnique : tracker.unique);
  const paced = (sc.kind === 'fanin' && sc.pacing === 'e2e') || sc.kind === 'fanout';
  const runRate = sc.kind === 'fanout' ? undefined : sc.kind === 'fanin' ? (sc.pacing === 'rate' ? sc.rate : undefined) : sc.rate;
  /** This part's share of the offered rate. */
  const rate = runRate === undefined ? undefined : (runRate * pubs.length) / pubsInRun;
  /** The end-to-end window: fan-in's per publisher, fan-out's burst size. */
  const e2eWindow = sc.kind === 'fanout' ? sc.messages : sc.kind === 'fanin' ? sc.window : Infinity;
  // Every delivery in the window goes into an HDR histogram (microseconds), and into a
  // per-second one for the soak time series.
  const newHist = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  const hist = newHist();
  const secondHist = newHist();
  let onSourceProgress: ((src: number) => void) | undefined;
  let totalReceived = 0;
  let totalPublished = 0;
  let inWindow = false;
  subs.forEach(({ client }, receiverIndex) => {
    client.onMessage = (_topic, payload) => {
      totalReceived++;
      const mark = sc.kind === 'pairs' ? imMark(payload) : payload.length >= 16 ? payload : undefined;
      if (!mark) {
        tracker.badSource++;
        return;
      }
      const src = mark.readUInt32LE(0);
      if (trackers) {
        const t = trackers[receiverIndex]!;
        const before = t.unique;
        t.record(src - trackBase, mark.readUInt32LE(4));
        fanoutUnique += t.unique - before;
      } else tracker.record(src - trackBase, mark.readUInt32LE(4));
      if (expectedSource && !expectedSource(receiverIndex, src)) misrouted++;
      onSourceProgress?.(src);
      if (inWindow) {
        const us = Math.max(1, Math.round((clock() - mark.readDoubleLE(8)) * 1000));
        hist.recordValue(us);
        secondHist.recordValue(us);
      }
    };
  });

  const base: Omit<RunResult, 'ok'> = {
    rate: 0,
    publishRate: 0,
    windowMs: 0,
    windowReceived: 0,
    perSecond: [],
    connectMs: 0,
    clients: all.length,
    published: 0,
    acked: 0,
    received: 0,
    uniqueReceived: 0,
    duplicates: 0,
    reordered: 0,
    lost: 0,
    unackedAtEnd: 0,
    qos0Dropped: 0,
    drained: false,
    drainEnd: 'timeout',
    drainReceived: 0,
    drainRate: 0,
    stallResets: 0,
    drainMs: 0,
    latencyMs: { p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, samples: 0 },
    unexpectedCloses: 0,
    closeSamples,
    protocolErrors: [],
    unexpectedAcks: 0,
    genCpuWindow: { userMs: 0, systemMs: 0, wallMs: 0, ratio: 0 },
    genCpuRun: { userMs: 0, systemMs: 0, wallMs: 0, ratio: 0 },
  };
  let running = false;
  let stallTimer: NodeJS.Timeout | undefined;

  const finish = (ok: boolean, error?: string): RunResult => {
    const protocolErrors: string[] = [];
    for (const c of all) for (const e of c.protocolErrors) if (protocolErrors.length < 20) protocolErrors.push(`${c.clientId}: ${e}`);
    const bad = tracker.badSource + (trackers?.reduce((a, t) => a + t.badSource, 0) ?? 0);
    if (bad) protocolErrors.push(`${bad} messages with an unknown source/short payload`);
    if (misrouted) protocolErrors.push(`${misrouted} messages delivered to the wrong inbox`);
    const r: RunResult = {
      ...base,
      ok,
      published: totalPublished,
      acked: pubs.reduce((a, c) => a + c.acked, 0),
      received: totalReceived,
      uniqueReceived: uniqueTotal(),
      duplicates: tracker.duplicates + (trackers?.reduce((a, t) => a + t.duplicates, 0) ?? 0),
      reordered: tracker.reordered + (trackers?.reduce((a, t) => a + t.reordered, 0) ?? 0),
      unexpectedCloses,
      protocolErrors,
      unexpectedAcks: all.reduce((a, c) => a + c.unexpectedAcks, 0),
      genCpuRun: cpuSpan(cpuStart, performance.now() - runStart),
    };
    if (error !== undefined) r.error = error;
    return r;
  };

  try {
    // 1. Connect (subscribers of fan-in first), 2. subscribe, all before anyone publishes.
    const tc = performance.now();
    await connectAll(all, req.connectConcurrency);
    base.connectMs = round(performance.now() - tc);
    send({ type: 'phase', runId: req.runId, phase: 'connected' });
    const granted = await Promise.all(subs.map(({ client, filter }) => client.subscribe([{ topic: filter, qos }])));
    const refused = granted.filter((g) => g[0]! >= 0x80).length;
    if (refused) throw new Error(`${refused} subscriptions refused`);
    send({ type: 'phase', runId: req.runId, phase: 'subscribed', ...(gate ? { port: await gate.port } : {}) });
    // Several parts: nobody publishes before every part's subscribers are subscribed.
    const startAt = gate ? await gate.go : clock();
    await sleepUntil(startAt);

    // 3. Publish at max rate: QoS 1 bounded by the window, QoS 0 by socket backpressure.
    const scratch = pubs.map((_, i) => {
      const b = sc.kind === 'pairs' ? imPayload(pubs[i]!.opts.username!, sc.payloadSize) : Buffer.alloc(Math.max(16, sc.payloadSize), 0x61);
      return b;
    });
    const mark = Buffer.alloc(16);
    const seqs = new Uint32Array(pubs.length);
    const inflightNow = () => (qos > 0 ? pubs.reduce((a, c) => a + (c.closed ? 0 : c.inflight), 0) : 0);
    // Several parts: progress reports to the other parts. While publishing only where
    // another part paces on them (fan-in's subscriber, fan-out's subscribers): at the end
    // of the turn of the event loop that made progress, at most one a millisecond; every
    // 25 ms in the drain.
    const report = (draining: boolean) => {
      if (!part || !gate) return;
      const r: PartProgress = { part: part.index, published: totalPublished, unique: uniqueTotal(), received: totalReceived, inflight: inflightNow(), draining };
      if (sc.kind === 'fanin' && hub) r.maxSeq = Array.from(tracker.maxSeq);
      gate.report(r);
    };
    const relay = !!gate && paced && subs.length > 0 && (sc.kind === 'fanin' || !hub);
    let reportPending = false;
    let lastReport = -Infinity;
    const flushReport = () => {
      reportPending = false;
      lastReport = performance.now();
      if (running) report(false);
    };
    const scheduleReport = () => {
      if (reportPending) return;
      reportPending = true;
      const wait = lastReport + 1 - performance.now();
      if (wait > 0) setTimeout(flushReport, wait);
      else setImmediate(flushReport);
    };
    const publishOne = (i: number): boolean => {
      const p = scratch[i]!;
      mark.writeUInt32LE(pubBase + i, 0);
      mark.writeUInt32LE(seqs[i]!, 4);
      mark.writeDoubleLE(clock(), 8);
      if (sc.kind === 'pairs') p.write(mark.toString('hex'), p.length - IM_MARK_END, 'latin1');
      else mark.copy(p, 0);
      if (!pubs[i]!.publish(topics[i]!, p, qos)) return false;
      seqs[i]!++;
      totalPublished++;
      return true;
    };
    const pump0 = (i: number): void => {
      if (!running) return;
      const c = pubs[i]!;
      for (let n = 0; n < 64 && c.canSendQos0(); n++) publishOne(i);
      if (c.closed) return;
      if (c.backpressured) c.onDrain = () => pump0(i);
      else setImmediate(pump0, i);
    };
    // End-to-end window (pacing e2e): in transit = sent - (highest seen + 1), or since a
    // write-off after a stall (a broker may drop messages, e.g. QoS 0 to a slow consumer).
    // Subscribers in other parts: what they saw comes with their progress reports (peers).
    const writtenOff = new Float64Array(pubs.length);
    const lastProgress = new Float64Array(pubs.length).fill(performance.now());
    const peerMaxSeq = new Int32Array(pubs.length).fill(-1);
    const othersSum = (k: 'published' | 'unique' | 'received' | 'inflight') => (gate ? gate.peers.reduce((a, r) => a + (r?.[k] ?? 0), 0) : 0);
    const seenUpTo = (i: number) => (subs.length ? tracker.maxSeq[pubBase - trackBase + i]! : peerMaxSeq[i]!);
    const inTransit = trackers
      ? (i: number) => seqs[i]! - Math.max(Math.floor((uniqueTotal() + othersSum('unique')) / multiplicity), writtenOff[i]!)
      : (i: number) => seqs[i]! - Math.max(seenUpTo(i) + 1, writtenOff[i]!);
    const pumpPaced = (i: number): void => {
      const c = pubs[i]!;
      const room = qos > 0 ? () => c.canSendQos1() : () => c.canSendQos0();
      while (running && inTransit(i) < e2eWindow && room()) publishOne(i);
      if (running && c.backpressured && !c.onDrain) c.onDrain = () => pumpPaced(i);
    };
    const progressed = (i: number): void => {
      lastProgress[i] = performance.now();
      if (running) pumpPaced(i);
    };
    if (paced) {
      onSourceProgress = (src) => {
        const i = src - pubBase;
        if (i >= 0 && i < pubs.length) progressed(i);
        if (relay && running) scheduleReport();
      };
      if (gate) {
        gate.onPeer = (r, previous) => {
          for (let i = 0; i < pubs.length; i++) {
            const seen = r.maxSeq?.[pubBase + i];
            if (seen !== undefined && seen > peerMaxSeq[i]!) {
              peerMaxSeq[i] = seen;
              progressed(i);
            } else if (trackers && r.unique > (previous?.unique ?? 0)) progressed(i);
          }
        };
      }
      stallTimer = setInterval(() => {
        const now = performance.now();
        for (let i = 0; i < pubs.length; i++) {
          if (running && inTransit(i) >= e2eWindow && now - lastProgress[i]! > 1000) {
            writtenOff[i] = seqs[i]!;
            lastProgress[i] = now;
            base.stallResets++;
            pumpPaced(i);
          }
        }
      }, 100);
    }
    running = true;
    let rateTimer: NodeJS.Timeout | undefined;
    if (rate !== undefined && pubs.length > 0) {
      // Fixed offered rate (latency, soak): every 10 ms the publishers, in turn, send
      // their share; a publisher whose window is full misses its turn (counted).
      let budget = 0;
      let next = 0;
      let last = performance.now();
      base.rateMissed = 0;
      rateTimer = setInterval(() => {
        const now = performance.now();
        budget += ((now - last) / 1000) * rate;
        last = now;
        for (; budget >= 1; budget--) {
          const i = next;
          next = (next + 1) % pubs.length;
          const c = pubs[i]!;
          if (!(qos > 0 ? c.canSendQos1() : c.canSendQos0()) || !publishOne(i)) base.rateMissed!++;
        }
      }, 10);
    }
    pubs.forEach((c, i) => {
      if (rate !== undefined) return;
      if (paced) {
        if (qos > 0) c.onAck = () => running && pumpPaced(i);
        pumpPaced(i);
      } else if (qos > 0) {
        c.onAck = () => {
          if (running) publishOne(i);
        };
        while (c.canSendQos1() && publishOne(i));
      } else {
        pump0(i);
      }
    });

    await sleepUntil(startAt + req.warmupMs);
    const recv0 = totalReceived;
    const pub0 = totalPublished;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    inWindow = true;
    send({ type: 'phase', runId: req.runId, phase: 'window-start' });
    let lastTick = totalReceived;
    const ticker = setInterval(() => {
      const n = totalReceived - lastTick;
      base.perSecond.push(n);
      lastTick = totalReceived;
      const ms = (p: number) => (secondHist.totalCount ? round(secondHist.getValueAtPercentile(p) / 1000, 3) : NaN);
      const forMerge = gate ? { hist: hdr.encodeIntoCompressedBase64(secondHist) } : {};
      send({ type: 'tick', runId: req.runId, second: base.perSecond.length, received: n, p50Ms: ms(50), p99Ms: ms(99), ...forMerge });
      secondHist.reset();
    }, 1000);
    await sleepUntil(startAt + req.warmupMs + req.durationMs);
    const t1 = performance.now();
    const recv1 = totalReceived;
    const pub1 = totalPublished;
    base.genCpuWindow = cpuSpan(cpu0, t1 - t0);
    inWindow = false;
    clearInterval(ticker);
    if (stallTimer) clearInterval(stallTimer);
    if (rateTimer) clearInterval(rateTimer);
    running = false;
    send({ type: 'phase', runId: req.runId, phase: 'window-end' });
    base.windowMs = round(t1 - t0);
    base.windowReceived = recv1 - recv0;
    base.rate = Math.round(((recv1 - recv0) * 1000) / (t1 - t0));
    base.publishRate = Math.round(((pub1 - pub0) * 1000) / (t1 - t0));

    // 4. Drain: wait until what was published has arrived (or nothing moves any more),
    // over every part: the others' counts from their reports, once all of them drain.
    const d0 = performance.now();
    const view = () => ({
      published: totalPublished + othersSum('published'),
      unique: uniqueTotal() + othersSum('unique'),
      received: totalReceived + othersSum('received'),
      inflight: inflightNow() + othersSum('inflight'),
      allDraining: !gate || !part || gate.peers.filter((r, p) => p !== part.index && r?.draining).length === part.count - 1,
    });
    let last = totalReceived;
    let stableSince = d0;
    for (;;) {
      await sleep(25);
      report(true);
      const now = performance.now();
      const v = view();
      if (v.received !== last) {
        last = v.received;
        stableSince = now;
      }
      if (!v.allDraining) stableSince = now;
      if (v.allDraining && v.unique >= v.published * multiplicity && v.inflight === 0) {
        base.drained = true;
        base.drainEnd = 'complete';
        break;
      }
      if (now - stableSince > 500 && v.inflight === 0) {
        base.drainEnd = 'stalled';
        break;
      }
      if (now - d0 > req.drainMs) {
        base.drainEnd = 'timeout';
        break;
      }
    }
    base.drainMs = round(performance.now() - d0);
    base.drainReceived = totalReceived - recv1;
    base.drainRate = Math.round((base.drainReceived * 1000) / base.drainMs);
    send({ type: 'phase', runId: req.runId, phase: 'drained' });
    // Several parts: undelivered over the run is only known from every part's counts (mergeResults).
    const undelivered = gate ? 0 : Math.max(0, totalPublished * multiplicity - uniqueTotal());
    if (qos > 0) {
      base.unackedAtEnd = pubs.reduce((a, c) => a + c.inflight, 0);
      base.lost = undelivered;
    } else {
      base.qos0Dropped = undelivered;
    }
    const ms = (p: number) => (hist.totalCount ? round(hist.getValueAtPercentile(p) / 1000, 3) : NaN);
    base.latencyMs = { p50: ms(50), p90: ms(90), p99: ms(99), p999: ms(99.9), max: hist.totalCount ? round(hist.maxValue / 1000, 3) : NaN, samples: hist.totalCount };
    if (gate) base.latencyHist = hdr.encodeIntoCompressedBase64(hist);

    const result = finish(true);
    await Promise.all(all.map((c) => c.disconnect(2000)));
    return result;
  } catch (e) {
    running = false;
    if (stallTimer) clearInterval(stallTimer);
    const result = finish(false, (e as Error).message);
    for (const c of all) c.close();
    return result;
  }
}

process.on('disconnect', () => process.exit(0));
process.on('message', (m: ParentToGen) => {
  if (m?.type !== 'run') return gates.get(m?.runId)?.handle(m);
  const gate = m.part && m.part.count > 1 ? new Gate(m.part) : undefined;
  if (gate) gates.set(m.runId, gate);
  runScenario(m, gate).then(
    (result) => {
      gates.delete(m.runId);
      gate?.close();
      send({ type: 'result', runId: m.runId, result });
    },
    (e: unknown) => {
      process.stderr.write(`generator: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
});
selfCheckEncoder();
send({ type: 'ready', pid: process.pid });

// ---------------------------------------------------------------- IM payloads (pairs)
// The pairs scenario sends real IM payloads (IM-PROTOCOL.md section 3): one text item
// whose text ends with the 16-byte mark (source, sequence, send time) in hex, so the
// broker's payload validation and sender check run as they do for real chat traffic.
const IM_MARK_HEX = 32;
/** The mark's hex digits end this many bytes before the payload's end (`"}]}` follows). */
const IM_MARK_END = IM_MARK_HEX + 4;

function imPayload(sender: string, size: number): Buffer {
  const base = encodeImPayload({ sender, ts: Math.floor(Date.now() / 1000), kind: 0, media: 0, content: { con: [{ ty: 0, co: '' }] } });
  // Pad the text so the whole payload is `size` bytes (at least the mark).
  const pad = Math.max(0, size - base.length - IM_MARK_HEX);
  return encodeImPayload({ sender, ts: Math.floor(Date.now() / 1000), kind: 0, media: 0, content: { con: [{ ty: 0, co: 'a'.repeat(pad) + '0'.repeat(IM_MARK_HEX) }] } });
}

function imMark(payload: Buffer): Buffer | undefined {
  if (payload.length < IM_MARK_END + 16) return undefined;
  const hex = payload.toString('latin1', payload.length - IM_MARK_END, payload.length - 4);
  const mark = Buffer.from(hex, 'hex');
  return mark.length === 16 ? mark : undefined;
}
