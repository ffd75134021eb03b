/**
 * The IM paths of the pure channel layer (IM-PROTOCOL.md sections 2 and 3): the IM ACL,
 * payload validation and the sender check on PUBLISH (im-check.ts via publish.ts), the IM
 * ACL on SUBSCRIBE, and the IM bits of CONNECT (a will on an IM topic, the uid/ns handed
 * to the shard, the reserved '$hold/' client ids). No sockets, no threads: handlers are
 * driven directly and their effects inspected.
 */
import { describe, it, expect } from 'vitest';
import mqtt, { type IConnectPacket, type IPublishPacket, type ISubscribePacket, type Packet } from 'mqtt-packet';
import {
  afterAuth,
  handleIn,
  newChannelState,
  sessionReady,
  type AclView,
  type ChannelEnv,
  type ChannelState,
  type Effect,
  type ImEnv,
} from '../../../src/channel/index.js';
import { checkImPublish } from '../../../src/channel/im-check.js';
import { decodeImPayload, encodeImPayload, IM_PAYLOAD_ERROR_CODES, type ImMessage } from '../../../src/im/index.js';
import type { ImUser } from '../../../src/im/im-acl.js';
import { parseImTopic } from '../../../src/im/topics.js';
import { LIMITS, allowAll, closeOf, connectPacket as baseConnectPacket, connectedState, makeEnv as makeChannelEnv, routedAcks, routes, sent, shardMsg } from './channel-env.js';

const ALICE: ImUser = { uid: 'alice', ns: 'acme', groups: ['team'] };

function makeEnv(im: Partial<ImEnv> | null = {}, acl: AclView = allowAll): ChannelEnv {
  let n = 0;
  return makeChannelEnv({
    acl,
    newClientId: () => `auto-${++n}`,
    im: im === null ? null : { senderCheck: 'refuse', superusers: new Set(['root']), ...im },
  });
}

function connectPacket(version: 3 | 4 | 5, over: Partial<IConnectPacket> = {}): IConnectPacket {
  return baseConnectPacket(version, { clientId: 'alice/phone', username: 'alice', ...over });
}

/**
 * CONNECT -> auth ok (with the IM identity) -> session ready: a channel in phase `connected`.
 * `im` null: the connection has no IM identity (null rather than undefined, which would
 * pick the default).
 */
function connected(version: 3 | 4 | 5, env: ChannelEnv, im: ImUser | null = ALICE, over: Partial<IConnectPacket> = {}): ChannelState {
  const st = connectedState(version, env, { connect: { clientId: 'alice/phone', username: 'alice', ...over }, im: im ?? undefined });
  expect(st.im).toEqual(im ?? undefined);
  return st;
}

function msg(over: Partial<ImMessage> = {}): ImMessage {
  return { sender: 'alice', ts: 1_700_000_000, kind: 0, media: 0, content: { con: [{ ty: 0, co: 'hello' }] }, ...over };
}

function publish(topic: string, payload: Buffer, over: Partial<IPublishPacket> = {}): IPublishPacket {
  return { cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false, messageId: 7, ...over };
}

function subscribe(topics: string[]): ISubscribePacket {
  return { cmd: 'subscribe', messageId: 5, subscriptions: topics.map((topic) => ({ topic, qos: 1 as const })) };
}

const counts = (fx: Effect[]): string[] => fx.flatMap((e) => (e.e === 'count' ? [e.series] : []));
const subCodes = (fx: Effect[]): number[] => {
  const m = shardMsg(fx);
  if (m?.t !== 'subscribe') throw new Error('expected a subscribe message to the shard');
  return m.subs.map((s) => s.code);
};

/** A payload whose Con-len runs past the end: the decoder reports CONTENT_OVERRUN. */
function overrunPayload(): Buffer {
  const good = encodeImPayload(msg());
  return good.subarray(0, good.length - 3);
}

