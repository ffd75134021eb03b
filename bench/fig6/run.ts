/**
 * Figure 6 of the paper: bytes on the wire for 1..N one-to-one text messages over MQTT
 * (Switchboard), XMPP (Prosody) and SIP SIMPLE (Kamailio). See bench/fig6/README.md.
 *
 *   npx tsx bench/fig6/run.ts [--counts 1,10,20,50,100] [--out bench/results] [--variants a,b]
 *                             [--text "..."] [--pace lockstep|burst] [--no-capture]
 */
import { mkdir, readFile, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startSwitchboard, mqttVariant } from './mqtt.js';
import { startProsody, xmppVariant } from './xmpp.js';
import { startKamailio } from './kamailio.js';
import { sipVariant } from './sip.js';
import { execFileP, which, type Server } from './servers.js';
import { prepareTarget, runOnce, type Target } from './runner.js';
import { startCapture, analyzeCapture, type Capture } from './capture.js';
import { toJson, toMarkdown, toSvg, type Report } from './report.js';
import { trace, type RunResult, type Variant } from './types.js';

const ALL = ['mqtt311-qos0', 'mqtt311-qos1', 'mqtt5-qos0', 'mqtt5-qos1', 'mqtt311-qos1-sub', 'xmpp', 'xmpp-sm', 'sip', 'sip-auth'];

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: '1,10,20,50,100' },
    out: { type: 'string', default: 'bench/results' },
    variants: { type: 'string', default: ALL.join(',') },
    text: { type: 'string', default: 'Hello, this is a test message' },
    pace: { type: 'string', default: 'lockstep' },
    'quiet-ms': { type: 'string', default: '150' },
    'no-capture': { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(`usage: npx tsx bench/fig6/run.ts [options]
  --counts 1,10,20,50,100   message counts N (one fresh login per N)
  --out bench/results       where fig6-<timestamp>.{json,md,svg} go
  --variants LIST           subset of: ${ALL.join(', ')}
  --text "..."              the message text (same for every message)
  --pace lockstep|burst     lockstep: send message i+1 once i was delivered (and acked); burst: all at once
  --quiet-ms 150            silence that ends a phase
  --no-capture              skip the tshark/dumpcap capture (IP-level bytes)
  --trace                   print every chunk the clients send (>>) and receive (<<) on stderr`);
  process.exit(0);
}

