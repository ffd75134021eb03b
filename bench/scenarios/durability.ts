/**
 * `npm run bench -- durability` (issue 8): what `store.durability` costs, and what a
 * restart with queued messages takes. Switchboard in each durability mode (brokers
 * switchboard-memory, switchboard-async and switchboard = sync, the default) against
 * Mosquitto with `persistence true`. QoS 1 throughout; every subscriber keeps a
 * persistent session (clean false, v5 Session Expiry Interval 3600 s): only those
 * sessions' messages are stored.
 *
 * Cases, each a run of its own on a fresh broker (`--cases` picks some):
 *   pairs         N publisher->subscriber pairs (IM inboxes), <= 10 unacknowledged each: msg/s, p50/p99
 *   fanin         20 publishers -> 1 persistent subscriber, <= 25 in transit per publisher: msg/s, p99
 *   latency       N pairs at a fixed offered rate: p99 (p50 in the details)
 *   restart-term  S offline sessions x M queued messages, SIGTERM, start again, reconnect:
 *   restart-kill  the same with SIGKILL. Time to accept connections, drain time, RSS, delivered
 *                 (not for Switchboard memory: it keeps nothing)
 * Options: --cases LIST, --modes memory,async,sync, --pairs N (50; quick 20), --rate R (2000),
 *   --publishers N (20), --sessions S (100; quick 10), --per-session M (1000), --protocol 4|5 (5),
 *   --signal-delay MS (restart: wait between the last PUBACK and the signal; 0).
 */
import {
  MOSQUITTO_AUTOSAVE_S,
  SWITCHBOARD_VARIANTS,
  isSwitchboard,
  procIo,
  type BrokerHandle,
  type BrokerName,
} from '../lib/brokers.js';
import { runGenerator } from '../lib/gen-run.js';
import { queuedRestart, type QueuedRestartResult } from '../lib/queued-restart.js';
import type { BenchOptions, Measurement, Progress, Scenario } from '../lib/scenario.js';
import type { ScenarioSpec } from '../lib/types.js';
import { list, num } from './mqtt.js';

export type DurabilityMode = 'memory' | 'async' | 'sync';
const MODES: DurabilityMode[] = ['memory', 'async', 'sync'];
export const MODE_BROKER: Record<DurabilityMode, BrokerName> = { memory: 'switchboard-memory', async: 'switchboard-async', sync: 'switchboard' };
const CASES = ['pairs', 'fanin', 'latency', 'restart-term', 'restart-kill'] as const;
type Case = (typeof CASES)[number];
/** Session Expiry Interval of every persistent session (v5). */
const EXPIRY_S = 3600;

/** Switchboard's durability mode as a broker of the bench, if it is one. */
export function modeOf(b: BrokerName): DurabilityMode | undefined {
  return isSwitchboard(b) ? MODES.find((m) => MODE_BROKER[m] === b) : undefined;
}

/**
 * The brokers to run: `switchboard` stands for Switchboard in every mode asked for, unless
 * a mode was named as a broker (`--brokers switchboard-async,mosquitto`): then as given.
 */
export function durabilityBrokers(chosen: BrokerName[], modes: DurabilityMode[]): BrokerName[] {
  if (!chosen.includes('switchboard') || chosen.some((b) => SWITCHBOARD_VARIANTS[b] !== undefined)) return chosen;
  return chosen.flatMap((b) => (b === 'switchboard' ? modes.map((m) => MODE_BROKER[m]) : [b]));
}

/** The banner line that shows which mode a Switchboard process runs in. */
export function modeBanner(mode: DurabilityMode): RegExp {
  return mode === 'memory' ? /^\s+store\s+memory/m : new RegExp(`^\\s+store\\s+LMDB .*durability ${mode}$`, 'm');
}

const cases = (o: BenchOptions): Case[] => list<Case>(o, 'cases', [...CASES], (s) => s as Case, CASES);
const modes = (o: BenchOptions): DurabilityMode[] => list<DurabilityMode>(o, 'modes', MODES, (s) => s as DurabilityMode, MODES);
const protocol = (o: BenchOptions): 4 | 5 => list<4 | 5>(o, 'protocol', [5], (s) => Number(s) as 4 | 5, [4, 5])[0]!;
const sizes = (o: BenchOptions) => ({
  pairs: num(o, 'pairs', 50, 20),
  rate: num(o, 'rate', 2000, 2000),
  publishers: num(o, 'publishers', 20, 20),
  sessions: num(o, 'sessions', 100, 10),
  perSession: num(o, 'per-session', 1000, 1000),
});

