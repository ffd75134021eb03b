/**
 * Authentication against a users file (scrypt hashes, written with addUser) with
 * anonymous access off, and topic ACLs from the config with %u placeholders, checked
 * end to end through real sockets in both topologies and both protocol versions:
 *  - good password: CONNACK 0; bad password / unknown user: 0x86 (5.0) / 0x04 (3.1.1);
 *    no username: 0x87 / 0x05;
 *  - denied subscription: SUBACK 0x87 (5.0) / 0x80 (3.1.1), allowed ones in the same
 *    SUBSCRIBE are granted;
 *  - denied publish: 5.0 gets PUBACK/PUBREC 0x87, 3.1.1 a normal ack (it has no negative
 *    ack); either way no subscriber ever gets the message.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { IConnackPacket, IPubackPacket, IPubrecPacket, ISubackPacket } from 'mqtt-packet';
import { addUser } from '../../src/auth/users-file.js';
import type { AclRule } from '../../src/config/schema.js';
import { startTestBroker, TOPOLOGIES, metric, type TestBroker } from '../helpers/broker.js';
import { RawClient, type Version } from '../helpers/raw-client.js';

const USERS = { alice: 'alice-secret', bob: 'bob-secret' } as const;

const ACL: AclRule[] = [
  // Everyone owns users/<own name>/..., except a read-only corner.
  { action: 'deny', permission: 'publish', topic: 'users/%u/readonly' },
  { action: 'allow', permission: 'all', topic: 'users/%u/#' },
  // Everyone reads public/#, but writes only public/<own name>.
  { action: 'allow', permission: 'subscribe', topic: 'public/#' },
  { action: 'allow', permission: 'publish', topic: 'public/%u' },
];

let seq = 0;
const uid = (p: string) => `${p}-${process.pid}-${++seq}`;

function connackCode(c: IConnackPacket, v: Version): number | undefined {
  return v === 5 ? c.reasonCode : c.returnCode;
}

function errorCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

describe.each(TOPOLOGIES)('auth and ACL, %s topology', (topo) => {
  let b: TestBroker;
  let dir: string;
  const raws = new Set<RawClient>();
  const clients: MqttClient[] = [];

  const raw = async (v: Version) => {
    const c = await RawClient.open(b.tcpUrl, v);
    raws.add(c);
    return c;
  };
  /** Connects as `user` (password from USERS when undefined, none when null); returns the client and its CONNACK code. */
  const rawAs = async (v: Version, user?: keyof typeof USERS | string, password?: string | null) => {
    const c = await raw(v);
    const pw = password === null ? undefined : (password ?? (user ? USERS[user as keyof typeof USERS] : undefined));
    const ack = await c.connect({ clientId: uid(user ?? 'anon'), username: user, password: pw === undefined ? undefined : Buffer.from(pw) }, 5000);
    return { c, code: connackCode(ack, v) };
  };
  const mqttAs = async (v: 4 | 5, user: keyof typeof USERS) => {
    const c = await mqtt.connectAsync(b.tcpUrl, {
      protocolVersion: v,
      username: user,
      password: USERS[user],
      clientId: uid(user),
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-auth-'));
    const usersFile = join(dir, 'users');
    for (const [u, p] of Object.entries(USERS)) await addUser(usersFile, u, p);
    b = await startTestBroker(topo, {
      auth: { usersFile, allowAnonymous: false, aclDefault: 'deny', acl: ACL },
    });
  });
  afterAll(async () => {
    await b?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const r of raws) r.destroy();
    await Promise.all([...raws].map((r) => r.closed));
    raws.clear();
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });

  for (const v of [4, 5] as const) {
    const name = v === 5 ? '5.0' : '3.1.1';

    it(`${name}: the right password connects`, async () => {
      for (const user of ['alice', 'bob'] as const) {
        const { c, code } = await rawAs(v, user);
        expect(code, user).toBe(0);
        expect(c.isClosed).toBe(false);
      }
      // and MQTT.js agrees
      const m = await mqttAs(v, 'alice');
      expect(m.connected).toBe(true);
    });

    it(`${name}: a wrong password or unknown user gets ${v === 5 ? '0x86' : '0x04'} and is closed`, async () => {
      const expected = v === 5 ? 0x86 : 0x04;
      const before = await metric(b, 'auth_failures_total');
      for (const [user, pw] of [
        ['alice', 'bob-secret'],
        ['alice', ''],
        ['mallory', 'whatever'],
      ] as const) {
        const { c, code } = await rawAs(v, user, pw);
        expect(code, `${user}/${pw}`).toBe(expected);
        expect(await c.closesWithin(3000)).toBe(true);
      }
      // a username without a password is refused the same way
      const { c, code } = await rawAs(v, 'alice', null);
      expect(code).toBe(expected);
      expect(await c.closesWithin(3000)).toBe(true);
      expect(await metric(b, 'auth_failures_total')).toBe(before + 4);
      // MQTT.js sees the same code as an error
      const err = await mqtt
        .connectAsync(b.tcpUrl, { protocolVersion: v, username: 'bob', password: 'nope', reconnectPeriod: 0, connectTimeout: 5000 })
        .then((m) => {
          clients.push(m);
          return undefined;
        }, (e: unknown) => e);
      expect(errorCode(err)).toBe(expected);
    });

    it(`${name}: anonymous clients are refused (${v === 5 ? '0x87' : '0x05'})`, async () => {
      const { c, code } = await rawAs(v, undefined);
      expect(code).toBe(v === 5 ? 0x87 : 0x05);
      expect(await c.closesWithin(3000)).toBe(true);
    });

    it(`${name}: a will on a topic the user may not publish to is refused at CONNECT`, async () => {
      const c = await raw(v);
      const ack = await c.connect({
        clientId: uid('alice'),
        username: 'alice',
        password: Buffer.from(USERS.alice),
        will: { topic: 'users/bob/will', payload: Buffer.from('x'), qos: 0, retain: false },
      }, 5000);
      expect(connackCode(ack, v)).toBe(v === 5 ? 0x87 : 0x05);
      expect(await c.closesWithin(3000)).toBe(true);
    });

    it(`${name}: denied subscriptions get ${v === 5 ? '0x87' : '0x80'}, allowed ones in the same SUBSCRIBE are granted`, async () => {
      const { c: alice, code } = await rawAs(v, 'alice');
      expect(code).toBe(0);
      alice.send({
        cmd: 'subscribe',
        messageId: 11,
        subscriptions: [
          { topic: 'users/alice/#', qos: 1 }, // %u = alice
          { topic: 'users/bob/#', qos: 1 }, // someone else's tree
          { topic: 'public/#', qos: 2 },
          { topic: 'users/+/inbox', qos: 0 }, // wider than users/alice/#
          { topic: '#', qos: 0 }, // everything
          { topic: 'secret', qos: 0 }, // no rule: aclDefault deny
        ],
      });
      const suback = (await alice.next('suback', 3000)) as ISubackPacket;
      const no = v === 5 ? 0x87 : 0x80;
      expect(suback.messageId).toBe(11);
      expect(suback.granted).toEqual([1, no, 2, no, no, no]);
      // The connection stays usable.
      alice.send({ cmd: 'publish', topic: 'users/alice/self', payload: Buffer.from('me'), qos: 1, messageId: 12, dup: false, retain: false });
      const own = await alice.next('publish', 3000);
      expect([own.topic, own.payload.toString()]).toEqual(['users/alice/self', 'me']);

      // MQTT.js reports the refusal as an error carrying the SUBACK.
      const m = await mqttAs(v, 'bob');
      const err = await m.subscribeAsync('users/alice/#', { qos: 1 }).then(() => undefined, (e: unknown) => e);
      expect((err as { packet?: ISubackPacket }).packet?.granted).toEqual([no]);
    });

    it(`${name}: denied publishes are ${v === 5 ? 'answered 0x87' : 'acknowledged and dropped'}; subscribers never get them`, async () => {
      const bob = await mqttAs(5, 'bob');
      const got: string[] = [];
      bob.on('message', (t, p) => got.push(`${t} ${p.toString()}`));
      await bob.subscribeAsync(['users/bob/#', 'public/#'], { qos: 2 });

      const { c: alice, code } = await rawAs(v, 'alice');
      expect(code).toBe(0);
      const deniedBefore = await metric(b, 'publish_denied_total');

      // QoS 1 and 2 into bob's tree, QoS 1 to bob's public topic, QoS 1 to alice's own read-only corner.
      alice.send({ cmd: 'publish', topic: 'users/bob/inbox', payload: Buffer.from('q1'), qos: 1, messageId: 1, dup: false, retain: false });
      alice.send({ cmd: 'publish', topic: 'users/bob/inbox', payload: Buffer.from('q2'), qos: 2, messageId: 2, dup: false, retain: false });
      alice.send({ cmd: 'publish', topic: 'users/bob/inbox', payload: Buffer.from('q0'), qos: 0, dup: false, retain: false });
      alice.send({ cmd: 'publish', topic: 'public/bob', payload: Buffer.from('impostor'), qos: 1, messageId: 3, dup: false, retain: true });
      alice.send({ cmd: 'publish', topic: 'users/alice/readonly', payload: Buffer.from('ro'), qos: 1, messageId: 4, dup: false, retain: false });
      const puback1 = (await alice.next('puback', 3000)) as IPubackPacket;
      const pubrec2 = (await alice.next('pubrec', 3000)) as IPubrecPacket;
      const puback3 = (await alice.next('puback', 3000)) as IPubackPacket;
      const puback4 = (await alice.next('puback', 3000)) as IPubackPacket;
      expect([puback1.messageId, pubrec2.messageId, puback3.messageId, puback4.messageId]).toEqual([1, 2, 3, 4]);
      const rc = (p: IPubackPacket | IPubrecPacket) => p.reasonCode ?? 0;
      if (v === 5) expect([puback1, pubrec2, puback3, puback4].map(rc)).toEqual([0x87, 0x87, 0x87, 0x87]);
      else expect([puback1, pubrec2, puback3, puback4].map(rc)).toEqual([0, 0, 0, 0]);
      if (v === 4) {
        // 3.1.1 finishes the QoS 2 flow normally.
        alice.send({ cmd: 'pubrel', messageId: 2 });
        expect((await alice.next('pubcomp', 3000)).messageId).toBe(2);
      }

      // Allowed publishes after the denied ones do arrive (so the pipe works and the denied ones
      // would have had their chance to show up first).
      alice.send({ cmd: 'publish', topic: 'public/alice', payload: Buffer.from('hello bob'), qos: 1, messageId: 5, dup: false, retain: false });
      expect(rc((await alice.next('puback', 3000)) as IPubackPacket)).toBe(0);
      const deadline = Date.now() + 3000;
      while (!got.includes('public/alice hello bob') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      expect(got).toEqual(['public/alice hello bob']);
      expect(await metric(b, 'publish_denied_total')).toBe(deniedBefore + 5);

      // The denied retained publish left nothing behind for later subscribers.
      const late = await mqttAs(5, 'bob');
      const lateGot: string[] = [];
      late.on('message', (t) => lateGot.push(t));
      await late.subscribeAsync('public/bob', { qos: 1 });
      await new Promise((r) => setTimeout(r, 200));
      expect(lateGot).toEqual([]);
    });

    it(`${name}: %u grants each user their own tree, and MQTT.js sees ${v === 5 ? 'a 0x87 publish error' : 'a normal ack'} for a denied publish`, async () => {
      const bob = await mqttAs(v, 'bob');
      const got: string[] = [];
      bob.on('message', (t, p) => got.push(`${t} ${p.toString()}`));
      await bob.subscribeAsync('users/bob/#', { qos: 1 });
      await bob.publishAsync('users/bob/notes', 'mine', { qos: 1 });
      const alice = await mqttAs(v, 'alice');
      const res = await alice.publishAsync('users/bob/notes', 'not yours', { qos: 1 }).then(() => 'acked', (e: unknown) => e);
      if (v === 5) expect(errorCode(res)).toBe(0x87);
      else expect(res).toBe('acked');
      await alice.publishAsync('users/alice/notes', 'own tree', { qos: 1 }); // allowed, nobody listening
      await bob.publishAsync('users/bob/notes', 'mine again', { qos: 1 });
      const deadline = Date.now() + 3000;
      while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(got).toEqual(['users/bob/notes mine', 'users/bob/notes mine again']);
    });
  }
});
