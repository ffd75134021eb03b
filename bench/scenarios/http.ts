/**
 * `http`: Switchboard's HTTP side under autocannon (20 connections, pipelining 1), one
 * case per endpoint, on the WebSocket/HTTP port:
 *
 *   GET /healthz               liveness, answered by the gateway thread
 *   GET /metrics               Prometheus text, collected from every thread
 *   GET /api/v1/clients        admin API (Bearer token), a round trip through the session shards
 *   GET file 64 KiB / 1 MiB    downloads of files uploaded first with POST /files (Basic auth)
 *
 * The admin API is off unless `admin.token` is set; the scenario starts Switchboard with
 * a random token in SWITCHBOARD_ADMIN__TOKEN (brokerOptions().env). With the default
 * configuration (anonymous allowed, no users file) any Basic credentials are
 * accepted for files, so `bench:bench` is used for the upload and every download.
 *
 * Value: requests/s, the median of autocannon's per-second counts. Details: latency
 * percentiles (ms), errors (connection errors + timeouts), non-2xx answers, MB/s
 * received, the broker's CPU and the bench process's CPU (autocannon runs in it: near
 * 100% means the load generator was the limit, not the broker).
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { procSample, type BrokerHandle } from '../lib/brokers.js';
import type { BenchOptions, Measurement, Progress, Scenario } from '../lib/scenario.js';

// ---------------------------------------------------------------------------
// autocannon (CommonJS, no bundled types): the part of its API used here.

interface Percentiles {
  average: number;
  mean: number;
  stddev: number;
  min: number;
  max: number;
  total: number;
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  [k: string]: number;
}

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  resets: number;
  statusCodeStats: Record<string, { count: number }>;
  latency: Percentiles;
  requests: Percentiles & { sent: number };
  throughput: Percentiles;
}

interface AutocannonOptions {
  url: string;
  connections: number;
  pipelining: number;
  duration: number;
  method?: string;
  headers?: Record<string, string>;
  timeout?: number;
}

type Autocannon = (opts: AutocannonOptions, cb: (err: Error | null, result: AutocannonResult) => void) => unknown;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

function cannon(opts: AutocannonOptions): Promise<AutocannonResult> {
  return new Promise((resolve, reject) => {
    autocannon(opts, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

// ---------------------------------------------------------------------------

const CONNECTIONS = 20;
const PIPELINING = 1;
const BASIC = `Basic ${Buffer.from('bench:bench').toString('base64')}`;
const FILES = [
  { caseName: 'GET file 64 KiB', name: 'bench-64k.bin', size: 64 * 1024 },
  { caseName: 'GET file 1 MiB', name: 'bench-1m.bin', size: 1024 * 1024 },
] as const;

/** One admin token per bench process (Switchboard reads SWITCHBOARD_ADMIN__TOKEN). */
const ADMIN_TOKEN = randomBytes(18).toString('base64url');

interface Target {
  caseName: string;
  path: string;
  headers: Record<string, string>;
  /** Why this endpoint cannot be measured (set up failed), instead of a number. */
  notMeasured?: string;
}

async function check(base: string, t: Target, expectBytes?: number): Promise<string | undefined> {
  try {
    const res = await fetch(base + t.path, { headers: t.headers });
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) return `${t.path} answered ${res.status}: ${body.toString('utf8').slice(0, 200)}`;
    if (expectBytes !== undefined && body.length !== expectBytes) return `${t.path} returned ${body.length} bytes, expected ${expectBytes}`;
    return undefined;
  } catch (e) {
    return `${t.path}: ${(e as Error).message}`;
  }
}

async function upload(base: string, name: string, size: number): Promise<{ path?: string; error?: string }> {
  try {
    const res = await fetch(`${base}/files?name=${encodeURIComponent(name)}`, {
      method: 'POST',
      headers: { authorization: BASIC, 'content-type': 'application/octet-stream' },
      body: randomBytes(size),
    });
    const text = await res.text();
    if (res.status !== 201) return { error: `upload of ${name} answered ${res.status}: ${text.slice(0, 200)}` };
    const url = (JSON.parse(text) as { url?: string }).url;
    if (!url) return { error: `upload of ${name}: no url in ${text.slice(0, 200)}` };
    // The path only: the link's host is whatever Host header the upload sent.
    const u = new URL(url, base);
    return { path: u.pathname + u.search };
  } catch (e) {
    return { error: `upload of ${name}: ${(e as Error).message}` };
  }
}

const round = (n: number, digits = 2) => (Number.isFinite(n) ? Math.round(n * 10 ** digits) / 10 ** digits : NaN);

