/**
 * Messages between the bench (bench/lib/generator-pool.ts, the parent) and the load
 * generator children (bench/lib/generator.ts). A run spread over several children
 * (RunRequest.part) is gated: each child connects and subscribes its share, waits for
 * `go`, publishes on a common clock and sends its progress (PartProgress) straight to the
 * other parts (UDP on loopback, ports from `go`), which need it for end-to-end pacing and
 * for the drain.
 */
import type { CloseInfo, ProtocolVersion, QoS } from './lean-client.js';

export interface FaninSpec {
  kind: 'fanin';
  name: string;
  qos: QoS;
  publishers: number;
  payloadSize: number;
  /** Per publisher: un-PUBACKed publishes (QoS 1) and/or messages in transit end to end (pacing 'e2e'). */
  window: number;
  /**
   * 'e2e': each publisher keeps at most `window` messages in transit end to end, i.e. sent
   *   but not yet seen by the subscriber (the generator sees both ends); with QoS 1 the
   *   PUBACK window applies as well. Measures sustainable delivery without overload.
   * 'puback' (QoS 1): only the PUBACK window, as an ordinary client would; a broker that
   *   acknowledges faster than it delivers is offered more than it can deliver.
   * 'flood' (QoS 0): publish as fast as the publisher sockets take (overload behaviour).
   */
  pacing: 'e2e' | 'puback' | 'flood' | 'rate';
  /** pacing 'rate': messages per second offered, all publishers together. */
  rate?: number;
  protocolVersion: ProtocolVersion;
  /** The subscriber keeps a persistent session (see PairsSpec.sessionExpiry); publishers stay clean. */
  sessionExpiry?: number;
  /** A slow subscriber: it acknowledges at most this many messages per second (LeanClient ackRate). */
  subscriberAckRate?: number;
}

/** One publisher, many subscribers of one topic: bursts of `messages`, deliveries counted per subscriber. */
export interface FanoutSpec {
  kind: 'fanout';
  name: string;
  qos: QoS;
  subscribers: number;
  /** Messages per burst; the run publishes bursts until the window ends (at least one). */
  messages: number;
  payloadSize: number;
  protocolVersion: ProtocolVersion;
}

export interface PairsSpec {
  kind: 'pairs';
  name: string;
  qos: QoS;
  pairs: number;
  payloadSize: number;
  /** Unacked QoS 1 publishes per client. */
  window: number;
  /** Messages per second offered, all clients together (latency, soak); absent = as fast as the windows allow. */
  rate?: number;
  protocolVersion: ProtocolVersion;
  /**
   * Subscribers connect with a persistent session: CleanSession/Clean Start 0 and, in v5,
   * this Session Expiry Interval (s). Absent = clean sessions. Durability: only persistent
   * sessions' QoS 1/2 messages are stored.
   */
  sessionExpiry?: number;
}

export type ScenarioSpec = FaninSpec | PairsSpec | FanoutSpec;

export interface RunRequest {
  type: 'run';
  runId: string;
  host: string;
  port: number;
  /** MQTT over WebSocket on `port` at this path, instead of TCP. */
  wsPath?: string;
  scenario: ScenarioSpec;
  warmupMs: number;
  durationMs: number;
  /** Upper bound for waiting, after publishing stops, until in-flight messages arrive. */
  drainMs: number;
  connectConcurrency: number;
  /** This process's share of a run spread over several generator processes; absent = the whole run. */
  part?: RunPart;
}

/**
 * One generator process's share of a run (bench/lib/gen-parts.ts splitRun). Client and
 * source indexes stay global, so marks, client ids and the hub's tracking are exact.
 */
export interface RunPart {
  index: number;
  count: number;
  /**
   * The clients of this part, [from, to) by global index: fan-in publishers, fan-out
   * subscribers, pairs (pair p = clients 2p and 2p + 1).
   */
  from: number;
  to: number;
  /** Fan-in: this part holds the subscriber; fan-out: the publisher. */
  hub: boolean;
}