describe('IM publish: valid messages (IM-PROTOCOL 2, 3)', () => {
  it('a well-formed message from the publisher itself is routed with from = { uid, clientId } and acknowledged', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const payload = encodeImPayload(msg());
    const fx = handleIn(st, publish('/acme/im/u/jim', payload), env);
    const r = routes(fx);
    expect(r).toHaveLength(1);
    expect(r[0]!.from).toEqual({ uid: 'alice', clientId: 'alice/phone' });
    expect(r[0]!.msg).toMatchObject({ topic: '/acme/im/u/jim', qos: 1, retain: false, origin: 'alice/phone' });
    // Unchanged bytes: only a rewrite may touch the payload.
    expect(Buffer.from(r[0]!.msg.payload).equals(payload)).toBe(true);
    expect(sent(fx)).toEqual([]);
    expect(routedAcks(fx)).toEqual([{ cmd: 'puback', messageId: 7 }]);
    expect(counts(fx).some((c) => c.startsWith('im_'))).toBe(false);
  });

  it('a group of the own namespace may be posted to without being a member (im-acl.ts)', () => {
    const env = makeEnv();
    const st = connected(5, env);
    for (const topic of ['/acme/im/g/team', '/acme/im/g/sales']) {
      expect(routes(handleIn(st, publish(topic, encodeImPayload(msg())), env)), topic).toHaveLength(1);
    }
  });

  it('an empty Sender (allowed by the format) from a user with a uid is a spoof: 0x87', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', encodeImPayload(msg({ sender: '' }))), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toMatchObject([{ cmd: 'puback', reasonCode: 0x87 }]);
  });

  it('non-IM topics are not checked even when IM is on', () => {
    const env = makeEnv();
    const st = connected(5, env);
    for (const topic of ['acme/im/u/jim', 'chat/room', '/acme/chat/x', '/acme/imx/u/jim']) {
      const fx = handleIn(st, publish(topic, Buffer.from('not an IM payload')), env);
      expect(routes(fx), topic).toHaveLength(1);
      expect(sent(fx), topic).toEqual([]);
      expect(routedAcks(fx), topic).toEqual([{ cmd: 'puback', messageId: 7 }]);
    }
  });
});

describe('IM publish: invalid payloads (IM-PROTOCOL 3, reason 0x99)', () => {
  it('v5: PUBACK 0x99 with a reason string, no route, counter im_payload_invalid_total{code}', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', overrunPayload()), env);
    expect(routes(fx)).toEqual([]);
    const pk = sent(fx);
    expect(pk).toHaveLength(1);
    expect(pk[0]).toMatchObject({ cmd: 'puback', messageId: 7, reasonCode: 0x99 });
    const reason = (pk[0] as { properties?: { reasonString?: string } }).properties?.reasonString;
    expect(reason).toMatch(/Con-len/);
    expect(counts(fx)).toContain('im_payload_invalid_total{code="CONTENT_OVERRUN"}');
    const log = fx.find((e) => e.e === 'log');
    expect(log).toMatchObject({ data: { why: 'im_payload_invalid', uid: 'alice', topic: '/acme/im/u/jim' } });
  });

  it('v5: each kind of broken payload is counted under its own code', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const cases: Array<[Buffer, string]> = [
      [Buffer.alloc(0), 'EMPTY'],
      [Buffer.from([5, 0x61]), 'SENDER_OVERRUN'],
      [Buffer.concat([encodeImPayload(msg()), Buffer.from([0])]), 'TRAILING_BYTES'],
      // Valid framing, Content JSON without `con`.
      [(() => {
        const json = Buffer.from('{"x":1}');
        const head = Buffer.from([5, ...Buffer.from('alice'), 0, 0, 0, 1, 0, 0, 0, 0, json.length]);
        return Buffer.concat([head, json]);
      })(), 'CON_MISSING'],
    ];
    for (const [payload, code] of cases) {
      expect(IM_PAYLOAD_ERROR_CODES).toContain(code);
      const fx = handleIn(st, publish('/acme/im/g/team', payload), env);
      expect(sent(fx), code).toMatchObject([{ cmd: 'puback', reasonCode: 0x99 }]);
      expect(counts(fx), code).toContain(`im_payload_invalid_total{code="${code}"}`);
      expect(routes(fx), code).toEqual([]);
    }
  });

  it('3.1.1: there is no negative PUBACK, so the message is acknowledged as a success, dropped and counted', () => {
    const env = makeEnv();
    const st = connected(4, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', overrunPayload()), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toEqual([{ cmd: 'puback', messageId: 7, reasonCode: 0 }]);
    expect(counts(fx)).toContain('im_payload_invalid_total{code="CONTENT_OVERRUN"}');
  });

  it('QoS 0: nothing to acknowledge, the message is dropped and counted', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', overrunPayload(), { qos: 0, messageId: undefined }), env);
    expect(sent(fx)).toEqual([]);
    expect(routes(fx)).toEqual([]);
    expect(counts(fx)).toContain('im_payload_invalid_total{code="CONTENT_OVERRUN"}');
  });

  it('[MQTT-4.3.3-9] QoS 2 v5: PUBREC carries 0x99, the packet id is not kept, and a later PUBLISH with it is new', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', overrunPayload(), { qos: 2, messageId: 9 }), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'pubrec', messageId: 9, reasonCode: 0x99 }]);
    expect(routes(fx)).toEqual([]);
    // A PUBREC with a reason >= 0x80 ends the exchange, so the id must not stay in the
    // unreleased set (it would count against Receive Maximum forever) ...
    expect(st.qos2In.has(9)).toBe(false);
    // ... and the next PUBLISH with that id is a new Application Message [MQTT-4.3.3-9].
    const again = handleIn(st, publish('/acme/im/u/jim', encodeImPayload(msg()), { qos: 2, messageId: 9 }), env);
    expect(routes(again)).toHaveLength(1);
    expect(sent(again)).toEqual([]);
    expect(routedAcks(again)).toEqual([{ cmd: 'pubrec', messageId: 9 }]);
  });

  it('QoS 2 3.1.1: PUBREC success, nothing routed', () => {
    const env = makeEnv();
    const st = connected(4, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', overrunPayload(), { qos: 2, messageId: 9 }), env);
    expect(sent(fx)).toEqual([{ cmd: 'pubrec', messageId: 9, reasonCode: 0 }]);
    expect(routes(fx)).toEqual([]);
  });
});

