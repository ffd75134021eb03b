/**
 * The operations kit (issue 12, docs/operations.md):
 *  - /readyz: 503 "starting" until sessions, retained messages and IM state are restored
 *    and every listener is open, then 200 "ready"; 503 "restarting" while a crashed thread
 *    is replaced; 503 "stopping" from the first moment of a graceful stop (in-process and
 *    SIGTERM to the CLI), while clients are still served for shutdownDrain seconds;
 *  - ops/grafana/dashboards/switchboard.json: every metric its PromQL names is exported by
 *    a running broker after a little traffic, with the labels it groups by;
 *  - Debian's Prometheus run with ops/prometheus.yml (target rewritten to a test broker):
 *    the broker is scraped (up == 1), the alerts load, every dashboard query returns data;
 *    promtool checks the config, the rules and their unit tests. Skipped, saying so, without
 *    the `prometheus` package (.ci/run installs it);
 *  - what can be checked here without a container engine: ops/compose.yaml (structure, and
 *    `docker compose config` when the compose plugin is there), ops/Dockerfile and
 *    .dockerignore (every COPY source exists and reaches the build context), the container
 *    health check script, the systemd unit and the sysctl file;
 *  - ops/cluster/compose.yaml (issue 10 item 5: nats with JetStream, three nodes, Prometheus):
 *    its structure, and what it runs, run here: nats-server with ops/cluster/nats.conf
 *    (addresses and store rewritten for this host), every node service's command line with
 *    dist/src/cli.js (ports and data dir added), a message across the nodes, Prometheus
 *    with ops/cluster/prometheus.yml scraping them all, SIGTERM.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import YAML from 'yaml';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { BrokerProcess, freePorts, killAllBrokerProcesses, portClosed, ROOT } from '../helpers/broker-process.js';
import { ClientPool, killSocket, sleep, uid } from '../helpers/clients.js';
import { eventually, imPayload, inboxOf, killAll, run } from '../helpers/im.js';
import { loadConfig } from '../../src/config/load.js';
import { parseArgs } from '../../src/cli-args.js';
import { HAVE_NATS } from '../helpers/nats.js';

const OPS = join(ROOT, 'ops');
const has = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const HAVE_PROMETHEUS = has('prometheus', ['--version']);
const HAVE_PROMTOOL = has('promtool', ['--version']);
const HAVE_COMPOSE = has('docker', ['compose', 'version']);
const HAVE_SYSTEMD_ANALYZE = has('systemd-analyze', ['--version']);

type Probe = { status: number; body: string } | 'refused';

async function readyz(port: number, path = '/readyz'): Promise<Probe> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return { status: r.status, body: (await r.text()).trim() };
  } catch {
    return 'refused';
  }
}

const READY = { status: 200, body: 'ready' };

describe('42 /readyz', () => {
  const pool = new ClientPool();
  const brokers: TestBroker[] = [];
  afterEach(async () => {
    await pool.closeAll();
    for (const b of brokers.splice(0)) await b.close();
    await killAllBrokerProcesses();
  });

  it('503 "starting" until the state is restored and every listener of every gateway thread is open, then 200 "ready"', async () => {
    const [tcp, ws] = await freePorts(2);
    let started = false;
    // Fixed ports, so the probe can knock before the start resolves (gateway 0 listens
    // first; the start waits for gateway 1 too).
    const starting = startTestBroker('multi', { listeners: { tcp: { port: tcp! }, ws: { port: ws! } } }).then((b) => {
      started = true;
      brokers.push(b);
      return b;
    });
    const before: Probe[] = [];
    while (!started) {
      const p = await readyz(ws!);
      // A 200 is only ever handled after `started` was set: the flag turns ready just
      // before startBroker returns, and that resolution runs before any socket event.
      if (!started) before.push(p);
      await sleep(5);
    }
    await starting;
    const answered = before.filter((p): p is Exclude<Probe, 'refused'> => p !== 'refused');
    expect(answered.length, 'no /readyz answer while gateway 1 was starting').toBeGreaterThan(0);
    for (const p of answered) expect(p).toEqual({ status: 503, body: 'starting' });
    expect(await readyz(ws!)).toEqual(READY);
    expect(await readyz(ws!, '/healthz')).toEqual({ status: 200, body: 'ok' });
  });

  it('503 "restarting" while a crashed shard thread is replaced, 200 once it is back', async () => {
    const b = await startTestBroker('multi');
    brokers.push(b);
    expect(await readyz(b.wsPort)).toEqual(READY);
    b.crashThread('shard', 0);
    await eventually(async () => {
      const p = await readyz(b.wsPort);
      return p !== 'refused' && p.status === 503 && p.body === 'restarting';
    }, 10_000, '/readyz "restarting"');
    await eventually(async () => JSON.stringify(await readyz(b.wsPort)) === JSON.stringify(READY), 15_000, '/readyz "ready" again');
    expect(b.restarts.shard).toBe(1);
  });

  it('503 "stopping" as soon as a stop begins; during shutdownDrain clients are still served, then the port closes', async () => {
    const b = await startTestBroker('single', { shutdownDrain: 1 });
    brokers.push(b);
    expect(await readyz(b.wsPort)).toEqual(READY);
    const t0 = Date.now();
    const closing = b.close();
    expect(await readyz(b.wsPort)).toEqual({ status: 503, body: 'stopping' });
    expect(await readyz(b.wsPort, '/healthz')).toEqual({ status: 200, body: 'ok' });
    // A load balancer that has not noticed yet still gets a working broker.
    const c = await pool.connect(b.tcpUrl, { clientId: uid('drain') });
    await c.client.publishAsync('drain/t', 'still served', { qos: 1 });
    await closing;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(await portClosed(b.wsPort)).toBe(true);
    expect(await portClosed(b.tcpPort)).toBe(true);
  });

  it('SIGTERM to the broker process: 503 "stopping" during SWITCHBOARD_SHUTDOWN_DRAIN (3 s), then exit 0', async () => {
    const [tcpPort, wsPort] = await freePorts(2);
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-readyz-'));
    const p = new BrokerProcess({ tcpPort: tcpPort!, wsPort: wsPort!, dataDir, shards: 1, gateways: 1, env: { SWITCHBOARD_SHUTDOWN_DRAIN: '3' } });
    await p.start();
    // The CLI prints its listeners after the start resolved: ready by then.
    expect(await readyz(wsPort!)).toEqual(READY);
    const t0 = Date.now();
    process.kill(p.pid!, 'SIGTERM');
    const seen: Probe[] = [];
    while (p.running) {
      seen.push(await readyz(wsPort!));
      await sleep(20);
    }
    const exit = await p.exited()!;
    expect(exit.code, p.stderr()).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2900);
    // ready until the signal is handled, then stopping for the drain, then the port is gone.
    const states = [...new Set(seen.map((s) => (s === 'refused' ? s : `${s.status} ${s.body}`)))];
    expect(states.filter((s) => s !== '200 ready')).toEqual(expect.arrayContaining(['503 stopping']));
    expect(states.filter((s) => s !== '200 ready' && s !== '503 stopping' && s !== 'refused')).toEqual([]);
  }, 60_000);
});

// ------------------------------------------------------------------ dashboard and Prometheus

interface Dashboard {
  panels: Array<{ id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: Array<{ expr: string; refId: string; datasource?: unknown }> }>;
  templating: { list: Array<{ name: string; definition?: string; query?: unknown }> };
}

const dashboard = (): Dashboard => JSON.parse(readFileSync(join(OPS, 'grafana/dashboards/switchboard.json'), 'utf8')) as Dashboard;

/** Every PromQL expression of the dashboard: panel targets and the instance variable's query. */
function dashboardExprs(d: Dashboard): string[] {
  const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  for (const v of d.templating.list) if (v.definition) exprs.push(v.definition);
  return exprs;
}

