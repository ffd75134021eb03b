/**
 * The IM layer's publish checks and identities (IM-PROTOCOL.md 2-3), end to end through
 * real sockets in both topologies, MQTT 5.0 and 3.1.1:
 *  - a payload that does not decode: 5.0 PUBACK/PUBREC 0x99 with a reason string, 3.1.1
 *    acknowledged and dropped; counted per code; never forwarded (also from mosquitto_pub);
 *  - Sender != the publisher's uid: 5.0 0x87, 3.1.1 dropped, counted; or, with
 *    im.senderCheck 'rewrite', delivered with Sender rewritten;
 *  - presence topics, other namespaces, other IM topics and anonymous publishers: 0x87;
 *    a will on an IM topic is checked like a PUBLISH, at CONNECT;
 *  - identities: users file (password), JWT (`sub`, `ns`, `groups`), superusers;
 *  - Mallory: everything an authenticated user of the namespace must not be able to read.
 * "Never forwarded" is shown by order, not by waiting: a valid marker published after the
 * refused messages is the first thing the receiver gets.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IPublishPacket, ISubackPacket } from 'mqtt-packet';
import { TOPOLOGIES, metric } from '../helpers/broker.js';
import { ClientPool, uid, within } from '../helpers/clients.js';
import type { RawClient, Version } from '../helpers/raw-client.js';
import { NS, TS, imBroker, imPayload, inboxOf, groupOf, presenceOf, decoded, textOf, codeOf, signJwt, JWT_SECRET, metricReaches, run, killAll } from '../helpers/im.js';

const USERS = { alice: 'alice-pw', jim: 'jim-pw', mallory: 'mallory-pw', ops: 'ops-pw' } as const;
type User = keyof typeof USERS;
const V = [5, 4] as const;
const vname = (v: Version) => (v === 5 ? '5.0' : '3.1.1');

/** Sen-len | Sender | TS | Type | Con-len | Content with arbitrary Content text. */
function frame(sender: string, content: string): Buffer {
  const s = Buffer.from(sender);
  const c = Buffer.from(content);
  const head = Buffer.alloc(10 + s.length);
  head[0] = s.length;
  s.copy(head, 1);
  head.writeUInt32BE(TS, 1 + s.length);
  head.writeUInt32BE(c.length, 6 + s.length);
  return Buffer.concat([head, c]);
}

const BAD: Array<{ code: string; payload: Buffer }> = [
  { code: 'EMPTY', payload: Buffer.alloc(0) },
  { code: 'SENDER_OVERRUN', payload: Buffer.from('hello jim') },
  { code: 'TRAILING_BYTES', payload: Buffer.concat([imPayload('alice', 'x'), Buffer.from([0])]) },
  { code: 'CONTENT_NOT_JSON', payload: frame('alice', 'not json') },
  { code: 'CON_MISSING', payload: frame('alice', '{"text":"hi"}') },
  { code: 'ITEM_CO_INVALID', payload: frame('alice', '{"con":[{"ty":1}]}') },
];
const invalid = (code: string) => `im_payload_invalid_total{code="${code}"}`;

/** PUBLISH at QoS 1 or 2 and the first ack's reason code (a QoS 2 flow that continues is completed). */
async function publishRaw(c: RawClient, topic: string, payload: Buffer, qos: 1 | 2, messageId: number) {
  c.send({ cmd: 'publish', topic, payload, qos, messageId, dup: false, retain: false });
  const ack = await c.next(qos === 1 ? 'puback' : 'pubrec', 3000);
  const rc = ack.reasonCode ?? 0;
  if (qos === 2 && rc < 0x80) {
    c.send({ cmd: 'pubrel', messageId });
    await c.next('pubcomp', 3000);
  }
  return { rc, reason: ack.properties?.reasonString };
}

