/**
 * What the web client puts on and reads from the wire: outgoing payloads (through the SDK,
 * with `id` and `to`), presence messages, stored history, login checks and JWT hints.
 */
import { describe, expect, it } from 'vitest';
import { decodeImPayload, ImMedia } from '../../../src/im/index.js';
import { newMessageId, outgoing, topicOf } from '../../../web/src/outgoing.js';
import { parsePresence, presenceFilter } from '../../../web/src/presence.js';
import { historyKey, parseHistory, serializeHistory } from '../../../web/src/history.js';
import { deviceProblem, newDeviceName, tokenHints, userNameProblem } from '../../../web/src/login-values.js';
import { mqttUrl } from '../../../web/src/connection.js';
import { authorizationOf } from '../../../web/src/api.js';
import { conversationOf, initialState, reduce, type Me } from '../../../web/src/state.js';

const me: Me = { uid: 'alice', ns: 'acme', groups: ['team'] };

describe('outgoing', () => {
  it('publishes to the inbox or the group, with an SDK payload that carries id and to', () => {
    expect(topicOf(me, 'u:jim')).toBe('/acme/im/u/jim');
    expect(topicOf(me, 'g:team')).toBe('/acme/im/g/team');
    const o = outgoing(me, 'u:jim', [{ ty: 0, co: 'hi' }], ImMedia.TEXT, 'id1', 1_764_000_000_999);
    expect(decodeImPayload(o.payload)).toEqual({ sender: 'alice', ts: 1_764_000_000, kind: 0, media: 0, content: { con: [{ ty: 0, co: 'hi' }], id: 'id1', to: '/acme/im/u/jim' } });
    expect(o.chat).toMatchObject({ id: 'id1', conv: 'u:jim', mine: true, status: 'sending' });
  });
  it('a carbon of it, on my other device, lands in the same conversation', () => {
    const o = outgoing(me, 'u:jim', [{ ty: 0, co: 'hi' }], ImMedia.TEXT, 'id1', 0);
    expect(conversationOf(me, '/acme/im/u/alice', decodeImPayload(o.payload))).toBe('u:jim');
  });
  it('makes 16-character url-safe ids', () => {
    expect(newMessageId((a) => a.fill(0xff))).toBe('________________');
    expect(newMessageId()).toMatch(/^[A-Za-z0-9_-]{16}$/);
  });
});

describe('presence', () => {
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  it("reads the broker's retained JSON", () => {
    expect(presenceFilter('acme')).toBe('/acme/im/p/+');
    expect(parsePresence('acme', '/acme/im/p/jim', enc({ uid: 'jim', online: true, devices: 2, ts: 5 }))).toEqual({ uid: 'jim', online: true, devices: 2, since: 5 });
    expect(parsePresence('acme', '/acme/im/p/jim', enc({ uid: 'jim', online: false, devices: 0 }))).toEqual({ uid: 'jim', online: false, devices: 0 });
    expect(parsePresence('acme', '/acme/im/p/jim', new Uint8Array())).toEqual({ uid: 'jim', online: false, devices: 0 });
  });
  it('ignores other topics and bodies that are not presence', () => {
    expect(parsePresence('acme', '/acme/im/u/jim', enc({ online: true }))).toBeNull();
    expect(parsePresence('acme', '/other/im/p/jim', enc({ online: true }))).toBeNull();
    expect(parsePresence('acme', '/acme/im/p/jim', new TextEncoder().encode('{'))).toBeNull();
    expect(parsePresence('acme', '/acme/im/p/jim', enc('online'))).toBeNull();
  });
});