/** Grafana's variables replaced by what Prometheus takes: every instance, a fixed window. */
const concrete = (expr: string): string => expr.replaceAll('$__rate_interval', '30s').replaceAll('$instance', '.*');

/** Metric families of a /metrics text, with the label names seen on their samples. */
function exportedFamilies(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    let labels = out.get(m[1]!);
    if (!labels) out.set(m[1]!, (labels = new Set()));
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(l[1]!);
  }
  return out;
}

/** A CONNECT with protocol level 9: the broker closes it (protocol_errors_total). */
function badConnect(port: number): Promise<void> {
  return new Promise((res, rej) => {
    const s = net.connect({ host: '127.0.0.1', port }, () =>
      s.write(Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 9, 0x02, 0, 60, 0, 1, 0x78])),
    );
    s.on('error', rej);
    // Read (and drop) the CONNACK: a socket that is never read never sees the close.
    s.resume();
    s.on('close', () => res());
  });
}

/**
 * A little of everything the dashboard shows: every QoS in and out over TCP and
 * WebSocket, a shared subscription, an offline persistent session (queued, and a QoS 0
 * drop), an expiring session, a takeover, a will, a protocol error, IM traffic (a rule
 * copy, a malformed payload, a spoofed Sender) and a file upload and download.
 */
async function driveTraffic(b: TestBroker, pool: ClientPool): Promise<void> {
  const sub = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('ops-sub') });
  await sub.client.subscribeAsync({ 'ops/#': { qos: 2 }, '$share/workers/jobs/#': { qos: 1 } });
  const pub = await pool.connect(b.wsUrl, { protocolVersion: 5, clientId: uid('ops-pub') });
  for (const qos of [0, 1, 2] as const) await pub.client.publishAsync('ops/a', `qos ${qos}`, { qos });
  await pub.client.publishAsync('jobs/1', 'a job', { qos: 1 });

  const off = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('ops-off'), clean: false, properties: { sessionExpiryInterval: 3600 } });
  await off.client.subscribeAsync('ops/#', { qos: 1 });
  await off.client.endAsync();
  await pub.client.publishAsync('ops/b', 'dropped for the offline session', { qos: 0 });
  await pub.client.publishAsync('ops/b', 'queued for it', { qos: 1 });

  const exp = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: uid('ops-exp'), clean: false, properties: { sessionExpiryInterval: 1 } });
  await exp.client.endAsync();
  const dup = uid('ops-dup');
  await pool.connect(b.tcpUrl, { clientId: dup });
  await pool.connect(b.tcpUrl, { clientId: dup });
  const w = await pool.connect(b.tcpUrl, { clientId: uid('ops-will'), will: { topic: 'ops/will', payload: Buffer.from('gone'), qos: 0, retain: false } });
  await killSocket(w.client);
  await badConnect(b.tcpPort);

  const ns = b.config.im.defaultNamespace;
  const alice = await pool.connect(b.tcpUrl, { protocolVersion: 5, clientId: 'alice/pc', username: 'alice', password: 'x' });
  await pool.connect(b.wsUrl, { protocolVersion: 5, clientId: 'alice/phone', username: 'alice', password: 'x' });
  await alice.client.publishAsync(inboxOf('jim', ns), imPayload('alice', 'hello'), { qos: 1 });
  await alice.client.publishAsync(inboxOf('jim', ns), Buffer.from([0xff]), { qos: 1 }).catch(() => {});
  await alice.client.publishAsync(inboxOf('jim', ns), imPayload('bob', 'not me'), { qos: 1 }).catch(() => {});
  const authorization = `Basic ${Buffer.from('alice:x').toString('base64')}`;
  const up = await fetch(`${b.httpUrl}/files?name=note.txt`, { method: 'POST', headers: { authorization, 'content-type': 'text/plain' }, body: 'a note' });
  expect(up.status).toBe(201);
  const { url } = (await up.json()) as { url: string };
  expect((await fetch(url, { headers: { authorization } })).status).toBe(200);
}

