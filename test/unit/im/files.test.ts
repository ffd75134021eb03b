import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import uWS from 'uWebSockets.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { registerFileRoutes, type HttpAuth } from '../../../src/im/files/index.js';
import { parseRange } from '../../../src/im/files/range.js';
import { cleanFileName, contentDisposition, uploadType } from '../../../src/im/files/meta.js';
import { HttpError, parseAuthorization, readBody, sendJson, type ResponseState } from '../../../src/transport/http-util.js';

const BASIC = `Basic ${Buffer.from('alice:secret').toString('base64')}`;
const BEARER = 'Bearer good-token';

const auth: HttpAuth = async (authorization, accessToken) => {
  const a = parseAuthorization(authorization);
  if (a?.kind === 'basic' && a.username === 'alice' && a.password === 'secret') return { uid: 'alice' };
  if (a?.kind === 'bearer' && a.token === 'good-token') return { uid: 'bob' };
  // Like a password check on the hash pool: the body keeps arriving meanwhile.
  if (a?.kind === 'bearer' && a.token === 'slow-token') {
    await new Promise((r) => setTimeout(r, 100));
    return { uid: 'carol' };
  }
  if (a === null && accessToken === 'good-token') return { uid: 'bob' };
  return null;
};

const counts = new Map<string, number>();
const hooks = {
  count: (series: string, n = 1) => counts.set(series, (counts.get(series) ?? 0) + n),
  log: pino({ level: 'silent' }),
};

interface Server {
  app: uWS.TemplatedApp;
  port: number;
  base: string;
}

function listen(app: uWS.TemplatedApp): Promise<Server> {
  return new Promise((resolve, reject) => {
    app.listen('127.0.0.1', 0, (token) => {
      if (!token) return reject(new Error('listen failed'));
      const port = uWS.us_socket_local_port(token);
      resolve({ app, port, base: `http://127.0.0.1:${port}` });
    });
  });
}

let dir: string;
let smallDir: string;
let main: Server;
let small: Server;
const MAX = 8 * 1024 * 1024;
const SMALL_MAX = 1000;

beforeAll(async () => {
  const root = await mkdtemp(join(tmpdir(), 'sb-files-'));
  dir = join(root, 'store', 'nested'); // created by registerFileRoutes
  smallDir = join(root, 'small');
  const app = uWS.App();
  registerFileRoutes(app, { dir, maxBytes: MAX, publicUrl: null }, auth, hooks);
  // Exercises the generic helpers on the same server.
  app.post('/echo', (res, req) => {
    const st: ResponseState = { aborted: false };
    readBody(res, req, SMALL_MAX, st).then(
      (body) => sendJson(res, st, 200, { len: body.length, text: body.toString('utf8') }, { 'X-Test': 'yes' }),
      (err: HttpError) => sendJson(res, st, err.status, { error: err.message }),
    );
  });
  main = await listen(app);
  const app2 = uWS.App();
  registerFileRoutes(app2, { dir: smallDir, maxBytes: SMALL_MAX, publicUrl: 'https://im.example.com/' }, auth, hooks);
  small = await listen(app2);
});

afterAll(async () => {
  main?.app.close();
  small?.app.close();
  if (dir) await rm(join(dir, '..', '..'), { recursive: true, force: true });
});

beforeEach(() => counts.clear());

async function upload(
  body: Uint8Array | string,
  name: string | null,
  headers: Record<string, string> = { Authorization: BASIC },
  server = main,
): Promise<Response> {
  const q = name === null ? '' : `?name=${encodeURIComponent(name)}`;
  // Node's Buffer (ArrayBufferLike) is a valid fetch body at runtime; the DOM typings are narrower.
  return fetch(`${server.base}/files${q}`, { method: 'POST', body: body as BodyInit, headers });
}

async function uploadOk(body: Uint8Array, name: string, type?: string): Promise<{ id: string; url: string; name: string; size: number; type: string }> {
  const headers: Record<string, string> = { Authorization: BASIC };
  if (type !== undefined) headers['Content-Type'] = type;
  const r = await upload(body, name, headers);
  expect(r.status).toBe(201);
  return (await r.json()) as { id: string; url: string; name: string; size: number; type: string };
}

async function until(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Sends a raw HTTP request and returns everything the server wrote until it closed. */
function raw(port: number, text: string | Buffer, waitMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('error', () => resolve(out));
    s.on('close', () => resolve(out));
    s.write(text);
    setTimeout(() => s.destroy(), waitMs);
  });
}