describe('IM publish: sender check (IM-PROTOCOL 3, anti-spoofing)', () => {
  it("senderCheck 'refuse': a Sender that is not the uid gets 0x87 with a reason string and a counter", () => {
    const env = makeEnv({ senderCheck: 'refuse' });
    const st = connected(5, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', encodeImPayload(msg({ sender: 'mallory' }))), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toEqual([
      { cmd: 'puback', messageId: 7, reasonCode: 0x87, properties: { reasonString: 'Sender "mallory" is not the authenticated uid' } },
    ]);
    expect(counts(fx)).toContain('im_sender_mismatch_total');
  });

  // The reason string is optional; the client's Maximum Packet Size is not. A client that
  // announced a small maximum must not receive a PUBACK it has to treat as oversized.
  it('[MQTT-3.4.2-2] the reason string is left out when it would push the PUBACK past the client Maximum Packet Size', () => {
    const env = makeEnv({ senderCheck: 'refuse' });
    const st = connected(5, env, ALICE, { properties: { maximumPacketSize: 16 } });
    expect(st.maxPacketSizeOut).toBe(16);
    for (const payload of [encodeImPayload(msg({ sender: 'mallory' })), overrunPayload()]) {
      const fx = handleIn(st, publish('/acme/im/u/jim', payload), env);
      const ack = sent(fx)[0]!;
      expect(ack).toMatchObject({ cmd: 'puback', messageId: 7 });
      // The refusal itself (the reason code) is still reported.
      expect((ack as { reasonCode?: number }).reasonCode).toBeGreaterThanOrEqual(0x80);
      expect(mqtt.generate(ack, { protocolVersion: 5 }).length).toBeLessThanOrEqual(16);
    }
  });

  it("senderCheck 'refuse', 3.1.1: dropped with a success PUBACK and counted", () => {
    const env = makeEnv({ senderCheck: 'refuse' });
    const st = connected(4, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', encodeImPayload(msg({ sender: 'mallory' }))), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toEqual([{ cmd: 'puback', messageId: 7, reasonCode: 0 }]);
    expect(counts(fx)).toContain('im_sender_mismatch_total');
  });

  it("senderCheck 'rewrite': the message is routed with Sender = uid, everything else unchanged, and counted", () => {
    const env = makeEnv({ senderCheck: 'rewrite' });
    const st = connected(5, env);
    const original = msg({ sender: 'mallory', ts: 123456, kind: 2, media: 1, content: { con: [{ ty: 1, co: 'https://h/f', fn: { name: 'a.jpg', size: '10' } }], x: 1 } });
    const fx = handleIn(st, publish('/acme/im/u/jim', encodeImPayload(original)), env);
    const r = routes(fx);
    expect(r).toHaveLength(1);
    expect(decodeImPayload(r[0]!.msg.payload)).toEqual({ ...original, sender: 'alice' });
    expect(sent(fx)).toEqual([]);
    expect(routedAcks(fx)).toEqual([{ cmd: 'puback', messageId: 7 }]);
    expect(counts(fx)).toContain('im_sender_rewritten_total');
    expect(counts(fx)).not.toContain('im_sender_mismatch_total');
  });

  it("senderCheck 'rewrite' does not touch (or count) a message whose Sender is already the uid", () => {
    const env = makeEnv({ senderCheck: 'rewrite' });
    const st = connected(5, env);
    const payload = encodeImPayload(msg());
    const fx = handleIn(st, publish('/acme/im/u/jim', payload), env);
    expect(Buffer.from(routes(fx)[0]!.msg.payload).equals(payload)).toBe(true);
    expect(counts(fx)).not.toContain('im_sender_rewritten_total');
  });

  it("senderCheck 'rewrite' still refuses an invalid payload with 0x99 (nothing to rewrite)", () => {
    const env = makeEnv({ senderCheck: 'rewrite' });
    const st = connected(5, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', overrunPayload()), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'puback', reasonCode: 0x99 }]);
    expect(routes(fx)).toEqual([]);
  });

  it('QoS 2 v5: a spoofed Sender gets PUBREC 0x87', () => {
    const env = makeEnv({ senderCheck: 'refuse' });
    const st = connected(5, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', encodeImPayload(msg({ sender: 'bob' })), { qos: 2, messageId: 11 }), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'pubrec', messageId: 11, reasonCode: 0x87 }]);
    expect(st.qos2In.has(11)).toBe(false);
  });

  it('[MQTT-4.3.3-10] QoS 2 v5: a valid message gets a plain PUBREC and its id is remembered until PUBREL', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', encodeImPayload(msg()), { qos: 2, messageId: 12 }), env);
    expect(sent(fx)).toEqual([]);
    expect(routedAcks(fx)).toEqual([{ cmd: 'pubrec', messageId: 12 }]);
    expect(routes(fx)).toHaveLength(1);
    expect(st.qos2In.has(12)).toBe(true);
  });
});

describe('IM publish: IM ACL (IM-PROTOCOL 2)', () => {
  it('presence topics are broker-made: publishing one gets 0x87 and publish_denied_total', () => {
    const env = makeEnv();
    const st = connected(5, env);
    for (const topic of ['/acme/im/p/alice', '/acme/im/p/jim']) {
      const fx = handleIn(st, publish(topic, Buffer.from('{"online":true}')), env);
      expect(routes(fx), topic).toEqual([]);
      expect(sent(fx), topic).toEqual([
        { cmd: 'puback', messageId: 7, reasonCode: 0x87, properties: { reasonString: 'presence topics are maintained by the broker' } },
      ]);
      expect(counts(fx), topic).toContain('publish_denied_total');
    }
  });

  it('another namespace gets 0x87 naming the namespace, even with a valid payload', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(st, publish('/globex/im/u/jim', encodeImPayload(msg())), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toEqual([
      { cmd: 'puback', messageId: 7, reasonCode: 0x87, properties: { reasonString: 'not allowed to publish to namespace globex' } },
    ]);
    expect(counts(fx)).toContain('publish_denied_total');
  });

  it("kind 'other' IM topics are refused with 0x87", () => {
    const env = makeEnv();
    const st = connected(5, env);
    for (const topic of ['/acme/im', '/acme/im/u', '/acme/im/u/jim/x', '/acme/im/x/y']) {
      const fx = handleIn(st, publish(topic, encodeImPayload(msg())), env);
      expect(sent(fx), topic).toMatchObject([{ cmd: 'puback', reasonCode: 0x87, properties: { reasonString: 'not allowed to publish to this IM topic' } }]);
      expect(routes(fx), topic).toEqual([]);
    }
  });

  it('the IM ACL is checked before the payload: a bad payload to another namespace is 0x87, not 0x99', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(st, publish('/globex/im/u/jim', overrunPayload()), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'puback', reasonCode: 0x87 }]);
    expect(counts(fx).some((c) => c.startsWith('im_payload_invalid_total'))).toBe(false);
  });

  it('a connection without an IM identity may not publish to IM topics', () => {
    const env = makeEnv();
    const st = connected(5, env, null, { username: 'guest' });
    const fx = handleIn(st, publish('/acme/im/u/jim', encodeImPayload(msg({ sender: 'guest' }))), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'puback', reasonCode: 0x87 }]);
    expect(routes(fx)).toEqual([]);
  });

  it('the configured MQTT ACL still applies on top of the IM ACL', () => {
    const env = makeEnv({}, { canPublish: (_c, t) => t !== '/acme/im/u/jim', canSubscribe: () => true });
    const st = connected(5, env);
    const fx = handleIn(st, publish('/acme/im/u/jim', encodeImPayload(msg())), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'puback', reasonCode: 0x87 }]);
    expect(routes(fx)).toEqual([]);
  });
});