const counts = values.counts.split(',').map((s) => Number(s.trim()));
if (counts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--counts: positive integers, got ${values.counts}`);
const wanted = values.variants.split(',').map((s) => s.trim());
for (const w of wanted) if (!ALL.includes(w)) throw new Error(`--variants: unknown ${w} (known: ${ALL.join(', ')})`);
if (values.pace !== 'lockstep' && values.pace !== 'burst') throw new Error('--pace: lockstep or burst');
const pace = values.pace;
trace.on = values.trace;
const quietMs = Number(values['quiet-ms']);
const want = (...ids: string[]): boolean => ids.some((id) => wanted.includes(id));

const servers: Server[] = [];
const targets: Target[] = [];
const failures: Report['failures'] = [];
let activeCapture: Capture | null = null;
let capDir: string | null = null;

async function start(what: string, ids: string[], f: () => Promise<Server>): Promise<Server | null> {
  try {
    const s = await f();
    servers.push(s);
    return s;
  } catch (err) {
    for (const id of ids) failures.push({ variant: id, error: `${what}: ${(err as Error).message.split('\n')[0]}` });
    process.stderr.write(`fig6: ${what} unavailable: ${(err as Error).message}\n`);
    return null;
  }
}

async function pkgVersion(path: string): Promise<string> {
  try {
    return (JSON.parse(await readFile(path, 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

async function debVersions(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const p of ['prosody', 'kamailio', 'tshark']) {
    try {
      out[p] = (await execFileP('dpkg-query', ['-W', '-f', '${Version}', p])).stdout.trim();
    } catch {
      out[p] = 'not installed';
    }
  }
  return out;
}

async function main(): Promise<void> {
  const variants: Variant[] = [];
  const mqttIds = ALL.filter((id) => id.startsWith('mqtt') && want(id));
  if (mqttIds.length) {
    const sb = await start('Switchboard', mqttIds, startSwitchboard);
    if (sb) {
      if (want('mqtt311-qos0')) variants.push(mqttVariant(sb, { version: 4, qos: 0, subscribe: false }));
      if (want('mqtt311-qos1')) variants.push(mqttVariant(sb, { version: 4, qos: 1, subscribe: false }));
      if (want('mqtt5-qos0')) variants.push(mqttVariant(sb, { version: 5, qos: 0, subscribe: false }));
      if (want('mqtt5-qos1')) variants.push(mqttVariant(sb, { version: 5, qos: 1, subscribe: false }));
      if (want('mqtt311-qos1-sub')) variants.push(mqttVariant(sb, { version: 4, qos: 1, subscribe: true }));
    }
  }
  for (const smacks of [false, true]) {
    const id = smacks ? 'xmpp-sm' : 'xmpp';
    if (!want(id)) continue;
    const s = (await which('prosody')) ? await start('prosody', [id], () => startProsody({ smacks })) : null;
    if (s) variants.push(xmppVariant(s, { smacks }));
    else if (!failures.some((f) => f.variant === id)) failures.push({ variant: id, error: 'prosody is not installed (apt-get install -y prosody)' });
  }
  for (const authMessage of [false, true]) {
    const id = authMessage ? 'sip-auth' : 'sip';
    if (!want(id)) continue;
    const s = (await which('kamailio')) ? await start('kamailio', [id], () => startKamailio({ authMessage })) : null;
    if (s) variants.push(sipVariant(s, { authMessage }));
    else if (!failures.some((f) => f.variant === id)) failures.push({ variant: id, error: 'kamailio is not installed (apt-get install -y kamailio)' });
  }
  for (const v of variants) targets.push(await prepareTarget(v));

  let capture: Capture | null = null;
  if (!values['no-capture']) {
    capDir = await mkdtemp(join(tmpdir(), 'fig6-capture-'));
    const tcp = targets.flatMap((t) => (t.proxy ? [t.proxy.port] : []));
    const udp = targets.flatMap((t) => (t.proxy ? [] : [t.variant.server.port]));
    capture = activeCapture = await startCapture(join(capDir, 'fig6.pcapng'), tcp, udp);
    if (!capture) process.stderr.write('fig6: no tshark/dumpcap capture; reporting payload bytes only\n');
  }

  const results = new Map<string, RunResult[]>();
  for (const t of targets) {
    const list: RunResult[] = [];
    results.set(t.variant.id, list);
    for (const n of counts) {
      try {
        const r = await runOnce(t, n, { text: values.text, pace, quietMs });
        if (r.received !== n) throw new Error(`bob received ${r.received} of ${n} messages`);
        list.push(r);
        const tot = r.total.up + r.total.down;
        process.stderr.write(`fig6: ${t.variant.id.padEnd(17)} N=${String(n).padStart(4)}  total ${tot} B (setup ${r.bytes.setup.up}+${r.bytes.setup.down})  ${r.ms} ms\n`);
      } catch (err) {
        failures.push({ variant: t.variant.id, error: `N=${n}: ${(err as Error).message}` });
        process.stderr.write(`fig6: ${t.variant.id} N=${n} failed: ${(err as Error).message}\n`);
      }
    }
  }

  let unassigned: number | undefined;
  if (capture) {
    await capture.stop();
    activeCapture = null;
    unassigned = await analyzeCapture(capture.file, [...results.values()].flat());
  }

  const report: Report = {
    generated: new Date().toISOString(),
    options: { counts, text: values.text, pace, quietMs, capture: capture !== null },
    environment: {
      node: process.version,
      os: `${os.type()} ${os.release()}`,
      cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
      switchboard: await pkgVersion('package.json'),
      'mqtt.js': await pkgVersion('node_modules/mqtt/package.json'),
      '@xmpp/client': await pkgVersion('node_modules/@xmpp/client/package.json'),
      ...(await debVersions()),
    },
    variants: targets.map((t) => ({
      id: t.variant.id,
      label: t.variant.label,
      protocol: t.variant.protocol,
      transport: t.variant.transport,
      notes: t.variant.notes,
      results: results.get(t.variant.id) ?? [],
    })),
    unassignedPackets: unassigned,
    failures,
  };
  const outDir = resolve(values.out);
  await mkdir(outDir, { recursive: true });
  const stamp = report.generated.replace(/[:.]/g, '-');
  const base = join(outDir, `fig6-${stamp}`);
  const md = toMarkdown(report);
  await writeFile(`${base}.json`, toJson(report));
  await writeFile(`${base}.md`, md);
  await writeFile(`${base}.svg`, toSvg(report));
  console.log(md);
  console.log(`wrote ${base}.json, .md, .svg`);
}

let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await activeCapture?.stop().catch(() => {});
  for (const t of targets) await t.proxy?.close().catch(() => {});
  for (const s of servers) await s.stop().catch(() => {});
  if (capDir) await rm(capDir, { recursive: true, force: true });
}

// Ctrl-C, a closed pipe or a kill: stop the servers and the capture before leaving.
process.stdout.on('error', () => {});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    process.stderr.write(`fig6: ${sig}, stopping the servers\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

main()
  .then(cleanup, async (err: unknown) => {
    process.stderr.write(`fig6: ${(err as Error).stack ?? String(err)}\n`);
    await cleanup();
    process.exitCode = 1;
  })
  .finally(() => {
    // MQTT.js timers or a stray socket must not keep the bench alive.
    setTimeout(() => process.exit(), 500).unref();
  });
