/**
 * MQTT over TLS (node:tls, listener descriptor shared by the gateway threads) and over
 * secure WebSocket (uWS SSLApp on every gateway thread), in both topologies, with
 * certificates made by the code of `switchboard cert` (openssl) in a temp dir:
 *  - MQTT.js over mqtts:// and wss:// with the development CA, HTTPS endpoints on the wss port;
 *  - mosquitto_pub / mosquitto_sub with --cafile (and a client certificate), skipped
 *    (with a message) when mosquitto-clients are absent;
 *  - a client certificate's CN as the username: authenticated without a password, the ACL
 *    keyed on that username applies; a certificate from another CA is ignored;
 *  - a plain TCP client on the TLS port fails cleanly and disturbs nobody;
 *  - reload (BrokerHandle.reloadTls, what SIGHUP calls): established TLS and WSS
 *    connections go on, new handshakes on every gateway present the new certificate;
 *    unusable files are refused and the old certificate stays;
 *  - Chromium (playwright-core) running MQTT.js over wss:// (skipped without /usr/bin/chromium);
 *  - start-up errors for missing or mismatched files; the CLI end to end: `switchboard cert`,
 *    `start` with TLS, a real SIGHUP.
 * Needs the `openssl` command (Debian: package openssl; .ci/run installs it when missing).
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { build } from 'esbuild';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { chromium, type Browser } from 'playwright-core';
import { startTestBroker, TOPOLOGIES, metric, type TestBroker, type TopologyName } from '../helpers/broker.js';
import { ROOT, freePorts, portClosed } from '../helpers/broker-process.js';
import { within, uid, sleep } from '../helpers/clients.js';
import { generateDevCerts, type DevCertFiles } from '../../src/transport/dev-cert.js';
import { addUser } from '../../src/auth/users-file.js';
import { loadConfig, ConfigError } from '../../src/config/load.js';
import { startBroker } from '../../src/broker.js';
import { HAVE_MOSQUITTO, onPath } from '../helpers/peers.js';

const HAVE_OPENSSL = onPath('openssl', 'version');
const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_OPENSSL) console.warn('33-tls: SKIPPED: the openssl command is not on PATH (apt-get install openssl)');
if (!HAVE_MOSQUITTO) console.warn('33-tls: mosquitto tests SKIPPED: mosquitto_pub/mosquitto_sub not on PATH (apt-get install mosquitto-clients)');
if (!HAVE_CHROMIUM) console.warn(`33-tls: browser test SKIPPED: ${CHROMIUM} not found (apt-get install chromium)`);

const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
const USER = 'bob';
const PASSWORD = 'bob-secret';

let dir: string;
/** The shared CA and the client certificates: alice, mallory (same CA), and eve from another CA. */
let shared: DevCertFiles;
let foreign: DevCertFiles;
let usersFile: string;
let ca: Buffer;
let browser: Browser | undefined;
let bundle: string | undefined;
const clients: MqttClient[] = [];
const children = new Set<ChildProcess>();

const pem = (f: string) => readFileSync(f);
const fingerprintOf = (certFile: string) => new X509Certificate(pem(certFile)).fingerprint256;
const clientCert = (files: DevCertFiles, name: string) => {
  const c = files.clients.find((x) => x.name === name)!;
  return { key: pem(c.key), cert: pem(c.cert) };
};

/** The certificate the server presents to a new handshake on `port` (verified against the CA). */
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.once('error', reject);
  });
}

async function connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { ca, reconnectPeriod: 0, connectTimeout: 5000, username: USER, password: PASSWORD, ...opts });
  clients.push(c);
  // Not connectAsync: a connection that closes before CONNACK (connectTimeout) settles it too.
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
    c.once('close', () => reject(new Error(`${url}: closed before CONNACK`)));
  });
  return c;
}

/** Like connect, expecting a refusal: resolves with the CONNACK code (or the error's message). */
async function refused(url: string, opts: IClientOptions): Promise<number | string> {
  const c = mqtt.connect(url, { ca, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  clients.push(c);
  return new Promise((resolve) => {
    c.once('connect', () => resolve('connected'));
    c.once('error', (e: Error & { code?: number | string }) => resolve(typeof e.code === 'number' ? e.code : e.message));
  });
}

function nextMessage(c: MqttClient, ms = 5000): Promise<string> {
  return within(new Promise<string>((resolve) => c.once('message', (t, p) => resolve(`${t} ${p.toString()}`))), ms, 'a message');
}

function httpsGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path, ca, servername: 'localhost' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

function runTool(cmd: string, args: string[], ms = 10_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(proc);
    let out = '';
    let err = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
    proc.on('close', (code) => {
      clearTimeout(timer);
      children.delete(proc);
      resolve({ code, out, err });
    });
  });
}

