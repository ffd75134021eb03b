/**
 * The contract between the bench runner (bench/run.ts) and a scenario.
 *
 * The runner starts a fresh broker process per run (bench/lib/brokers.ts), interleaves
 * brokers (A B A B ...) over `rounds`, and hands each run to the scenario. A scenario
 * returns one Measurement per case it measures (a plain scenario has one case; `conns`
 * has a case per connection count and push group). The runner reports, per case and
 * broker, the median and min-max over the rounds and the ratio to every peer, and draws
 * the charts (bench/lib/report.ts).
 */
import type { BrokerHandle, BrokerName } from './brokers.js';

export type Transport = 'tcp' | 'ws';

export interface BenchOptions {
  /** `--quick`: small sizes and short windows, so `all --quick` takes a few minutes. */
  quick: boolean;
  rounds: number;
  /** Measurement window and warm-up, seconds. */
  durationS: number;
  warmupS: number;
  transport: Transport;
  qos: 0 | 1 | 2;
  payloadSize: number;
  /** MQTT protocol level spoken to brokers that support it (4 = 3.1.1, 5 = 5.0). */
  protocolVersion: 4 | 5;
  brokers: BrokerName[];
  /** `--gen-procs`: load generator processes per generator run (bench/lib/generator-pool.ts). */
  genProcs?: number;
  /** Scenario-specific options, `--name value` on the command line (e.g. conns: "10000,20000"). */
  extra: Record<string, string>;
}

export interface Measurement {
  /** The headline number of this case (msg/s, seconds, KiB per connection, req/s...). */
  value: number;
  unit: string;
  higherIsBetter: boolean;
  /** Further named numbers for the tables (p50 ms, broker CPU %, generator CPU %...). */
  details: Record<string, number>;
  /** Anything a reader must know about this run (losses, errors, "needs cluster"). */
  issues: string[];
  /** Optional time series or distributions for charts: name -> [x, y] points. */
  series?: Record<string, Array<[number, number]>>;
  /** The case could not be measured on this broker/machine, and why (printed instead of a number). */
  notMeasured?: string;
  /**
   * A broker of several processes (a cluster): named numbers per process (`n0`, `n1`,
   * ..., `nats-server`), e.g. its RSS or CPU, where `details` has the sums.
   */
  breakdown?: Record<string, Record<string, number>>;
  /**
   * The generator scenarios: CPU of each load generator process over the window, % of a
   * core (each process is one thread; `details.genCpuPct` is the busiest, `genCpuSumPct` the sum).
   */
  generatorCpuPct?: number[];
}

export interface Progress {
  /** A progress line on stderr for long runs (throttled by the runner). */
  update(label: string, done: number, total: number): void;
  done(): void;
}

export interface Scenario {
  name: string;
  /** One line for the report: what is offered, how it is measured. */
  describe(o: BenchOptions): string;
  /**
   * The brokers this scenario can run against with these options (e.g. HTTP: Switchboard
   * only); asked again per variant, with the variant's keys in `o.extra`.
   */
  supports(broker: BrokerName, o: BenchOptions): boolean;
  /**
   * The brokers to run, from those chosen (--brokers or every installed one), before
   * supports() filters them (e.g. durability: Switchboard in each durability mode).
   */
  brokers?(chosen: BrokerName[], o: BenchOptions): BrokerName[];
  /**
   * Broker start options this scenario needs (e.g. extra Switchboard flags, a WebSocket
   * listener, Mosquitto with persistence).
   */
  brokerOptions?(o: BenchOptions): { switchboardArgs?: string[]; ws?: boolean; env?: Record<string, string>; persistence?: boolean };
  /**
   * Run this broker as a cluster: Switchboard (bench/lib/cluster.ts: how many nodes, and
   * their thread arguments) or NATS (bench/lib/nats-cluster.ts: nodes = nats-servers,
   * nodeArgs unused); undefined or 0 nodes = one process (asked per variant; the other
   * peers are never asked). The runner then hands run() a handle with `cluster` set.
   */
  cluster?(broker: BrokerName, o: BenchOptions): { nodes: number; nodeArgs: string[] } | undefined;
  run(broker: BrokerHandle, o: BenchOptions, progress: Progress): Promise<Record<string, Measurement>>;
  /**
   * Split one scenario into runs that each get a fresh broker (e.g. conns: one run per
   * connection count, so memory numbers never include what a previous size left behind).
   * Each variant's keys override `o.extra` for its runs.
   */
  variants?(o: BenchOptions): Array<Record<string, string>>;
}
