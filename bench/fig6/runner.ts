/** Runs one variant for one message count and measures the bytes of each phase. */
import { CountingProxy } from './proxy.js';
import { diff, Tally, type Bytes, type RunResult, type Variant } from './types.js';

export interface RunOptions {
  text: string;
  pace: 'lockstep' | 'burst';
  /** Milliseconds without traffic that end a phase. */
  quietMs: number;
}

/** A variant with the proxy in front of its server (TCP) or none (UDP: clients count themselves). */
export interface Target {
  variant: Variant;
  proxy?: CountingProxy;
}

export async function prepareTarget(variant: Variant): Promise<Target> {
  if (variant.transport === 'UDP') return { variant };
  const proxy = new CountingProxy(variant.server);
  await proxy.listen();
  return { variant, proxy };
}

export async function runOnce(t: Target, n: number, o: RunOptions): Promise<RunResult> {
  const tally = new Tally();
  const clientPorts: number[] = [];
  if (t.proxy) {
    t.proxy.tally = tally;
    t.proxy.onClient = (p) => clientPorts.push(p);
  }
  const marks: number[] = [Date.now()];
  const snaps: Bytes[] = [tally.snapshot()];
  const mark = async (): Promise<void> => {
    await tally.quiet(o.quietMs);
    snaps.push(tally.snapshot());
    marks.push(Date.now());
  };
  const received = await t.variant.run(n, {
    host: '127.0.0.1',
    port: t.proxy ? t.proxy.port : t.variant.server.port,
    tally,
    text: o.text,
    pace: o.pace,
    endSetup: mark,
    endMessages: mark,
    addClientPort: (p) => {
      if (!t.proxy && !clientPorts.includes(p)) clientPorts.push(p);
    },
  });
  await mark();
  if (snaps.length !== 4) throw new Error(`${t.variant.id}: the run marked ${snaps.length - 1} phases instead of 3`);
  const [s0, s1, s2, s3] = snaps as [Bytes, Bytes, Bytes, Bytes];
  return {
    variant: t.variant.id,
    n,
    bytes: { setup: diff(s0, s1), messages: diff(s1, s2), teardown: diff(s2, s3) },
    total: diff(s0, s3),
    received,
    ms: marks[3]! - marks[0]!,
    marks: marks as [number, number, number, number],
    clientPorts,
  };
}