describe('upload', () => {
  it('stores a small file and returns its link', async () => {
    const body = Buffer.from('hello, files');
    const r = await upload(body, 'note.txt', { Authorization: BASIC, 'Content-Type': 'text/plain' });
    expect(r.status).toBe(201);
    const j = (await r.json()) as Record<string, unknown>;
    expect(j).toMatchObject({ name: 'note.txt', size: body.length, type: 'text/plain' });
    expect(j.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(j.url).toBe(`${main.base}/files/${j.id as string}/note.txt`);
    expect(await readFile(join(dir, j.id as string))).toEqual(body);
    const meta = JSON.parse(await readFile(join(dir, `${j.id as string}.json`), 'utf8'));
    expect(meta).toMatchObject({ name: 'note.txt', type: 'text/plain', size: body.length, uid: 'alice' });
    expect(Number.isNaN(Date.parse(meta.created))).toBe(false);
    expect(counts.get('files_uploaded_total')).toBe(1);
    expect(counts.get('file_bytes_uploaded_total')).toBe(body.length);
  });

  it('streams a ~5 MB file to disk intact', async () => {
    const body = randomBytes(5 * 1024 * 1024 + 123);
    const j = await uploadOk(body, 'big.bin');
    expect(j.size).toBe(body.length);
    expect(j.type).toBe('application/octet-stream');
    expect((await readFile(join(dir, j.id))).equals(body)).toBe(true);
    const back = Buffer.from(await (await fetch(j.url, { headers: { Authorization: BEARER } })).arrayBuffer());
    expect(back.equals(body)).toBe(true);
  });

  it('holds the body back while authentication is slow', async () => {
    for (const size of [10, 3 * 1024 * 1024]) {
      const body = randomBytes(size);
      const r = await upload(body, 'slow.bin', { Authorization: 'Bearer slow-token' });
      expect(r.status).toBe(201);
      const j = (await r.json()) as { id: string };
      expect((await readFile(join(dir, j.id))).equals(body)).toBe(true);
    }
  });

  it('guesses the type from the extension and encodes the name in the link', async () => {
    const j = await uploadOk(Buffer.from([0xff, 0xd8, 0xff]), 'chat/photos/my cat é.JPG');
    expect(j.name).toBe('my cat é.JPG');
    expect(j.type).toBe('image/jpeg');
    expect(j.url.endsWith(`/files/${j.id}/my%20cat%20%C3%A9.JPG`)).toBe(true);
    // curl --data-binary labels everything as a form; that is not the file's type.
    const k = await uploadOk(Buffer.from('x'), 'a.png', 'application/x-www-form-urlencoded');
    expect(k.type).toBe('image/png');
  });

  it('accepts an empty file', async () => {
    const j = await uploadOk(new Uint8Array(0), 'empty.txt');
    expect(j.size).toBe(0);
    const r = await fetch(j.url, { headers: { Authorization: BASIC } });
    expect(r.status).toBe(200);
    expect((await r.arrayBuffer()).byteLength).toBe(0);
  });

  it('uses publicUrl for links and accepts access_token', async () => {
    const r = await fetch(`${small.base}/files?name=a.txt&access_token=good-token`, { method: 'POST', body: 'abc' });
    expect(r.status).toBe(201);
    const j = (await r.json()) as { id: string; url: string };
    expect(j.url).toBe(`https://im.example.com/files/${j.id}/a.txt`);
    const meta = JSON.parse(await readFile(join(smallDir, `${j.id}.json`), 'utf8'));
    expect(meta.uid).toBe('bob');
  });

  it('refuses unauthenticated uploads with 401 and stores nothing', async () => {
    const before = await readdir(dir);
    const variants: Array<Record<string, string>> = [
      {},
      { Authorization: `Basic ${Buffer.from('alice:wrong').toString('base64')}` },
      { Authorization: 'Bearer nope' },
    ];
    for (const headers of variants) {
      const r = await upload(randomBytes(200_000), 'x.bin', headers);
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Basic realm="switchboard", Bearer');
      expect(((await r.json()) as { error: string }).error).toBeTypeOf('string');
    }
    expect(await readdir(dir)).toEqual(before);
    expect(counts.get('file_upload_refused_total{reason="unauthenticated"}')).toBe(3);
  });

  it('keeps the connection usable after uploads and after refusals with a modest body', async () => {
    const s = connect(main.port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => (out += d.toString('latin1')));
    await new Promise<void>((r) => s.once('connect', () => r()));
    const responses = () => out.match(/HTTP\/1\.1 \d{3}/g) ?? [];
    // Accepted upload, then a refusal answered before its 200 kB body has been sent,
    // then another request: all on one connection.
    s.write(`POST /files?name=a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\nContent-Length: 3\r\n\r\nabc`);
    await until(async () => responses().length === 1);
    s.write(`POST /files?name=a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n`);
    await until(async () => responses().length === 2);
    s.write(randomBytes(200_000));
    s.write(`GET /files/${'A'.repeat(22)}/x HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\n\r\n`);
    await until(async () => responses().length === 3);
    s.destroy();
    expect(responses()).toEqual(['HTTP/1.1 201', 'HTTP/1.1 401', 'HTTP/1.1 404']);
  });

  it('refuses bad names with 400', async () => {
    for (const name of [null, '', 'a/', '..', 'bad\u0001name', 'x'.repeat(256), 'é'.repeat(128)]) {
      const r = await upload('abc', name);
      expect(r.status, String(name)).toBe(400);
    }
    expect((await upload('abc', 'é'.repeat(127))).status).toBe(201); // 254 bytes
    expect(counts.get('file_upload_refused_total{reason="bad_request"}')).toBe(7);
  });

  it('refuses multipart forms (415) and malformed types (400)', async () => {
    const form = new FormData();
    form.append('f', new Blob(['abc']), 'a.txt');
    const r = await fetch(`${main.base}/files?name=a.txt`, { method: 'POST', body: form, headers: { Authorization: BASIC } });
    expect(r.status).toBe(415);
    expect((await upload('abc', 'a.txt', { Authorization: BASIC, 'Content-Type': 'not a type' })).status).toBe(400);
  });

  it('answers 413 from Content-Length before reading the body', async () => {
    const before = await readdir(dir);
    const r = await upload(randomBytes(MAX + 1), 'huge.bin').catch((e: unknown) => e);
    // The server answers and closes without reading 8 MB; depending on timing the client
    // sees the 413 or a reset while it is still sending.
    if (r instanceof Response) {
      expect(r.status).toBe(413);
    }
    expect(counts.get('file_upload_refused_total{reason="too_large"}')).toBe(1);
    expect(await readdir(dir)).toEqual(before);
    const s = await upload(Buffer.alloc(SMALL_MAX + 1), 'a.bin', { Authorization: BASIC }, small);
    expect(s.status).toBe(413);
    expect((await upload(Buffer.alloc(SMALL_MAX), 'a.bin', { Authorization: BASIC }, small)).status).toBe(201);
  });

  it('answers 413 on the wire without waiting for the body', async () => {
    const out = await raw(
      small.port,
      `POST /files?name=a.bin HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\nContent-Length: 5000000\r\n\r\n`,
    );
    expect(out).toMatch(/^HTTP\/1\.1 413 /);
  });

  it('requires Content-Length (411)', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array([1, 2, 3]));
        c.close();
      },
    });
    const r = await fetch(`${main.base}/files?name=a.bin`, {
      method: 'POST',
      body,
      headers: { Authorization: BASIC },
      duplex: 'half',
    } as RequestInit);
    expect(r.status).toBe(411);
  });

  it('deletes the partial file when the client aborts mid-upload', async () => {
    const before = new Set(await readdir(dir));
    const s = connect(main.port, '127.0.0.1');
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.write(`POST /files?name=a.bin HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\nContent-Length: 4000000\r\n\r\n`);
    s.write(randomBytes(300_000));
    await until(async () => (await readdir(dir)).some((f) => f.endsWith('.part')));
    s.destroy();
    await until(async () => (await readdir(dir)).every((f) => before.has(f)));
    // Gone while still being authenticated: nothing is ever created.
    await raw(main.port, `POST /files?name=b.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer slow-token\r\nContent-Length: 1000\r\n\r\nabc`, 20);
    await new Promise((r) => setTimeout(r, 200));
    expect((await readdir(dir)).every((f) => before.has(f))).toBe(true);
    expect(counts.get('files_uploaded_total')).toBeUndefined();
  });

  it('refuses other methods on /files with 405', async () => {
    const r = await fetch(`${main.base}/files`, { method: 'PUT', body: 'x', headers: { Authorization: BASIC } });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('POST');
  });
});