describe('history', () => {
  it('round-trips conversations; an unconfirmed send comes back as not confirmed', () => {
    let s = initialState(me, ['jim']);
    s = reduce(s, { type: 'incoming', topic: '/acme/im/u/alice', msg: { sender: 'jim', ts: 1, kind: 0, media: 0, content: { con: [{ ty: 0, co: 'hi' }], id: 'a' } } });
    s = reduce(s, { type: 'send', message: { id: 'b', conv: 'u:jim', sender: 'alice', ts: 2, media: 0, items: [{ ty: 0, co: 'yo' }], mine: true, status: 'sending' } });
    const back = parseHistory(serializeHistory(s));
    expect(back).toHaveLength(1);
    expect(back[0]!.messages.map((m) => [m.id, m.status, m.error])).toEqual([
      ['a', 'received', undefined],
      ['b', 'failed', 'not confirmed before the page closed'],
    ]);
    expect(back[0]!.unread).toBe(1);
    expect(historyKey('alice/pc')).toBe('switchboard:history:alice/pc');
  });
  it('leaves out what is malformed instead of trusting it', () => {
    expect(parseHistory(null)).toEqual([]);
    expect(parseHistory('nope')).toEqual([]);
    expect(parseHistory(JSON.stringify({ v: 2, conversations: [] }))).toEqual([]);
    const good = { id: 'x', conv: 'u:jim', sender: 'jim', ts: 1, media: 0, items: [{ ty: 0, co: 't' }], mine: false, status: 'received' };
    const text = JSON.stringify({
      v: 1,
      conversations: [
        { id: 'u:jim', messages: [good, { ...good, id: 'bad-status', status: 'owned' }, { ...good, id: 'other-conv', conv: 'u:bob' }, { ...good, id: 'bad-item', items: [{ co: 1 }] }], unread: -3 },
        { id: 'nonsense', messages: [] },
        null,
      ],
    });
    expect(parseHistory(text)).toEqual([{ id: 'u:jim', kind: 'user', peer: 'jim', messages: [good], unread: 0, last: 0 }]);
  });
});

describe('login', () => {
  it('checks user and device names', () => {
    expect(userNameProblem('alice')).toBeNull();
    expect(userNameProblem('')).toMatch(/Enter/);
    expect(userNameProblem('a/b')).toMatch(/cannot contain/);
    expect(userNameProblem('$sys')).toMatch(/cannot contain/);
    expect(deviceProblem('phone')).toBeNull();
    expect(deviceProblem('my phone')).not.toBeNull();
    expect(deviceProblem('x'.repeat(33))).not.toBeNull();
    expect(newDeviceName(() => 0)).toBe('web-0000');
    expect(deviceProblem(newDeviceName())).toBeNull();
  });
  it('reads ns and groups from a JWT, keeping only usable ids', () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const jwt = `${b64({ alg: 'HS256' })}.${b64({ sub: 'jim', ns: 'acme', groups: ['team', 'a/b', 3] })}.sig`;
    expect(tokenHints(jwt)).toEqual({ ns: 'acme', groups: ['team'] });
    expect(tokenHints(`${b64({})}.${b64({ ns: '+' })}.s`)).toEqual({});
    expect(tokenHints('garbage')).toEqual({});
    expect(tokenHints('a.!!!.c')).toEqual({});
  });
  it('builds the Authorization header (UTF-8 Basic, or Bearer)', () => {
    expect(authorizationOf({ mode: 'password', username: 'jörg', password: 'pw' })).toBe(`Basic ${Buffer.from('jörg:pw').toString('base64')}`);
    expect(authorizationOf({ mode: 'token', token: ' abc.def.ghi \n' })).toBe('Bearer abc.def.ghi');
  });
  it('connects MQTT on the page host, ws or wss by the page scheme', () => {
    const paths = { ws: '/mqtt', wss: '/secure' };
    expect(mqttUrl({ protocol: 'http:', host: '127.0.0.1:8083' }, paths)).toBe('ws://127.0.0.1:8083/mqtt');
    expect(mqttUrl({ protocol: 'https:', host: 'im.example.com' }, paths)).toBe('wss://im.example.com/secure');
  });
});
