/**
 * The IM service as a web client sees it (IM-PROTOCOL.md, docs/im.md): a real Chromium
 * (Debian's `chromium`, driven by playwright-core) runs MQTT.js over WebSocket and the IM
 * SDK (src/im, bundled for the browser with esbuild and a Buffer polyfill).
 *  - figure 3 with two devices in the browser: Alice's PC (page) writes to Jim; Jim's
 *    phone (page, decoding in the browser), Jim's PC (Node, TCP) and Alice's phone (Node,
 *    TCP, the carbon copy on her own inbox) get it; Alice's PC never gets it back;
 *  - Jim's phone answers with an image message (media 1, a URL, fn {name, size}) that
 *    Alice's PC decodes in the browser;
 *  - a payload that does not decode, published from the browser over MQTT 5, is refused
 *    with PUBACK 0x99 and never delivered.
 * No client subscribes: the broker pre-subscribes the inboxes before CONNACK.
 * "Nothing arrives" is shown by order: a marker sent afterwards is the next message.
 * Skipped (with a message) only when /usr/bin/chromium is absent; .ci/run installs it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import mqtt, { type MqttClient } from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { encodeImPayload, decodeImPayload, ImMedia, type ImContentItem, type ImMessage } from '../../src/im/index.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { CHROMIUM_SKIP_REASON, HAVE_CHROMIUM, launchChromium } from '../helpers/chromium.js';

if (!HAVE_CHROMIUM) console.warn(`23-im-browser: ${CHROMIUM_SKIP_REASON}`);

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const NS = 'acme';
const inboxOf = (uid: string) => `/${NS}/im/u/${uid}`;
const TS = 1_764_000_000;
const TIMEOUT = 60_000;
/** How long one expected message may take (generous: 2 shared cores, a browser, 4 broker threads). */
const WAIT = 15_000;

/** What the browser bundle puts on `window` (plus the device's client and report hook). */
interface ImWindow {
  mqtt: typeof mqtt;
  im: { encodeImPayload: typeof encodeImPayload; decodeImPayload: typeof decodeImPayload; ImMedia: typeof ImMedia };
  imClient: MqttClient;
  reportIm: (m: Seen) => Promise<void>;
}

/** One received message as a device saw it, decoded where it arrived (browser or Node). */
interface Seen {
  topic: string;
  sender?: string;
  ts?: number;
  kind?: number;
  media?: number;
  con?: ImContentItem[];
  /** Hex of the raw payload (Node devices only). */
  hex?: string;
  /** Set when the payload did not decode. */
  error?: string;
}

/** The messages of one device, in arrival order, consumed one by one. */
class Arrivals {
  private readonly items: Seen[] = [];
  private wake: (() => void) | undefined;
  constructor(readonly device: string) {}
  push(m: Seen): void {
    this.items.push(m);
    this.wake?.();
  }
  /** The next message not yet taken; fails after `ms`. */
  async next(ms = WAIT): Promise<Seen> {
    const deadline = Date.now() + ms;
    while (this.items.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.device}: no message within ${ms} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
    }
    return this.items.shift()!;
  }
  /** Messages that arrived and were not taken (expected: none, between steps). */
  get pending(): Seen[] {
    return [...this.items];
  }
}

/** The sender and text of a decoded text message. */
const textOf = (m: Seen) => ({ topic: m.topic, sender: m.sender, media: m.media, text: m.con?.[0]?.co, error: m.error });

/** esbuild entry: MQTT.js (its browser build) and the IM SDK on `window`. */
const ENTRY = `
import mqtt from 'mqtt';
import { encodeImPayload, decodeImPayload, ImMedia } from './src/im/index.js';
Object.assign(window, { mqtt, im: { encodeImPayload, decodeImPayload, ImMedia } });
`;

/** Bundles ENTRY into `dir` (once per run); returns the script's path. */
async function bundleForBrowser(dir: string): Promise<string> {
  const shim = join(dir, 'buffer-shim.js');
  writeFileSync(shim, "export { Buffer } from 'buffer';\n");
  const outfile = join(dir, 'im-browser.js');
  await build({
    stdin: { contents: ENTRY, resolveDir: ROOT, sourcefile: 'im-browser-entry.ts', loader: 'ts' },
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    // The SDK uses Node's Buffer: every free `Buffer` becomes the `buffer` package's.
    inject: [shim],
    define: { global: 'globalThis' },
    // The shim lives in the temp dir: resolve `buffer` from the project's node_modules.
    nodePaths: [join(ROOT, 'node_modules')],
    outfile,
    logLevel: 'silent',
  });
  return outfile;
}

