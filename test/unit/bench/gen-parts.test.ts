/**
 * A generator run spread over several processes (bench/lib/gen-parts.ts): how the clients
 * are split, and how the parts' results and per-second ticks add up to one run.
 */
import * as hdr from 'hdr-histogram-js';
import { describe, expect, it } from 'vitest';
import { mergeResults, mergeTicks, splitRun } from '../../../bench/lib/gen-parts.js';
import type { CpuSpan, FaninSpec, FanoutSpec, PairsSpec, RunResult } from '../../../bench/lib/types.js';

const fanin = (publishers: number, qos: 0 | 1 = 1): FaninSpec => ({ kind: 'fanin', name: 'fanin', qos, publishers, payloadSize: 64, window: 100, pacing: 'puback', protocolVersion: 4 });
const fanout = (subscribers: number): FanoutSpec => ({ kind: 'fanout', name: 'fanout', qos: 0, subscribers, messages: 100, payloadSize: 64, protocolVersion: 4 });
const pairs = (n: number): PairsSpec => ({ kind: 'pairs', name: 'pairs', qos: 1, pairs: n, payloadSize: 64, window: 10, protocolVersion: 4 });

/** Microsecond values in a histogram, encoded as a generator part sends it. */
function hist(values: number[]): string {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  for (const v of values) h.recordValue(v);
  return hdr.encodeIntoCompressedBase64(h);
}

const cpu = (ratio: number, wallMs = 3000): CpuSpan => ({ userMs: ratio * wallMs * 0.75, systemMs: ratio * wallMs * 0.25, wallMs, ratio });

function result(over: Partial<RunResult> = {}): RunResult {
  return {
    ok: true,
    rate: 0,
    publishRate: 0,
    windowMs: 3000,
    windowReceived: 0,
    perSecond: [],
    connectMs: 10,
    clients: 0,
    published: 0,
    acked: 0,
    received: 0,
    uniqueReceived: 0,
    duplicates: 0,
    reordered: 0,
    lost: 0,
    unackedAtEnd: 0,
    qos0Dropped: 0,
    drained: true,
    drainEnd: 'complete',
    drainReceived: 0,
    drainRate: 0,
    stallResets: 0,
    drainMs: 100,
    latencyMs: { p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, samples: 0 },
    unexpectedCloses: 0,
    closeSamples: [],
    protocolErrors: [],
    unexpectedAcks: 0,
    genCpuWindow: cpu(0.5),
    genCpuRun: cpu(0.4, 5000),
    ...over,
  };
}

describe('splitRun', () => {
  it('pairs: whole pairs, as even as can be, every pair once', () => {
    expect(splitRun(pairs(500), 2).map((p) => [p.index, p.count, p.from, p.to])).toEqual([
      [0, 2, 0, 250],
      [1, 2, 250, 500],
    ]);
    const three = splitRun(pairs(7), 3);
    expect(three.map((p) => p.to - p.from)).toEqual([2, 2, 3]);
    expect(three.map((p) => [p.from, p.to]).flat()).toEqual([0, 2, 2, 4, 4, 7]);
  });

  it('fan-out: the subscribers over every process, the publisher (hub) in process 0', () => {
    const parts = splitRun(fanout(1000), 2);
    expect(parts.map((p) => [p.from, p.to, p.hub])).toEqual([
      [0, 500, true],
      [500, 1000, false],
    ]);
  });

  it('fan-in: the subscriber alone in process 0, the publishers over the others (global indexes)', () => {
    expect(splitRun(fanin(20), 2).map((p) => [p.index, p.count, p.from, p.to, p.hub])).toEqual([
      [0, 2, 0, 0, true],
      [1, 2, 0, 20, false],
    ]);
    expect(splitRun(fanin(20), 3).map((p) => [p.from, p.to])).toEqual([
      [0, 0],
      [0, 10],
      [10, 20],
    ]);
  });

  it('one process, or fewer clients than processes: fewer parts', () => {
    expect(splitRun(fanin(20), 1)).toEqual([{ index: 0, count: 1, from: 0, to: 20, hub: true }]);
    expect(splitRun(pairs(500), 1)).toEqual([{ index: 0, count: 1, from: 0, to: 500, hub: true }]);
    expect(splitRun(pairs(1), 4)).toHaveLength(1);
    expect(splitRun(fanin(1), 4)).toHaveLength(2);
  });
});

