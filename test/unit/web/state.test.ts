/**
 * The web client's reducer (web/src/state.ts): which conversation a message belongs to
 * (inbox, carbons of my other devices, groups), arrival order, de-duplication, unread
 * counts per device, acknowledgements, uploads, restored history, and the list's order.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { ImContentItem, ImMessage } from '../../../src/im/index.js';
import {
  conversationOf,
  initialState,
  listEntries,
  previewOf,
  reduce,
  totalUnread,
  type Action,
  type ChatMessage,
  type Me,
  type State,
} from '../../../web/src/state.js';

const me: Me = { uid: 'alice', ns: 'acme', groups: ['team'] };
const inbox = (uid: string, ns = 'acme') => `/${ns}/im/u/${uid}`;
const group = (gid: string) => `/acme/im/g/${gid}`;

function msg(sender: string, text: string, extra: Record<string, unknown> = {}, items?: ImContentItem[]): ImMessage {
  return { sender, ts: 1_764_000_000, kind: 0, media: 0, content: { con: items ?? [{ ty: 0, co: text }], ...extra } };
}

const incoming = (topic: string, m: ImMessage): Action => ({ type: 'incoming', topic, msg: m });
const run = (s: State, ...actions: Action[]): State => actions.reduce(reduce, s);
const texts = (s: State, conv: string) => s.conversations[conv]?.messages.map((m) => m.items[0]?.co) ?? [];
const fresh = () => initialState(me, ['jim', 'bob', 'alice']);

function mine(id: string, conv: string, text: string): ChatMessage {
  return { id, conv, sender: 'alice', ts: 1, media: 0, items: [{ ty: 0, co: text }], mine: true, status: 'sending' };
}

describe('conversationOf', () => {
  it("a message on my inbox from someone else is the conversation with them", () => {
    expect(conversationOf(me, inbox('alice'), msg('jim', 'hi'))).toBe('u:jim');
  });
  it('a carbon (my own message on my inbox) goes to the conversation named by `to`', () => {
    expect(conversationOf(me, inbox('alice'), msg('alice', 'hi', { to: inbox('jim') }))).toBe('u:jim');
    expect(conversationOf(me, inbox('alice'), msg('alice', 'hi', { to: group('team') }))).toBe('g:team');
  });
  it('a carbon without a usable `to` (another client, another namespace, garbage) is the conversation with myself', () => {
    expect(conversationOf(me, inbox('alice'), msg('alice', 'hi'))).toBe('u:alice');
    expect(conversationOf(me, inbox('alice'), msg('alice', 'hi', { to: inbox('jim', 'other') }))).toBe('u:alice');
    expect(conversationOf(me, inbox('alice'), msg('alice', 'hi', { to: 42 }))).toBe('u:alice');
  });
  it('group messages belong to the group, whoever sent them', () => {
    expect(conversationOf(me, group('team'), msg('jim', 'x'))).toBe('g:team');
    expect(conversationOf(me, group('team'), msg('alice', 'x'))).toBe('g:team');
  });
  it('other namespaces, presence, non-IM topics and strangers\' inboxes are none of mine', () => {
    expect(conversationOf(me, inbox('alice', 'other'), msg('jim', 'x'))).toBeNull();
    expect(conversationOf(me, '/acme/im/p/jim', msg('jim', 'x'))).toBeNull();
    expect(conversationOf(me, 'chat/room', msg('jim', 'x'))).toBeNull();
    expect(conversationOf(me, inbox('jim'), msg('bob', 'x'))).toBeNull();
    // ... except my own message on it (a superuser's view of a send of mine).
    expect(conversationOf(me, inbox('jim'), msg('alice', 'x'))).toBe('u:jim');
  });
});

describe('reduce', () => {
  it('starts with the directory as contacts (without me) and my groups as conversations', () => {
    const s = fresh();
    expect(Object.keys(s.contacts).sort()).toEqual(['bob', 'jim']);
    expect(Object.keys(s.conversations)).toEqual(['g:team']);
  });

  it('keeps arrival order, not TS order (clocks differ; the broker delivers in order)', () => {
    const late = { ...msg('jim', 'first'), ts: 2_000_000_000 };
    const early = { ...msg('jim', 'second'), ts: 1_000_000_000 };
    const s = run(fresh(), incoming(inbox('alice'), late), incoming(inbox('alice'), early));
    expect(texts(s, 'u:jim')).toEqual(['first', 'second']);
  });

  it('shows a message with the same id once (QoS 1 resend, restored history)', () => {
    const m = msg('jim', 'once', { id: 'abc' });
    const s = run(fresh(), incoming(inbox('alice'), m), incoming(inbox('alice'), m));
    expect(texts(s, 'u:jim')).toEqual(['once']);
    expect(s.conversations['u:jim']!.unread).toBe(1);
    // Without an id nothing can be matched: both are shown.
    const n = msg('jim', 'twice');
    expect(texts(run(fresh(), incoming(inbox('alice'), n), incoming(inbox('alice'), n)), 'u:jim')).toEqual(['twice', 'twice']);
  });

  it('my own group message coming back confirms the one being sent, and is not shown twice', () => {
    const s1 = run(fresh(), { type: 'send', message: mine('m1', 'g:team', 'hello team') });
    expect(s1.conversations['g:team']!.messages[0]!.status).toBe('sending');
    const s2 = reduce(s1, incoming(group('team'), msg('alice', 'hello team', { id: 'm1' })));
    expect(s2.conversations['g:team']!.messages.map((m) => [m.id, m.status])).toEqual([['m1', 'sent']]);
    // The PUBACK after that changes nothing more.
    expect(reduce(s2, { type: 'ack', conv: 'g:team', id: 'm1' }).conversations['g:team']!.messages[0]!.status).toBe('sent');
  });

  it('acknowledgements mark a send sent or failed with the reason', () => {
    const s = run(fresh(), { type: 'send', message: mine('a', 'u:jim', '1') }, { type: 'send', message: mine('b', 'u:jim', '2') });
    const t = run(s, { type: 'ack', conv: 'u:jim', id: 'a' }, { type: 'ack', conv: 'u:jim', id: 'b', error: 'not authorized' });
    expect(t.conversations['u:jim']!.messages.map((m) => [m.status, m.error])).toEqual([
      ['sent', undefined],
      ['failed', 'not authorized'],
    ]);
    expect(reduce(t, { type: 'ack', conv: 'u:nobody', id: 'a' })).toBe(t);
  });

  describe('unread counts', () => {
    it('count messages from others in conversations not on screen', () => {
      const s = run(fresh(), incoming(inbox('alice'), msg('jim', '1')), incoming(inbox('alice'), msg('jim', '2')), incoming(group('team'), msg('bob', '3')));
      expect(s.conversations['u:jim']!.unread).toBe(2);
      expect(s.conversations['g:team']!.unread).toBe(1);
      expect(totalUnread(s)).toBe(3);
    });
    it('do not count my own messages from other devices (carbons, group echoes)', () => {
      const s = run(fresh(), incoming(inbox('alice'), msg('alice', 'from my phone', { to: inbox('jim') })), incoming(group('team'), msg('alice', 'x')));
      expect(totalUnread(s)).toBe(0);
      expect(s.conversations['u:jim']!.messages[0]).toMatchObject({ mine: true, status: 'sent' });
    });
    it('opening a conversation reads it; while it is open, nothing new counts', () => {
      const s = run(fresh(), incoming(inbox('alice'), msg('jim', '1')), { type: 'open', conv: 'u:jim' });
      expect(s.conversations['u:jim']!.unread).toBe(0);
      expect(reduce(s, incoming(inbox('alice'), msg('jim', '2'))).conversations['u:jim']!.unread).toBe(0);
    });
    it('a hidden tab counts even the open conversation, and reads it when shown again', () => {
      const hidden = run(fresh(), { type: 'open', conv: 'u:jim' }, { type: 'visible', visible: false }, incoming(inbox('alice'), msg('jim', '1')));
      expect(hidden.conversations['u:jim']!.unread).toBe(1);
      // Opening it while hidden does not read it either.
      expect(reduce(hidden, { type: 'open', conv: 'u:jim' }).conversations['u:jim']!.unread).toBe(1);
      expect(reduce(hidden, { type: 'visible', visible: true }).conversations['u:jim']!.unread).toBe(0);
    });
    it('closing the conversation (back to the list) makes new messages count again', () => {
      const s = run(fresh(), { type: 'open', conv: 'u:jim' }, { type: 'open', conv: null }, incoming(inbox('alice'), msg('jim', '1')));
      expect(s.active).toBeNull();
      expect(s.conversations['u:jim']!.unread).toBe(1);
    });
  });

  it('presence updates contacts (new people included), never me', () => {
    const s = run(fresh(), { type: 'presence', uid: 'jim', online: true, devices: 2, since: 5 }, { type: 'presence', uid: 'carol', online: true, devices: 1 }, { type: 'presence', uid: 'alice', online: true, devices: 1 });
    expect(s.contacts['jim']).toEqual({ uid: 'jim', online: true, devices: 2, since: 5 });
    expect(s.contacts['carol']?.online).toBe(true);
    expect(s.contacts['alice']).toBeUndefined();
  });

  it('uploads: progress only grows; a finished one goes, a failed one stays with its error until dismissed', () => {
    const up = { id: 'u1', conv: 'u:jim', name: 'a.png', size: 100, loaded: 0 };
    let s = run(fresh(), { type: 'uploadStart', upload: up }, { type: 'uploadProgress', id: 'u1', loaded: 60 }, { type: 'uploadProgress', id: 'u1', loaded: 40 });
    expect(s.uploads).toEqual([{ ...up, loaded: 60 }]);
    expect(reduce(s, { type: 'uploadEnd', id: 'u1' }).uploads).toEqual([]);
    s = reduce(s, { type: 'uploadEnd', id: 'u1', error: 'too large' });
    expect(s.uploads).toEqual([{ ...up, loaded: 60, error: 'too large' }]);
    expect(reduce(s, { type: 'uploadDismiss', id: 'u1' }).uploads).toEqual([]);
  });

  it('restored history goes before what arrived since, without duplicates', () => {
    const before = run(fresh(), incoming(inbox('alice'), msg('jim', 'old', { id: 'o' })), incoming(inbox('alice'), msg('jim', 'both', { id: 'b' })));
    const saved = Object.values(before.conversations).filter((c) => c.messages.length > 0);
    const now = run(fresh(), incoming(inbox('alice'), msg('jim', 'both', { id: 'b' })), incoming(inbox('alice'), msg('jim', 'new', { id: 'n' })), { type: 'restore', conversations: saved });
    expect(texts(now, 'u:jim')).toEqual(['old', 'both', 'new']);
  });

  it('any sequence of arrivals keeps each conversation in arrival order, each id once', () => {
    const arrival = fc.record({ from: fc.constantFrom('jim', 'bob', 'alice'), id: fc.integer({ min: 0, max: 20 }), where: fc.constantFrom('inbox', 'group') });
    fc.assert(
      fc.property(fc.array(arrival, { maxLength: 40 }), (arrivals) => {
        let s = fresh();
        const expected: Record<string, string[]> = {};
        for (const a of arrivals) {
          const id = `${a.from}-${a.id}`;
          const topic = a.where === 'group' ? group('team') : inbox('alice');
          const m = msg(a.from, id, { id, to: inbox('jim') });
          const conv = a.where === 'group' ? 'g:team' : a.from === 'alice' ? 'u:jim' : `u:${a.from}`;
          const list = (expected[conv] ??= []);
          if (!list.includes(id)) list.push(id);
          s = reduce(s, incoming(topic, m));
        }
        for (const [conv, ids] of Object.entries(expected)) expect(texts(s, conv)).toEqual(ids);
        // Unread = messages from others (each once), as nothing was open.
        const fromOthers = new Set(arrivals.filter((a) => a.from !== 'alice').map((a) => `${a.where}:${a.from}-${a.id}`)).size;
        expect(totalUnread(s)).toBe(fromOthers);
      }),
    );
  });
});

describe('listEntries', () => {
  it('groups first, then people by last activity, then online, then name; me only with messages', () => {
    let s = run(fresh(), { type: 'presence', uid: 'bob', online: true, devices: 1 });
    expect(listEntries(s).map((e) => e.conv)).toEqual(['g:team', 'u:bob', 'u:jim']);
    s = run(s, incoming(inbox('alice'), msg('jim', 'hi')));
    expect(listEntries(s).map((e) => e.conv)).toEqual(['g:team', 'u:jim', 'u:bob']);
    s = run(s, incoming(inbox('alice'), msg('alice', 'note')));
    expect(listEntries(s).map((e) => [e.conv, e.unread, e.preview])).toEqual([
      ['g:team', 0, ''],
      ['u:alice', 0, 'You: note'],
      ['u:jim', 1, 'hi'],
      ['u:bob', 0, ''],
    ]);
  });

  it('previews name the medium', () => {
    const m = (ty: number, extra: Partial<ImContentItem> = {}): ChatMessage => ({ id: 'x', conv: 'u:jim', sender: 'jim', ts: 0, media: 0, items: [{ ty, co: 'u', ...extra }], mine: false, status: 'received' });
    expect([1, 2, 3].map((ty) => previewOf(m(ty)))).toEqual(['Photo', 'Audio', 'Video']);
    expect(previewOf(m(5, { fn: { name: 'notes.txt', size: '3' } }))).toBe('notes.txt');
    expect(previewOf(undefined)).toBe('');
  });
});