describe('IM publish: superusers and IM disabled', () => {
  it('a superuser bypasses the IM ACL and the sender check (any namespace, any Sender, presence)', () => {
    const env = makeEnv({ senderCheck: 'refuse', superusers: new Set(['root']) });
    const st = connected(5, env, null, { username: 'root', clientId: 'ops-console' });
    const spoof = encodeImPayload(msg({ sender: 'anyone' }));
    for (const topic of ['/acme/im/u/jim', '/globex/im/g/x']) {
      const fx = handleIn(st, publish(topic, spoof), env);
      expect(sent(fx), topic).toEqual([]);
      expect(routedAcks(fx), topic).toEqual([{ cmd: 'puback', messageId: 7 }]);
      const r = routes(fx);
      expect(r, topic).toHaveLength(1);
      expect(Buffer.from(r[0]!.msg.payload).equals(spoof)).toBe(true);
      expect(r[0]!.from).toEqual({ uid: undefined, clientId: 'ops-console' });
    }
    // Presence is broker-made JSON, not an IM payload: a superuser may write it as is.
    const fx = handleIn(st, publish('/acme/im/p/jim', Buffer.from('{"online":false}')), env);
    expect(routes(fx)).toHaveLength(1);
  });

  it("a superuser's message is not rewritten in 'rewrite' mode", () => {
    const env = makeEnv({ senderCheck: 'rewrite', superusers: new Set(['alice']) });
    const st = connected(5, env); // username alice, uid alice, and a superuser
    const spoof = encodeImPayload(msg({ sender: 'system' }));
    const fx = handleIn(st, publish('/acme/im/u/jim', spoof), env);
    expect(Buffer.from(routes(fx)[0]!.msg.payload).equals(spoof)).toBe(true);
    expect(counts(fx)).not.toContain('im_sender_rewritten_total');
  });

  it('a superuser still cannot send an invalid payload on an IM topic (0x99)', () => {
    const env = makeEnv({ superusers: new Set(['root']) });
    const st = connected(5, env, null, { username: 'root' });
    const fx = handleIn(st, publish('/acme/im/u/jim', overrunPayload()), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'puback', reasonCode: 0x99 }]);
  });

  it('im null (IM disabled): IM topics are plain topics, nothing is checked or rewritten', () => {
    const env = makeEnv(null);
    const st = connected(5, env, null);
    for (const [topic, payload] of [
      ['/acme/im/p/alice', Buffer.from('x')],
      ['/globex/im/u/jim', overrunPayload()],
      ['/acme/im/u/jim', encodeImPayload(msg({ sender: 'mallory' }))],
    ] as const) {
      const fx = handleIn(st, publish(topic, payload), env);
      expect(sent(fx), topic).toEqual([]);
      expect(routedAcks(fx), topic).toEqual([{ cmd: 'puback', messageId: 7 }]);
      expect(routes(fx), topic).toHaveLength(1);
      expect(Buffer.from(routes(fx)[0]!.msg.payload).equals(payload)).toBe(true);
    }
  });
});