describe('mergeResults', () => {
  it('counts and rates add up; latency percentiles from the added histograms', () => {
    const a = result({
      rate: 1000,
      publishRate: 1010,
      windowReceived: 3000,
      perSecond: [1000, 1000, 1000],
      clients: 500,
      published: 4000,
      acked: 4000,
      received: 4001,
      uniqueReceived: 4000,
      duplicates: 1,
      reordered: 2,
      connectMs: 40,
      latencyHist: hist(Array.from({ length: 1000 }, () => 1000)),
    });
    const b = result({
      rate: 2000,
      publishRate: 2020,
      windowReceived: 6000,
      perSecond: [2000, 2000],
      clients: 500,
      published: 8000,
      acked: 8000,
      received: 8000,
      uniqueReceived: 8000,
      reordered: 1,
      connectMs: 60,
      latencyHist: hist(Array.from({ length: 3000 }, () => 5000)),
    });
    const r = mergeResults(pairs(500), [a, b]);
    expect(r.ok).toBe(true);
    expect([r.rate, r.publishRate, r.windowReceived, r.clients]).toEqual([3000, 3030, 9000, 1000]);
    expect([r.published, r.acked, r.received, r.uniqueReceived, r.duplicates, r.reordered, r.lost]).toEqual([12000, 12000, 12001, 12000, 1, 3, 0]);
    expect(r.perSecond).toEqual([3000, 3000, 1000]);
    expect(r.connectMs).toBe(60);
    // 1,000 deliveries at 1 ms and 3,000 at 5 ms: the median is 5 ms (part a alone: 1 ms).
    expect(r.latencyMs.samples).toBe(4000);
    expect(r.latencyMs.p50).toBeCloseTo(5, 1);
    expect(r.latencyMs.p90).toBeCloseTo(5, 1);
    expect(r.latencyMs.max).toBeCloseTo(5, 1);
    expect(mergeResults(pairs(500), [a, result()]).latencyMs.p50).toBeCloseTo(1, 1);
  });

  it('fan-in: what was lost comes from the sums (publisher parts see no deliveries, the hub no publishes)', () => {
    const hub = result({ received: 9990, uniqueReceived: 9990, clients: 1 });
    const pubs = result({ published: 10000, acked: 10000, clients: 20, unackedAtEnd: 0 });
    const r = mergeResults(fanin(20), [hub, pubs]);
    expect(r.lost).toBe(10);
    expect(r.qos0Dropped).toBe(0);
    const q0 = mergeResults(fanin(20, 0), [hub, pubs]);
    expect([q0.lost, q0.qos0Dropped]).toEqual([0, 10]);
  });

  it('fan-out: every publish is owed to every subscriber of every part', () => {
    const hub = result({ published: 100, uniqueReceived: 500 * 100, received: 500 * 100 });
    const other = result({ uniqueReceived: 500 * 100 - 7, received: 500 * 100 - 7 });
    expect(mergeResults(fanout(1000), [hub, other]).qos0Dropped).toBe(7);
  });

  it('generator CPU: sums over the processes, and each process on its own', () => {
    const r = mergeResults(pairs(500), [result({ genCpuWindow: cpu(0.95) }), result({ genCpuWindow: cpu(0.6) })]);
    expect(r.genCpuWindow.ratio).toBeCloseTo(1.55);
    expect(r.genCpuWindow.userMs + r.genCpuWindow.systemMs).toBeCloseTo(1.55 * 3000, 0);
    expect(r.genCpuParts?.map((c) => c.ratio)).toEqual([0.95, 0.6]);
    expect(r.genCpuRun.ratio).toBeCloseTo(0.8);
  });

  it('the worst part decides: failure, drain end, and its errors are kept', () => {
    const r = mergeResults(pairs(2), [
      result({ drainEnd: 'stalled', drained: false, drainMs: 600, drainReceived: 60 }),
      result({ ok: false, error: 'aborted', drainMs: 200, drainReceived: 30, protocolErrors: ['x'], rateMissed: 3 }),
    ]);
    expect(r.ok).toBe(false);
    expect(r.error).toBe('generator 1: aborted');
    expect([r.drained, r.drainEnd, r.drainMs, r.drainReceived, r.drainRate]).toEqual([false, 'stalled', 600, 90, 150]);
    expect(r.protocolErrors).toEqual(['x']);
    expect(r.rateMissed).toBe(3);
    expect(mergeResults(pairs(2), [result({ drainEnd: 'timeout' }), result({ drainEnd: 'stalled' })]).drainEnd).toBe('timeout');
    expect(mergeResults(pairs(2), [result(), result()]).rateMissed).toBeUndefined();
  });

  it('one part: its numbers unchanged', () => {
    const one = result({ published: 100, uniqueReceived: 98, rate: 50, windowReceived: 150, latencyHist: hist([1000, 2000, 3000]) });
    const r = mergeResults(pairs(5), [one]);
    expect([r.published, r.uniqueReceived, r.rate, r.windowReceived, r.lost]).toEqual([100, 98, 50, 150, 2]);
    expect(r.latencyMs.samples).toBe(3);
    expect(r.latencyMs.max).toBeCloseTo(3, 1);
    expect(r.genCpuWindow.ratio).toBe(one.genCpuWindow.ratio);
  });
});

describe('mergeTicks', () => {
  it("a second's deliveries add up; p50/p99 over every part's deliveries of that second", () => {
    const t = mergeTicks([
      { type: 'tick', runId: 'r', second: 2, received: 900, p50Ms: 1, p99Ms: 1, hist: hist(Array.from({ length: 900 }, () => 1000)) },
      { type: 'tick', runId: 'r', second: 2, received: 100, p50Ms: 10, p99Ms: 10, hist: hist(Array.from({ length: 100 }, () => 10_000)) },
    ]);
    expect(t).toMatchObject({ type: 'tick', runId: 'r', second: 2, received: 1000 });
    expect(t.p50Ms).toBeCloseTo(1, 1);
    expect(t.p99Ms).toBeCloseTo(10, 1);
  });
});