describe('42 the Grafana dashboard and Prometheus, against a running broker', () => {
  const pool = new ClientPool();
  let b: TestBroker;
  let families: Map<string, Set<string>>;
  beforeAll(async () => {
    b = await startTestBroker('multi');
    await driveTraffic(b, pool);
    // The expiring session's second, and the takeover/will counters of other threads.
    await eventually(async () => {
      families = exportedFamilies(await (await fetch(`${b.httpUrl}/metrics`)).text());
      return ['switchboard_sessions_expired_total', 'switchboard_wills_published_total', 'switchboard_session_takeovers_total'].every((n) => families.has(n));
    }, 10_000, 'expiry, will and takeover counters');
  }, 60_000);
  afterAll(async () => {
    killAll();
    await pool.closeAll();
    await b?.close();
  });

  it('the dashboard is well formed: unique panel ids, panels within the 24-column grid, every query on the data source variable', () => {
    const d = dashboard();
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of d.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      for (const t of p.targets ?? []) expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
    expect(d.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance']);
    // The sections issue 12 asks for.
    const titles = d.panels.map((p) => p.title).join('\n');
    for (const t of [/connections by transport/i, /sessions/i, /messages in by qos/i, /messages out by qos/i, /drops by reason/i, /event-loop delay/i, /mailbox depth/i, /IM traffic/i, /store size/i])
      expect(titles).toMatch(t);
  });

  it('every metric a dashboard query names is exported by the broker, with the labels the query groups by', () => {
    const exprs = dashboardExprs(dashboard());
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\bswitchboard_[a-z0-9_]+/g)].map((m) => m[0])));
    expect(used.size).toBeGreaterThan(30);
    const missing = [...used].filter((n) => !families.has(n));
    expect(missing, `not in /metrics: ${missing.join(', ')}`).toEqual([]);
    for (const e of exprs) {
      for (const m of e.matchAll(/by \(([^)]*)\)\s*\((?:\s*[a-z_]+\()?\s*(switchboard_[a-z0-9_]+)/g)) {
        for (const label of m[1]!.split(',').map((s) => s.trim())) {
          expect([...families.get(m[2]!)!], `${m[2]} grouped by ${label} in ${e}`).toContain(label);
        }
      }
      for (const m of e.matchAll(/(switchboard_[a-z0-9_]+)\{([^}]*)\}/g)) {
        for (const sel of m[2]!.matchAll(/([a-z_]+)=~?"/g)) if (sel[1] !== 'instance') expect([...families.get(m[1]!)!], `${m[1]}{${sel[1]}} in ${e}`).toContain(sel[1]);
      }
    }
  });

  describe.skipIf(!HAVE_PROMETHEUS)(`Debian's Prometheus with ops/prometheus.yml${HAVE_PROMETHEUS ? '' : ' (SKIPPED: no `prometheus` binary; apt-get install prometheus)'}`, () => {
    let promUrl: string;
    beforeAll(async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sb-prometheus-'));
      const cfg = YAML.parse(readFileSync(join(OPS, 'prometheus.yml'), 'utf8')) as {
        global: Record<string, string>;
        scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
      };
      // The shipped file as it is, but for the test broker's address and a short interval.
      cfg.global.scrape_interval = '1s';
      cfg.global.evaluation_interval = '1s';
      cfg.scrape_configs[0]!.static_configs[0]!.targets = [`127.0.0.1:${b.wsPort}`];
      writeFileSync(join(dir, 'prometheus.yml'), YAML.stringify(cfg));
      copyFileSync(join(OPS, 'prometheus-alerts.yml'), join(dir, 'prometheus-alerts.yml'));
      const [port] = await freePorts(1);
      promUrl = `http://127.0.0.1:${port}`;
      const prom = run('prometheus', [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ]);
      await eventually(async () => {
        if (prom.proc.exitCode !== null) throw new Error(`prometheus exited: ${prom.stderr()}`);
        return (await fetch(`${promUrl}/-/ready`).catch(() => undefined))?.status === 200;
      }, 20_000, 'prometheus ready');
    }, 30_000);

    const query = async (q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
      const r = (await (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { status: string; error?: string; data: { result: [] } };
      if (r.status !== 'success') throw new Error(`${q}: ${r.error}`);
      return r.data.result;
    };

    it('scrapes the broker (up == 1) and loaded ops/prometheus-alerts.yml', async () => {
      await eventually(async () => (await query('up{job="switchboard"}'))[0]?.value[1] === '1', 15_000, 'up{job="switchboard"} == 1');
      const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as { data: { groups: Array<{ name: string; rules: Array<{ name: string; health: string }> }> } };
      const group = rules.data.groups.find((g) => g.name === 'switchboard');
      expect(group?.rules.length).toBeGreaterThanOrEqual(10);
      for (const r of group!.rules) expect(r.health, r.name).not.toBe('err');
    }, 20_000);

    it('every dashboard query returns data', async () => {
      // rate() needs two samples in its window, with more traffic between them.
      await eventually(async () => Number((await query('count_over_time(up{job="switchboard"}[1m])'))[0]?.value[1] ?? 0) >= 3, 15_000, 'three scrapes');
      const pub = await pool.connect(b.tcpUrl, { clientId: uid('ops-more') });
      for (let i = 0; i < 20; i++) await pub.client.publishAsync('ops/more', `m${i}`, { qos: 1 });
      await sleep(2500);
      const empty: string[] = [];
      for (const e of dashboardExprs(dashboard())) {
        if (e.startsWith('label_values(')) continue; // a Grafana function: checked below as a series
        if ((await query(concrete(e))).length === 0) empty.push(e);
      }
      expect(empty, `queries without data:\n${empty.join('\n')}`).toEqual([]);
      expect((await query('switchboard_uptime_seconds'))[0]?.metric.instance).toBe(`127.0.0.1:${b.wsPort}`);
      const received = await query(concrete('sum by (qos) (increase(switchboard_messages_received_total{instance=~"$instance"}[1m]))'));
      expect(Number(received.find((r) => r.metric.qos === '1')?.value[1])).toBeGreaterThan(0);
    }, 40_000);
  });
});