function describe(o: BenchOptions): string {
  const z = sizes(o);
  const v = protocol(o) === 5 ? `MQTT 5, Clean Start 0 + Session Expiry ${EXPIRY_S} s` : 'MQTT 3.1.1, CleanSession 0';
  return (
    `Switchboard with store.durability memory / async / sync ("Switchboard" = sync, the default) vs Mosquitto with persistence true ` +
    `(autosave_interval ${MOSQUITTO_AUTOSAVE_S} s, its default: it writes its database only then and on shutdown). QoS 1, ${o.payloadSize} B, ` +
    `persistent subscriber sessions (${v}). pairs: ${z.pairs} publisher->subscriber pairs (IM inboxes), <= 10 unacknowledged per client; ` +
    `fanin: ${z.publishers} publishers -> 1 persistent subscriber, <= 25 in transit per publisher; latency: ${z.pairs} pairs at ${z.rate} msg/s, value = p99; ` +
    `restart SIGTERM/SIGKILL: ${z.sessions} offline sessions x ${z.perSession} queued messages (every one PUBACKed), then the signal right after the last PUBACK, ` +
    `start again on the same data, reconnect: ready = broker process spawn to port accepting, drain = first reconnect to last message, ` +
    `RSS before the stop and after the start (no client back yet); delivered counts distinct messages (not for Switchboard memory). ` +
    `disk MB/s and KiB/msg: the broker's /proc write_bytes over the window`
  );
}

// ---------------------------------------------------------------- load cases

function loadSpec(c: 'pairs' | 'fanin' | 'latency', o: BenchOptions): ScenarioSpec {
  const z = sizes(o);
  const common = { qos: 1 as const, payloadSize: o.payloadSize, protocolVersion: protocol(o), sessionExpiry: EXPIRY_S };
  if (c === 'fanin') return { kind: 'fanin', name: 'durability-fanin', publishers: z.publishers, window: 25, pacing: 'e2e', ...common };
  if (c === 'pairs') return { kind: 'pairs', name: 'durability-pairs', pairs: z.pairs, window: 10, ...common };
  return { kind: 'pairs', name: 'durability-latency', pairs: z.pairs, window: 100, rate: z.rate, ...common };
}

async function load(c: 'pairs' | 'fanin' | 'latency', b: BrokerHandle, o: BenchOptions, progress: Progress): Promise<Measurement> {
  let io0: ReturnType<typeof procIo>;
  let t0 = 0;
  let disk: { bytes: number; ms: number } | undefined;
  const m = await runGenerator(
    b,
    {
      spec: loadSpec(c, o),
      transport: 'tcp',
      warmupS: o.warmupS,
      durationS: o.durationS,
      onWindow: (phase) => {
        if (phase === 'start') {
          io0 = procIo(b.pid);
          t0 = performance.now();
        } else {
          const io1 = procIo(b.pid);
          if (io0 && io1) disk = { bytes: io1.writeBytes - io0.writeBytes, ms: performance.now() - t0 };
        }
      },
    },
    progress,
  );
  if (disk && Number.isFinite(m.value)) {
    m.details.diskMBps = Math.round((disk.bytes / 1e6 / (disk.ms / 1000)) * 10) / 10;
    if (m.value > 0) m.details.diskKiBPerMsg = Math.round((disk.bytes / 1024 / ((m.value * disk.ms) / 1000)) * 100) / 100;
  }
  if (c === 'latency') {
    // The headline of a fixed-rate run is its tail latency; the rate it delivered stays in the details.
    m.details.deliveredRate = m.value;
    m.value = m.details.p99Ms ?? NaN;
    m.unit = 'ms p99';
    m.higherIsBetter = false;
  }
  return m;
}

// ---------------------------------------------------------------- restart cases