/** esbuild: MQTT.js (browser build) on `window`, as in 23-im-browser. */
async function bundleMqtt(into: string): Promise<string> {
  const shim = join(into, 'buffer-shim.js');
  writeFileSync(shim, "export { Buffer } from 'buffer';\n");
  const outfile = join(into, 'mqtt-browser.js');
  await build({
    stdin: { contents: "import mqtt from 'mqtt';\nObject.assign(window, { mqtt });\n", resolveDir: ROOT, sourcefile: 'mqtt-entry.ts', loader: 'ts' },
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    inject: [shim],
    define: { global: 'globalThis' },
    nodePaths: [join(ROOT, 'node_modules')],
    outfile,
    logLevel: 'silent',
  });
  return outfile;
}

beforeAll(async () => {
  if (!HAVE_OPENSSL) return;
  dir = mkdtempSync(join(tmpdir(), 'switchboard-tls-'));
  [shared, foreign] = await Promise.all([
    generateDevCerts({ outDir: join(dir, 'shared'), clients: ['alice', 'mallory'] }),
    generateDevCerts({ outDir: join(dir, 'foreign'), clients: ['eve'] }),
  ]);
  ca = pem(shared.caCert);
  usersFile = join(dir, 'users');
  await addUser(usersFile, USER, PASSWORD);
  if (HAVE_CHROMIUM) [browser, bundle] = await Promise.all([chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }), bundleMqtt(dir)]);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const p of children) p.kill('SIGKILL');
  children.clear();
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => {})));
});

