/**
 * Pre-subscription (IM-PROTOCOL.md 4, paper figure 2), offline delivery and presence
 * (IM-PROTOCOL.md 2), end to end in both topologies:
 *  - a user's new session is subscribed to its templates and directory topics before
 *    CONNACK: a message published the moment CONNACK arrives is not missed, by a client
 *    that never sends SUBSCRIBE (TCP and WebSocket, 5.0 and 3.1.1);
 *  - the event goes out on `$SYS/broker/im/presubscribe`;
 *  - template and directory changes through the admin API apply to existing sessions;
 *  - a persistent session gets what was sent while it was offline, all of it, in order;
 *  - presence: retained JSON {uid, online, devices, ts} on `/{ns}/im/p/{uid}`, updated on
 *    connect, DISCONNECT and lost connections, readable only inside the namespace.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { ISubackPacket } from 'mqtt-packet';
import { TOPOLOGIES } from '../helpers/broker.js';
import { ClientPool, TRANSPORTS, uid, urlOf, killSocket, type Opened, type Received } from '../helpers/clients.js';
import type { Version } from '../helpers/raw-client.js';
import { NS, imBroker, imPayload, inboxOf, groupOf, presenceOf, textOf, api, clientPath, eventually } from '../helpers/im.js';

const DEFAULT_TEMPLATES = ['/{ns}/im/u/{uid}'];
const vname = (v: Version) => (v === 5 ? '5.0' : '3.1.1');

interface Presence {
  uid: string;
  online: boolean;
  devices: number;
  ts: number;
}
const presence = (m: Received): Presence => JSON.parse(m.payload) as Presence;

describe.each(TOPOLOGIES)('IM pre-subscription and presence, %s topology', (topo) => {
  const ref = imBroker(topo, { im: { superusers: ['ops'] } });
  const pool = new ClientPool();
  afterEach(async () => {
    await pool.closeAll();
  });
  const con = (user: string, o: Parameters<ClientPool['connect']>[1] = {}) =>
    pool.connect(ref.b.tcpUrl, { protocolVersion: 5, username: user, clientId: `${user}/${uid('dev')}`, ...o });
  const persistent = (v: Version) => (v === 5 ? { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 } } : { protocolVersion: 4 as const, clean: false });
  /** Publishes probe messages until `box` got one on `topic` (for changes that settle asynchronously). */
  const until = (from: Opened, box: Opened, topic: string, make: (i: number) => Buffer | string) => {
    let i = 0;
    return eventually(async () => {
      if (box.inbox.msgs.some((m) => m.topic === topic)) return true;
      await from.client.publishAsync(topic, make(i++), { qos: 1 });
      return false;
    }, 5000, `a message on ${topic}`);
  };

  for (const t of TRANSPORTS) {
    for (const v of [5, 4] as const) {
      it(`IM-PROTOCOL 4 (${t}, ${vname(v)}): the inbox is subscribed before CONNACK; a message sent the moment CONNACK arrives is not missed`, async () => {
        const [jim, alice] = [uid('jim'), uid('alice')];
        const sender = await con(alice);
        const phone = await pool.raw(urlOf(ref.b, t), v);
        const clientId = `${jim}/phone`;
        // The sender publishes as soon as the receiver's CONNACK is parsed (no SUBSCRIBE, ever).
        const ack = await phone.connect({ clientId, username: jim });
        expect(ack.sessionPresent).toBe(false);
        const sent = sender.client.publishAsync(inboxOf(jim), imPayload(alice, 'right after login'), { qos: 1 });
        const p = await phone.next('publish', 3000);
        await sent;
        expect([p.topic, p.qos]).toEqual([inboxOf(jim), 1]);
        expect(p.payload.toString()).toContain('right after login');
        const detail = await api(ref.b, 'GET', clientPath(clientId));
        expect(detail.body.subscriptions).toEqual([{ filter: inboxOf(jim), qos: 1, presubscribed: true }]);
        expect(detail.body).toMatchObject({ clientId, uid: jim, online: true, protocolVersion: v });
      });
    }
  }

  it('IM-PROTOCOL 4: each new session is announced on $SYS/broker/im/presubscribe (templates + directory groups and topics); a resumed one is not', async () => {
    const [jim, kim] = [uid('jim'), uid('kim')];
    expect((await api(ref.b, 'PUT', `/directory/${jim}`, { groups: ['team-x'], topics: [`news/${jim}`] })).status).toBe(200);
    const ops = await con('ops');
    await ops.client.subscribeAsync('$SYS/broker/im/presubscribe', { qos: 0 });
    const events = () => ops.inbox.msgs.map((m) => JSON.parse(m.payload) as Record<string, unknown>).filter((e) => e.uid === jim || e.uid === kim);
    const t0 = Date.now();
    const pc = await con(jim, { clientId: `${jim}/pc`, ...persistent(5) });
    await eventually(() => events().length === 1, 3000, 'the first event');
    expect(events()[0]).toMatchObject({ uid: jim, ns: NS, clientId: `${jim}/pc`, first: true, topics: [inboxOf(jim), groupOf('team-x'), `news/${jim}`] });
    expect(events()[0]!.ts).toBeGreaterThanOrEqual(t0 - 1000);
    // The directory topics work like the inbox: no SUBSCRIBE needed.
    await ops.client.publishAsync(`news/${jim}`, 'extra edition', { qos: 1 });
    expect((await pc.inbox.waitFor(1, 2500, `news/${jim}`))[0]!.payload).toBe('extra edition');
    await pc.client.endAsync();
    const again = await con(jim, { clientId: `${jim}/pc`, ...persistent(5) });
    expect(again.connack.sessionPresent).toBe(true);
    await con(kim);
    await eventually(() => events().length === 2, 3000, "kim's event");
    expect(events().map((e) => [e.uid, e.first])).toEqual([[jim, true], [kim, true]]);
  });

  it('IM-PROTOCOL 4: PUT /presubscribe/templates applies to existing sessions and to new ones before CONNACK', async () => {
    const [jim, alice] = [uid('jim'), uid('alice')];
    const jimPc = await con(jim, { clientId: `${jim}-pc` });
    const sender = await con(alice);
    expect((await api(ref.b, 'GET', '/presubscribe/templates')).body).toEqual({ templates: DEFAULT_TEMPLATES });
    const templates = [...DEFAULT_TEMPLATES, '/{ns}/broadcast', 'devices/{clientid}'];
    try {
      expect(await api(ref.b, 'PUT', '/presubscribe/templates', { templates })).toMatchObject({ status: 200, body: { templates } });
      await until(sender, jimPc, `/${NS}/broadcast`, (i) => `all hands ${i}`);
      await until(sender, jimPc, `devices/${jim}-pc`, (i) => `device note ${i}`);
      const subs = (await api(ref.b, 'GET', clientPath(`${jim}-pc`))).body.subscriptions as Array<{ filter: string }>;
      expect(subs.map((s) => s.filter).sort()).toEqual([`/${NS}/broadcast`, inboxOf(jim), `devices/${jim}-pc`].sort());
      // A session created after the change has the new topics at CONNACK.
      const phone = await pool.raw(ref.b.tcpUrl, 5);
      await phone.connect({ clientId: uid(jim), username: jim });
      await sender.client.publishAsync(`/${NS}/broadcast`, 'second call', { qos: 1 });
      expect((await phone.next('publish', 3000)).payload.toString()).toBe('second call');
      expect((await api(ref.b, 'PUT', '/presubscribe/templates', { templates: ['/{ns}/im/u/{user}'] })).body.error).toMatch(/templates.*\{user\}/);
    } finally {
      expect((await api(ref.b, 'PUT', '/presubscribe/templates', { templates: DEFAULT_TEMPLATES })).status).toBe(200);
    }
    // Removed again: the broker drops what it had added (and only that).
    await eventually(async () => (await api(ref.b, 'GET', clientPath(`${jim}-pc`))).body.subscriptions.length === 1, 5000, 'the template subscriptions to go');
    await sender.client.publishAsync(`/${NS}/broadcast`, 'nobody listens', { qos: 1 });
    await sender.client.publishAsync(inboxOf(jim), imPayload(alice, 'marker'), { qos: 1 });
    await jimPc.inbox.waitFor(1, 2500, inboxOf(jim));
    expect(jimPc.inbox.msgs.map((m) => m.payload)).not.toContain('nobody listens');
  });

  it('IM-PROTOCOL 4: PUT /directory/{uid} with groups gives existing sessions the group and the right to subscribe; DELETE takes both away', async () => {
    const [jim, alice] = [uid('jim'), uid('alice')];
    const [pc, phone] = [await con(jim), await con(jim, { protocolVersion: 4 })];
    const sender = await con(alice);
    const team = uid('team');
    const sub = (o: Opened) => o.client.subscribeAsync(groupOf(team), { qos: 1 }).then((g) => g[0]!.qos, (e: { packet: ISubackPacket }) => e.packet.granted[0]);
    expect(await sub(pc)).toBe(0x87);
    expect((await api(ref.b, 'PUT', `/directory/${jim}`, { groups: [team] })).body).toEqual({ uid: jim, groups: [team] });
    await until(sender, phone, groupOf(team), (i) => imPayload(alice, `to the team ${i}`));
    await pc.inbox.waitFor(1, 2500, groupOf(team));
    expect(await sub(pc)).toBe(1);
    expect((await api(ref.b, 'GET', `/directory/${jim}`)).body).toEqual({ uid: jim, groups: [team] });
    expect((await api(ref.b, 'GET', '/directory')).body.users).toContainEqual({ uid: jim, groups: [team] });
    expect((await api(ref.b, 'DELETE', `/directory/${jim}`)).body).toEqual({ deleted: true });
    expect((await api(ref.b, 'GET', `/directory/${jim}`)).status).toBe(404);
    // The phone never subscribed itself: its group subscription was the broker's and goes.
    await eventually(async () => (await api(ref.b, 'GET', `/clients?uid=${jim}`)).body.clients.find((c: { protocolVersion: number }) => c.protocolVersion === 4)?.subscriptions === 1, 5000, 'the group pre-subscription to go');
    expect(await sub(phone)).toBe(0x80);
  });

  it('IM-PROTOCOL 4: a directory change is in effect when the admin API answers: a group message sent right after the 200 reaches the existing session', async () => {
    const [jim, alice] = [uid('jim'), uid('alice')];
    const pc = await con(jim);
    const sender = await con(alice);
    // Ten changes in a row, each followed at once by a message to the group just added.
    const teams = Array.from({ length: 10 }, () => uid('team'));
    for (const [i, team] of teams.entries()) {
      expect((await api(ref.b, 'PUT', `/directory/${jim}`, { groups: teams.slice(0, i + 1) })).status).toBe(200);
      await sender.client.publishAsync(groupOf(team), imPayload(alice, `first message to ${team}`), { qos: 1 });
    }
    await sender.client.publishAsync(inboxOf(jim), imPayload(alice, 'marker'), { qos: 1 });
    await pc.inbox.waitFor(1, 3000, inboxOf(jim));
    const missed = teams.filter((team) => !pc.inbox.msgs.some((m) => m.topic === groupOf(team)));
    expect(missed, 'groups whose first message was lost').toEqual([]);
  });

  it('a username that is not one topic level (\'+\', \'#\', \'a/b\') gets no inbox and no IM rights (it would widen the ACL)', async () => {
    for (const name of ['+', '#', `${uid('a')}/b`]) {
      const c = await con(name, { clientId: uid('odd') });
      const detail = (await api(ref.b, 'GET', clientPath(c.client.options.clientId!))).body;
      expect([detail.uid, detail.subscriptions], name).toEqual([undefined, []]);
      const granted = await c.client.subscribeAsync([inboxOf(name), `/${NS}/im/p/+`, 'chat/ok'], { qos: 1 }).catch((e: { packet: ISubackPacket }) => e.packet.granted);
      expect(granted, name).toEqual([0x87, 0x87, 1]);
    }
  });

  for (const v of [5, 4] as const) {
    it(`offline delivery (${vname(v)} persistent session): everything sent while Jim was offline arrives when he is back, in order`, async () => {
      const [jim, alice] = [uid('jim'), uid('alice')];
      const clientId = `${jim}/phone`;
      await (await con(jim, { clientId, ...persistent(v) })).client.endAsync();
      const sender = await con(alice, { clientId: `${alice}/pc` });
      const N = 25;
      for (let i = 0; i < N; i++) await sender.client.publishAsync(inboxOf(jim), imPayload(alice, `msg ${i}`), { qos: 1 });
      // The PUBACKs come from the gateway; the session's shard may still be queueing.
      const listed = await eventually(async () => {
        const l = (await api(ref.b, 'GET', `/clients?uid=${jim}`)).body.clients;
        return l.length === 1 && l[0].queued === N && l;
      }, 5000, `${N} queued messages`);
      expect(listed).toEqual([expect.objectContaining({ clientId, uid: jim, username: jim, online: false, queued: N, inflight: 0, subscriptions: 1 })]);
      const back = await con(jim, { clientId, ...persistent(v) });
      expect(back.connack.sessionPresent).toBe(true);
      const got = await back.inbox.waitFor(N, 5000);
      expect(got.map(textOf)).toEqual(Array.from({ length: N }, (_, i) => `msg ${i}`));
      expect(got.every((m) => m.topic === inboxOf(jim) && m.packet.qos === 1)).toBe(true);
    });
  }

  it('presence: retained {uid, online, devices, ts} follows connects, DISCONNECT and lost connections', async () => {
    const [jim, alice] = [uid('jim'), uid('alice')];
    const watcher = await con(alice);
    await watcher.client.subscribeAsync(presenceOf(jim), { qos: 1 });
    const states = async (n: number) => (await watcher.inbox.waitFor(n, 3000, presenceOf(jim))).map(presence);
    const t0 = Date.now();
    const pc = await con(jim);
    expect((await states(1))[0]).toMatchObject({ uid: jim, online: true, devices: 1 });
    expect((await states(1))[0]!.ts).toBeGreaterThanOrEqual(t0 - 1000);
    const phone = await pool.connect(ref.b.wsUrl, { protocolVersion: 4, username: jim, clientId: uid(jim) });
    expect((await states(2))[1]).toMatchObject({ online: true, devices: 2 });
    await pc.client.endAsync();
    expect((await states(3))[2]).toMatchObject({ online: true, devices: 1 });
    // A later subscriber gets the current state, retained.
    const late = await con(alice);
    await late.client.subscribeAsync(`/${NS}/im/p/+`, { qos: 1 });
    const [r] = await late.inbox.waitFor(1, 3000, presenceOf(jim));
    expect([r!.packet.retain, presence(r!).devices]).toEqual([true, 1]);
    await killSocket(phone.client);
    expect((await states(4))[3]).toMatchObject({ uid: jim, online: false, devices: 0 });
  });

  it('presence is private to the namespace: a user of another namespace cannot subscribe to it; each user is announced in their own namespace', async () => {
    const [jim, gus] = [uid('jim'), uid('gus')];
    expect((await api(ref.b, 'PUT', `/directory/${gus}`, { ns: 'globex' })).status).toBe(200);
    for (const v of [5, 4] as const) {
      const g = await con(gus, { protocolVersion: v });
      const denied = await g.client.subscribeAsync([`/${NS}/im/p/+`, presenceOf(jim), '/+/im/p/+'], { qos: 1 }).catch((e: { packet: ISubackPacket }) => e.packet.granted);
      const no = v === 5 ? 0x87 : 0x80;
      expect(denied).toEqual([no, no, no]);
      expect((await g.client.subscribeAsync(presenceOf(jim, 'globex'), { qos: 1 }))[0]!.qos).toBe(1);
    }
    const ops = await con('ops');
    await ops.client.subscribeAsync('/+/im/p/+', { qos: 1, rh: 2 });
    const acme = await con(jim);
    await acme.client.subscribeAsync(`/${NS}/im/p/+`, { qos: 1, rh: 2 });
    const gus2 = await con(gus);
    const [seen] = await ops.inbox.waitFor(1, 3000, presenceOf(gus, 'globex'));
    expect(presence(seen!)).toMatchObject({ uid: gus, online: true });
    await gus2.client.endAsync();
    await ops.inbox.waitFor(2, 3000, presenceOf(gus, 'globex'));
    // Published after gus's presence: once acme's watcher has it, gus's would have been there too.
    const other = uid('amy');
    await con(other);
    await acme.inbox.waitFor(1, 3000, presenceOf(other));
    expect(acme.inbox.msgs.filter((m) => m.payload.includes(gus))).toEqual([]);
    expect(ops.inbox.msgs.filter((m) => m.topic === presenceOf(gus))).toEqual([]);
  });
});