/** Three cases from one restart run: time to accept connections, drain time, messages delivered (pure: tested). */
export function restartMeasurements(
  b: BrokerName,
  signal: 'SIGTERM' | 'SIGKILL',
  r: QueuedRestartResult,
  z: { sessions: number; perSession: number },
): Record<string, Measurement> {
  const t = r.tally;
  const expected = z.sessions * z.perSession;
  const resumed = `${r.sessionsResumed} of ${z.sessions} sessions resumed`;
  const lost = Math.max(0, r.queued - t.delivered);
  const ready: Measurement = {
    value: r.readyMs,
    unit: 'ms',
    higherIsBetter: false,
    details: {
      emptyStartMs: r.emptyReadyMs,
      stopMs: r.stopped.stopMs,
      rssBeforeStopMB: r.rssBeforeStopMB,
      rssAfterRestartMB: r.rssAfterRestartMB,
      fillRate: r.fillMs > 0 ? Math.round((r.queued * 1000) / r.fillMs) : NaN,
    },
    issues: [],
  };
  if (signal === 'SIGTERM' && (r.stopped.killed || r.stopped.code !== 0)) {
    ready.issues.push(`SIGTERM: ${r.stopped.killed ? 'no exit within the grace time, SIGKILLed' : `exit code ${r.stopped.code}, signal ${r.stopped.signal}`}`);
  }
  const drainS = r.drainMs / 1000;
  const drain: Measurement = {
    value: t.delivered ? drainS : NaN,
    unit: 's',
    higherIsBetter: false,
    details: {
      drainRate: t.delivered && drainS > 0 ? Math.round(t.delivered / drainS) : 0,
      brokerCpuPct: r.brokerCpuPct,
      genCpuPct: r.genCpuPct,
      connectMs: r.connectMs,
      sessionsResumed: r.sessionsResumed,
    },
    issues: r.drainEnd === 'timeout' ? [`drain still running when the bench stopped waiting (${t.delivered} delivered)`] : [],
  };
  if (!t.delivered) drain.notMeasured = `nothing delivered (${resumed})`;
  const delivered: Measurement = {
    value: t.delivered,
    unit: 'messages',
    higherIsBetter: true,
    details: { queued: r.queued, lost, duplicates: t.duplicates, reordered: t.reordered, sessionsResumed: r.sessionsResumed, completeSessions: t.completeSessions },
    issues: [...r.errors],
  };
  if (r.queued < expected) delivered.issues.push(`only ${r.queued} of ${expected} messages were acknowledged before the stop`);
  if (lost) {
    const mode = modeOf(b);
    const why =
      mode === 'sync'
        ? 'durability sync: must be 0'
        : mode === 'async' && signal === 'SIGKILL'
          ? 'durability async acknowledges before the commit'
          : b === 'mosquitto' && signal === 'SIGKILL'
            ? `Mosquitto writes its database every ${MOSQUITTO_AUTOSAVE_S} s and on shutdown only`
            : 'unexpected';
    delivered.issues.push(`LOST: ${lost} of ${r.queued} acknowledged messages not delivered after ${signal} + restart (${why}; ${resumed})`);
  }
  if (t.duplicates) delivered.issues.push(`${t.duplicates} duplicate deliveries`);
  if (t.reordered) delivered.issues.push(`${t.reordered} deliveries out of order`);
  if (t.misrouted) delivered.issues.push(`${t.misrouted} messages delivered to the wrong session or unreadable`);
  const name = `restart ${signal}`;
  return { [`${name}: ready`]: ready, [`${name}: drain`]: drain, [`${name}: delivered`]: delivered };
}

// ---------------------------------------------------------------- the scenario

export const durability: Scenario = {
  name: 'durability',
  describe,
  brokers: (chosen, o) => durabilityBrokers(chosen, modes(o)),
  supports: (b, o) => {
    if (!isSwitchboard(b) && b !== 'mosquitto') return false;
    // Memory keeps nothing across a restart: nothing to measure.
    return !(o.extra.dcase?.startsWith('restart') && b === 'switchboard-memory');
  },
  variants: (o) => cases(o).map((c) => ({ dcase: c })),
  brokerOptions: () => ({ persistence: true }),
  async run(broker, o, progress) {
    const c = (o.extra.dcase ?? 'pairs') as Case;
    const mode = modeOf(broker.name);
    const bannerIssue = mode && !modeBanner(mode).test(broker.output()) ? [`Switchboard's banner does not say durability ${mode}`] : [];
    let out: Record<string, Measurement>;
    if (c === 'restart-term' || c === 'restart-kill') {
      const z = sizes(o);
      const signal = c === 'restart-term' ? 'SIGTERM' : 'SIGKILL';
      const r = await queuedRestart(
        broker,
        {
          sessions: z.sessions,
          perSession: z.perSession,
          payloadSize: o.payloadSize,
          protocolVersion: protocol(o),
          sessionExpiry: EXPIRY_S,
          signal,
          publishers: 10,
          window: 100,
          idleMs: 3000,
          capMs: 120_000,
          signalDelayMs: o.extra['signal-delay'] === undefined ? 0 : num(o, 'signal-delay', 0, 0),
        },
        progress,
      );
      out = restartMeasurements(broker.name, signal, r, z);
    } else {
      out = { [c]: await load(c, broker, o, progress) };
    }
    for (const m of Object.values(out)) m.issues.push(...bannerIssue);
    return out;
  },
};