/** A part's counts, sent to the other parts of the run (one UDP datagram of JSON; the latest counts). */
export interface PartProgress {
  part: number;
  published: number;
  unique: number;
  received: number;
  inflight: number;
  /** Publishing has stopped: `published` is final. */
  draining: boolean;
  /** Fan-in hub: highest sequence seen per (global) source, for the publishers' end-to-end windows. */
  maxSeq?: number[];
}

export type ParentToGen =
  | RunRequest
  /**
   * Every part is subscribed: publish from `startAt` (sharedClockMs), warm up, then the
   * window; `ports`: every part's UDP port (by part index) for the progress reports.
   */
  | { type: 'go'; runId: string; startAt: number; ports: number[] }
  /** Another part failed before `go`: give up. */
  | { type: 'abort'; runId: string; reason: string };

/**
 * Milliseconds on CLOCK_MONOTONIC, the same in every process of the machine: send times in
 * marks and `go` times compare across generator processes.
 */
export const sharedClockMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export type GenToParent =
  | { type: 'ready'; pid: number }
  /** `subscribed` of a part: with the UDP port its progress reports from the other parts go to. */
  | { type: 'phase'; runId: string; phase: 'connected' | 'subscribed' | 'window-start' | 'window-end' | 'drained'; port?: number }
  /**
   * Once a second during the window: deliveries and latency of that second (soak series,
   * progress); a part also sends that second's histogram (compressed base64) for the merge.
   */
  | { type: 'tick'; runId: string; second: number; received: number; p50Ms: number; p99Ms: number; hist?: string }
  | { type: 'result'; runId: string; result: RunResult };

export interface CpuSpan {
  userMs: number;
  systemMs: number;
  wallMs: number;
  /** (user + system) / wall: 1.0 = one core fully busy. */
  ratio: number;
}

export interface RunResult {
  ok: boolean;
  error?: string;
  /** Messages received by subscribers per second over the measurement window. */
  rate: number;
  /** Publishes sent per second over the window. */
  publishRate: number;
  windowMs: number;
  windowReceived: number;
  perSecond: number[];
  connectMs: number;
  clients: number;
  /** Totals over the whole run (warm-up + window + drain). */
  published: number;
  acked: number;
  received: number;
  uniqueReceived: number;
  duplicates: number;
  reordered: number;
  /** QoS 1 only: published messages never delivered after draining (should be 0). */
  lost: number;
  /** QoS 1 only: publishes the broker never acknowledged by the end of the drain. */
  unackedAtEnd: number;
  /** QoS 0 only: published but not delivered (allowed by MQTT: at most once). */
  qos0Dropped: number;
  drained: boolean;
  /**
   * How the drain ended: 'complete' (everything published arrived), 'stalled' (nothing
   * arrived for 500 ms and no PUBACK outstanding: what is missing is lost), 'timeout'
   * (drainMs passed while messages were still arriving or PUBACKs outstanding: a backlog).
   */
  drainEnd: 'complete' | 'stalled' | 'timeout';
  /** Messages received during the drain and their rate. */
  drainReceived: number;
  drainRate: number;
  /** e2e pacing: times a publisher's window was written off after 1 s without progress (broker drops). */
  stallResets: number;
  drainMs: number;
  /** From an HDR histogram of every delivery in the window (fan-in/pairs/fanout). */
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; samples: number };
  /** pacing 'rate': publishes skipped because a client's window was full (the broker could not keep up). */
  rateMissed?: number;
  unexpectedCloses: number;
  closeSamples: CloseInfo[];
  protocolErrors: string[];
  unexpectedAcks: number;
  /** Over the window; several generator processes: the sums (ratio 2.0 = two cores busy). */
  genCpuWindow: CpuSpan;
  genCpuRun: CpuSpan;
  /** Several generator processes: each one's CPU over the window (each is one thread). */
  genCpuParts?: CpuSpan[];
  /** A part's latency histogram of the window (compressed base64), for the merge. */
  latencyHist?: string;
}
