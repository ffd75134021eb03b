/**
 * The web IM client (web/, served at `/`; docs/web-client.md) in a real Chromium
 * (Debian's, driven by playwright-core): two users with two tabs each, one of them
 * phone-sized, each tab its own browser context (its own device, like another machine).
 *  - log in with the users file (a wrong password is refused), the directory's contacts
 *    and groups with live presence, the service worker in control;
 *  - text: the other user's tabs get it with an unread count, my other tab shows what I
 *    sent (the broker's carbon copy), unread counts are per device;
 *  - a picture (with its thumbnail), audio, video and a file, uploaded with progress bars
 *    and played through the service worker with Range requests (206), downloaded;
 *  - a group conversation reaches every member device once;
 *  - a tab that goes away gets what it missed, in order, when it comes back (logging in
 *    with a JWT this time); a reload keeps the history.
 * Without a browser the HTTP side is still checked: the page, its assets and their cache
 * headers, /web/config, /im/contacts, and the 503 of a broker whose client is not built.
 *
 * Screenshots go to test-artifacts/web-client/ (git ignores it). docs/img/web-client.png
 * (the README's) is written when missing, or when SB_UPDATE_DOCS_SCREENSHOT=1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { buildWeb } from '../../web/build.js';
import { addUser } from '../../src/auth/users-file.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { CHROMIUM_SKIP_REASON, HAVE_CHROMIUM, launchChromium } from '../helpers/chromium.js';
import { JWT_SECRET, signJwt } from '../helpers/im.js';

if (!HAVE_CHROMIUM) console.warn(`41-web-client: the browser part is ${CHROMIUM_SKIP_REASON}`);

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ARTIFACTS = join(ROOT, 'test-artifacts', 'web-client');
const DOC_SHOT = join(ROOT, 'docs', 'img', 'web-client.png');
const PASSWORDS: Record<string, string> = { alice: 'alice-pw', jim: 'jim-pw', bob: 'bob-pw' };
const DIRECTORY = [{ uid: 'alice', groups: ['team'] }, { uid: 'jim', groups: ['team'] }, { uid: 'bob' }];
/** How long one expected change may take (2 shared cores, a browser with 4 pages, 4 broker threads). */
const WAIT = 20_000;
const TIMEOUT = 90_000;

let b: TestBroker;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'switchboard-web-'));
  const usersFile = join(work, 'users');
  // The bundle, built by the same function as `npm run build`, into this test's own directory.
  for (const [u, p] of Object.entries(PASSWORDS)) await addUser(usersFile, u, p);
  await buildWeb(join(work, 'web'));
  b = await startTestBroker('multi', {
    auth: { allowAnonymous: false, usersFile, jwt: { secret: JWT_SECRET } },
    im: { defaultNamespace: 'acme', presubscribe: { directory: DIRECTORY } },
    web: { dir: join(work, 'web') },
  });
}, TIMEOUT);