async function measure(broker: BrokerHandle, base: string, t: Target, o: BenchOptions): Promise<Measurement> {
  const headers = t.headers;
  const url = base + t.path;
  if (o.warmupS > 0) await cannon({ url, connections: CONNECTIONS, pipelining: PIPELINING, duration: o.warmupS, headers });
  const b0 = procSample(broker.pid);
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  const r = await cannon({ url, connections: CONNECTIONS, pipelining: PIPELINING, duration: o.durationS, headers, timeout: 10 });
  const wallMs = performance.now() - w0;
  const c1 = process.cpuUsage(c0);
  const b1 = procSample(broker.pid);

  const errors = r.errors + r.timeouts;
  const details: Record<string, number> = {
    p50Ms: r.latency.p50,
    p90Ms: r.latency.p90,
    p99Ms: r.latency.p99,
    p999Ms: r.latency.p99_9,
    maxMs: r.latency.max,
    reqAvg: round(r.requests.average, 0),
    errors,
    non2xx: r.non2xx,
    MBps: round(r.throughput.average / 1e6),
    genCpuPct: round(((c1.user + c1.system) / 1000 / wallMs) * 100, 0),
  };
  if (b0 && b1) details.brokerCpuPct = round(((b1.cpuMs - b0.cpuMs) / wallMs) * 100, 0);
  const issues: string[] = [];
  if (errors) issues.push(`${r.errors} connection error(s), ${r.timeouts} timeout(s)`);
  if (r.non2xx) {
    const codes = Object.entries(r.statusCodeStats)
      .filter(([code]) => !code.startsWith('2'))
      .map(([code, s]) => `${code} x${s.count}`)
      .join(', ');
    issues.push(`${r.non2xx} non-2xx answer(s)${codes ? ` (${codes})` : ''}`);
  }
  if (r.resets) issues.push(`${r.resets} pipeline reset(s)`);
  if (details.genCpuPct! >= 90) issues.push(`load generator busy (${details.genCpuPct}% of a core): the number may be the generator's limit`);
  return { value: r.requests.p50, unit: 'req/s', higherIsBetter: true, details, issues };
}

export const http: Scenario = {
  name: 'http',
  describe: (o) =>
    `Switchboard's HTTP port under autocannon (${CONNECTIONS} connections, pipelining ${PIPELINING}, ${o.durationS} s per endpoint after ${o.warmupS} s warm-up): ` +
    `GET /healthz, /metrics, /api/v1/clients (admin token, no MQTT clients connected) and downloads of a 64 KiB and a 1 MiB file uploaded first (Basic auth); ` +
    `req/s = median of the per-second counts. autocannon runs in the bench process (genCpu %).`,
  supports: (broker) => broker === 'switchboard',
  brokerOptions: () => ({ env: { SWITCHBOARD_ADMIN__TOKEN: ADMIN_TOKEN } }),
  async run(broker: BrokerHandle, o: BenchOptions, progress: Progress): Promise<Record<string, Measurement>> {
    const out: Record<string, Measurement> = {};
    if (broker.httpPort === undefined) {
      for (const c of ['GET /healthz', 'GET /metrics', 'GET /api/v1/clients', ...FILES.map((f) => f.caseName)]) {
        out[c] = { value: NaN, unit: 'req/s', higherIsBetter: true, details: {}, issues: [], notMeasured: 'no HTTP port on this broker' };
      }
      return out;
    }
    const base = `http://${broker.host}:${broker.httpPort}`;
    const targets: Target[] = [
      { caseName: 'GET /healthz', path: '/healthz', headers: {} },
      { caseName: 'GET /metrics', path: '/metrics', headers: {} },
      { caseName: 'GET /api/v1/clients', path: '/api/v1/clients', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } },
    ];
    for (const f of FILES) {
      const up = await upload(base, f.name, f.size);
      targets.push(up.path ? { caseName: f.caseName, path: up.path, headers: { authorization: BASIC } } : { caseName: f.caseName, path: '', headers: {}, notMeasured: up.error! });
    }
    // One request each first: a broken endpoint is reported as such, not as a fast 404.
    for (const t of targets) {
      if (t.notMeasured) continue;
      const size = FILES.find((f) => f.caseName === t.caseName)?.size;
      const err = await check(base, t, size);
      if (err) t.notMeasured = err;
    }
    let i = 0;
    for (const t of targets) {
      progress.update(`http ${t.caseName}`, i++, targets.length);
      out[t.caseName] = t.notMeasured
        ? { value: NaN, unit: 'req/s', higherIsBetter: true, details: {}, issues: [], notMeasured: t.notMeasured }
        : await measure(broker, base, t, o);
    }
    progress.done();
    return out;
  },
};
