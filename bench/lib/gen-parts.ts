/**
 * A generator run spread over several processes (bench/lib/generator-pool.ts): how the
 * clients are split (splitRun) and how the parts' results and ticks add up again
 * (mergeResults, mergeTicks). Pure functions.
 */
import * as hdr from 'hdr-histogram-js';
import type { CpuSpan, GenToParent, RunPart, RunResult, ScenarioSpec } from './types.js';

type Tick = Extract<GenToParent, { type: 'tick' }>;

/** [from, to) of `n` items over `k` parts, as even as can be. */
function ranges(n: number, k: number): Array<[number, number]> {
  return Array.from({ length: k }, (_, i) => [Math.floor((i * n) / k), Math.floor(((i + 1) * n) / k)]);
}

/**
 * Split a run over at most `procs` processes. Pairs: whole pairs per part (a pair's
 * latency and tracking stay in one process). Fan-out: the subscribers over every part,
 * the publisher in part 0. Fan-in: the one subscriber alone in part 0 (it receives as
 * many messages as all publishers send), the publishers over the other parts. Fewer parts
 * when there are fewer clients than processes.
 */
export function splitRun(spec: ScenarioSpec, procs: number): RunPart[] {
  const part = (index: number, count: number, [from, to]: [number, number], hub: boolean): RunPart => ({ index, count, from, to, hub });
  if (spec.kind === 'fanin') {
    const k = Math.min(procs - 1, spec.publishers);
    if (k < 1) return [part(0, 1, [0, spec.publishers], true)];
    return [part(0, k + 1, [0, 0], true), ...ranges(spec.publishers, k).map((r, i) => part(i + 1, k + 1, r, false))];
  }
  const n = spec.kind === 'fanout' ? spec.subscribers : spec.pairs;
  const k = Math.max(1, Math.min(procs, n));
  return ranges(n, k).map((r, i) => part(i, k, r, i === 0));
}

const newHist = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);

/** Histograms (compressed base64, microseconds) added into one. */
function mergedHist(encoded: Array<string | undefined>): ReturnType<typeof newHist> {
  const h = newHist();
  for (const e of encoded) if (e) h.add(hdr.decodeFromCompressedBase64(e));
  return h;
}

const percentileMs = (h: ReturnType<typeof newHist>, p: number) => (h.totalCount ? round(h.getValueAtPercentile(p) / 1000, 3) : NaN);

/** Processes side by side over the same span: CPU times add up, the wall clock is the longest. */
function cpuSum(spans: CpuSpan[]): CpuSpan {
  const userMs = sum(spans.map((s) => s.userMs));
  const systemMs = sum(spans.map((s) => s.systemMs));
  return { userMs: round(userMs), systemMs: round(systemMs), wallMs: Math.max(0, ...spans.map((s) => s.wallMs)), ratio: round(sum(spans.map((s) => s.ratio)), 3) };
}

const DRAIN_ORDER: RunResult['drainEnd'][] = ['complete', 'stalled', 'timeout'];

/**
 * One RunResult from the parts' (in part order). Counts and rates add up; what was lost
 * is recomputed from the sums (a fan-in publisher's part sees none of its deliveries, a
 * fan-out subscriber part none of the publishes); latency percentiles come from the
 * parts' histograms added up; the drain ends as its worst part; genCpuWindow/genCpuRun
 * are the sums, genCpuParts each part's window.
 */
export function mergeResults(spec: ScenarioSpec, parts: RunResult[]): RunResult {
  const total = (k: keyof RunResult) => sum(parts.map((p) => p[k] as number));
  const published = total('published');
  const uniqueReceived = total('uniqueReceived');
  const undelivered = Math.max(0, published * (spec.kind === 'fanout' ? spec.subscribers : 1) - uniqueReceived);
  const errors = parts.flatMap((p, i) => (p.error !== undefined ? [`generator ${i}: ${p.error}`] : []));
  const seconds = Math.max(0, ...parts.map((p) => p.perSecond.length));
  const hist = mergedHist(parts.map((p) => p.latencyHist));
  const drainMs = Math.max(0, ...parts.map((p) => p.drainMs));
  const drainReceived = total('drainReceived');
  const missed = parts.filter((p) => p.rateMissed !== undefined);
  const r: RunResult = {
    ok: parts.every((p) => p.ok),
    rate: total('rate'),
    publishRate: total('publishRate'),
    windowMs: Math.max(0, ...parts.map((p) => p.windowMs)),
    windowReceived: total('windowReceived'),
    perSecond: Array.from({ length: seconds }, (_, s) => sum(parts.map((p) => p.perSecond[s] ?? 0))),
    connectMs: Math.max(0, ...parts.map((p) => p.connectMs)),
    clients: total('clients'),
    published,
    acked: total('acked'),
    received: total('received'),
    uniqueReceived,
    duplicates: total('duplicates'),
    reordered: total('reordered'),
    lost: spec.qos > 0 ? undelivered : 0,
    unackedAtEnd: total('unackedAtEnd'),
    qos0Dropped: spec.qos > 0 ? 0 : undelivered,
    drained: parts.every((p) => p.drained),
    drainEnd: DRAIN_ORDER[Math.max(0, ...parts.map((p) => DRAIN_ORDER.indexOf(p.drainEnd)))]!,
    drainReceived,
    drainRate: drainMs > 0 ? Math.round((drainReceived * 1000) / drainMs) : 0,
    stallResets: total('stallResets'),
    drainMs,
    latencyMs: {
      p50: percentileMs(hist, 50),
      p90: percentileMs(hist, 90),
      p99: percentileMs(hist, 99),
      p999: percentileMs(hist, 99.9),
      max: hist.totalCount ? round(hist.maxValue / 1000, 3) : NaN,
      samples: hist.totalCount,
    },
    unexpectedCloses: total('unexpectedCloses'),
    closeSamples: parts.flatMap((p) => p.closeSamples).slice(0, 20),
    protocolErrors: parts.flatMap((p) => p.protocolErrors).slice(0, 20),
    unexpectedAcks: total('unexpectedAcks'),
    genCpuWindow: cpuSum(parts.map((p) => p.genCpuWindow)),
    genCpuRun: cpuSum(parts.map((p) => p.genCpuRun)),
    genCpuParts: parts.map((p) => p.genCpuWindow),
  };
  if (missed.length) r.rateMissed = sum(missed.map((p) => p.rateMissed!));
  if (errors.length) r.error = errors.join('; ');
  return r;
}

/** The parts' ticks of the same second as one: deliveries add up, percentiles from the added histograms. */
export function mergeTicks(ticks: Tick[]): Tick {
  const h = mergedHist(ticks.map((t) => t.hist));
  return { type: 'tick', runId: ticks[0]!.runId, second: ticks[0]!.second, received: sum(ticks.map((t) => t.received)), p50Ms: percentileMs(h, 50), p99Ms: percentileMs(h, 99) };
}