afterAll(async () => {
  await b?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** GET with the path exactly as given (no URL normalisation). */
function rawStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
}

const basic = (user: string) => `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}`;

describe('41 the web client over HTTP: page, assets, /web/config, /im/contacts', () => {
  it('serves the page with its security headers, hashed assets cached for good, the rest revalidated', async () => {
    const page = await fetch(`${b.httpUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const html = await page.text();
    const js = /src="(\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const css = /href="(\/assets\/style-[A-Z0-9]+\.css)"/.exec(html)?.[1];
    expect(js && css).toBeTruthy();
    const asset = await fetch(`${b.httpUrl}${js}`);
    expect([asset.status, asset.headers.get('content-type'), asset.headers.get('cache-control')]).toEqual([200, 'text/javascript; charset=utf-8', 'public, max-age=31536000, immutable']);
    expect((await asset.text()).length).toBeGreaterThan(100_000); // MQTT.js, the SDK and the app
    expect((await fetch(`${b.httpUrl}${css}`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    const etag = page.headers.get('etag')!;
    expect((await fetch(`${b.httpUrl}/`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const sw = await fetch(`${b.httpUrl}/sw.js`);
    expect([sw.status, sw.headers.get('content-type'), sw.headers.get('cache-control')]).toEqual([200, 'text/javascript; charset=utf-8', 'no-cache']);
    expect((await fetch(`${b.httpUrl}/manifest.webmanifest`)).status).toBe(200);
  });

  it('names nothing outside the bundle, and leaves the other endpoints alone', async () => {
    // Sent as written: fetch() would resolve the dots itself.
    for (const path of ['/assets/..%2Findex.html', '/assets/.hidden', '/assets/%2e%2e', '/assets/../index.html', '/assets/nope.js', '/index.htm', '/dist/web/index.html']) {
      expect(await rawStatus(b.wsPort, path), path).toBe(404);
    }
    expect((await fetch(`${b.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${b.httpUrl}/api/v1/clients`)).status).toBe(404); // admin API disabled: its own answer
    expect((await fetch(`${b.httpUrl}/files`, { method: 'POST', body: 'x' })).status).toBe(401);
  });

  it('/web/config tells the page how to log in; /im/contacts who I am and who else is there', async () => {
    expect(await (await fetch(`${b.httpUrl}/web/config`)).json()).toEqual({
      mqttPath: { ws: '/mqtt', wss: '/mqtt' },
      openLogin: false,
      jwt: true,
      files: { enabled: true, maxBytes: 104_857_600 },
    });
    expect((await fetch(`${b.httpUrl}/im/contacts`)).status).toBe(401);
    expect((await fetch(`${b.httpUrl}/im/contacts`, { headers: { authorization: `Basic ${Buffer.from('alice:wrong').toString('base64')}` } })).status).toBe(401);
    const me = await fetch(`${b.httpUrl}/im/contacts`, { headers: { authorization: basic('alice') } });
    expect(me.headers.get('cache-control')).toBe('no-store');
    expect(await me.json()).toEqual({ uid: 'alice', ns: 'acme', groups: ['team'], directory: true, contacts: [{ uid: 'bob' }, { uid: 'jim' }] });
  });

  it('a broker whose client is not built says how to build it', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'switchboard-noweb-'));
    const other = await startTestBroker('single', { web: { dir: empty } });
    try {
      const res = await fetch(`${other.httpUrl}/`);
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/not built.*npm run build/s);
    } finally {
      await other.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------------ in the browser

interface Tab {
  name: string;
  context: BrowserContext;
  page: Page;
}

const DESKTOP = { viewport: { width: 1000, height: 760 } };
const PHONE = { viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true };

/** A 16-bit mono WAV of a 440 Hz tone. */
function wav(seconds: number, rate = 8000): Buffer {
  const n = Math.round(seconds * rate);
  const out = Buffer.alloc(44 + n * 2);
  out.write('RIFF', 0);
  out.writeUInt32LE(36 + n * 2, 4);
  out.write('WAVEfmt ', 8);
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20); // PCM
  out.writeUInt16LE(1, 22); // mono
  out.writeUInt32LE(rate, 24);
  out.writeUInt32LE(rate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36);
  out.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) out.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return out;
}

describe.skipIf(!HAVE_CHROMIUM)(`41 the web client in Chromium: two users, two tabs each${HAVE_CHROMIUM ? '' : ` — ${CHROMIUM_SKIP_REASON}`}`, { timeout: TIMEOUT }, () => {
  let browser: Browser;
  const problems: string[] = [];
  let alicePc: Tab;
  let alicePhone: Tab;
  let jimPc: Tab;
  let jimPhone: Tab;

  beforeAll(async () => {
    browser = await launchChromium();
    mkdirSync(ARTIFACTS, { recursive: true });
  }, TIMEOUT);

  afterAll(async () => {
    await browser?.close();
  });

  async function newTab(name: string, phone: boolean): Promise<Tab> {
    const context = await browser.newContext(phone ? PHONE : DESKTOP);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('pageerror', (e) => problems.push(`${name}: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && problems.push(`${name}: console: ${m.text()}`));
    await page.goto(`${b.httpUrl}/`);
    return { name, context, page };
  }

  async function logIn(tab: Tab, user: string, device: string, password = PASSWORDS[user]!): Promise<void> {
    const p = tab.page;
    await p.fill('input[name=username]', user);
    await p.fill('input[name=password]', password);
    await p.fill('input[name=device]', device);
    await p.click('button[type=submit]');
  }

  async function openTab(user: string, device: string, phone: boolean): Promise<Tab> {
    const tab = await newTab(`${user}/${device}`, phone);
    await logIn(tab, user, device);
    await tab.page.waitForSelector('.shell[data-connection="online"]');
    return tab;
  }

  const conv = (id: string) => `.conv[data-conv="${id}"]`;
  /** Waits until the conversation's list entry shows this unread count (the entry may be hidden on a phone). */
  const unread = (t: Tab, id: string, n: number) => t.page.waitForSelector(`${conv(id)}[data-unread="${n}"]`, { state: 'attached' });
  const preview = (t: Tab, id: string, text: string) =>
    t.page.waitForFunction(([sel, text]) => document.querySelector(`${sel} .conv-preview`)?.textContent === text, [conv(id), text] as const);

  /** The open conversation's messages, as shown. */
  const shown = (t: Tab) =>
    t.page.$$eval('.messages .msg', (els) =>
      els.map((el) => ({ mine: el.classList.contains('mine'), status: (el as HTMLElement).dataset['status'], text: el.querySelector('.text')?.textContent ?? null })),
    );
  const texts = async (t: Tab) => (await shown(t)).map((m) => m.text);

  async function send(t: Tab, text: string): Promise<void> {
    const before = await t.page.locator('.messages .msg.mine[data-status="sent"]').count();
    await t.page.fill('input[name=text]', text);
    await t.page.press('input[name=text]', 'Enter');
    await t.page.waitForFunction((n) => document.querySelectorAll('.messages .msg.mine[data-status="sent"]').length > n, before);
  }

  async function shot(t: Tab, file: string): Promise<string> {
    const path = join(ARTIFACTS, file);
    await t.page.screenshot({ path });
    return path;
  }

  it('logs in with the users file (a wrong password is refused); contacts and groups from the directory, with presence', async () => {
    const withWrongPasswordFirst = async (): Promise<Tab> => {
      const tab = await newTab('alice/pc', false);
      await logIn(tab, 'alice', 'pc', 'not-her-password');
      await tab.page.waitForFunction(() => document.querySelector('.login .error')?.textContent === 'Wrong user name or password.');
      await shot(tab, 'login.png');
      await tab.page.fill('input[name=password]', PASSWORDS['alice']!);
      await tab.page.click('button[type=submit]');
      await tab.page.waitForSelector('.shell[data-connection="online"]');
      return tab;
    };
    // Four tabs opening at once, as four people would.
    [alicePc, alicePhone, jimPc, jimPhone] = await Promise.all([withWrongPasswordFirst(), openTab('alice', 'phone', true), openTab('jim', 'pc', false), openTab('jim', 'phone', true)]);
    // The browser logs the refused /im/contacts request (401): expected there, nowhere else.
    expect(problems.filter((p) => !p.startsWith('alice/pc: console: Failed to load resource: the server responded with a status of 401'))).toEqual([]);
    problems.length = 0;

    // Jim is online (presence), Bob is in the directory but never came; the group is there.
    await alicePc.page.waitForSelector(`${conv('u:jim')}.online`);
    expect(await alicePc.page.$$eval('.conv', (els) => els.map((e) => [(e as HTMLElement).dataset['conv'], e.classList.contains('online')]))).toEqual([
      ['g:team', false],
      ['u:jim', true],
      ['u:bob', false],
    ]);
    await jimPhone.page.waitForSelector(`${conv('u:alice')}.online`, { state: 'attached' });
    for (const t of [alicePc, alicePhone, jimPc, jimPhone]) {
      // Media get their credentials from the service worker.
      expect(await t.page.evaluate(() => navigator.serviceWorker.controller !== null), t.name).toBe(true);
    }
    // Phone-sized: the list alone until a conversation is opened; desktop: both panes.
    expect(await alicePhone.page.isVisible('.chat')).toBe(false);
    expect(await alicePc.page.isVisible('.chat')).toBe(true);
  });

  it('text: Jim\'s two tabs get it with an unread count, Alice\'s other tab shows what she sent; unread counts are per device', async () => {
    await alicePc.page.click(conv('u:jim'));
    await send(alicePc, 'Hi Jim! Lunch at the café at noon?');

    for (const t of [jimPc, jimPhone]) {
      await unread(t, 'u:alice', 1);
      await preview(t, 'u:alice', 'Hi Jim! Lunch at the café at noon?');
    }
    // The carbon: on Alice's phone, in her conversation with Jim, as hers, not unread.
    await preview(alicePhone, 'u:jim', 'You: Hi Jim! Lunch at the café at noon?');
    await unread(alicePhone, 'u:jim', 0);
    expect(await jimPc.page.title()).toBe('(1) Switchboard');

    // Jim reads it on his phone: the phone's count goes, his PC's stays.
    await jimPhone.page.click(conv('u:alice'));
    await jimPhone.page.waitForSelector('.shell[data-view="chat"]');
    expect(await jimPhone.page.isVisible('.sidebar')).toBe(false);
    await unread(jimPhone, 'u:alice', 0);
    expect(await texts(jimPhone)).toEqual(['Hi Jim! Lunch at the café at noon?']);
    await send(jimPhone, 'Sure, see you there.');

    // Alice has the conversation open on her PC: shown, not counted; her phone counts it.
    await alicePc.page.waitForFunction(() => document.querySelectorAll('.messages .msg.theirs').length === 1);
    expect(await shown(alicePc)).toEqual([
      { mine: true, status: 'sent', text: 'Hi Jim! Lunch at the café at noon?' },
      { mine: false, status: 'received', text: 'Sure, see you there.' },
    ]);
    await unread(alicePc, 'u:jim', 0);
    await unread(alicePhone, 'u:jim', 1);
    // Jim's PC shows his own reply (from his phone) and still one unread.
    await preview(jimPc, 'u:alice', 'You: Sure, see you there.');
    await unread(jimPc, 'u:alice', 1);
  });

  it('a picture, audio, video and a file: upload progress, thumbnail, Range playback, download; on every device', async () => {
    const a = alicePc.page;
    // A noisy picture (big enough to get a thumbnail) and a short WebM clip, made by the browser.
    const [png, webm] = await a.evaluate(async () => {
      const toB64 = async (blob: Blob) => {
        const bytes = new Uint8Array(await blob.arrayBuffer());
        let s = '';
        for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        return btoa(s);
      };
      const c = document.createElement('canvas');
      c.width = 1200;
      c.height = 900;
      const g = c.getContext('2d')!;
      const sky = g.createLinearGradient(0, 0, 0, 900);
      sky.addColorStop(0, '#ff9a56');
      sky.addColorStop(1, '#5b3a8c');
      g.fillStyle = sky;
      g.fillRect(0, 0, 1200, 900);
      for (let i = 0; i < 6000; i++) {
        g.fillStyle = `hsla(${(i * 37) % 360} 80% 70% / 0.5)`;
        g.fillRect((i * 7919) % 1200, 450 + ((i * 104_729) % 450), 3 + (i % 5), 3 + (i % 7));
      }
      g.fillStyle = '#ffe08a';
      g.beginPath();
      g.arc(600, 430, 140, 0, Math.PI * 2);
      g.fill();
      const picture = await new Promise<Blob>((r) => c.toBlob((blob) => r(blob!), 'image/png'));

      const v = document.createElement('canvas');
      v.width = 320;
      v.height = 240;
      const vg = v.getContext('2d')!;
      const rec = new MediaRecorder(v.captureStream(25), { mimeType: 'video/webm;codecs=vp8' });
      const chunks: Blob[] = [];
      rec.ondataavailable = (e) => chunks.push(e.data);
      let t = 0;
      const timer = setInterval(() => {
        const bg = vg.createLinearGradient(0, 0, 320, 240);
        bg.addColorStop(0, '#1f6feb');
        bg.addColorStop(1, '#22a559');
        vg.fillStyle = bg;
        vg.fillRect(0, 0, 320, 240);
        vg.fillStyle = '#ffe08a';
        vg.beginPath();
        vg.arc(60 + ((t++ * 8) % 200), 120, 36, 0, Math.PI * 2);
        vg.fill();
      }, 40);
      rec.start();
      await new Promise((r) => setTimeout(r, 1000));
      rec.stop();
      await new Promise((r) => (rec.onstop = r));
      clearInterval(timer);
      return [await toB64(picture), await toB64(new Blob(chunks, { type: 'video/webm' }))];
    });
    const notes = Buffer.from('Agenda\n'.padEnd(2500, '-'));
    const files = [
      { name: 'sunset.png', mimeType: 'image/png', buffer: Buffer.from(png, 'base64') },
      { name: 'hello.wav', mimeType: 'audio/wav', buffer: wav(2.5) },
      { name: 'clip.webm', mimeType: 'video/webm', buffer: Buffer.from(webm, 'base64') },
      { name: 'notes.txt', mimeType: 'text/plain', buffer: notes },
    ];
    expect(files[0]!.buffer.length).toBeGreaterThan(150 * 1024);

    // Record every progress the upload bars show; slow the PC's uploads down so there is some.
    await a.evaluate(() => {
      const w = window as unknown as { progress: number[] };
      w.progress = [];
      new MutationObserver((records) => {
        for (const r of records) if (r.attributeName === 'data-progress') w.progress.push(Number((r.target as HTMLElement).dataset['progress']));
      }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-progress'] });
    });
    const cdp = await alicePc.context.newCDPSession(a);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1_500_000 });
    await a.setInputFiles('input[type=file]', files);
    await a.waitForFunction(() => document.querySelectorAll('.messages .msg.mine[data-status="sent"]').length === 5, null, { timeout: 30_000 });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const progress = await a.evaluate(() => (window as unknown as { progress: number[] }).progress);
    expect(progress.some((p) => p > 0 && p < 100), `progress seen: ${progress.join(',')}`).toBe(true);
    expect(await a.locator('.upload').count()).toBe(0);

    // Jim's phone, with the conversation open: each medium, loaded through the service worker.
    const j = jimPhone.page;
    await j.waitForSelector('.msg.theirs .file');
    const media = await j.evaluate(async () => {
      const wait = (el: HTMLMediaElement) => (el.readyState >= 1 ? Promise.resolve() : new Promise((r) => el.addEventListener('loadedmetadata', r, { once: true })));
      const img = document.querySelector<HTMLImageElement>('.msg.theirs .image img')!;
      img.scrollIntoView();
      if (!img.complete || img.naturalWidth === 0) await new Promise((r) => img.addEventListener('load', r, { once: true }));
      const audio = document.querySelector<HTMLAudioElement>('.msg.theirs audio')!;
      const video = document.querySelector<HTMLVideoElement>('.msg.theirs video')!;
      await Promise.all([wait(audio), wait(video)]);
      const files = performance.getEntriesByType('resource').filter((e) => e.name.includes('/files/')) as PerformanceResourceTiming[];
      return {
        img: { src: new URL(img.src).pathname, width: img.naturalWidth },
        audio: { src: new URL(audio.src).pathname, duration: Math.round(audio.duration * 10) / 10 },
        video: { src: new URL(video.src).pathname, width: video.videoWidth },
        file: [document.querySelector('.msg.theirs .file .file-name')?.textContent, document.querySelector('.msg.theirs .file .file-size')?.textContent],
        videoStatuses: files.filter((e) => e.name.endsWith('/clip.webm')).map((e) => e.responseStatus),
      };
    });
    expect(media.img).toEqual({ src: expect.stringMatching(/^\/files\/[\w-]{22}\/sunset\.png\.thumb\.jpg$/), width: 480 });
    expect(media.audio).toEqual({ src: expect.stringMatching(/^\/files\/[\w-]{22}\/hello\.wav$/), duration: 2.5 });
    expect(media.video).toEqual({ src: expect.stringMatching(/^\/files\/[\w-]{22}\/clip\.webm$/), width: 320 });
    expect(media.file).toEqual(['notes.txt', '2.4 KB']);
    // The player asked for a byte range and the service worker passed it through.
    expect(media.videoStatuses).toContain(206);

    // The picture opens full size; the file downloads with its name and bytes.
    await j.click('.msg.theirs .image');
    await j.waitForFunction(() => (document.querySelector<HTMLImageElement>('.lightbox img')?.naturalWidth ?? 0) === 1200);
    await j.click('.lightbox');
    const [download] = await Promise.all([j.waitForEvent('download'), j.click('.msg.theirs .file')]);
    expect(download.suggestedFilename()).toBe('notes.txt');
    expect(readFileSync((await download.path())!)).toEqual(notes);

    // Alice's phone has all of them too (carbons); Jim's PC counts them.
    await preview(alicePhone, 'u:jim', 'You: notes.txt');
    await unread(jimPc, 'u:alice', 5);
    for (const t of [alicePc, jimPhone]) await t.page.evaluate(() => document.querySelector('.messages')!.scrollTo(0, 1e6));
    await shot(alicePc, 'alice-pc-media.png');
    await shot(jimPhone, 'jim-phone-media.png');
    if (process.env['SB_UPDATE_DOCS_SCREENSHOT'] === '1' || !existsSync(DOC_SHOT)) {
      // Tall enough for the whole conversation: both texts and every medium.
      await alicePc.page.setViewportSize({ width: 1000, height: 1000 });
      await alicePc.page.evaluate(() => document.querySelector('.messages')!.scrollTo(0, 1e6));
      // The first frame in the player, not its loading spinner.
      await alicePc.page.waitForFunction(() => [...document.querySelectorAll('video')].every((v) => v.readyState >= 2));
      await alicePc.page.waitForTimeout(300);
      mkdirSync(join(ROOT, 'docs', 'img'), { recursive: true });
      copyFileSync(await shot(alicePc, 'readme.png'), DOC_SHOT);
      await alicePc.page.setViewportSize(DESKTOP.viewport);
    }
  });

  it('a group conversation reaches every member device once', async () => {
    await jimPc.page.click(conv('g:team'));
    await send(jimPc, 'Stand-up in 5 minutes');
    await preview(jimPhone, 'g:team', 'You: Stand-up in 5 minutes');
    await unread(jimPhone, 'g:team', 0);
    for (const t of [alicePc, alicePhone]) {
      await unread(t, 'g:team', 1);
      await preview(t, 'g:team', 'Stand-up in 5 minutes');
    }
    // Jim's PC got its own group message back from the broker too (by now everyone has
    // it): still shown once.
    expect(await shown(jimPc)).toEqual([{ mine: true, status: 'sent', text: 'Stand-up in 5 minutes' }]);
  });

  it('a tab that goes away gets what it missed, in order, when it comes back; a reload keeps the history', async () => {
    await jimPhone.context.close();
    // Jim is still online with his PC.
    await alicePc.page.click(conv('u:jim'));
    await alicePc.page.waitForFunction(() => document.querySelector('.chat-head .subtitle')?.textContent === 'online');
    for (const text of ['missed 1', 'missed 2', 'missed 3']) await send(alicePc, text);
    await preview(jimPc, 'u:alice', 'missed 3');

    // Back, logging in with a token this time (same user, same device): the session is the same.
    jimPhone = await newTab('jim/phone', true);
    await jimPhone.page.check('input[name=useToken]');
    await jimPhone.page.fill('textarea[name=token]', await signJwt({ sub: 'jim' }));
    await jimPhone.page.fill('input[name=device]', 'phone');
    await jimPhone.page.click('button[type=submit]');
    await jimPhone.page.waitForSelector('.shell[data-connection="online"]');
    await unread(jimPhone, 'u:alice', 3);
    await jimPhone.page.click(conv('u:alice'));
    await jimPhone.page.waitForFunction(() => document.querySelectorAll('.messages .msg').length >= 3);
    expect(await shown(jimPhone)).toEqual(['missed 1', 'missed 2', 'missed 3'].map((text) => ({ mine: false, status: 'received', text })));

    // A reload logs in again (this tab's session storage) and shows the stored history.
    const count = await jimPc.page.locator(`${conv('u:alice')}`).getAttribute('data-unread');
    await jimPc.page.reload();
    await jimPc.page.waitForSelector('.shell[data-connection="online"]');
    await unread(jimPc, 'u:alice', Number(count));
    await jimPc.page.click(conv('u:alice'));
    expect((await texts(jimPc)).slice(-3)).toEqual(['missed 1', 'missed 2', 'missed 3']);
    // Alice's text, Jim's reply (from his phone), four media, three missed: nothing twice.
    expect(await jimPc.page.locator('.messages .msg').count()).toBe(9);

    await Promise.all([shot(alicePc, 'alice-pc.png'), shot(alicePhone, 'alice-phone.png'), shot(jimPc, 'jim-pc.png'), shot(jimPhone, 'jim-phone.png')]);
    expect(problems).toEqual([]);
  });
});
