/**
 * The load-generator scenarios (issue 3, item 2): fanin, fanout, pairs, latency, soak.
 * Each run measures one case per (transport, QoS) asked for: `--transport tcp,ws`,
 * `--qos 0,1,2` (defaults per scenario below), payload size `--payload N`.
 */
import { brokerTransports, type BrokerName } from '../lib/brokers.js';
import { runGenerator } from '../lib/gen-run.js';
import type { BenchOptions, Measurement, Scenario, Transport } from '../lib/scenario.js';
import type { QoS } from '../lib/lean-client.js';
import type { ScenarioSpec } from '../lib/types.js';

export const num = (o: BenchOptions, key: string, full: number, quick: number): number => {
  const v = o.extra[key];
  if (v === undefined) return o.quick ? quick : full;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${key} needs a positive number (got ${v})`);
  return n;
};

export function list<T extends string | number>(o: BenchOptions, key: string, dflt: T[], parse: (s: string) => T, allowed: readonly T[]): T[] {
  const v = o.extra[key];
  if (v === undefined) return dflt;
  const out = v.split(',').map((s) => parse(s.trim()));
  for (const x of out) if (!allowed.includes(x)) throw new Error(`--${key}: ${String(x)} is not one of ${allowed.join(', ')}`);
  return out;
}

const qosList = (o: BenchOptions, dflt: QoS[]): QoS[] => list<QoS>(o, 'qos', dflt, (s) => Number(s) as QoS, [0, 1, 2]);
const transports = (o: BenchOptions): Transport[] => list<Transport>(o, 'transport', ['tcp'], (s) => s as Transport, ['tcp', 'ws']);
/** Aedes speaks only 3.1.1. */
const version = (o: BenchOptions, b: BrokerName): 4 | 5 => (o.protocolVersion === 5 && b !== 'aedes' ? 5 : 4);

interface Shape {
  name: string;
  defaultQos: QoS[];
  describe(o: BenchOptions): string;
  spec(o: BenchOptions, qos: QoS, b: BrokerName): ScenarioSpec;
  durationS?(o: BenchOptions): number;
  series?: boolean;
}

function scenario(shape: Shape): Scenario {
  return {
    name: shape.name,
    describe: (o) => shape.describe(o),
    supports: (b, o) => transports(o).some((t) => brokerTransports(b).includes(t)),
    brokerOptions: (o) => ({ ws: transports(o).includes('ws') }),
    async run(broker, o, progress) {
      const out: Record<string, Measurement> = {};
      for (const transport of transports(o)) {
        for (const qos of qosList(o, shape.defaultQos)) {
          const key = `${shape.name} ${transport} QoS ${qos}`;
          if (!brokerTransports(broker.name).includes(transport)) {
            out[key] = { value: NaN, unit: 'msg/s', higherIsBetter: true, details: {}, issues: [], notMeasured: `no MQTT over ${transport} in ${broker.name}` };
            continue;
          }
          out[key] = await runGenerator(
            broker,
            { spec: shape.spec(o, qos, broker.name), transport, warmupS: o.warmupS, durationS: shape.durationS?.(o) ?? o.durationS, series: shape.series },
            progress,
          );
        }
      }
      return out;
    },
  };
}

export const fanin = scenario({
  name: 'fanin',
  defaultQos: [0, 1],
  describe: (o) =>
    `${num(o, 'publishers', 20, 20)} publishers on bench/fanin/<i> -> 1 subscriber on bench/fanin/#, ${o.payloadSize} B; QoS 0: each publisher keeps <= ${num(o, 'window', 100, 100)} messages in transit end to end; QoS 1/2: <= ${num(o, 'window', 100, 100)} unacknowledged, like an ordinary client`,
  spec: (o, qos, b) => ({
    kind: 'fanin',
    name: `fanin-qos${qos}`,
    qos,
    publishers: num(o, 'publishers', 20, 20),
    payloadSize: o.payloadSize,
    window: num(o, 'window', 100, 100),
    pacing: qos === 0 ? 'e2e' : 'puback',
    protocolVersion: version(o, b),
  }),
});

export const fanout = scenario({
  name: 'fanout',
  defaultQos: [0],
  describe: (o) =>
    `1 publisher on bench/fanout -> ${num(o, 'subscribers', 1000, 200)} subscribers, ${o.payloadSize} B, at most ${num(o, 'messages', 100, 100)} messages in transit to every subscriber; value = deliveries/s`,
  spec: (o, qos, b) => ({
    kind: 'fanout',
    name: `fanout-qos${qos}`,
    qos,
    subscribers: num(o, 'subscribers', 1000, 200),
    messages: num(o, 'messages', 100, 100),
    payloadSize: o.payloadSize,
    protocolVersion: version(o, b),
  }),
});

export const pairs = scenario({
  name: 'pairs',
  defaultQos: [1],
  describe: (o) =>
    `${num(o, 'pairs', 500, 500)} pairs of users (${num(o, 'pairs', 500, 500) * 2} clients, username = uid) publish IM payloads of ${o.payloadSize} B to each other's inbox /default/im/u/<uid>, <= ${num(o, 'window', 10, 10)} unacknowledged per client, as fast as the windows allow`,
  spec: (o, qos, b) => ({
    kind: 'pairs',
    name: `pairs-qos${qos}`,
    qos,
    pairs: num(o, 'pairs', 500, 500),
    payloadSize: o.payloadSize,
    window: num(o, 'window', 10, 10),
    protocolVersion: version(o, b),
  }),
});

export const latency = scenario({
  name: 'latency',
  defaultQos: [1],
  describe: (o) =>
    `${num(o, 'pairs', 100, 50)} IM pairs at a fixed offered rate of ${num(o, 'rate', 2000, 1000)} msg/s in total; every delivery's latency in an HDR histogram (p50/p90/p99/p99.9/max)`,
  spec: (o, qos, b) => ({
    kind: 'pairs',
    name: `latency-qos${qos}`,
    qos,
    pairs: num(o, 'pairs', 100, 50),
    payloadSize: o.payloadSize,
    window: 100,
    rate: num(o, 'rate', 2000, 1000),
    protocolVersion: version(o, b),
  }),
});

export const soak = scenario({
  name: 'soak',
  defaultQos: [1],
  series: true,
  durationS: (o) => num(o, 'soak-seconds', 120, 10),
  describe: (o) =>
    `${num(o, 'pairs', 100, 50)} IM pairs at ${num(o, 'rate', 1000, 1000)} msg/s for ${num(o, 'soak-seconds', 120, 10)} s: broker RSS and p99 latency every second`,
  spec: (o, qos, b) => ({
    kind: 'pairs',
    name: `soak-qos${qos}`,
    qos,
    pairs: num(o, 'pairs', 100, 50),
    payloadSize: o.payloadSize,
    window: 100,
    rate: num(o, 'rate', 1000, 1000),
    protocolVersion: version(o, b),
  }),
});