describe.skipIf(!HAVE_OPENSSL).each(TOPOLOGIES)('TLS and WSS, %s topology', (topo: TopologyName) => {
  let b: TestBroker;
  /** This topology's server certificate: signed by the shared CA, renewed by the reload test. */
  let certs: DevCertFiles;
  let tlsUrl: string;
  let wssUrl: string;

  beforeAll(async () => {
    const own = join(dir, topo);
    mkdirSync(own);
    // The shared CA, so that generateDevCerts reuses it for this topology's server certificate.
    copyFileSync(shared.caCert, join(own, 'ca.pem'));
    copyFileSync(shared.caKey, join(own, 'ca-key.pem'));
    certs = await generateDevCerts({ outDir: own });
    expect(certs.caCreated).toBe(false);
    b = await startTestBroker(topo, {
      listeners: { tls: { enabled: true, port: 0 }, wss: { enabled: true, port: 0, path: '/mqtt' } },
      tls: { certFile: certs.serverCert, keyFile: certs.serverKey, caFile: shared.caCert, requestClientCert: true, clientCertUsername: true },
      auth: {
        allowAnonymous: false,
        usersFile,
        aclDefault: 'allow',
        // secret/# belongs to alice: only her certificate's CN can use it.
        acl: [
          { action: 'allow', permission: 'all', topic: 'secret/#', username: 'alice' },
          { action: 'deny', permission: 'all', topic: 'secret/#' },
        ],
      },
    });
    expect(b.tlsPort).toBeGreaterThan(0);
    expect(b.wssPort).toBeGreaterThan(0);
    tlsUrl = `mqtts://127.0.0.1:${b.tlsPort}`;
    wssUrl = `wss://127.0.0.1:${b.wssPort}/mqtt`;
  }, 30_000);

  afterAll(async () => {
    await b?.close();
  });

  it('MQTT.js over mqtts:// and wss:// with the CA: messages cross TLS, WSS and plain TCP', async () => {
    const topic = `t/${uid()}`;
    const overTls = await connect(tlsUrl, { protocolVersion: 5 });
    const overWss = await connect(wssUrl);
    const overTcp = await connect(b.tcpUrl);
    await overTls.subscribeAsync(`${topic}/#`, { qos: 1 });
    await overWss.subscribeAsync(`${topic}/#`, { qos: 1 });
    const atTls = nextMessage(overTls);
    const atWss = nextMessage(overWss);
    await overTcp.publishAsync(`${topic}/1`, 'from tcp', { qos: 1 });
    expect(await atTls).toBe(`${topic}/1 from tcp`);
    expect(await atWss).toBe(`${topic}/1 from tcp`);
    const atWss2 = nextMessage(overWss);
    await overTls.publishAsync(`${topic}/2`, 'from tls', { qos: 2 });
    expect(await atWss2).toBe(`${topic}/2 from tls`);
    // The server is who the CA says: a client without the CA refuses it.
    expect(await refused(tlsUrl, { ca: undefined, username: USER, password: PASSWORD })).toMatch(/self[- ]signed|unable to (get|verify)/i);
    expect(await metric(b, 'connections{transport="tls"}')).toBeGreaterThanOrEqual(1);
    expect(await metric(b, 'connections{transport="wss"}')).toBeGreaterThanOrEqual(1);
  });

  it('the HTTP endpoints are served over HTTPS on the wss port too', async () => {
    expect(await httpsGet(b.wssPort!, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    const m = await httpsGet(b.wssPort!, '/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toContain('switchboard_connections{transport="tls"}');
  });

  it("a client certificate's CN is the username: authenticated without a password, under that user's ACL", async () => {
    const alice = clientCert(shared, 'alice');
    // No username, no password: allowAnonymous is off, the certificate logs alice in.
    const a1 = await connect(tlsUrl, { ...alice, username: undefined, password: undefined, protocolVersion: 5 });
    const a2 = await connect(tlsUrl, { ...alice, username: 'alice', password: undefined });
    const topic = `secret/${uid()}`;
    const granted = await a1.subscribeAsync(topic, { qos: 1 });
    expect(granted[0]!.qos).toBe(1);
    const got = nextMessage(a1);
    await a2.publishAsync(topic, 'for alice', { qos: 1 });
    expect(await got).toBe(`${topic} for alice`);

    // mallory has a certificate of the same CA: logged in as mallory, so secret/# is not hers.
    const m = await connect(tlsUrl, { ...clientCert(shared, 'mallory'), username: undefined, password: undefined, protocolVersion: 5 });
    await expect(m.subscribeAsync(topic, { qos: 1 })).rejects.toThrow(/Not authorized/);
    // A username that is not the certificate's still needs its password.
    expect(await refused(tlsUrl, { ...clientCert(shared, 'mallory'), username: 'alice', protocolVersion: 5 })).toBe(0x86);
    // ...and with it, the password decides (bob with mallory's certificate is bob).
    const bob = await connect(tlsUrl, { ...clientCert(shared, 'mallory'), protocolVersion: 5 });
    await expect(bob.subscribeAsync(topic, { qos: 1 })).rejects.toThrow(/Not authorized/);

    // A certificate from another CA does not verify: it is ignored (request mode), so
    // without credentials the client is anonymous, and anonymous is refused.
    expect(await refused(tlsUrl, { ...clientCert(foreign, 'eve'), protocolVersion: 5 })).toBe(0x87);
    // No certificate over TLS, no credentials: refused as well.
    expect(await refused(tlsUrl, { protocolVersion: 5 })).toBe(0x87);
    // The CN means nothing over plain TCP: "alice" without a password is refused there.
    expect(await refused(b.tcpUrl, { username: 'alice', protocolVersion: 5 })).toBe(0x86);
  });

  it('a plain TCP client on the TLS port fails cleanly and does not disturb the others', async () => {
    const topic = `t/${uid()}`;
    const live = await connect(tlsUrl);
    await live.subscribeAsync(topic, { qos: 1 });
    const before = await metric(b, 'tls_handshake_failures_total');

    // MQTT.js speaking plain MQTT to the TLS port: no CONNACK, the connection just ends.
    const plain = mqtt.connect(`mqtt://127.0.0.1:${b.tlsPort}`, { reconnectPeriod: 0, connectTimeout: 3000, username: USER, password: PASSWORD });
    clients.push(plain);
    const outcome = await within(
      new Promise<string>((resolve) => {
        plain.once('connect', () => resolve('connected'));
        plain.once('close', () => resolve('closed'));
      }),
      10_000,
      'plain client on the TLS port to give up',
    );
    expect(outcome).toBe('closed');
    // Raw bytes: the server answers with a TLS alert (or nothing) and closes.
    const raw = net.connect({ host: '127.0.0.1', port: b.tlsPort! });
    raw.on('error', () => {});
    raw.write(Buffer.from('101000044d5154540402003c0004746573745f', 'hex'));
    await within(new Promise((r) => raw.once('close', r)), 5000, 'raw socket closed by the server');

    const got = nextMessage(live);
    const other = await connect(tlsUrl);
    await other.publishAsync(topic, 'still fine', { qos: 1 });
    expect(await got).toBe(`${topic} still fine`);
    expect(live.connected).toBe(true);
    expect(await metric(b, 'tls_handshake_failures_total')).toBeGreaterThanOrEqual(before + 2);
  });

  it.skipIf(!HAVE_MOSQUITTO)('mosquitto_pub / mosquitto_sub with --cafile, and with a client certificate', async () => {
    const topic = `mosq/${uid()}`;
    const sub = await connect(tlsUrl);
    await sub.subscribeAsync(`${topic}/#`, { qos: 1 });
    const got = nextMessage(sub);
    const pub = await runTool('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.tlsPort), '--cafile', shared.caCert, '-u', USER, '-P', PASSWORD, '-V', 'mqttv5', '-q', '1', '-t', `${topic}/a`, '-m', 'from mosquitto']);
    expect(pub.code, pub.err).toBe(0);
    expect(await got).toBe(`${topic}/a from mosquitto`);

    // mosquitto_sub with alice's certificate and no username: her ACL lets her read secret/#.
    const secret = `secret/${uid()}`;
    const msub = runTool('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.tlsPort), '--cafile', shared.caCert, '--cert', shared.clients[0]!.cert, '--key', shared.clients[0]!.key, '-t', secret, '-q', '1', '-C', '1', '-W', '10', '-F', '%t %p']);
    // mosquitto_sub prints nothing when subscribed: publish until it has the message.
    const alice = await connect(tlsUrl, { ...clientCert(shared, 'alice'), username: undefined, password: undefined });
    let done = false;
    void msub.then(() => (done = true));
    for (let i = 0; i < 40 && !done; i++) {
      await alice.publishAsync(secret, 'to mosquitto', { qos: 1 });
      await sleep(100);
    }
    const r = await msub;
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim()).toBe(`${secret} to mosquitto`);
  });

  it.skipIf(!HAVE_CHROMIUM)('a browser (Chromium) connects with MQTT.js over wss://', async () => {
    const topic = `browser/${uid()}`;
    const node = await connect(tlsUrl);
    await node.subscribeAsync(topic, { qos: 1 });
    const got = nextMessage(node, 15_000);
    // The development CA is not in the browser's store: accept the certificate for this context.
    const context = await browser!.newContext({ ignoreHTTPSErrors: true });
    try {
      const page = await context.newPage();
      await page.setContent('<html><body></body></html>');
      await page.addScriptTag({ path: bundle! });
      const result = await page.evaluate(
        async ({ url, topic, username, password }) => {
          const w = window as unknown as { mqtt: typeof mqtt };
          const client = w.mqtt.connect(url, { protocolVersion: 5, username, password, reconnectPeriod: 0, connectTimeout: 10_000 });
          await new Promise<void>((resolve, reject) => {
            client.once('connect', () => resolve());
            client.once('error', (e) => reject(new Error(e.message)));
            client.once('close', () => reject(new Error('closed before CONNACK')));
          });
          await client.publishAsync(topic, `hello from ${location.protocol === 'about:' ? 'the page' : location.href}`, { qos: 1 });
          await client.endAsync();
          return 'ok';
        },
        { url: wssUrl, topic, username: USER, password: PASSWORD },
      );
      expect(result).toBe('ok');
      expect(await got).toBe(`${topic} hello from the page`);
    } finally {
      await context.close();
    }
  }, 30_000);

  // Last: it renews this topology's certificate.
  it('reload: established TLS and WSS connections go on, every new handshake gets the new certificate', async () => {
    const oldFp = fingerprintOf(certs.serverCert);
    expect(await peerFingerprint(b.tlsPort!)).toBe(oldFp);
    expect(await peerFingerprint(b.wssPort!)).toBe(oldFp);
    const topic = `reload/${uid()}`;
    const oldTls = await connect(tlsUrl, { protocolVersion: 5 });
    const oldWss = await connect(wssUrl);
    await oldWss.subscribeAsync(topic, { qos: 1 });
    await oldTls.subscribeAsync(topic, { qos: 1 });

    // Renew (same CA, same files) and reload, as SIGHUP does.
    const renewed = await generateDevCerts({ outDir: join(dir, topo) });
    const newFp = fingerprintOf(renewed.serverCert);
    expect(newFp).not.toBe(oldFp);
    await b.reloadTls();

    // Several handshakes each: with 2 gateway threads the kernel spreads them over both.
    for (let i = 0; i < 6; i++) {
      expect(await peerFingerprint(b.tlsPort!)).toBe(newFp);
      expect(await peerFingerprint(b.wssPort!)).toBe(newFp);
    }
    // The connections made before the reload are untouched.
    const atWss = nextMessage(oldWss);
    const atTls = nextMessage(oldTls);
    await oldTls.publishAsync(topic, 'after reload', { qos: 1 });
    expect(await atWss).toBe(`${topic} after reload`);
    expect(await atTls).toBe(`${topic} after reload`);
    // New clients of both kinds work with the new certificate.
    const fresh = await connect(wssUrl);
    const atFresh = nextMessage(fresh);
    await fresh.subscribeAsync(topic, { qos: 1 });
    await (await connect(tlsUrl)).publishAsync(topic, 'new handshakes', { qos: 1 });
    expect(await atFresh).toBe(`${topic} new handshakes`);
    expect(await metric(b, 'tls_reloads_total')).toBe(b.topology.gatewayThreads || 1);

    // Unusable files: the reload is refused, naming the key, and the certificate stays.
    const goodKey = pem(renewed.serverKey);
    writeFileSync(renewed.serverKey, 'not a key\n');
    try {
      const err = await b.reloadTls().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).key).toBe('tls.keyFile');
    } finally {
      writeFileSync(renewed.serverKey, goodKey);
    }
    expect(await peerFingerprint(b.tlsPort!)).toBe(newFp);
    expect(await peerFingerprint(b.wssPort!)).toBe(newFp);
    expect(oldTls.connected && oldWss.connected).toBe(true);
  });

  it.skipIf(topo === 'single')('a gateway crash: the restarted gateway threads share the TLS descriptor and the WSS port again', async () => {
    const fp = fingerprintOf(certs.serverCert);
    b.crashThread('gateway', 1);
    const until = Date.now() + 15_000;
    while (b.restarts.gateway < 1) {
      if (Date.now() > until) throw new Error('the gateways were not restarted');
      await sleep(50);
    }
    // The restart is over once the TLS listener (bound by the new gateway 0 before its WSS
    // app) serves MQTT again. Only then WSS: a connection that a stopping gateway's uWS app
    // accepts while the descriptor numbers of the dead thread's listeners are being reused
    // is the known hazard of shared descriptors (docs/architecture.md, "Supervision").
    const retry = <T>(what: string, f: () => Promise<T>) =>
      within(
        (async () => {
          for (;;) {
            try {
              return await f();
            } catch {
              await sleep(100);
            }
          }
        })(),
        15_000,
        what,
      );
    await retry('an MQTT over TLS connection after the gateway restart', () => connect(tlsUrl));
    const sub = await retry('a WSS connection after the gateway restart', () => connect(wssUrl));
    const topic = `crash/${uid()}`;
    await sub.subscribeAsync(topic, { qos: 1 });
    for (let i = 0; i < 6; i++) {
      expect(await peerFingerprint(b.tlsPort!)).toBe(fp);
      expect(await peerFingerprint(b.wssPort!)).toBe(fp);
    }
    const got = nextMessage(sub);
    await (await connect(tlsUrl)).publishAsync(topic, 'after the restart', { qos: 1 });
    expect(await got).toBe(`${topic} after the restart`);
  }, 30_000);
});

describe.skipIf(!HAVE_OPENSSL)('TLS configuration errors at start', () => {
  const base = (tlsOverrides: Record<string, unknown>) =>
    loadConfig({
      env: {},
      overrides: {
        host: '127.0.0.1',
        dataDir: join(dir, `data-${uid()}`),
        threads: { gateways: 0, shards: 0 },
        store: { durability: 'memory' },
        log: { level: 'silent' },
        listeners: { tcp: { port: 0 }, ws: { enabled: false }, tls: { enabled: true, port: 0 } },
        tls: { certFile: shared.serverCert, keyFile: shared.serverKey, ...tlsOverrides },
      },
    });

  it('a missing certificate file names the key and the file', async () => {
    const missing = join(dir, 'nope.pem');
    const err = await startBroker(base({ certFile: missing })).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('tls.certFile');
    expect((err as Error).message).toContain(missing);
    expect((err as Error).message).toMatch(/does not exist/);
  });

  it('a key that is not the certificate\'s is refused before anything listens', async () => {
    const err = await startBroker(base({ keyFile: foreign.serverKey })).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('tls.keyFile');
    expect((err as Error).message).toContain(foreign.serverKey);
    expect((err as Error).message).toMatch(/is not the key of the certificate/);
  });
});

describe.skipIf(!HAVE_OPENSSL)('the command line: switchboard cert, start with TLS, SIGHUP', () => {
  let proc: ChildProcess | undefined;
  afterEach(() => {
    try {
      if (proc?.pid) process.kill(-proc.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  });

  it('makes certificates, serves mqtts:// and wss://, and reloads them on SIGHUP', async () => {
    const certDir = join(dir, 'cli-certs');
    const made = await runTool(TSX, [join(ROOT, 'src/cli.ts'), 'cert', '--out', certDir, '--host', 'broker.test', '--client', 'carol'], 30_000);
    expect(made.code, made.err).toBe(0);
    expect(made.out).toContain(join(certDir, 'server.pem'));
    for (const f of ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem', 'client-carol.pem', 'client-carol-key.pem']) expect(existsSync(join(certDir, f)), f).toBe(true);
    const san = new X509Certificate(pem(join(certDir, 'server.pem'))).subjectAltName;
    expect(san).toContain('DNS:broker.test');
    expect(san).toContain('IP Address:127.0.0.1');
    const cliCa = pem(join(certDir, 'ca.pem'));

    const [tcpPort, tlsPort, wssPort] = await freePorts(3);
    // node itself is the child (no tsx wrapper in between), so SIGHUP reaches the broker.
    proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--host', '127.0.0.1', '--tcp-port', String(tcpPort), '--tls-port', String(tlsPort), '--wss-port', String(wssPort), '--gateways', '2', '--shards', '1', '--data-dir', join(dir, 'cli-data')], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        SWITCHBOARD_CONFIG: '',
        SWITCHBOARD_LISTENERS__WS__ENABLED: 'false',
        SWITCHBOARD_LISTENERS__TLS__ENABLED: 'true',
        SWITCHBOARD_LISTENERS__WSS__ENABLED: 'true',
        SWITCHBOARD_TLS__CERT_FILE: join(certDir, 'server.pem'),
        SWITCHBOARD_TLS__KEY_FILE: join(certDir, 'server-key.pem'),
        SWITCHBOARD_STORE__DURABILITY: 'memory',
      },
    });
    let err = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    proc.stdout!.resume();
    const exited = new Promise<number | null>((r) => proc!.on('close', (code) => r(code)));
    const deadline = Date.now() + 30_000;
    while (!err.includes('MQTT over WSS')) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`broker did not start: ${err}`);
      await sleep(50);
    }
    expect(err).toContain(`mqtts://127.0.0.1:${tlsPort}`);
    expect(err).toContain(`wss://127.0.0.1:${wssPort}/mqtt`);

    const fp = (port: number) =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca: cliCa, servername: 'broker.test' }, () => {
          resolve(s.getPeerCertificate().fingerprint256);
          s.destroy();
        });
        s.once('error', reject);
      });
    const before = fingerprintOf(join(certDir, 'server.pem'));
    expect(await fp(tlsPort!)).toBe(before);
    const live = await connect(`mqtts://127.0.0.1:${tlsPort}`, { ca: cliCa, username: undefined, password: undefined });
    const liveWss = await connect(`wss://127.0.0.1:${wssPort}/mqtt`, { ca: cliCa, username: undefined, password: undefined });

    // Renew with the command (the CA is reused), then SIGHUP.
    const again = await runTool(TSX, [join(ROOT, 'src/cli.ts'), 'cert', '--out', certDir, '--host', 'broker.test'], 30_000);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/reused CA/);
    const after = fingerprintOf(join(certDir, 'server.pem'));
    expect(after).not.toBe(before);
    process.kill(proc.pid!, 'SIGHUP');
    const until = Date.now() + 10_000;
    while ((await fp(tlsPort!)) !== after || (await fp(wssPort!)) !== after) {
      if (Date.now() > until) throw new Error(`no new certificate after SIGHUP: ${err}`);
      await sleep(100);
    }
    for (let i = 0; i < 4; i++) expect(await fp(tlsPort!)).toBe(after);
    const topic = `cli/${uid()}`;
    await liveWss.subscribeAsync(topic, { qos: 1 });
    const got = nextMessage(liveWss);
    await live.publishAsync(topic, 'across the reload', { qos: 1 });
    expect(await got).toBe(`${topic} across the reload`);

    proc.kill('SIGTERM');
    expect(await within(exited, 10_000, 'exit after SIGTERM')).toBe(0);
    expect(await portClosed(tlsPort!)).toBe(true);
    expect(await portClosed(wssPort!)).toBe(true);
  }, 90_000);
});