describe.skipIf(!HAVE_CHROMIUM)(`IM from a web browser (Chromium + MQTT.js over WebSocket)${HAVE_CHROMIUM ? '' : ` — ${CHROMIUM_SKIP_REASON}`}`, { timeout: TIMEOUT }, () => {
  let b: TestBroker | undefined;
  let browser: Browser | undefined;
  let dir: string | undefined;
  let bundle: string;
  const nodeClients: MqttClient[] = [];
  const pageErrors: string[] = [];

  /** A device in the browser: its own context (like its own machine), the bundle loaded, connected over WebSocket. */
  async function browserDevice(username: string, device: string): Promise<{ page: Page; arrivals: Arrivals }> {
    const clientId = `${username}/${device}`;
    const arrivals = new Arrivals(clientId);
    const context = await browser!.newContext();
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${clientId}: ${e.message}`));
    await page.exposeFunction('reportIm', (m: Seen) => arrivals.push(m));
    await page.setContent('<html><body></body></html>');
    await page.addScriptTag({ path: bundle });
    await page.evaluate(
      async ({ url, clientId, username }) => {
        const w = window as unknown as ImWindow;
        const client = w.mqtt.connect(url, { protocolVersion: 5, clientId, username, reconnectPeriod: 0, connectTimeout: 10_000 });
        w.imClient = client;
        client.on('message', (topic, payload) => {
          let seen: Seen;
          try {
            const m = w.im.decodeImPayload(payload);
            seen = { topic, sender: m.sender, ts: m.ts, kind: m.kind, media: m.media, con: m.content.con };
          } catch (e) {
            seen = { topic, error: String(e) };
          }
          void w.reportIm(seen);
        });
        await new Promise<void>((resolve, reject) => {
          client.once('connect', () => resolve());
          client.once('error', (e) => reject(new Error(`${clientId}: ${e.message}`)));
          client.once('close', () => reject(new Error(`${clientId}: connection closed before CONNACK`)));
        });
      },
      { url: b!.wsUrl, clientId, username },
    );
    return { page, arrivals };
  }

  /** A device in Node: MQTT.js over TCP, decoding with the SDK. */
  async function nodeDevice(username: string, device: string): Promise<{ client: MqttClient; arrivals: Arrivals }> {
    const clientId = `${username}/${device}`;
    const arrivals = new Arrivals(clientId);
    const client = mqtt.connect(b!.tcpUrl, { protocolVersion: 5, clientId, username, reconnectPeriod: 0, connectTimeout: 10_000 });
    nodeClients.push(client);
    client.on('message', (topic, payload) => {
      try {
        const m = decodeImPayload(payload);
        arrivals.push({ topic, sender: m.sender, ts: m.ts, kind: m.kind, media: m.media, con: m.content.con, hex: payload.toString('hex') });
      } catch (e) {
        arrivals.push({ topic, error: String(e), hex: payload.toString('hex') });
      }
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error(`${clientId}: connection closed before CONNACK`)));
    });
    return { client, arrivals };
  }

  /** Publishes an IM message encoded by the SDK in the page; resolves with the PUBACK outcome. */
  function publishFromPage(page: Page, topic: string, msg: ImMessage) {
    return page.evaluate(
      async ({ topic, msg }) => {
        const w = window as unknown as ImWindow;
        const payload = w.im.encodeImPayload(msg);
        try {
          await w.imClient.publishAsync(topic, payload, { qos: 1 });
          return { ok: true as const, bytes: payload.length };
        } catch (e) {
          return { ok: false as const, code: (e as { code?: number }).code, message: String(e) };
        }
      },
      { topic, msg },
    );
  }

  let alicePc: Page;
  let jimPhone: Page;
  let alicePcSeen: Arrivals;
  let jimPhoneSeen: Arrivals;
  let alicePhone: Arrivals;
  let jimPc: Arrivals;
  let jimPcClient: MqttClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'switchboard-im-browser-'));
    // Independent steps in parallel: the broker's threads, the bundle and the browser.
    const [broker, script, chrome] = await Promise.all([
      startTestBroker('multi', { im: { defaultNamespace: NS } }),
      bundleForBrowser(dir),
      launchChromium(),
    ]);
    [b, bundle, browser] = [broker, script, chrome];
    ({ page: alicePc, arrivals: alicePcSeen } = await browserDevice('alice', 'pc'));
    ({ page: jimPhone, arrivals: jimPhoneSeen } = await browserDevice('jim', 'phone'));
    ({ arrivals: alicePhone } = await nodeDevice('alice', 'phone'));
    ({ client: jimPcClient, arrivals: jimPc } = await nodeDevice('jim', 'pc'));
  }, TIMEOUT);

  afterAll(async () => {
    await Promise.all(nodeClients.map((c) => new Promise<void>((r) => c.end(true, () => r()))));
    await browser?.close();
    await b?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, TIMEOUT);

  it("figure 3 from the browser: Jim's phone (page) and PC get Alice's PC's message, Alice's phone the carbon, Alice's PC nothing", async () => {
    const msg: ImMessage = { sender: 'alice', ts: TS, kind: 0, media: ImMedia.TEXT, content: { con: [{ ty: 0, co: 'hi Jim, from my browser ✓' }] } };
    const sent = await publishFromPage(alicePc, inboxOf('jim'), msg);
    expect(sent).toEqual({ ok: true, bytes: encodeImPayload(msg).length });

    const want = { sender: 'alice', media: ImMedia.TEXT, text: 'hi Jim, from my browser ✓', error: undefined };
    expect(textOf(await jimPhoneSeen.next())).toEqual({ topic: inboxOf('jim'), ...want });
    // The bytes the browser's SDK (Buffer polyfill) wrote are exactly Node's.
    const atJimPc = await jimPc.next();
    expect(textOf(atJimPc)).toEqual({ topic: inboxOf('jim'), ...want });
    expect(atJimPc.hex).toBe(encodeImPayload(msg).toString('hex'));
    const carbon = await alicePhone.next();
    expect(textOf(carbon)).toEqual({ topic: inboxOf('alice'), ...want });
    expect(carbon.hex).toBe(atJimPc.hex);

    // Marker, sent once the carbon reached Alice's phone: had the carbon gone to Alice's
    // PC too, it would be there before the marker.
    await jimPcClient.publishAsync(inboxOf('alice'), encodeImPayload({ sender: 'jim', ts: TS, kind: 0, media: ImMedia.TEXT, content: { con: [{ ty: 0, co: 'marker 1' }] } }), { qos: 1 });
    expect(textOf(await alicePcSeen.next())).toEqual({ topic: inboxOf('alice'), sender: 'jim', media: ImMedia.TEXT, text: 'marker 1', error: undefined });
    expect(textOf(await alicePhone.next())).toMatchObject({ sender: 'jim', text: 'marker 1' });
    // Jim's own message, sent from his PC, is copied to his phone.
    expect(textOf(await jimPhoneSeen.next())).toEqual({ topic: inboxOf('jim'), sender: 'jim', media: ImMedia.TEXT, text: 'marker 1', error: undefined });
    for (const a of [alicePcSeen, jimPhoneSeen, alicePhone, jimPc]) expect(a.pending, a.device).toEqual([]);
  });

  it("Jim's phone (page) answers with an image; Alice's PC (page) decodes it, Alice's phone and Jim's PC see it too", async () => {
    const url = `${b!.httpUrl}/files/ZnDo3kq9/cat.jpg`;
    const sent = await jimPhone.evaluate(
      async ({ topic, url, ts }) => {
        const w = window as unknown as ImWindow;
        const payload = w.im.encodeImPayload({
          sender: 'jim',
          ts,
          kind: 0,
          media: w.im.ImMedia.IMAGE,
          content: { con: [{ ty: 1, co: url, fn: { name: 'cat.jpg', size: '48213' } }] },
        });
        await w.imClient.publishAsync(topic, payload, { qos: 1 });
        return payload.length;
      },
      { topic: inboxOf('alice'), url, ts: TS + 1 },
    );
    expect(sent).toBeGreaterThan(0);

    const want = { sender: 'jim', ts: TS + 1, kind: 0, media: ImMedia.IMAGE, con: [{ ty: 1, co: url, fn: { name: 'cat.jpg', size: '48213' } }] };
    expect(await alicePcSeen.next()).toEqual({ topic: inboxOf('alice'), ...want });
    expect(await alicePhone.next()).toMatchObject({ topic: inboxOf('alice'), ...want });
    expect(await jimPc.next()).toMatchObject({ topic: inboxOf('jim'), ...want }); // the carbon on Jim's inbox
    for (const a of [alicePcSeen, jimPhoneSeen, alicePhone, jimPc]) expect(a.pending, a.device).toEqual([]);
  });

  it('a payload that does not decode, published from the browser (MQTT 5), gets PUBACK 0x99 and is not delivered', async () => {
    const refused = await alicePc.evaluate(async (topic) => {
      const w = window as unknown as ImWindow;
      try {
        await w.imClient.publishAsync(topic, 'hello jim, this is not an IM payload', { qos: 1 });
        return { ok: true as const };
      } catch (e) {
        return { ok: false as const, code: (e as { code?: number }).code, message: String(e) };
      }
    }, inboxOf('jim'));
    expect(refused).toMatchObject({ ok: false, code: 0x99 });
    // Same publisher, same topic, sent after the refusal: the next thing everyone gets.
    const marker: ImMessage = { sender: 'alice', ts: TS + 2, kind: 0, media: ImMedia.TEXT, content: { con: [{ ty: 0, co: 'marker 2' }] } };
    expect(await publishFromPage(alicePc, inboxOf('jim'), marker)).toMatchObject({ ok: true });
    expect(textOf(await jimPhoneSeen.next())).toEqual({ topic: inboxOf('jim'), sender: 'alice', media: ImMedia.TEXT, text: 'marker 2', error: undefined });
    expect(textOf(await jimPc.next())).toEqual({ topic: inboxOf('jim'), sender: 'alice', media: ImMedia.TEXT, text: 'marker 2', error: undefined });
    expect(textOf(await alicePhone.next())).toEqual({ topic: inboxOf('alice'), sender: 'alice', media: ImMedia.TEXT, text: 'marker 2', error: undefined });
    for (const a of [alicePcSeen, jimPhoneSeen, alicePhone, jimPc]) expect(a.pending, a.device).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
