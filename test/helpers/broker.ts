/**
 * Starts a real broker for integration tests on loopback with ephemeral ports.
 * `topology: 'single'` runs everything on the test's thread (gateways 0, shards 0);
 * `'multi'` runs 2 gateway threads and 2 shard threads, so cross-thread paths
 * (route replication, shared listener, links) are exercised on every run.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type DeepPartial } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startBroker, type BrokerHandle } from '../../src/broker.js';

export type TopologyName = 'single' | 'multi';
export const TOPOLOGIES: TopologyName[] = ['single', 'multi'];

export interface TestBroker extends BrokerHandle {
  tcpPort: number;
  wsPort: number;
  tcpUrl: string;
  wsUrl: string;
  httpUrl: string;
  config: Config;
}

export async function startTestBroker(topology: TopologyName = 'single', overrides: DeepPartial<Config> = {}): Promise<TestBroker> {
  const threads = topology === 'single' ? { gateways: 0, shards: 0 } : { gateways: 2, shards: 2 };
  const config = loadConfig({
    env: {},
    overrides: {
      host: '127.0.0.1',
      // A fresh data directory per broker: IM state and files never leak between tests.
      dataDir: mkdtempSync(join(tmpdir(), 'switchboard-test-')),
      log: { level: (process.env.SB_LOG as 'silent') ?? 'silent' },
      ...overrides,
      threads: { ...threads, ...overrides.threads },
      listeners: {
        ...overrides.listeners,
        tcp: { enabled: true, port: 0, ...overrides.listeners?.tcp },
        ws: { enabled: true, port: 0, path: '/mqtt', ...overrides.listeners?.ws },
      },
    },
  });
  const b = await startBroker(config);
  return Object.assign(b, {
    tcpPort: b.tcpPort!,
    wsPort: b.wsPort!,
    tcpUrl: `mqtt://127.0.0.1:${b.tcpPort}`,
    wsUrl: `ws://127.0.0.1:${b.wsPort}/mqtt`,
    httpUrl: `http://127.0.0.1:${b.wsPort}`,
    config,
  });
}

/** Fetches /metrics and returns the value of one series (0 when absent). */
export async function metric(b: TestBroker, series: string): Promise<number> {
  const text = await (await fetch(`${b.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`switchboard_${series} `));
  return line ? Number(line.split(' ').pop()) : 0;
}
