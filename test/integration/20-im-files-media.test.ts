/**
 * Media out of band (IM-PROTOCOL.md 6) and the paper's functional test (section 7), end to
 * end in both topologies, against a broker with a users file, JWTs and no anonymous access:
 *  - POST /files?name=... with the MQTT credentials (Basic or Bearer JWT): 201 with a
 *    download URL; no or bad credentials: 401; over im.files.maxBytes: 413; in both
 *    refusals nothing reaches the data directory;
 *  - GET of the URL (authenticated): the bytes, Content-Type, Content-Length,
 *    Accept-Ranges; single byte ranges (206, suffix ranges, 416);
 *  - two users with two devices each (TCP and WebSocket, 5.0 and 3.1.1) exchange text,
 *    image, audio, video, PDF and file messages: every receiving device decodes each one
 *    field by field and downloads the medium, byte for byte.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, uid, type Opened } from '../helpers/clients.js';
import { imBroker, imPayload, inboxOf, decoded, api, signJwt, JWT_SECRET, TS } from '../helpers/im.js';

const USERS = { alice: 'alice-pw', jim: 'jim-pw' } as const;
type User = keyof typeof USERS;
const MAX_BYTES = 1_000_000;
const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;
const as = (user: User) => basic(user, USERS[user]);

interface Uploaded {
  id: string;
  url: string;
  name: string;
  size: number;
  type: string;
}

describe.each(TOPOLOGIES)('IM files and media, %s topology', (topo) => {
  const ref = imBroker(topo, { admin: { token: null }, auth: { allowAnonymous: false, jwt: { secret: JWT_SECRET } }, im: { files: { maxBytes: MAX_BYTES } } }, USERS);
  const pool = new ClientPool();
  afterEach(async () => {
    await pool.closeAll();
  });
  const stored = async () => (await readdir(join(ref.b.config.dataDir, 'files')).catch(() => [] as string[])).sort();
  const upload = async (name: string, body: Buffer, authorization?: string, type = 'application/octet-stream') => {
    const headers: Record<string, string> = { 'content-type': type };
    if (authorization) headers.authorization = authorization;
    const res = await fetch(`${ref.b.httpUrl}/files?name=${encodeURIComponent(name)}`, { method: 'POST', headers, body: new Uint8Array(body) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Uploaded & { error?: string } };
  };
  const download = async (url: string, authorization?: string, range?: string) => {
    const headers: Record<string, string> = {};
    if (authorization) headers.authorization = authorization;
    if (range) headers.range = range;
    const res = await fetch(url, { headers });
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  };
  /** An upload with a hand-set Content-Length (fetch would compute it), answered before the body if the server wants. */
  const uploadDeclaring = (length: number, body: Buffer) =>
    new Promise<number>((resolve, reject) => {
      const req = request(`${ref.b.httpUrl}/files?name=big.bin`, { method: 'POST', headers: { authorization: as('alice'), 'content-length': String(length) } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject); // only if no response came first
      req.end(body);
    });

  it('the admin API is off without admin.token: 404 with a message saying so', async () => {
    for (const token of ['secret-token', null]) {
      expect(await api(ref.b, 'GET', '/rules', undefined, token)).toMatchObject({ status: 404, body: { error: 'admin API disabled: set admin.token' } });
    }
  });

  it('IM-PROTOCOL 6: upload with Basic credentials, download with another user\'s: the same bytes and headers', async () => {
    const body = randomBytes(48_213);
    const up = await upload('cat.jpg', body, as('alice'), 'image/jpeg');
    expect(up.status).toBe(201);
    expect(up.body).toEqual({ id: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/), url: `${ref.b.httpUrl}/files/${up.body.id}/cat.jpg`, name: 'cat.jpg', size: 48_213, type: 'image/jpeg' });
    expect(await stored()).toEqual(expect.arrayContaining([up.body.id]));
    const got = await download(up.body.url, as('jim'));
    expect(got.status).toBe(200);
    expect(Buffer.compare(got.body, body)).toBe(0);
    expect([got.headers.get('content-type'), got.headers.get('content-length'), got.headers.get('accept-ranges')]).toEqual(['image/jpeg', '48213', 'bytes']);
  });

  it('IM-PROTOCOL 6: upload and download with a Bearer JWT (the MQTT password of a token user)', async () => {
    const token = await signJwt({ sub: uid('carol') });
    const body = Buffer.from('%PDF-1.4\n' + 'x'.repeat(1000));
    const up = await upload('notes.pdf', body, `Bearer ${token}`, 'application/pdf');
    expect([up.status, up.body.size, up.body.type]).toEqual([201, body.length, 'application/pdf']);
    const got = await download(up.body.url, `Bearer ${token}`);
    expect([got.status, got.body.toString()]).toEqual([200, body.toString()]);
  });

  it('IM-PROTOCOL 6: no or bad credentials get 401 and store nothing; downloads need credentials too', async () => {
    const before = await stored();
    const expired = await signJwt({ sub: 'alice' }, { exp: Math.floor(Date.now() / 1000) - 3600 });
    const forged = await signJwt({ sub: 'alice' }, { secret: 'not-the-broker-secret-but-long-enough' });
    for (const auth of [undefined, basic('alice', 'wrong'), basic('mallory', 'whatever'), `Bearer ${expired}`, `Bearer ${forged}`, 'Bearer not.a.jwt']) {
      const r = await upload('cat.jpg', randomBytes(1000), auth);
      expect([r.status, typeof r.body.error], String(auth)).toEqual([401, 'string']);
      if (auth === undefined) expect(r.headers.get('www-authenticate')).toMatch(/Basic/);
    }
    expect(await stored()).toEqual(before);
    const up = await upload('ok.bin', randomBytes(10), as('alice'));
    for (const auth of [undefined, basic('jim', 'wrong'), `Bearer ${forged}`]) expect((await download(up.body.url, auth)).status, String(auth)).toBe(401);
    expect((await download(`${ref.b.httpUrl}/files/${'A'.repeat(22)}/x.bin`, as('jim'))).status).toBe(404);
  });

  it('IM-PROTOCOL 6: a body over im.files.maxBytes gets 413 and stores nothing; exactly maxBytes is accepted', async () => {
    const before = await stored();
    expect(await uploadDeclaring(MAX_BYTES + 1, randomBytes(MAX_BYTES + 1))).toBe(413);
    expect(await uploadDeclaring(50 * MAX_BYTES, Buffer.alloc(0)).catch(() => 'reset')).toBe(413);
    expect(await stored()).toEqual(before);
    const exact = await upload('exact.bin', randomBytes(MAX_BYTES), as('jim'));
    expect([exact.status, exact.body.size]).toEqual([201, MAX_BYTES]);
  });

  it('IM-PROTOCOL 6: Range requests: 206 with Content-Range, suffix ranges, 416 when unsatisfiable', async () => {
    const body = randomBytes(1000);
    const { body: up } = await upload('song.ogg', body, as('alice'), 'audio/ogg');
    const r1 = await download(up.url, as('jim'), 'bytes=0-99');
    expect([r1.status, r1.headers.get('content-range'), r1.headers.get('content-length')]).toEqual([206, 'bytes 0-99/1000', '100']);
    expect(Buffer.compare(r1.body, body.subarray(0, 100))).toBe(0);
    const r2 = await download(up.url, as('jim'), 'bytes=-10');
    expect([r2.status, r2.headers.get('content-range')]).toEqual([206, 'bytes 990-999/1000']);
    expect(Buffer.compare(r2.body, body.subarray(990))).toBe(0);
    const r3 = await download(up.url, as('jim'), 'bytes=500-');
    expect([r3.status, r3.body.length, r3.headers.get('content-type')]).toEqual([206, 500, 'audio/ogg']);
    const r4 = await download(up.url, as('jim'), 'bytes=1000-');
    expect([r4.status, r4.headers.get('content-range')]).toEqual([416, 'bytes */1000']);
  });

  it('paper section 4 / IM-PROTOCOL 7: two users with two devices each exchange text, image, audio, video, PDF and file messages', { timeout: 40_000 }, async () => {
    const device = (user: User, v: 4 | 5, url: string) => pool.connect(url, { protocolVersion: v, username: user, password: USERS[user], clientId: `${user}/${uid('dev')}` });
    const devices: Record<User, [Opened, Opened]> = {
      alice: [await device('alice', 5, ref.b.tcpUrl), await device('alice', 4, ref.b.wsUrl)],
      jim: [await device('jim', 4, ref.b.tcpUrl), await device('jim', 5, ref.b.wsUrl)],
    };
    const plan: Array<{ from: User; dev: 0 | 1; to: User; media: number; name?: string; type?: string; head?: string; size?: number; text?: string }> = [
      { from: 'alice', dev: 0, to: 'jim', media: 0, text: 'Hi Jim! 你好 👋' },
      { from: 'alice', dev: 1, to: 'jim', media: 1, name: 'cat.jpg', type: 'image/jpeg', head: '\xff\xd8\xff\xe0', size: 48_213 },
      { from: 'alice', dev: 0, to: 'jim', media: 2, name: 'voice.ogg', type: 'audio/ogg', head: 'OggS', size: 23_456 },
      { from: 'jim', dev: 1, to: 'alice', media: 3, name: 'clip.mp4', type: 'video/mp4', head: '\0\0\0\x18ftypmp42', size: 310_000 },
      { from: 'jim', dev: 0, to: 'alice', media: 4, name: 'report.pdf', type: 'application/pdf', head: '%PDF-1.7\n', size: 77_777 },
      { from: 'jim', dev: 1, to: 'alice', media: 5, name: 'minutes.docx', type: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', head: 'PK\x03\x04', size: 12_345 },
    ];
    const seen = new Map<Opened, number>();
    for (const step of plan) {
      let item: { ty: number; co: string; fn?: { name: string; size: string } } = { ty: 0, co: step.text ?? '' };
      let bytes: Buffer | undefined;
      if (step.media !== 0) {
        bytes = Buffer.concat([Buffer.from(step.head!, 'latin1'), randomBytes(step.size! - Buffer.byteLength(step.head!, 'latin1'))]);
        const up = await upload(step.name!, bytes, as(step.from), step.type);
        expect(up.status, step.name).toBe(201);
        item = { ty: step.media, co: up.body.url, fn: { name: step.name!, size: String(bytes.length) } };
      }
      const sender = devices[step.from][step.dev];
      await sender.client.publishAsync(inboxOf(step.to), imPayload(step.from, [item], { kind: 0, media: step.media }), { qos: 1 });
      // Both devices of the receiver, and the sender's other device (carbon copy).
      const receivers: Array<[Opened, User, string]> = [
        [devices[step.to][0], step.to, inboxOf(step.to)],
        [devices[step.to][1], step.to, inboxOf(step.to)],
        [devices[step.from][1 - step.dev]!, step.from, inboxOf(step.from)],
      ];
      for (const [dev, owner, topic] of receivers) {
        const n = (seen.get(dev) ?? 0) + 1;
        seen.set(dev, n);
        const m = (await dev.inbox.waitFor(n, 5000))[n - 1]!;
        expect(m.topic).toBe(topic);
        const msg = decoded(m);
        expect(msg.sender).toBe(step.from);
        expect(msg.ts).toBe(TS);
        expect(msg.kind).toBe(0);
        expect(msg.media).toBe(step.media);
        expect(msg.content).toEqual({ con: [item] });
        if (bytes) {
          const got = await download(msg.content.con[0]!.co, as(owner));
          expect([got.status, got.headers.get('content-type'), Number(got.headers.get('content-length'))]).toEqual([200, step.type, bytes.length]);
          expect(Buffer.compare(got.body, bytes), `${step.name} downloaded by ${owner}`).toBe(0);
        }
      }
    }
    // Nobody got anything else (the sending device never its own message back).
    expect(devices.alice[0].inbox.msgs.length + devices.alice[1].inbox.msgs.length + devices.jim[0].inbox.msgs.length + devices.jim[1].inbox.msgs.length).toBe(plan.length * 3);
  });
});
