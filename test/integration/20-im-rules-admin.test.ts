/**
 * Routing rules (IM-PROTOCOL.md 5, paper figure 3) and the admin API under /api/v1, end
 * to end in both topologies:
 *  - figure 3 exactly, over TCP and WebSocket: Alice's PC writes to Jim; Jim's PC and phone
 *    get it, Alice's phone gets the carbon copy on her own inbox, Alice's PC nothing;
 *  - copy / move / drop, placeholders, no loops (a rule-made copy is not matched again);
 *  - rules edited at run time, in effect when the API answers;
 *  - the client endpoints (list, detail, kick with DISCONNECT 0x98, subscribe on behalf),
 *    /publish, the error answers, and the `switchboard admin` command line.
 * "Nothing arrives" is shown by order: a marker sent afterwards is the next message.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IDisconnectPacket } from 'mqtt-packet';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, TRANSPORTS, uid, urlOf, within, type Opened } from '../helpers/clients.js';
import { NS, ADMIN_TOKEN, imBroker, imPayload, inboxOf, textOf, api, clientPath, run, killAll } from '../helpers/im.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
const CARBONS = { id: 'carbons', source: '/+/im/u/+', action: 'copy', destination: '/{1}/im/u/{sender}' };

describe.each(TOPOLOGIES)('IM routing rules and admin API, %s topology', (topo) => {
  const ref = imBroker(topo);
  const pool = new ClientPool();
  const rulesToDelete: string[] = [];
  afterEach(async () => {
    killAll();
    for (const id of rulesToDelete.splice(0)) await api(ref.b, 'DELETE', `/rules/${id}`);
    await pool.closeAll();
  });
  const dev = (user: string, device: string, v: 4 | 5 = 5, url = ref.b.tcpUrl) => pool.connect(url, { protocolVersion: v, username: user, clientId: `${user}/${device}` });
  const send = (from: Opened, to: string, sender: string, text: string) => from.client.publishAsync(to, imPayload(sender, text), { qos: 1 });
  const addRule = async (rule: Record<string, unknown>) => {
    const r = await api(ref.b, 'POST', '/rules', rule);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    rulesToDelete.push(rule.id as string);
  };
  /** The texts of the first n messages of a device on one topic. */
  const texts = async (o: Opened, n: number, topic?: string) => (await o.inbox.waitFor(n, 3000, topic)).map(textOf);

  for (const t of TRANSPORTS) {
    it(`IM-PROTOCOL 5, figure 3 (${t}): Jim's PC and phone get Alice's message, Alice's phone a copy on her inbox, Alice's PC nothing`, async () => {
      const [alice, jim] = [uid('alice'), uid('jim')];
      const url = urlOf(ref.b, t);
      const [alicePc, alicePhone, jimPc, jimPhone] = [await dev(alice, 'pc', 5, url), await dev(alice, 'phone', 4, url), await dev(jim, 'pc', 5, url), await dev(jim, 'phone', 4, url)];
      const msg = imPayload(alice, 'hi Jim, from my PC');
      await alicePc.client.publishAsync(inboxOf(jim), msg, { qos: 1 });
      for (const [o, topic] of [[jimPc, inboxOf(jim)], [jimPhone, inboxOf(jim)], [alicePhone, inboxOf(alice)]] as const) {
        const [m] = await o.inbox.waitFor(1);
        expect([m!.topic, Buffer.compare(m!.packet.payload as Buffer, msg)]).toEqual([topic, 0]);
      }
      // Jim answers from his phone: the mirror image.
      await send(jimPhone, inboxOf(alice), jim, 'hi Alice, from my phone');
      expect(await texts(alicePc, 1)).toEqual(['hi Alice, from my phone']); // first message: her own never came back
      expect(await texts(alicePhone, 2)).toEqual(['hi Jim, from my PC', 'hi Alice, from my phone']);
      expect(await texts(jimPc, 2)).toEqual(['hi Jim, from my PC', 'hi Alice, from my phone']);
      await send(alicePhone, inboxOf(jim), alice, 'marker');
      expect(await texts(jimPhone, 2)).toEqual(['hi Jim, from my PC', 'marker']);
      // Alice's PC: Jim's answer and the carbon of her phone's marker; never its own message.
      expect(await texts(alicePc, 2)).toEqual(['hi Alice, from my phone', 'marker']);
    });
  }

  it('IM-PROTOCOL 5: copy delivers the original and a copy ({1}, {sender} filled in); the copy is not matched again', async () => {
    const [alice, jim, kim] = [uid('alice'), uid('jim'), uid('kim')];
    const tag = uid('audit');
    await addRule({ id: `${tag}-a`, source: `/+/im/u/${jim}`, action: 'copy', destination: `audit/${tag}/{1}/{sender}` });
    // Rule-made copies are not matched again: this one never fires for the copy to kim.
    await addRule({ id: `${tag}-b`, source: `/${NS}/im/u/${kim}`, action: 'copy', destination: `audit/${tag}/kim` });
    await addRule({ id: `${tag}-c`, source: `/${NS}/im/u/${jim}`, action: 'copy', destination: inboxOf(kim) });
    const [auditor, j, k, pc, phone] = [await dev(uid('auditor'), 'x'), await dev(jim, 'pc'), await dev(kim, 'pc'), await dev(alice, 'pc'), await dev(alice, 'phone')];
    await auditor.client.subscribeAsync(`audit/${tag}/#`, { qos: 1 });
    await send(pc, inboxOf(jim), alice, 'for jim');
    expect(await texts(j, 1)).toEqual(['for jim']);
    expect(await texts(k, 1, inboxOf(kim))).toEqual(['for jim']);
    expect((await auditor.inbox.waitFor(1))[0]!.topic).toBe(`audit/${tag}/${NS}/${alice}`);
    await send(pc, inboxOf(kim), alice, 'for kim');
    const audited = await auditor.inbox.waitFor(2);
    expect(audited.map((m) => [m.topic, textOf(m)])).toEqual([[`audit/${tag}/${NS}/${alice}`, 'for jim'], [`audit/${tag}/kim`, 'for kim']]);
    expect(await texts(phone, 2)).toEqual(['for jim', 'for kim']); // one carbon each
  });

  it('IM-PROTOCOL 5: move delivers only to the destination; drop delivers to nobody (no carbon either) until the rule is deleted', async () => {
    const [alice, old, neu, blocked] = [uid('alice'), uid('old'), uid('new'), uid('blocked')];
    const [pc, phone, o, n, x] = [await dev(alice, 'pc'), await dev(alice, 'phone'), await dev(old, 'pc'), await dev(neu, 'pc'), await dev(blocked, 'pc')];
    await addRule({ id: uid('move'), source: inboxOf(old), action: 'move', destination: inboxOf(neu) });
    const dropId = uid('drop');
    await addRule({ id: dropId, source: inboxOf(blocked), action: 'drop' });
    await send(pc, inboxOf(old), alice, 'moved');
    await send(pc, inboxOf(blocked), alice, 'dropped');
    expect((await n.inbox.waitFor(1))[0]!.topic).toBe(inboxOf(neu));
    expect(await texts(n, 1)).toEqual(['moved']);
    await send(pc, inboxOf(neu), alice, 'marker');
    expect(await texts(phone, 2)).toEqual(['moved', 'marker']); // no carbon for the dropped one
    expect((await api(ref.b, 'DELETE', `/rules/${dropId}`)).body).toEqual({ deleted: true });
    await send(pc, inboxOf(blocked), alice, 'delivered again');
    expect(await texts(x, 1)).toEqual(['delivered again']);
    expect(o.inbox.msgs).toEqual([]);
  });

  it('IM-PROTOCOL 5: rules edited at run time (POST, PUT, DELETE, even the default carbons) are in effect when the API answers', async () => {
    const [alice, jim] = [uid('alice'), uid('jim')];
    const [pc, phone, j, spy] = [await dev(alice, 'pc'), await dev(alice, 'phone'), await dev(jim, 'pc'), await dev(uid('spy'), 'x')];
    const tag = uid('tap');
    await spy.client.subscribeAsync(`tap/${tag}`, { qos: 1 });
    const rules = (await api(ref.b, 'GET', '/rules')).body.rules;
    expect(rules[0]).toEqual(CARBONS);
    try {
      expect((await api(ref.b, 'DELETE', '/rules/carbons')).status).toBe(200);
      await send(pc, inboxOf(jim), alice, 'no carbon');
      await addRule({ id: tag, source: inboxOf(jim), action: 'copy', destination: `tap/${tag}` });
      await send(pc, inboxOf(jim), alice, 'copied');
      expect((await api(ref.b, 'PUT', `/rules/${tag}`, { source: inboxOf(jim), action: 'move', destination: `tap/${tag}` })).status).toBe(200);
      expect((await api(ref.b, 'GET', `/rules/${tag}`)).body).toMatchObject({ id: tag, action: 'move' });
      await send(pc, inboxOf(jim), alice, 'moved');
      expect((await api(ref.b, 'DELETE', `/rules/${tag}`)).status).toBe(200);
      rulesToDelete.splice(rulesToDelete.indexOf(tag), 1);
      await send(pc, inboxOf(jim), alice, 'plain');
    } finally {
      expect((await api(ref.b, 'PUT', '/rules/carbons', CARBONS)).status).toBe(200);
    }
    await send(pc, inboxOf(jim), alice, 'carbon again');
    expect(await texts(j, 4)).toEqual(['no carbon', 'copied', 'plain', 'carbon again']);
    expect(await texts(spy, 2)).toEqual(['copied', 'moved']);
    expect(await texts(phone, 1)).toEqual(['carbon again']);
  });

  it('admin API: rule validation answers 400 naming the field, 409 for a duplicate id, 404 for an unknown one', async () => {
    const id = uid('r');
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ id, source: '/+/im/u/+', action: 'forward', destination: 'x' }, /action/],
      [{ id, source: '/+/im/u/+', action: 'copy' }, /destination/],
      [{ id, source: '/+/im/u/+', action: 'drop', destination: 'x' }, /destination/],
      [{ id, source: '/+/im/u/+', action: 'copy', destination: '/{3}/x' }, /destination.*\{3\}/],
      [{ id, source: 'a/#/b', action: 'drop' }, /source/],
      [{ id: 'no spaces allowed', source: 'a', action: 'drop' }, /id/],
      [{ id, source: 'a', action: 'drop', destinaton: 'typo' }, /destinaton/],
    ];
    for (const [rule, msg] of bad) {
      const r = await api(ref.b, 'POST', '/rules', rule);
      expect([r.status, r.body.error], JSON.stringify(rule)).toEqual([400, expect.stringMatching(msg)]);
    }
    await addRule({ id, source: 'x/+', action: 'drop' });
    expect((await api(ref.b, 'POST', '/rules', { id, source: 'y', action: 'drop' })).status).toBe(409);
    expect((await api(ref.b, 'PUT', `/rules/${id}`, { id: 'other', source: 'y', action: 'drop' })).status).toBe(400);
    expect((await api(ref.b, 'GET', '/rules/no-such-rule')).status).toBe(404);
    expect((await api(ref.b, 'DELETE', '/rules/no-such-rule')).status).toBe(404);
  });

  it('admin API: token, unknown endpoints, methods, bodies and the other validations', async () => {
    for (const token of [null, 'wrong-token']) {
      const r = await api(ref.b, 'GET', '/rules', undefined, token);
      expect([r.status, typeof r.body.error, r.headers.get('www-authenticate')]).toEqual([401, 'string', expect.stringMatching(/^Bearer/)]);
    }
    const raw = await fetch(`${ref.b.httpUrl}/api/v1/rules`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: '{"id":' });
    expect(raw.status).toBe(400);
    const expectations: Array<[string, string, unknown, number]> = [
      ['GET', '/nope', undefined, 404],
      ['DELETE', '/presubscribe/templates', undefined, 405],
      ['GET', clientPath('no/such/client'), undefined, 404],
      ['PUT', `/directory/${uid('u')}`, { groups: ['a/b'] }, 400],
      ['PUT', `/directory/${uid('u')}`, { group: ['a'] }, 400],
      ['PUT', '/presubscribe/templates', { templates: ['/{ns}/im/u/{nope}'] }, 400],
      ['POST', '/publish', { topic: inboxOf('jim'), payload: 'not an IM payload' }, 400],
      ['POST', '/publish', { topic: '$SYS/forged', payload: 'x' }, 400],
      ['POST', '/publish', { topic: 'a/+', payload: 'x' }, 400],
      ['POST', '/publish', { topic: 'a', payload: 'x', payloadBase64: 'eA==' }, 400],
      ['POST', `${clientPath('x')}/subscriptions`, { filter: 'a/#/b' }, 400],
      ['DELETE', `${clientPath('x')}/subscriptions`, undefined, 400],
    ];
    for (const [method, path, body, status] of expectations) {
      const r = await api(ref.b, method, path, body);
      expect([r.status, typeof r.body.error], `${method} ${path}`).toEqual([status, 'string']);
    }
    expect((await api(ref.b, 'PUT', `/directory/${uid('u')}`, { groups: ['a/b'] })).body.error).toMatch(/groups/);
  });

  it('admin API: clients list and detail, subscribe and unsubscribe on behalf of a client, kick (DISCONNECT 0x98) and discard', async () => {
    const [jim, alice] = [uid('jim'), uid('alice')];
    const id = `${jim}/phone`;
    const phone = await pool.connect(ref.b.tcpUrl, { protocolVersion: 5, username: jim, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } });
    const pc = await dev(jim, 'pc', 4);
    const sender = await dev(alice, 'pc');
    const list = (await api(ref.b, 'GET', `/clients?uid=${jim}`)).body.clients;
    expect(list).toEqual([
      { clientId: `${jim}/pc`, uid: jim, username: jim, online: true, protocolVersion: 4, subscriptions: 1, queued: 0, inflight: 0, expiry: 0 },
      { clientId: id, uid: jim, username: jim, online: true, protocolVersion: 5, subscriptions: 1, queued: 0, inflight: 0, expiry: 300 },
    ]);
    expect((await api(ref.b, 'GET', '/clients')).body.clients.map((c: { clientId: string }) => c.clientId)).toEqual(expect.arrayContaining([id, `${jim}/pc`, `${alice}/pc`]));
    const topic = `news/${uid('n')}`;
    expect((await api(ref.b, 'POST', `${clientPath(id)}/subscriptions`, { filter: topic, qos: 2 })).body).toEqual({ filter: topic, qos: 2 });
    await sender.client.publishAsync(topic, 'pushed to you', { qos: 2 });
    expect((await phone.inbox.waitFor(1, 3000, topic))[0]!.payload).toBe('pushed to you');
    expect((await api(ref.b, 'GET', clientPath(id))).body.subscriptions).toEqual([
      { filter: inboxOf(jim), qos: 1, presubscribed: true },
      { filter: topic, qos: 2, presubscribed: false },
    ]);
    expect((await api(ref.b, 'DELETE', `${clientPath(id)}/subscriptions?filter=${encodeURIComponent(topic)}`)).body).toEqual({ removed: true });
    await sender.client.publishAsync(topic, 'not any more', { qos: 1 });
    await send(sender, inboxOf(jim), alice, 'marker');
    await phone.inbox.waitFor(1, 3000, inboxOf(jim));
    expect(phone.inbox.msgs.map((m) => m.payload)).not.toContain('not any more');
    // Kick: the 5.0 client is told why.
    const told = new Promise<IDisconnectPacket>((res) => phone.client.once('disconnect', res));
    expect((await api(ref.b, 'DELETE', clientPath(id))).body).toEqual({ kicked: true, discarded: false });
    expect((await within(told, 3000, 'DISCONNECT')).reasonCode).toBe(0x98);
    expect((await api(ref.b, 'GET', clientPath(id))).body).toMatchObject({ online: false });
    expect((await api(ref.b, 'DELETE', `${clientPath(id)}?discard=true`)).body).toEqual({ kicked: false, discarded: true });
    expect((await api(ref.b, 'GET', clientPath(id))).status).toBe(404);
    expect(pc.client.connected).toBe(true);
  });

  it('admin API: POST /publish sends as the broker, to IM topics only with a valid IM payload', async () => {
    const jim = uid('jim');
    const j = await dev(jim, 'pc');
    const topic = `notice/${uid('n')}`;
    await j.client.subscribeAsync(topic, { qos: 1 });
    expect((await api(ref.b, 'POST', '/publish', { topic, payload: 'plain text', qos: 1, retain: true })).body).toEqual({ published: true });
    const m = imPayload('system', 'from the admin');
    expect((await api(ref.b, 'POST', '/publish', { topic: inboxOf(jim), payloadBase64: m.toString('base64'), qos: 1 })).status).toBe(200);
    expect((await j.inbox.waitFor(1, 3000, topic))[0]!.payload).toBe('plain text');
    expect(Buffer.compare((await j.inbox.waitFor(1, 3000, inboxOf(jim)))[0]!.packet.payload as Buffer, m)).toBe(0);
    const late = await dev(uid('late'), 'x');
    await late.client.subscribeAsync(topic, { qos: 1 });
    expect((await late.inbox.waitFor(1))[0]!.packet.retain).toBe(true);
    await api(ref.b, 'POST', '/publish', { topic, payload: '', retain: true });
  });

  it('`switchboard admin` (the real CLI process) lists, adds and removes rules; a wrong token exits 1', { timeout: 60_000 }, async () => {
    const cli = async (...args: string[]) => {
      const c = run(TSX, ['src/cli.ts', 'admin', '--url', ref.b.httpUrl, ...args], { cwd: ROOT, env: { ...process.env, SWITCHBOARD_CONFIG: '' } });
      const code = await within(c.exited, 30_000, `admin ${args.join(' ')}`);
      return { code, out: c.stdout(), err: c.stderr() };
    };
    const listed = await cli('--token', ADMIN_TOKEN, 'rules');
    expect(listed.code, listed.err).toBe(0);
    expect(JSON.parse(listed.out).rules).toContainEqual(CARBONS);
    const id = uid('cli');
    rulesToDelete.push(id);
    const added = await cli('--token', ADMIN_TOKEN, 'rules', 'add', id, `/${NS}/im/u/${id}`, 'drop');
    expect([added.code, JSON.parse(added.out)]).toEqual([0, { id, source: `/${NS}/im/u/${id}`, action: 'drop' }]);
    expect((await api(ref.b, 'GET', `/rules/${id}`)).status).toBe(200);
    const removed = await cli('--token', ADMIN_TOKEN, 'rules', 'rm', id);
    expect([removed.code, JSON.parse(removed.out)]).toEqual([0, { deleted: true }]);
    expect((await api(ref.b, 'GET', `/rules/${id}`)).status).toBe(404);
    const denied = await cli('--token', 'wrong', 'rules');
    expect(denied.code).toBe(1);
    expect(denied.err).toMatch(/401/);
  });
});
