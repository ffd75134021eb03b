/**
 * Load generator: a child process of bench/quick.ts (spawned with an IPC channel), one
 * thread, all clients are LeanClients. It waits for {type:'run'} requests, runs one
 * scenario against the given broker port and answers with a RunResult. It exits when
 * the parent goes away.
 *
 * Every payload carries (source index u32 LE, sequence u32 LE, send time f64 LE), so the
 * receiver can count duplicates, reordering and losses exactly and sample latency.
 */
import { performance } from 'node:perf_hooks';
import { encodeImPayload } from '../../src/im/index.js';
import * as hdr from 'hdr-histogram-js';
import { LeanClient, selfCheckEncoder, type CloseInfo, type QoS } from './lean-client.js';
import type { CpuSpan, GenToParent, RunRequest, RunResult } from './types.js';

const send = (m: GenToParent) => process.send?.(m);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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
    if (src >= this.sources) {
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

async function runScenario(req: RunRequest): Promise<RunResult> {
  const sc = req.scenario;
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

  // Publishers (index = source id), their topic and the subscribers.
  let pubs: LeanClient[];
  let topics: Buffer[];
  let subs: { client: LeanClient; filter: string }[];
  let sources: number;
  let misrouted = 0;
  let expectedSource: ((receiverIndex: number, src: number) => boolean) | undefined;
  if (sc.kind === 'fanout') {
    // Subscribers first: every one of them must hold the subscription before the first publish.
    subs = Array.from({ length: sc.subscribers }, (_, i) => ({ client: make(`qb-${req.runId}-s${i}`, 100), filter: 'bench/fanout' }));
    pubs = [make(`qb-${req.runId}-pub`, 100)];
    topics = [Buffer.from('bench/fanout')];
    sources = 1;
  } else if (sc.kind === 'fanin') {
    const sub = make(`qb-${req.runId}-sub`, 100, undefined, sc.subscriberAckRate !== undefined ? { ...persistent, ackRate: sc.subscriberAckRate } : persistent);
    subs = [{ client: sub, filter: 'bench/fanin/#' }];
    pubs = Array.from({ length: sc.publishers }, (_, i) => make(`qb-${req.runId}-pub${i}`, sc.window));
    topics = pubs.map((_, i) => Buffer.from(`bench/fanin/${i}`));
    sources = sc.publishers;
  } else {
    const n = sc.pairs * 2;
    const uid = (k: number) => `${req.runId}-${k}`;
    // Each client logs in as its user (the uid), so Switchboard's IM checks (sender =
    // uid, own inbox only) pass as they would for real users; `default` is its default namespace.
    // Every client subscribes to its inbox: all of them are subscribers (persistent if asked).
    pubs = Array.from({ length: n }, (_, k) => make(`qb-${uid(k)}`, sc.window, uid(k), persistent));
    // k and k^1 are partners: k publishes into its partner's inbox.
    topics = pubs.map((_, k) => Buffer.from(`/default/im/u/${uid(k ^ 1)}`));
    subs = pubs.map((client, k) => ({ client, filter: `/default/im/u/${uid(k)}` }));
    sources = n;
    expectedSource = (receiver, src) => (receiver ^ 1) === src;
  }

  const tracker = new Tracker(sources);
  // Fan-out: every message has `subscribers` recipients, so each keeps its own tracker.
  const trackers = sc.kind === 'fanout' ? subs.map(() => new Tracker(1)) : undefined;
  const multiplicity = sc.kind === 'fanout' ? sc.subscribers : 1;
  const uniqueTotal = (): number => (trackers ? trackers.reduce((a, t) => a + t.unique, 0) : tracker.unique);
  const paced = (sc.kind === 'fanin' && sc.pacing === 'e2e') || sc.kind === 'fanout';
  const rate = sc.kind === 'fanout' ? undefined : sc.kind === 'fanin' ? (sc.pacing === 'rate' ? sc.rate : undefined) : sc.rate;
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
      (trackers ? trackers[receiverIndex]! : tracker).record(src, mark.readUInt32LE(4));
      if (expectedSource && !expectedSource(receiverIndex, src)) misrouted++;
      onSourceProgress?.(src);
      if (inWindow) {
        const us = Math.max(1, Math.round((performance.now() - mark.readDoubleLE(8)) * 1000));
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

    // 3. Publish at max rate: QoS 1 bounded by the window, QoS 0 by socket backpressure.
    const scratch = pubs.map((_, i) => {
      const b = sc.kind === 'pairs' ? imPayload(pubs[i]!.opts.username!, sc.payloadSize) : Buffer.alloc(Math.max(16, sc.payloadSize), 0x61);
      return b;
    });
    const mark = Buffer.alloc(16);
    const seqs = new Uint32Array(pubs.length);
    const publishOne = (i: number): boolean => {
      const p = scratch[i]!;
      mark.writeUInt32LE(i, 0);
      mark.writeUInt32LE(seqs[i]!, 4);
      mark.writeDoubleLE(performance.now(), 8);
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
    const writtenOff = new Float64Array(pubs.length);
    const lastProgress = new Float64Array(pubs.length).fill(performance.now());
    const inTransit = trackers
      ? (i: number) => seqs[i]! - Math.max(Math.floor(uniqueTotal() / multiplicity), writtenOff[i]!)
      : (i: number) => seqs[i]! - Math.max(tracker.maxSeq[i]! + 1, writtenOff[i]!);
    const pumpPaced = (i: number): void => {
      const c = pubs[i]!;
      const room = qos > 0 ? () => c.canSendQos1() : () => c.canSendQos0();
      while (running && inTransit(i) < e2eWindow && room()) publishOne(i);
      if (running && c.backpressured && !c.onDrain) c.onDrain = () => pumpPaced(i);
    };
    if (paced) {
      onSourceProgress = (src) => {
        lastProgress[src] = performance.now();
        if (running) pumpPaced(src);
      };
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
    if (rate !== undefined) {
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

    await sleep(req.warmupMs);
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
      send({ type: 'tick', runId: req.runId, second: base.perSecond.length, received: n, p50Ms: ms(50), p99Ms: ms(99) });
      secondHist.reset();
    }, 1000);
    await sleep(req.durationMs);
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

    // 4. Drain: wait until what was published has arrived (or nothing moves any more).
    const d0 = performance.now();
    let last = totalReceived;
    let stableSince = d0;
    for (;;) {
      await sleep(25);
      const now = performance.now();
      if (totalReceived !== last) {
        last = totalReceived;
        stableSince = now;
      }
      const inflight = qos > 0 ? pubs.reduce((a, c) => a + (c.closed ? 0 : c.inflight), 0) : 0;
      if (uniqueTotal() >= totalPublished * multiplicity && inflight === 0) {
        base.drained = true;
        base.drainEnd = 'complete';
        break;
      }
      if (now - stableSince > 500 && inflight === 0) {
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
    if (qos > 0) {
      base.unackedAtEnd = pubs.reduce((a, c) => a + c.inflight, 0);
      base.lost = Math.max(0, totalPublished * multiplicity - uniqueTotal());
    } else {
      base.qos0Dropped = Math.max(0, totalPublished * multiplicity - uniqueTotal());
    }
    const ms = (p: number) => (hist.totalCount ? round(hist.getValueAtPercentile(p) / 1000, 3) : NaN);
    base.latencyMs = { p50: ms(50), p90: ms(90), p99: ms(99), p999: ms(99.9), max: hist.totalCount ? round(hist.maxValue / 1000, 3) : NaN, samples: hist.totalCount };

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
process.on('message', (m: RunRequest) => {
  if (m?.type !== 'run') return;
  runScenario(m).then(
    (result) => send({ type: 'result', runId: m.runId, result }),
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