describe.each(TOPOLOGIES)('IM payload checks and identity, %s topology', (topo) => {
  const ref = imBroker(topo, { auth: { allowAnonymous: true, jwt: { secret: JWT_SECRET } }, im: { superusers: ['ops'] } }, USERS);
  const pool = new ClientPool();
  afterEach(async () => {
    killAll();
    await pool.closeAll();
  });
  const as = (user: User, v: Version = 5, o: Parameters<ClientPool['connect']>[1] = {}) =>
    pool.connect(ref.b.tcpUrl, { protocolVersion: v, username: user, password: USERS[user], clientId: uid(user), ...o });
  const rawAs = async (user: User | undefined, v: Version, pw?: string) => {
    const c = await pool.raw(ref.b.tcpUrl, v);
    const password = user === undefined ? undefined : Buffer.from(pw ?? USERS[user]);
    const ack = await c.connect({ clientId: uid(user ?? 'anon'), username: user, password }, 5000);
    return { c, code: v === 5 ? ack.reasonCode : ack.returnCode };
  };

  // First in the file, while both gateways' request counters are still equal: the IM
  // counters below are read from /metrics, and a test runner (or Prometheus and a person)
  // may well ask twice at once.
  it('/metrics answers concurrent requests (multi: one per gateway at the same time)', async () => {
    const texts = await within(Promise.all(Array.from({ length: 8 }, async () => (await fetch(`${ref.b.httpUrl}/metrics`)).text())), 5000, '8 concurrent GET /metrics');
    for (const t of texts) expect(t).toMatch(/^switchboard_/m);
  });

  for (const v of V) {
    it(`${vname(v)}: IM-PROTOCOL 3: a valid payload reaches every device of the receiver unchanged, without SUBSCRIBE`, async () => {
      const [pc, phone] = [await as('jim', 5), await as('jim', 4)];
      const { c: alice } = await rawAs('alice', v);
      const payload = imPayload('alice', [{ ty: 0, co: 'hello, 你好' }], { kind: 2, media: 0 });
      expect((await publishRaw(alice, inboxOf('jim'), payload, 1, 1)).rc).toBe(0);
      for (const dev of [pc, phone]) {
        const [m] = await dev.inbox.waitFor(1);
        expect(m!.topic).toBe(inboxOf('jim'));
        expect(Buffer.compare(m!.packet.payload as Buffer, payload)).toBe(0);
        expect(decoded(m!)).toEqual({ sender: 'alice', ts: TS, kind: 2, media: 0, content: { con: [{ ty: 0, co: 'hello, 你好' }] } });
      }
    });

    it(`${vname(v)}: IM-PROTOCOL 3: invalid payloads are ${v === 5 ? 'refused with 0x99 and a reason string' : 'acknowledged and dropped'}, counted per code, never forwarded`, async () => {
      const jim = await as('jim');
      const { c: alice } = await rawAs('alice', v);
      const before: number[] = [];
      for (const x of BAD) before.push(await metric(ref.b, invalid(x.code)));
      let id = 0;
      for (const [i, x] of BAD.entries()) {
        const r = await publishRaw(alice, inboxOf('jim'), x.payload, i % 2 === 0 ? 1 : 2, ++id);
        expect(r.rc, x.code).toBe(v === 5 ? 0x99 : 0);
        if (v === 5) expect(r.reason, x.code).toMatch(/\S/);
      }
      alice.send({ cmd: 'publish', topic: inboxOf('jim'), payload: BAD[0]!.payload, qos: 0, dup: false, retain: false });
      expect((await publishRaw(alice, inboxOf('jim'), imPayload('alice', 'marker'), 1, ++id)).rc).toBe(0);
      const [first] = await jim.inbox.waitFor(1);
      expect(textOf(first!)).toBe('marker');
      for (const [i, x] of BAD.entries()) await metricReaches(() => metric(ref.b, invalid(x.code)), before[i]! + (i === 0 ? 2 : 1), x.code);
      if (v === 5) {
        // MQTT.js reports the negative PUBACK as an error carrying the reason code.
        const m = await as('alice', 5);
        expect(codeOf(await m.client.publishAsync(inboxOf('jim'), 'plain text', { qos: 1 }).catch((e: unknown) => e))).toBe(0x99);
      }
    });

    it(`${vname(v)}: IM-PROTOCOL 3 anti-spoofing: a Sender other than the uid is ${v === 5 ? 'refused with 0x87' : 'dropped'} and counted`, async () => {
      const jim = await as('jim');
      const { c: alice } = await rawAs('alice', v);
      const before = await metric(ref.b, 'im_sender_mismatch_total');
      const spoofs = [imPayload('jim', 'from jim?'), imPayload('', 'nobody'), imPayload('Alice', 'case matters')];
      for (const [i, p] of spoofs.entries()) {
        const r = await publishRaw(alice, inboxOf('jim'), p, i === 1 ? 2 : 1, i + 1);
        expect(r.rc).toBe(v === 5 ? 0x87 : 0);
        if (v === 5 && i === 0) expect(r.reason).toContain('"jim"');
      }
      await publishRaw(alice, inboxOf('jim'), imPayload('alice', 'marker'), 1, 9);
      expect(textOf((await jim.inbox.waitFor(1))[0]!)).toBe('marker');
      await metricReaches(() => metric(ref.b, 'im_sender_mismatch_total'), before + 3, 'im_sender_mismatch_total');
    });

    it(`${vname(v)}: presence topics, another namespace's inbox, other IM topics and anonymous publishers are ${v === 5 ? 'refused with 0x87' : 'dropped'}`, async () => {
      const ops = await as('ops');
      const watched = [inboxOf('jim', 'globex'), presenceOf('alice'), `/${NS}/im/x/y`, inboxOf('jim')];
      await ops.client.subscribeAsync(Object.fromEntries(watched.map((t) => [t, { qos: 1 as const, rh: 2 }])));
      const forged = JSON.stringify({ uid: 'alice', online: false, devices: 0, ts: 1 });
      const { c: alice } = await rawAs('alice', v);
      const { c: anon, code } = await rawAs(undefined, v);
      expect(code).toBe(0);
      const tries: Array<[RawClient, string, Buffer]> = [
        [alice, presenceOf('alice'), Buffer.from(forged)],
        [alice, presenceOf('jim'), Buffer.from(forged)],
        [alice, inboxOf('jim', 'globex'), imPayload('alice', 'cross-namespace')],
        [alice, `/${NS}/im/x/y`, imPayload('alice', 'other')],
        [anon, inboxOf('jim'), imPayload('', 'anonymous')],
      ];
      let id = 0;
      for (const [c, topic, p] of tries) expect((await publishRaw(c, topic, p, 1, ++id)).rc, topic).toBe(v === 5 ? 0x87 : 0);
      await publishRaw(alice, inboxOf('jim'), imPayload('alice', 'marker'), 1, ++id);
      const [first] = await ops.inbox.waitFor(1, 3000, inboxOf('jim'));
      expect(textOf(first!)).toBe('marker');
      // Only broker-made presence (if any) arrived before the marker; nothing that was refused.
      expect(ops.inbox.msgs.filter((m) => m.topic !== presenceOf('alice') && m.topic !== inboxOf('jim'))).toEqual([]);
      expect(ops.inbox.msgs.filter((m) => m.payload === forged)).toEqual([]);
    });

    it(`${vname(v)}: a will on an IM topic is checked at CONNECT: invalid payload / spoofed Sender refused, a valid one goes out`, async () => {
      const will = async (payload: Buffer) => {
        const c = await pool.raw(ref.b.tcpUrl, v);
        const ack = await c.connect({ clientId: uid('alice'), username: 'alice', password: Buffer.from(USERS.alice), will: { topic: inboxOf('jim'), payload, qos: 1, retain: false } }, 5000);
        return { c, code: v === 5 ? ack.reasonCode : ack.returnCode };
      };
      const bad = await will(Buffer.from('not an IM payload'));
      expect(bad.code).toBe(v === 5 ? 0x99 : 0x05);
      expect(await bad.c.closesWithin(3000)).toBe(true);
      const spoof = await will(imPayload('jim', 'I am jim'));
      expect(spoof.code).toBe(v === 5 ? 0x87 : 0x05);
      const jim = await as('jim');
      const good = await will(imPayload('alice', 'alice went away'));
      expect(good.code).toBe(0);
      good.c.destroy();
      const [m] = await jim.inbox.waitFor(1, 5000);
      expect(decoded(m!)).toMatchObject({ sender: 'alice', content: { con: [{ ty: 0, co: 'alice went away' }] } });
    });

    it(`${vname(v)}: Mallory (authenticated, same namespace) cannot log in as Alice nor read what is not his`, async () => {
      expect((await rawAs('alice', v, USERS.mallory)).code).toBe(v === 5 ? 0x86 : 0x04);
      const { c: mallory } = await rawAs('mallory', v);
      const filters = [inboxOf('mallory'), '#', '+/#', '/#', '/+/im/u/+', inboxOf('alice'), `/${NS}/im/#`, `/${NS}/+/u/alice`, `/${NS}/im/u/+`, groupOf('board'), '/globex/im/p/+', `/${NS}/im/p/+`, presenceOf('alice'), 'chat/lobby'];
      mallory.send({ cmd: 'subscribe', messageId: 7, subscriptions: filters.map((topic) => ({ topic, qos: 1 as const })) });
      const no = v === 5 ? 0x87 : 0x80;
      expect(((await mallory.next('suback', 3000)) as ISubackPacket).granted).toEqual([1, no, no, no, no, no, no, no, no, no, no, 1, 1, 1]);
      const alice = await as('alice');
      await alice.client.publishAsync(inboxOf('jim'), imPayload('alice', 'private'), { qos: 1 });
      await alice.client.publishAsync(groupOf('board'), imPayload('alice', 'board only'), { qos: 1 });
      await alice.client.publishAsync(inboxOf('mallory'), imPayload('alice', 'marker'), { qos: 1 });
      let p: IPublishPacket;
      while ((p = await mallory.next('publish', 3000)).topic !== inboxOf('mallory')) expect(p.topic).toMatch(/^\/acme\/im\/p\//); // retained presence only
      expect(decoded({ topic: p.topic, payload: '', packet: p }).content.con[0]!.co).toBe('marker');
      // Anonymous clients have no uid: no IM filter at all.
      const { c: anon } = await rawAs(undefined, v);
      anon.send({ cmd: 'subscribe', messageId: 8, subscriptions: ['#', `/${NS}/im/p/+`, 'chat/lobby'].map((topic) => ({ topic, qos: 0 as const })) });
      expect(((await anon.next('suback', 3000)) as ISubackPacket).granted).toEqual([no, no, 0]);
    });

    it(`${vname(v)}: IM-PROTOCOL 2: Mallory cannot take over Alice's session (and read her inbox) by using her client id`, async () => {
      const aliceId = `${uid('alice')}/phone`;
      const persist = v === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
      await (await as('alice', v, { clientId: aliceId, ...persist })).client.endAsync();
      const jim = await as('jim');
      for (let i = 0; i < 3; i++) await jim.client.publishAsync(inboxOf('alice'), imPayload('jim', `secret ${i}`), { qos: 1 });
      const stolen = await as('mallory', v, { clientId: aliceId, ...persist }).catch((e: unknown) => e);
      if (!(stolen instanceof Error)) {
        const { client, inbox } = stolen as Awaited<ReturnType<typeof as>>;
        await client.subscribeAsync(inboxOf('mallory'), { qos: 1 });
        await jim.client.publishAsync(inboxOf('mallory'), imPayload('jim', 'marker'), { qos: 1 });
        await inbox.waitFor(1, 3000, inboxOf('mallory'));
        expect(inbox.msgs.filter((m) => m.topic === inboxOf('alice')).map(textOf), 'Alice\'s messages delivered to Mallory').toEqual([]);
        await client.endAsync();
      }
      const back = await as('alice', v, { clientId: aliceId, ...persist });
      expect((await back.inbox.waitFor(3, 3000)).map(textOf)).toEqual(['secret 0', 'secret 1', 'secret 2']);
    });
  }

  it('JWT: `sub` is the uid, `ns` and `groups` claims apply, username must equal sub, bad or expired tokens are refused', async () => {
    const carol = uid('carol');
    const token = await signJwt({ sub: carol });
    // 5.0 allows a password without a username (3.1.1 forbade it, [MQTT-3.1.2-22]); mqtt-packet will not
    // write one, so this CONNECT is built by hand: flags 0x42 (password, clean start), no properties.
    const str = (x: string) => Buffer.concat([Buffer.from([x.length >> 8, x.length & 0xff]), Buffer.from(x)]);
    const body = Buffer.concat([str('MQTT'), Buffer.from([5, 0x42, 0, 0, 0]), str(uid(carol)), str(token)]);
    const len = [];
    for (let n = body.length; ; ) {
      const digit = n % 128;
      n = Math.floor(n / 128);
      len.push(n > 0 ? digit | 0x80 : digit);
      if (n === 0) break;
    }
    const raw = await pool.raw(ref.b.tcpUrl, 5);
    raw.sendBytes(Buffer.concat([Buffer.from([0x10, ...len]), body]));
    expect((await raw.next('connack', 5000)).reasonCode).toBe(0);
    const c5 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, username: carol, password: token, clientId: uid(carol) });
    const c4 = await pool.connect(ref.b.tcpUrl, { protocolVersion: 4, username: carol, password: token, clientId: uid(carol) });
    const alice = await as('alice');
    await alice.client.publishAsync(inboxOf(carol), imPayload('alice', 'hi carol'), { qos: 1 });
    for (const c of [c5, c4]) expect(textOf((await c.inbox.waitFor(1))[0]!)).toBe('hi carol');
    const viaRaw = await raw.next('publish', 3000);
    expect([viaRaw.topic, decoded({ topic: viaRaw.topic, payload: '', packet: viaRaw }).sender]).toEqual([inboxOf(carol), 'alice']);
    expect(codeOf(await c5.client.publishAsync(inboxOf('jim'), imPayload('alice', 'x'), { qos: 1 }).catch((e: unknown) => e))).toBe(0x87);
    await c5.client.publishAsync(inboxOf('alice'), imPayload(carol, 'hi alice'), { qos: 1 });
    expect(decoded((await alice.inbox.waitFor(1))[0]!).sender).toBe(carol);
    const refused = async (v: 4 | 5, username: string | undefined, password: string) =>
      codeOf(await pool.connect(ref.b.tcpUrl, { protocolVersion: v, username, password, clientId: uid('x') }).catch((e: unknown) => e));
    for (const v of [5, 4] as const) {
      const bad = v === 5 ? 0x86 : 0x04;
      expect(await refused(v, 'alice', token), 'username != sub').toBe(bad);
      expect(await refused(v, carol, await signJwt({ sub: carol }, { secret: 'some-other-secret-of-reasonable-length' })), 'wrong key').toBe(bad);
      expect(await refused(v, carol, await signJwt({ sub: carol }, { exp: Math.floor(Date.now() / 1000) - 3600 })), 'expired').toBe(bad);
    }
    const dave = uid('dave');
    const d = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, username: dave, password: await signJwt({ sub: dave, ns: 'globex', groups: ['ops-room'] }), clientId: uid(dave) });
    const sub = await d.client.subscribeAsync([groupOf('ops-room', 'globex'), inboxOf(dave), groupOf('other', 'globex')], { qos: 1 }).catch((e: { packet?: ISubackPacket }) => e.packet!.granted);
    expect(sub).toEqual([1, 0x87, 0x87]);
    expect(codeOf(await d.client.publishAsync(inboxOf('jim'), imPayload(dave, 'x'), { qos: 1 }).catch((e: unknown) => e))).toBe(0x87);
    const ops = await as('ops');
    await ops.client.publishAsync(inboxOf(dave, 'globex'), imPayload('ops', 'welcome to globex'), { qos: 1 });
    expect(textOf((await d.inbox.waitFor(1, 3000, inboxOf(dave, 'globex')))[0]!)).toBe('welcome to globex');
  });

  it('superusers (im.superusers) may read every inbox and publish with any Sender', async () => {
    const ops = await as('ops');
    await ops.client.subscribeAsync('/+/im/u/+', { qos: 1 });
    const alice = await as('alice');
    await alice.client.publishAsync(inboxOf('jim'), imPayload('alice', 'seen by ops'), { qos: 1 });
    expect(textOf((await ops.inbox.waitFor(1))[0]!)).toBe('seen by ops');
    await ops.client.publishAsync(inboxOf('alice'), imPayload('system', 'maintenance tonight'), { qos: 1 });
    expect(decoded((await alice.inbox.waitFor(1))[0]!)).toMatchObject({ sender: 'system' });
  });

  for (const mv of ['mqttv311', 'mqttv5'] as const) {
    it(`mosquitto_pub (${mv}): a bad payload is dropped and counted, a good one (-f file) reaches mosquitto_sub and MQTT.js`, async () => {
      const b = ref.b;
      const jim = await as('jim');
      const conn = (user: User) => ['-h', '127.0.0.1', '-p', String(b.tcpPort), '-V', mv, '-u', user, '-P', USERS[user], '-q', '1'];
      const sub = run('stdbuf', ['-oL', 'mosquitto_sub', ...conn('jim'), '-t', inboxOf('jim'), '-d', '-C', '1', '-W', '10', '-F', 'MSG|%t|%x']);
      await expect.poll(() => sub.stdout(), { timeout: 5000 }).toMatch(/received SUBACK/);
      const before = await metric(b, invalid('SENDER_OVERRUN'));
      const bad = run('mosquitto_pub', [...conn('alice'), '-t', inboxOf('jim'), '-m', 'plain text, not an IM payload']);
      expect(await bad.exited).toBe(0);
      if (mv === 'mqttv5') expect(bad.stderr()).toMatch(/Payload format invalid/);
      await metricReaches(() => metric(b, invalid('SENDER_OVERRUN')), before + 1, 'SENDER_OVERRUN');
      const good = imPayload('alice', [{ ty: 0, co: `from mosquitto ${mv}` }]);
      const file = join(b.config.dataDir, `${uid('payload')}.bin`);
      writeFileSync(file, good);
      expect(await run('mosquitto_pub', [...conn('alice'), '-t', inboxOf('jim'), '-f', file]).exited).toBe(0);
      expect(await sub.exited).toBe(0);
      const lines = sub.stdout().split('\n').filter((l) => l.startsWith('MSG|'));
      expect(lines).toEqual([`MSG|${inboxOf('jim')}|${good.toString('hex')}`]);
      const [m] = await jim.inbox.waitFor(1);
      expect(textOf(m!)).toBe(`from mosquitto ${mv}`);
    });
  }

  describe("im.senderCheck 'rewrite'", () => {
    const rw = imBroker(topo, { im: { senderCheck: 'rewrite' } });
    for (const v of V) {
      it(`${vname(v)}: a spoofed Sender is delivered as the uid (carbon copy too), counted; invalid payloads and anonymous publishers are still refused`, async () => {
        const [alice, bob] = [uid('alice'), uid('bob')];
        const con = (u: string, pv: Version = 5) => pool.connect(rw.b.tcpUrl, { protocolVersion: pv, username: u, clientId: uid(u) });
        const [bobPc, alicePhone] = [await con(bob), await con(alice)];
        const pc = await pool.raw(rw.b.tcpUrl, v);
        await pc.connect({ clientId: `${alice}/pc`, username: alice });
        const before = await metric(rw.b, 'im_sender_rewritten_total');
        const items = [{ ty: 1, co: 'https://x/cat.jpg', fn: { name: 'cat.jpg', size: '42' } }];
        expect((await publishRaw(pc, inboxOf(bob), imPayload(bob, items, { kind: 1, media: 1 }), 1, 1)).rc).toBe(0);
        const want = { sender: alice, ts: TS, kind: 1, media: 1, content: { con: items } };
        expect(decoded((await bobPc.inbox.waitFor(1))[0]!)).toEqual(want);
        expect(decoded((await alicePhone.inbox.waitFor(1, 2500, inboxOf(alice)))[0]!)).toEqual(want);
        await metricReaches(() => metric(rw.b, 'im_sender_rewritten_total'), before + 1, 'im_sender_rewritten_total');
        expect((await publishRaw(pc, inboxOf(bob), Buffer.from('junk'), 1, 2)).rc).toBe(v === 5 ? 0x99 : 0);
        const anon = await pool.raw(rw.b.tcpUrl, v);
        await anon.connect({ clientId: uid('anon') });
        expect((await publishRaw(anon, inboxOf(bob), imPayload(bob, 'who am I'), 1, 3)).rc).toBe(v === 5 ? 0x87 : 0);
        expect((await publishRaw(pc, inboxOf(bob), imPayload('', 'marker'), 1, 4)).rc).toBe(0);
        expect((await bobPc.inbox.waitFor(2))[1]!.payload).toContain('marker');
      });
    }
  });
});