describe('checkImPublish directly', () => {
  const st = (over: Partial<ChannelState> = {}): ChannelState => ({ ...newChannelState(1), phase: 'connected', clientId: 'alice/pc', username: 'alice', im: ALICE, ...over });
  const topic = (t: string) => parseImTopic(t)!;

  it('refusal results carry rc, why, counter and detail', () => {
    const env = makeEnv();
    expect(checkImPublish(st(), env, topic('/acme/im/p/x'), Buffer.alloc(0))).toEqual({
      ok: false, rc: 0x87, why: 'im_acl', counter: 'publish_denied_total', detail: 'presence topics are maintained by the broker',
    });
    expect(checkImPublish(st(), env, topic('/acme/im/u/jim'), Buffer.alloc(0))).toMatchObject({
      ok: false, rc: 0x99, why: 'im_payload_invalid', counter: 'im_payload_invalid_total{code="EMPTY"}',
    });
    expect(checkImPublish(st(), env, topic('/acme/im/u/jim'), encodeImPayload(msg({ sender: 'x' })))).toMatchObject({
      ok: false, rc: 0x87, why: 'im_sender_mismatch', counter: 'im_sender_mismatch_total',
    });
  });

  it("rewrite without a uid cannot happen: a user without an IM identity is stopped by the ACL first", () => {
    const env = makeEnv({ senderCheck: 'rewrite' });
    expect(checkImPublish(st({ im: undefined }), env, topic('/acme/im/u/jim'), encodeImPayload(msg()))).toMatchObject({ ok: false, why: 'im_acl' });
  });
});