describe('download', () => {
  let file: { id: string; url: string };
  const body = randomBytes(100_000);

  beforeAll(async () => {
    file = await uploadOk(body, 'song.mp3');
  });

  it('serves the whole file with its metadata', async () => {
    const r = await fetch(file.url, { headers: { Authorization: BASIC } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('audio/mpeg');
    expect(r.headers.get('content-length')).toBe(String(body.length));
    expect(r.headers.get('accept-ranges')).toBe('bytes');
    expect(r.headers.get('content-disposition')).toBe(`inline; filename="song.mp3"; filename*=UTF-8''song.mp3`);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await r.arrayBuffer()).equals(body)).toBe(true);
    expect(counts.get('files_downloaded_total')).toBe(1);
  });

  it('ignores the name segment and accepts access_token', async () => {
    const r = await fetch(`${main.base}/files/${file.id}/other.name?access_token=good-token`);
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.arrayBuffer()).equals(body)).toBe(true);
  });

  it('requires authentication', async () => {
    const r = await fetch(file.url);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('Basic');
    expect((await fetch(file.url, { headers: { Authorization: 'Bearer bad' } })).status).toBe(401);
    expect((await fetch(file.url, { method: 'HEAD' })).status).toBe(401);
  });

  it('answers 404 for unknown and malformed ids', async () => {
    const unknown = randomBytes(16).toString('base64url');
    for (const id of [unknown, 'short', '..%2F..%2Fetc', `${file.id}.json`, `${file.id.slice(0, 21)}.`]) {
      const r = await fetch(`${main.base}/files/${id}/x`, { headers: { Authorization: BASIC } });
      expect(r.status, id).toBe(404);
    }
  });

  const ranges: Array<[string, number, number]> = [
    ['bytes=0-99', 0, 99],
    ['bytes=1000-', 1000, 99_999],
    ['bytes=-500', 99_500, 99_999],
    ['bytes=99999-99999', 99_999, 99_999],
    ['bytes=50000-999999', 50_000, 99_999],
    ['bytes=-999999', 0, 99_999],
    ['BYTES = 10-19', 10, 19],
  ];
  for (const [range, start, end] of ranges) {
    it(`serves ${range} as 206`, async () => {
      const r = await fetch(file.url, { headers: { Authorization: BASIC, Range: range } });
      expect(r.status).toBe(206);
      expect(r.headers.get('content-range')).toBe(`bytes ${start}-${end}/${body.length}`);
      expect(r.headers.get('content-length')).toBe(String(end - start + 1));
      expect(Buffer.from(await r.arrayBuffer()).equals(body.subarray(start, end + 1))).toBe(true);
    });
  }

  it('serves the full file for multiple or ignorable ranges', async () => {
    for (const range of ['bytes=0-1,5-9', 'bytes=9-3', 'items=0-1', 'bytes=abc']) {
      const r = await fetch(file.url, { headers: { Authorization: BASIC, Range: range } });
      expect(r.status, range).toBe(200);
      expect((await r.arrayBuffer()).byteLength).toBe(body.length);
    }
  });

  it('answers 416 for unsatisfiable ranges', async () => {
    for (const range of ['bytes=100000-', 'bytes=200000-200001', 'bytes=-0']) {
      const r = await fetch(file.url, { headers: { Authorization: BASIC, Range: range } });
      expect(r.status, range).toBe(416);
      expect(r.headers.get('content-range')).toBe(`bytes */${body.length}`);
    }
  });

  it('answers HEAD with the headers only', async () => {
    const r = await fetch(file.url, { method: 'HEAD', headers: { Authorization: BASIC } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBe(String(body.length));
    expect(r.headers.get('content-type')).toBe('audio/mpeg');
    const p = await fetch(file.url, { method: 'HEAD', headers: { Authorization: BASIC, Range: 'bytes=-10' } });
    expect(p.status).toBe(206);
    expect(p.headers.get('content-length')).toBe('10');
    expect(p.headers.get('content-range')).toBe(`bytes 99990-99999/${body.length}`);
    expect(counts.get('files_downloaded_total')).toBeUndefined();
  });

  it('streams to a slow reader without losing bytes', async () => {
    const big = randomBytes(6 * 1024 * 1024);
    const j = await uploadOk(big, 'v.mp4');
    const r = await fetch(j.url, { headers: { Authorization: BASIC } });
    const reader = r.body!.getReader();
    const parts: Buffer[] = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(Buffer.from(value));
      if (parts.length % 8 === 0) await new Promise((res) => setTimeout(res, 5));
    }
    expect(Buffer.concat(parts).equals(big)).toBe(true);
  });

  it('survives a client that goes away mid-download', async () => {
    const big = randomBytes(6 * 1024 * 1024);
    const j = await uploadOk(big, 'w.mp4');
    const path = new URL(j.url).pathname;
    await raw(main.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\n\r\n`, 100);
    // The server is still healthy afterwards.
    const r = await fetch(j.url, { headers: { Authorization: BASIC, Range: 'bytes=0-9' } });
    expect(Buffer.from(await r.arrayBuffer()).equals(big.subarray(0, 10))).toBe(true);
  });

  it('refuses other methods with 405', async () => {
    const r = await fetch(file.url, { method: 'DELETE', headers: { Authorization: BASIC } });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, HEAD');
  });
});

describe('http-util', () => {
  it('parseAuthorization', () => {
    expect(parseAuthorization(BASIC)).toEqual({ kind: 'basic', username: 'alice', password: 'secret' });
    expect(parseAuthorization(`basic ${Buffer.from('a:b:c').toString('base64')}`)).toEqual({ kind: 'basic', username: 'a', password: 'b:c' });
    expect(parseAuthorization(`Basic ${Buffer.from(':').toString('base64')}`)).toEqual({ kind: 'basic', username: '', password: '' });
    expect(parseAuthorization('Bearer abc.def.ghi')).toEqual({ kind: 'bearer', token: 'abc.def.ghi' });
    expect(parseAuthorization('BEARER  tok ')).toEqual({ kind: 'bearer', token: 'tok' });
    for (const h of [undefined, '', 'Basic', 'Bearer', `Basic ${Buffer.from('nocolon').toString('base64')}`, 'Basic !!!', 'Digest x', 'Bearer a b']) {
      expect(parseAuthorization(h), String(h)).toBeNull();
    }
  });

  it('readBody + sendJson', async () => {
    const r = await fetch(`${main.base}/echo`, { method: 'POST', body: 'héllo' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.headers.get('x-test')).toBe('yes');
    expect(await r.json()).toEqual({ len: 6, text: 'héllo' });
    const empty = await fetch(`${main.base}/echo`, { method: 'POST', body: '' });
    expect(await empty.json()).toEqual({ len: 0, text: '' });
    expect((await fetch(`${main.base}/echo`, { method: 'POST', body: 'x'.repeat(SMALL_MAX + 1) })).status).toBe(413);
  });

  it('readBody enforces the limit on a chunked body', async () => {
    const big = new Uint8Array(SMALL_MAX + 10).fill(65);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(big.subarray(0, 600));
        c.enqueue(big.subarray(600));
        c.close();
      },
    });
    const r = await fetch(`${main.base}/echo`, { method: 'POST', body, duplex: 'half' } as RequestInit).catch((e: unknown) => e);
    if (r instanceof Response) expect(r.status).toBe(413);
    const small = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array([104, 105]));
        c.enqueue(new Uint8Array([33]));
        c.close();
      },
    });
    const ok = await fetch(`${main.base}/echo`, { method: 'POST', body: small, duplex: 'half' } as RequestInit);
    expect(await ok.json()).toEqual({ len: 3, text: 'hi!' });
  });
});

describe('pure helpers', () => {
  it('parseRange', () => {
    expect(parseRange('', 10)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=0-0', 10)).toEqual({ kind: 'partial', start: 0, end: 0 });
    expect(parseRange('bytes=-3', 10)).toEqual({ kind: 'partial', start: 7, end: 9 });
    expect(parseRange('bytes=-3', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-', 10)).toEqual({ kind: 'full' });
    expect(parseRange(`bytes=${'9'.repeat(400)}-`, 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange(`bytes=2-${'9'.repeat(400)}`, 10)).toEqual({ kind: 'partial', start: 2, end: 9 });
  });

  it('cleanFileName, uploadType, contentDisposition', () => {
    expect(cleanFileName('C:\\Users\\me\\a.txt')).toBe('a.txt');
    expect(cleanFileName('a\u0085b')).toBeNull();
    expect(cleanFileName('\uD800x')).toBeNull();
    expect(uploadType('image/png; charset=binary', 'x')).toBe('image/png; charset=binary');
    expect(uploadType('', 'x.WEBM')).toBe('video/webm');
    expect(uploadType('multipart/form-data; boundary=x', 'x')).toBe('multipart');
    expect(contentDisposition('naïve "q".txt')).toBe(`inline; filename="na_ve _q_.txt"; filename*=UTF-8''na%C3%AFve%20%22q%22.txt`);
  });
});