// ------------------------------------------------------------------ files checked without running them

describe.skipIf(!HAVE_PROMTOOL)(`42 promtool${HAVE_PROMTOOL ? '' : ' (SKIPPED: no `promtool`; it comes with Debian\'s prometheus package)'}`, () => {
  const promtool = (...args: string[]) => spawnSync('promtool', args, { cwd: OPS, encoding: 'utf8' });
  it('accepts ops/prometheus.yml with its rule file, the alert rules, and their unit tests', () => {
    for (const args of [['check', 'config', 'prometheus.yml'], ['check', 'rules', 'prometheus-alerts.yml'], ['test', 'rules', 'prometheus-alerts.test.yml']]) {
      const r = promtool(...args);
      expect(r.status, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`).toBe(0);
    }
  });
});

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerInstructions(text: string): Array<{ op: string; args: string }> {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const i = l.search(/\s/);
      return { op: l.slice(0, i).toUpperCase(), args: l.slice(i + 1).trim() };
    });
}

describe('42 container image and compose file (no engine here: neither is built or run)', () => {
  const compose = () =>
    YAML.parse(readFileSync(join(OPS, 'compose.yaml'), 'utf8')) as {
      services: Record<string, { build?: { context: string; dockerfile: string }; image?: string; volumes?: string[]; environment?: Record<string, string>; ports?: string[] }>;
    };

  it('ops/Dockerfile: multi-stage, every COPY source exists and is let through .dockerignore, non-root, data volume, ports, health check with node', () => {
    const ins = dockerInstructions(readFileSync(join(OPS, 'Dockerfile'), 'utf8'));
    const stages = ins.filter((i) => i.op === 'FROM');
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const names = stages.map((s) => /\bAS\s+(\S+)/i.exec(s.args)?.[1]).filter(Boolean);
    const allowed = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).trim());
    for (const c of ins.filter((i) => i.op === 'COPY')) {
      const parts = c.args.split(/\s+/);
      const from = parts.find((p) => p.startsWith('--from='));
      const paths = parts.filter((p) => !p.startsWith('--'));
      const sources = paths.slice(0, -1);
      if (from) {
        expect(names, c.args).toContain(from.slice('--from='.length));
        continue;
      }
      for (const src of sources) {
        expect(existsSync(join(ROOT, src)), `COPY ${src}: not in the repository`).toBe(true);
        expect(allowed, `COPY ${src}: excluded by .dockerignore`).toContain(src);
      }
    }
    // The final stage: what runs.
    const last = ins.slice(ins.lastIndexOf(stages.at(-1)!));
    const user = last.find((i) => i.op === 'USER')?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(last.find((i) => i.op === 'VOLUME')?.args).toContain('/var/lib/switchboard');
    const exposed = last.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    expect(exposed).toEqual(expect.arrayContaining(['1883', '8083']));
    const health = last.find((i) => i.op === 'HEALTHCHECK')?.args ?? '';
    expect(health).toMatch(/CMD \["node", "ops\/healthcheck\.mjs", "\/(healthz|readyz)"\]/);
    expect(last.find((i) => i.op === 'ENTRYPOINT')?.args).toBe('["node", "dist/src/cli.js"]');
    // dist/src/cli.js is what `npm run build` makes of src/cli.ts, and the package's bin.
    expect((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin.switchboard).toBe('dist/src/cli.js');
    // Its ENV are real settings (the broker refuses unknown SWITCHBOARD_* variables).
    const env = Object.fromEntries(last.filter((i) => i.op === 'ENV').flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])));
    expect(env.SWITCHBOARD_DATA_DIR).toBe('/var/lib/switchboard');
    expect(loadConfig({ env, overrides: {} }).dataDir).toBe('/var/lib/switchboard');
  });

  it('ops/compose.yaml: broker built from ops/Dockerfile, Prometheus scraping it, Grafana provisioned with the data source and the dashboard', () => {
    const c = compose();
    expect(Object.keys(c.services).sort()).toEqual(['grafana', 'prometheus', 'switchboard']);
    const sb = c.services.switchboard!;
    expect(existsSync(resolve(OPS, sb.build!.context, sb.build!.dockerfile))).toBe(true);
    expect(sb.volumes).toContain('switchboard-data:/var/lib/switchboard');
    expect(loadConfig({ env: sb.environment!, overrides: {} }).dataDir).toBeDefined(); // every variable is a setting
    // Every bind mount's source exists next to the compose file.
    const mounts = new Map<string, string>();
    for (const s of Object.values(c.services))
      for (const v of s.volumes ?? []) {
        const [src, dest] = v.split(':');
        if (!src!.startsWith('.')) continue;
        expect(existsSync(resolve(OPS, src!)), v).toBe(true);
        mounts.set(dest!, resolve(OPS, src!));
      }
    // Prometheus scrapes the broker service on its HTTP port.
    const prom = YAML.parse(readFileSync(join(OPS, 'prometheus.yml'), 'utf8')) as { rule_files: string[]; scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }> };
    expect(prom.scrape_configs[0]!.static_configs[0]!.targets).toEqual(['switchboard:8083']);
    expect(sb.ports).toContain('8083:8083');
    for (const f of prom.rule_files) expect(mounts.get(`/etc/prometheus/${f}`), f).toBeDefined();
    // Grafana: the data source points at the prometheus service; the dashboards provider
    // reads where the dashboards are mounted; the home dashboard exists there.
    const ds = YAML.parse(readFileSync(join(OPS, 'grafana/provisioning/datasources/prometheus.yaml'), 'utf8')) as { datasources: Array<{ url: string; type: string }> };
    expect(ds.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090' });
    const prov = YAML.parse(readFileSync(join(OPS, 'grafana/provisioning/dashboards/switchboard.yaml'), 'utf8')) as { providers: Array<{ options: { path: string } }> };
    const dashDir = mounts.get(prov.providers[0]!.options.path);
    expect(dashDir).toBe(join(OPS, 'grafana/dashboards'));
    const home = c.services.grafana!.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(existsSync(join(mounts.get(prov.providers[0]!.options.path)!, home.slice(prov.providers[0]!.options.path.length)))).toBe(true);
    expect(mounts.get('/etc/grafana/provisioning')).toBe(join(OPS, 'grafana/provisioning'));
  });

  it.skipIf(!HAVE_COMPOSE)(`docker compose config validates ops/compose.yaml${HAVE_COMPOSE ? '' : ' (SKIPPED: the docker CLI here has no compose plugin)'}`, () => {
    const r = spawnSync('docker', ['compose', '-f', join(OPS, 'compose.yaml'), 'config', '--quiet'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});

describe('42 ops/healthcheck.mjs (the image HEALTHCHECK)', () => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker('single');
  });
  afterAll(() => b?.close());
  // Not spawnSync: the broker runs on this thread and must answer meanwhile.
  const check = async (path: string, port: number) => {
    const c = run(process.execPath, [join(OPS, 'healthcheck.mjs'), path], { env: { ...process.env, SWITCHBOARD_LISTENERS__WS__PORT: String(port) } });
    return { status: await c.exited, stderr: c.stderr() };
  };

  it('exits 0 when /healthz and /readyz answer 200, 1 when nothing listens', async () => {
    expect((await check('/healthz', b.wsPort)).status).toBe(0);
    expect((await check('/readyz', b.wsPort)).status).toBe(0);
    const [closed] = await freePorts(1);
    const r = await check('/healthz', closed!);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ECONNREFUSED/);
  });
});

describe('42 systemd unit and sysctl file', () => {
  const unit = readFileSync(join(OPS, 'switchboard.service'), 'utf8');
  const sysctl = readFileSync(join(OPS, 'sysctl.d/90-switchboard.conf'), 'utf8');
  const settings = new Map(
    sysctl
      .split('\n')
      .filter((l) => /^[a-z]/.test(l))
      .map((l) => l.split('=').map((s) => s.trim()) as [string, string]),
  );

  it('the sysctl file sets the keys for many connections, each one known to this kernel', () => {
    for (const k of ['fs.file-max', 'fs.nr_open', 'net.core.somaxconn', 'net.ipv4.ip_local_port_range', 'net.ipv4.tcp_mem', 'net.ipv4.tcp_rmem', 'net.ipv4.tcp_wmem'])
      expect(settings.has(k), k).toBe(true);
    for (const k of settings.keys()) expect(existsSync(`/proc/sys/${k.replaceAll('.', '/')}`), k).toBe(true);
    // The TCP listener's backlog (src/transport/tcp-listener.ts) is granted up to somaxconn.
    expect(Number(settings.get('net.core.somaxconn'))).toBeGreaterThanOrEqual(4096);
  });

  it('the unit runs node on the CLI with SIGTERM, a stop timeout above shutdownTimeout, and LimitNOFILE within fs.nr_open', () => {
    const value = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(unit)?.[1];
    expect(value('ExecStart')).toMatch(/^\/usr\/bin\/node dist\/src\/cli\.js start /);
    expect(value('KillSignal')).toBe('SIGTERM');
    expect(Number(value('TimeoutStopSec'))).toBeGreaterThan(loadConfig({ env: {}, overrides: {} }).shutdownTimeout);
    const nofile = Number(value('LimitNOFILE'));
    expect(nofile).toBeGreaterThan(loadConfig({ env: {}, overrides: {} }).limits.maxConnections);
    expect(nofile).toBeLessThanOrEqual(Number(settings.get('fs.nr_open')));
    expect(value('StateDirectory')).toBe('switchboard'); // = --data-dir /var/lib/switchboard
    expect(value('ExecStart')).toContain('--data-dir /var/lib/switchboard');
  });

  it.skipIf(!HAVE_SYSTEMD_ANALYZE)(`systemd-analyze verify accepts the unit${HAVE_SYSTEMD_ANALYZE ? '' : ' (SKIPPED: no systemd-analyze)'}`, () => {
    const r = spawnSync('systemd-analyze', ['verify', join(OPS, 'switchboard.service')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});

// ------------------------------------------------------------------ ops/cluster/compose.yaml

const CLUSTER = join(OPS, 'cluster');
const HAVE_DIST = existsSync(join(ROOT, 'dist/src/cli.js'));

interface ComposeService {
  build?: { context: string; dockerfile: string };
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

/** ops/cluster/compose.yaml as compose reads it: the nodes' shared part (x-node) merged in (<<). */
const clusterCompose = (): ComposeFile => YAML.parse(readFileSync(join(CLUSTER, 'compose.yaml'), 'utf8'), { merge: true }) as ComposeFile;
const NODE_NAME = /^node\d+$/;
const clusterNodes = (c: ComposeFile): Array<[string, ComposeService]> => Object.entries(c.services).filter(([name]) => NODE_NAME.test(name));
/** "1884:1883" -> [1884, 1883]. */
const portPair = (p: string): [number, number] => p.split(':').map(Number) as [number, number];
/** The cluster settings a node's command line gives (the CLI's own parser). */
function nodeArgs(s: ComposeService): { nats: string; node: string } {
  const a = parseArgs(s.command!);
  expect(a.command).toBe('start');
  return { nats: a.overrides.cluster!.nats!, node: a.overrides.cluster!.node! };
}
/** A top-level `key: value` of a nats-server config file. */
const natsKey = (conf: string, key: string): string | undefined => new RegExp(`^${key}:\\s*(\\S+)`, 'm').exec(conf)?.[1];

describe('42 ops/cluster/compose.yaml (no engine here: checked, and its command lines run without containers)', () => {
  it('three nodes built from ops/Dockerfile, each with its own --node name and data volume, all on the nats service\'s URL', () => {
    const c = clusterCompose();
    expect(Object.keys(c.services).sort()).toEqual(['grafana', 'nats', 'node1', 'node2', 'node3', 'prometheus']);
    const nodes = clusterNodes(c);
    // Every service that runs the broker is a node service.
    for (const [name, s] of Object.entries(c.services)) if (s.build || s.command?.[0] === 'start') expect(name).toMatch(NODE_NAME);
    const names = new Set<string>();
    const urls = new Set<string>();
    const dataVolumes = new Set<string>();
    for (const [name, s] of nodes) {
      expect(resolve(CLUSTER, s.build!.context, s.build!.dockerfile), name).toBe(join(OPS, 'Dockerfile'));
      expect(resolve(CLUSTER, s.build!.context), name).toBe(ROOT);
      const { nats, node } = nodeArgs(s);
      names.add(node);
      urls.add(nats);
      expect(node, 'the --node name is the service name').toBe(name);
      // Every variable is a setting (the broker refuses unknown SWITCHBOARD_* variables).
      expect(loadConfig({ env: s.environment ?? {}, overrides: {} }).log.level, name).toBe('info');
      expect(s.depends_on, name).toEqual({ nats: { condition: 'service_healthy' } });
      const data = (s.volumes ?? []).find((v) => v.endsWith(':/var/lib/switchboard'));
      expect(data, `${name}: a volume on /var/lib/switchboard`).toBeDefined();
      const vol = data!.split(':')[0]!;
      expect(c.volumes, vol).toHaveProperty(vol);
      dataVolumes.add(vol);
      expect(s.stop_grace_period, name).toBe('15s');
    }
    expect(names.size, 'unique --node names').toBe(nodes.length);
    expect(dataVolumes.size, 'one data volume per node').toBe(nodes.length);
    expect(urls.size, 'one NATS URL').toBe(1);
    const url = new URL([...urls][0]!);
    expect(url.protocol).toBe('nats:');
    expect(Object.keys(c.services)).toContain(url.hostname);
    const conf = readFileSync(join(CLUSTER, 'nats.conf'), 'utf8');
    expect(natsKey(conf, 'listen')).toBe(`0.0.0.0:${url.port}`);
  });

  it('host ports: no clash; node i has MQTT on 1883+i and WebSocket + HTTP on 8083+i, to the image\'s listener ports', () => {
    const c = clusterCompose();
    const host = Object.values(c.services).flatMap((s) => (s.ports ?? []).map((p) => portPair(p)[0]));
    expect(new Set(host).size, `host ports ${host.join(', ')}`).toBe(host.length);
    const nodes = clusterNodes(c);
    const dockerEnv = { SWITCHBOARD_DATA_DIR: '/var/lib/switchboard' };
    nodes.forEach(([name, s], i) => {
      const cfg = loadConfig({ env: { ...dockerEnv, ...s.environment }, overrides: parseArgs(s.command!).overrides });
      const ports = new Map((s.ports ?? []).map((p) => portPair(p).reverse() as [number, number]));
      expect([...ports.keys()].sort(), name).toEqual([cfg.listeners.tcp.port, cfg.listeners.ws.port].sort());
      expect(ports.get(cfg.listeners.tcp.port), name).toBe(1883 + i);
      expect(ports.get(cfg.listeners.ws.port), name).toBe(8083 + i);
    });
  });

  it('nats: JetStream with its store on a named volume, max_payload 8MB, the config mounted read-only, a health check on its monitoring port', () => {
    const c = clusterCompose();
    const nats = c.services.nats!;
    expect(nats.image).toMatch(/^nats:2\.\d+/);
    const [flag, confPath] = nats.command!;
    expect(flag).toBe('-c');
    expect(nats.volumes).toContain(`./nats.conf:${confPath}:ro`);
    const conf = readFileSync(join(CLUSTER, 'nats.conf'), 'utf8');
    const storeDir = /^jetstream\s*\{[^}]*\bstore_dir:\s*"?([^\s"]+)/m.exec(conf)?.[1];
    expect(storeDir, 'jetstream { store_dir: ... }').toBeDefined();
    const store = (nats.volumes ?? []).map((v) => v.split(':')).find(([src, dest]) => !src!.startsWith('.') && storeDir!.startsWith(dest!));
    expect(store, `a named volume holding ${storeDir}`).toBeDefined();
    expect(c.volumes).toHaveProperty(store![0]!);
    expect(natsKey(conf, 'max_payload')).toBe('8MB');
    // The health check asks the monitoring port nats.conf opens.
    const httpPort = natsKey(conf, 'http')!.split(':').at(-1);
    expect(nats.healthcheck!.test.join(' ')).toContain(`http://127.0.0.1:${httpPort}/healthz`);
  });

  it.skipIf(!HAVE_NATS)(`nats-server -t accepts ops/cluster/nats.conf${HAVE_NATS ? '' : ' (SKIPPED: no nats-server)'}`, () => {
    const r = spawnSync('nats-server', ['-c', join(CLUSTER, 'nats.conf'), '-t'], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it('Prometheus scrapes every node on its HTTP port, with the alert rules mounted; every bind mount exists', () => {
    const c = clusterCompose();
    const mounts = new Map<string, string>();
    for (const [name, s] of Object.entries(c.services))
      for (const v of s.volumes ?? []) {
        const [src, dest] = v.split(':');
        if (!src!.startsWith('.')) {
          expect(c.volumes, `${name}: ${v}`).toHaveProperty(src!);
          continue;
        }
        expect(existsSync(resolve(CLUSTER, src!)), `${name}: ${v}`).toBe(true);
        mounts.set(dest!, resolve(CLUSTER, src!));
      }
    expect(mounts.get('/etc/prometheus/prometheus.yml')).toBe(join(CLUSTER, 'prometheus.yml'));
    const prom = YAML.parse(readFileSync(join(CLUSTER, 'prometheus.yml'), 'utf8')) as { rule_files: string[]; scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
    for (const f of prom.rule_files) expect(mounts.get(`/etc/prometheus/${f}`), f).toBe(join(OPS, f));
    const job = prom.scrape_configs.find((j) => j.job_name === 'switchboard')!; // the alerts' up{job="switchboard"}
    const targets = job.static_configs.flatMap((s) => s.targets).sort();
    expect(targets).toEqual(clusterNodes(c).map(([name]) => `${name}:8083`).sort());
    // Grafana: the single node's provisioning, whose data source is the prometheus service.
    expect(mounts.get('/etc/grafana/provisioning')).toBe(join(OPS, 'grafana/provisioning'));
    expect(mounts.get('/etc/grafana/dashboards')).toBe(join(OPS, 'grafana/dashboards'));
  });

  it.skipIf(!HAVE_PROMTOOL)(`promtool accepts ops/cluster/prometheus.yml with the rule file${HAVE_PROMTOOL ? '' : ' (SKIPPED: no `promtool`)'}`, () => {
    // As mounted in the container: the rules next to the config.
    const dir = mkdtempSync(join(tmpdir(), 'sb-cluster-prom-'));
    copyFileSync(join(CLUSTER, 'prometheus.yml'), join(dir, 'prometheus.yml'));
    copyFileSync(join(OPS, 'prometheus-alerts.yml'), join(dir, 'prometheus-alerts.yml'));
    const r = spawnSync('promtool', ['check', 'config', 'prometheus.yml'], { cwd: dir, encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it.skipIf(!HAVE_COMPOSE)(`docker compose config validates ops/cluster/compose.yaml${HAVE_COMPOSE ? '' : ' (SKIPPED: the docker CLI here has no compose plugin)'}`, () => {
    const r = spawnSync('docker', ['compose', '-f', join(CLUSTER, 'compose.yaml'), 'config', '--quiet'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});

describe.skipIf(!HAVE_NATS || !HAVE_DIST)(
  `42 ops/cluster/compose.yaml run without containers: nats.conf and every node's command line${HAVE_NATS && HAVE_DIST ? '' : ` (SKIPPED: ${HAVE_NATS ? '' : 'no nats-server; '}${HAVE_DIST ? '' : 'no dist/src/cli.js, run npm run build'})`}`,
  () => {
    const pool = new ClientPool();
    const dirs: string[] = [];
    let nats: ReturnType<typeof run>;
    let natsHttp: number;
    const nodes: Array<{ name: string; tcp: number; ws: number; child: ReturnType<typeof run> }> = [];

    beforeAll(async () => {
      const c = clusterCompose();
      // nats-server with the shipped nats.conf, but on free loopback ports and a temporary store.
      const dir = mkdtempSync(join(tmpdir(), 'sb-cluster-compose-'));
      dirs.push(dir);
      const [natsPort, httpPort] = await freePorts(2);
      natsHttp = httpPort!;
      const shipped = readFileSync(join(CLUSTER, 'nats.conf'), 'utf8');
      const conf = shipped
        .replace(/^listen:.*$/m, `listen: 127.0.0.1:${natsPort}`)
        .replace(/^http:.*$/m, `http: 127.0.0.1:${httpPort}`)
        .replace(/(\bstore_dir:\s*).*$/m, `$1"${join(dir, 'jetstream')}"`);
      for (const k of ['listen', 'http', 'store_dir']) expect(conf.match(new RegExp(`^\\s*${k}:.*$`, 'm'))?.[0], k).not.toBe(shipped.match(new RegExp(`^\\s*${k}:.*$`, 'm'))?.[0]);
      writeFileSync(join(dir, 'nats.conf'), conf);
      nats = run('nats-server', ['-c', join(dir, 'nats.conf')]);
      await eventually(() => {
        if (nats.proc.exitCode !== null) throw new Error(`nats-server exited: ${nats.stderr()}`);
        return nats.stderr().includes('Server is ready');
      }, 10_000, 'nats-server ready');

      // Each node: its command line exactly, the compose network's NATS URL replaced by this
      // one, plus what the container gives it otherwise (its own ports and data directory).
      const composeUrl = nodeArgs(clusterNodes(c)[0]![1]).nats;
      for (const [name, s] of clusterNodes(c)) {
        const [tcp, ws] = await freePorts(2);
        const data = mkdtempSync(join(tmpdir(), `sb-cluster-${name}-`));
        dirs.push(data);
        const args = [
          ...s.command!.map((a) => (a === composeUrl ? `nats://127.0.0.1:${natsPort}` : a)),
          '--host', '127.0.0.1', '--tcp-port', String(tcp), '--ws-port', String(ws), '--data-dir', data,
        ];
        const env: NodeJS.ProcessEnv = { ...process.env, SWITCHBOARD_CONFIG: '', ...s.environment };
        nodes.push({ name, tcp: tcp!, ws: ws!, child: run(process.execPath, [join(ROOT, 'dist/src/cli.js'), ...args], { cwd: ROOT, env }) });
      }
      for (const n of nodes)
        await eventually(() => {
          if (n.child.proc.exitCode !== null) throw new Error(`${n.name} exited (${n.child.proc.exitCode}):\n${n.child.stderr()}\n${n.child.stdout()}`);
          return n.child.stderr().includes('MQTT over TCP');
        }, 60_000, `${n.name} listening`);
    }, 90_000);

    afterAll(async () => {
      await pool.closeAll();
      for (const n of nodes) if (n.child.proc.exitCode === null && n.child.proc.signalCode === null) n.child.proc.kill('SIGTERM');
      await Promise.all(nodes.map((n) => n.child.exited));
      if (nats && nats.proc.exitCode === null) {
        nats.proc.kill('SIGTERM');
        await nats.exited;
      }
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }, 40_000);

    it('nats-server runs ops/cluster/nats.conf with JetStream on and max_payload 8 MB; its /healthz (the compose health check) answers 200', async () => {
      expect((await fetch(`http://127.0.0.1:${natsHttp}/healthz`)).status).toBe(200);
      const varz = (await (await fetch(`http://127.0.0.1:${natsHttp}/varz`)).json()) as { max_payload: number; jetstream?: { config?: { store_dir: string } } };
      expect(varz.max_payload).toBe(8 * 1024 * 1024);
      expect(varz.jetstream?.config?.store_dir, 'JetStream enabled').toContain(dirs[0]!);
    });

    it('every node runs its compose command line: /healthz and /readyz on each, a message published on node1 reaches subscribers on node2 and node3', async () => {
      expect(nodes.map((n) => n.name)).toEqual(['node1', 'node2', 'node3']);
      for (const n of nodes) {
        expect((await fetch(`http://127.0.0.1:${n.ws}/healthz`)).status, n.name).toBe(200);
        expect((await fetch(`http://127.0.0.1:${n.ws}/readyz`)).status, n.name).toBe(200);
      }
      const topic = uid('compose');
      const subs = [];
      for (const n of nodes.slice(1)) {
        const s = await pool.connect(`mqtt://127.0.0.1:${n.tcp}`, { clientId: uid(`sub-${n.name}`) });
        await s.client.subscribeAsync(topic, { qos: 1 });
        subs.push(s);
      }
      const pub = await pool.connect(`mqtt://127.0.0.1:${nodes[0]!.tcp}`, { clientId: uid('pub-node1') });
      await pub.client.publishAsync(topic, 'from node1', { qos: 1 });
      for (const s of subs) expect((await s.inbox.waitFor(1, 5000)).map((m) => m.payload)).toEqual(['from node1']);
      // And back, over WebSocket: node3 to a subscriber on node1.
      const back = uid('compose-back');
      const s1 = await pool.connect(`ws://127.0.0.1:${nodes[0]!.ws}/mqtt`, { clientId: uid('sub-node1') });
      await s1.client.subscribeAsync(back, { qos: 1 });
      await subs[1]!.client.publishAsync(back, 'from node3', { qos: 1 });
      expect((await s1.inbox.waitFor(1, 5000)).map((m) => m.payload)).toEqual(['from node3']);
      await pool.closeAll();
    }, 30_000);

    it.skipIf(!HAVE_PROMETHEUS)(`Prometheus with ops/cluster/prometheus.yml (targets rewritten to these nodes) scrapes all three: up == 1${HAVE_PROMETHEUS ? '' : ' (SKIPPED: no `prometheus` binary)'}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sb-cluster-prometheus-'));
      dirs.push(dir);
      const cfg = YAML.parse(readFileSync(join(CLUSTER, 'prometheus.yml'), 'utf8')) as {
        global: Record<string, string>;
        scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
      };
      cfg.global.scrape_interval = '1s';
      cfg.global.evaluation_interval = '1s';
      const where = new Map(nodes.map((n) => [`${n.name}:8083`, `127.0.0.1:${n.ws}`]));
      for (const sc of cfg.scrape_configs[0]!.static_configs) sc.targets = sc.targets.map((t) => where.get(t) ?? t);
      expect(cfg.scrape_configs[0]!.static_configs.flatMap((s) => s.targets).sort()).toEqual([...where.values()].sort());
      writeFileSync(join(dir, 'prometheus.yml'), YAML.stringify(cfg));
      copyFileSync(join(OPS, 'prometheus-alerts.yml'), join(dir, 'prometheus-alerts.yml'));
      const [port] = await freePorts(1);
      const url = `http://127.0.0.1:${port}`;
      const prom = run('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn']);
      try {
        await eventually(async () => {
          if (prom.proc.exitCode !== null) throw new Error(`prometheus exited: ${prom.stderr()}`);
          return (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200;
        }, 20_000, 'prometheus ready');
        const up = await eventually(async () => {
          const r = (await (await fetch(`${url}/api/v1/query?query=${encodeURIComponent('up{job="switchboard"}')}`)).json()) as { data: { result: Array<{ metric: { instance: string }; value: [number, string] }> } };
          const res = r.data.result;
          return res.length === nodes.length && res.every((x) => x.value[1] === '1') ? res : undefined;
        }, 15_000, 'up{job="switchboard"} == 1 for every node');
        expect(up.map((x) => x.metric.instance).sort()).toEqual([...where.values()].sort());
      } finally {
        prom.proc.kill('SIGTERM');
        await prom.exited;
      }
    }, 45_000);

    it('SIGTERM (docker stop) stops every node: exit 0, its ports closed', async () => {
      for (const n of nodes) n.child.proc.kill('SIGTERM');
      for (const n of nodes) {
        expect(await n.child.exited, `${n.name}:\n${n.child.stderr()}`).toBe(0);
        expect(await portClosed(n.tcp), n.name).toBe(true);
        expect(await portClosed(n.ws), n.name).toBe(true);
      }
    }, 30_000);
  },
);