describe('IM subscribe: the default IM ACL (IM-PROTOCOL 2)', () => {
  it("the own inbox, presence and the user's groups are granted", () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(st, subscribe(['/acme/im/u/alice', '/acme/im/p/+', '/acme/im/p/jim', '/acme/im/g/team', 'news/#']), env);
    expect(subCodes(fx)).toEqual([0, 0, 0, 0, 0]);
  });

  it("v5: someone else's inbox, '#', wildcards over inboxes, other groups and namespaces get 0x87", () => {
    const env = makeEnv();
    const st = connected(5, env);
    const filters = ['/acme/im/u/jim', '#', '/acme/im/u/+', '/acme/im/#', '/+/im/u/alice', '+/#', '/acme/im/g/sales', '/globex/im/u/alice'];
    expect(subCodes(handleIn(st, subscribe(filters), env))).toEqual(filters.map(() => 0x87));
  });

  it("3.1.1: the same refusals are 0x80 (Failure)", () => {
    const env = makeEnv();
    const st = connected(4, env);
    const fx = handleIn(st, subscribe(['/acme/im/u/jim', '#', '/acme/im/u/alice', '/acme/im/g/team']), env);
    expect(subCodes(fx)).toEqual([0x80, 0x80, 0, 0]);
  });

  it('group membership decides: the same filter is granted to a member only', () => {
    const env = makeEnv();
    const member = connected(5, env, { uid: 'alice', ns: 'acme', groups: ['team', 'sales'] });
    const outsider = connected(5, env, { uid: 'alice', ns: 'acme', groups: [] });
    expect(subCodes(handleIn(member, subscribe(['/acme/im/g/sales']), env))).toEqual([0]);
    expect(subCodes(handleIn(outsider, subscribe(['/acme/im/g/sales']), env))).toEqual([0x87]);
  });

  it('a connection without an IM identity may subscribe to non-IM filters only', () => {
    const env = makeEnv();
    const st = connected(5, env, null, { username: 'guest' });
    expect(subCodes(handleIn(st, subscribe(['a/b', '/acme/im/p/+', '#']), env))).toEqual([0, 0x87, 0x87]);
  });

  it("a superuser may subscribe to anything, '#' and other users' inboxes included", () => {
    const env = makeEnv({ superusers: new Set(['root']) });
    const st = connected(5, env, null, { username: 'root' });
    expect(subCodes(handleIn(st, subscribe(['#', '/acme/im/u/jim', '/+/im/#']), env))).toEqual([0, 0, 0]);
  });

  it('the configured MQTT ACL still applies to a filter the IM ACL allows', () => {
    const env = makeEnv({}, { canPublish: () => true, canSubscribe: (_c, f) => f !== '/acme/im/u/alice' });
    const st = connected(5, env);
    expect(subCodes(handleIn(st, subscribe(['/acme/im/u/alice']), env))).toEqual([0x87]);
  });

  it('im null (IM disabled): no IM ACL on SUBSCRIBE', () => {
    const env = makeEnv(null);
    const st = connected(5, env, null);
    expect(subCodes(handleIn(st, subscribe(['#', '/acme/im/u/jim']), env))).toEqual([0, 0]);
  });
});

describe('IM CONNECT', () => {
  it('the connect message to the shard carries the uid and namespace of the IM identity', () => {
    const env = makeEnv();
    const st = newChannelState(3);
    handleIn(st, connectPacket(5), env);
    const m = shardMsg(afterAuth(st, 'ok', env, ALICE));
    expect(m).toMatchObject({ t: 'connect', clientId: 'alice/phone', username: 'alice', uid: 'alice', ns: 'acme' });
    expect(st.im).toEqual(ALICE);
  });

  it('without an IM identity the connect message has no uid or ns', () => {
    const env = makeEnv();
    const st = newChannelState(3);
    handleIn(st, connectPacket(5), env);
    const m = shardMsg(afterAuth(st, 'ok', env));
    expect(m?.t).toBe('connect');
    expect(m).not.toHaveProperty('uid');
    expect(m).not.toHaveProperty('ns');
  });

  it('an IM identity without a username is not anonymous: its session expiry is not cut to maxAnonymousSessionExpiry', () => {
    const env: ChannelEnv = { ...makeEnv(), limits: { ...LIMITS, maxAnonymousSessionExpiry: 60 } };
    // With an IM identity (a JWT login, say) and no username.
    let st = newChannelState(1);
    handleIn(st, connectPacket(5, { username: undefined, clean: false, properties: { sessionExpiryInterval: 3600 } }), env);
    expect(shardMsg(afterAuth(st, 'ok', env, ALICE))).toMatchObject({ t: 'connect', expiry: 3600, uid: 'alice' });
    expect(sent(sessionReady(st, false, [], env))[0]).not.toHaveProperty('properties.sessionExpiryInterval');
    st = newChannelState(1);
    handleIn(st, connectPacket(4, { username: undefined, clean: false }), env);
    expect(shardMsg(afterAuth(st, 'ok', env, ALICE))).toMatchObject({ expiry: 3600 });
    // Neither a username nor an IM identity: anonymous.
    st = newChannelState(1);
    handleIn(st, connectPacket(5, { username: undefined, clean: false, properties: { sessionExpiryInterval: 3600 } }), env);
    expect(shardMsg(afterAuth(st, 'ok', env))).toMatchObject({ expiry: 60 });
    expect(sent(sessionReady(st, false, [], env))[0]).toHaveProperty('properties.sessionExpiryInterval', 60);
  });

  it("a client id starting with '$hold/' is reserved for the broker: v5 0x85, 3.1.1 0x02", () => {
    const env = makeEnv();
    for (const [version, packet] of [
      [5, { cmd: 'connack', sessionPresent: false, reasonCode: 0x85, properties: { reasonString: expect.any(String) } }],
      [4, { cmd: 'connack', sessionPresent: false, returnCode: 2 }],
    ] as const) {
      const st = newChannelState(1);
      const fx = handleIn(st, connectPacket(version, { clientId: '$hold/alice' }), env);
      expect(sent(fx)).toEqual([packet]);
      expect(closeOf(fx)).toMatchObject({ why: 'reserved_client_id' });
      expect(st.phase).toBe('closed');
      expect(fx.some((e) => e.e === 'auth')).toBe(false);
    }
    // Only the exact prefix is reserved.
    const st = newChannelState(1);
    expect(handleIn(st, connectPacket(5, { clientId: '$holdx/alice' }), env)[0]).toMatchObject({ e: 'auth' });
  });

  it('a will on an IM topic with an invalid payload refuses CONNECT (v5 0x99), no session is opened', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    handleIn(st, connectPacket(5, { will: { topic: '/acme/im/u/jim', payload: overrunPayload(), qos: 1, retain: false } }), env);
    const fx = afterAuth(st, 'ok', env, ALICE);
    expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, reasonCode: 0x99, properties: { reasonString: expect.any(String) } }]);
    expect(closeOf(fx)).toMatchObject({ why: 'will_im_payload_invalid', counter: 'im_payload_invalid_total{code="CONTENT_OVERRUN"}' });
    expect(shardMsg(fx)).toBeUndefined();
    expect(st.phase).toBe('closed');
  });

  it('3.1.1: a will on an IM topic with an invalid payload refuses CONNECT with 0x05', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    handleIn(st, connectPacket(4, { will: { topic: '/acme/im/u/jim', payload: Buffer.from('junk'), qos: 0, retain: false } }), env);
    const fx = afterAuth(st, 'ok', env, ALICE);
    expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, returnCode: 5 }]);
    expect(shardMsg(fx)).toBeUndefined();
  });

  it('a will on a presence topic or in another namespace refuses CONNECT (0x87)', () => {
    const env = makeEnv();
    for (const topic of ['/acme/im/p/alice', '/globex/im/u/jim']) {
      const st = newChannelState(1);
      handleIn(st, connectPacket(5, { will: { topic, payload: encodeImPayload(msg()), qos: 0, retain: false } }), env);
      const fx = afterAuth(st, 'ok', env, ALICE);
      expect(sent(fx), topic).toEqual([{ cmd: 'connack', sessionPresent: false, reasonCode: 0x87, properties: { reasonString: expect.any(String) } }]);
      expect(closeOf(fx)?.why, topic).toBe('will_im_acl');
    }
  });

  it("a will with a spoofed Sender: refused under 'refuse', rewritten to the uid under 'rewrite'", () => {
    const will = { topic: '/acme/im/u/jim', payload: encodeImPayload(msg({ sender: 'bob' })), qos: 1 as const, retain: false };
    let env = makeEnv({ senderCheck: 'refuse' });
    let st = newChannelState(1);
    handleIn(st, connectPacket(5, { will }), env);
    let fx = afterAuth(st, 'ok', env, ALICE);
    expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, reasonCode: 0x87, properties: { reasonString: expect.any(String) } }]);
    expect(closeOf(fx)).toMatchObject({ why: 'will_im_sender_mismatch', counter: 'im_sender_mismatch_total' });

    env = makeEnv({ senderCheck: 'rewrite' });
    st = newChannelState(1);
    handleIn(st, connectPacket(5, { will }), env);
    fx = afterAuth(st, 'ok', env, ALICE);
    const m = shardMsg(fx);
    if (m?.t !== 'connect' || !m.will) throw new Error('expected a connect with a will');
    expect(decodeImPayload(m.will.msg.payload)).toEqual({ ...msg(), sender: 'alice' });
  });

  it('a valid will on an IM topic travels to the shard unchanged', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    const payload = encodeImPayload(msg({ content: { con: [{ ty: 0, co: 'gone' }] } }));
    handleIn(st, connectPacket(5, { will: { topic: '/acme/im/g/team', payload, qos: 1, retain: false } }), env);
    const m = shardMsg(afterAuth(st, 'ok', env, ALICE));
    if (m?.t !== 'connect' || !m.will) throw new Error('expected a connect with a will');
    expect(Buffer.from(m.will.msg.payload).equals(payload)).toBe(true);
  });

  it('a superuser may leave a will on any IM topic; with IM disabled no will is IM-checked', () => {
    let env = makeEnv({ superusers: new Set(['root']) });
    let st = newChannelState(1);
    handleIn(st, connectPacket(5, { username: 'root', will: { topic: '/acme/im/p/x', payload: Buffer.from('{}'), qos: 0, retain: true } }), env);
    expect(shardMsg(afterAuth(st, 'ok', env))?.t).toBe('connect');

    env = makeEnv(null);
    st = newChannelState(1);
    handleIn(st, connectPacket(5, { will: { topic: '/acme/im/u/jim', payload: Buffer.from('junk'), qos: 0, retain: false } }), env);
    expect(shardMsg(afterAuth(st, 'ok', env))?.t).toBe('connect');
  });
});
