/**
 * Issue 9 item 8 (bugs found by fuzzing), shard side:
 * - overlapping subscriptions carrying the same Subscription Identifier (the filters of one
 *   SUBSCRIBE share it) deliver it once [MQTT-3.3.4-3], live, queued, resent and retained;
 * - one recipient whose delivery throws costs neither the other recipients of the publish
 *   nor the next publish (the per-publish merge map is left clean).
 */
import { describe, it, expect, afterEach, vi } from 'vitest';
import type { Session } from '../../../src/session/session.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { online, pubs, runCleanups, shardHarness as harness, tick } from './shard-harness.js';

afterEach(runCleanups);

describe('ShardActor: Subscription Identifiers of overlapping subscriptions', () => {
  it('[MQTT-3.3.4-3] two filters of one SUBSCRIBE with identifier 2: one delivery, identifier 2 once', async () => {
    const h = harness({ gateways: 1 });
    const c = h.connect('c1');
    h.subscribe('c1', c, [{ filter: 'a/+' }, { filter: 'a/#', qos: 0 }], 2);
    await tick();
    h.ackRoutes();
    await tick();
    h.take();
    // Others in the same fan-out (one deliverGroup).
    await online(h, 'c2', [['a/#', 1]]);
    await online(h, 'c3', [['a/b', 0]]);
    h.publish('a/b', 1);
    await tick();
    const got = pubs(h.take());
    // Recipients in any order (exact filters are looked up before wildcard ones).
    const rows = got.map((p) => [p.connId === c ? 'c1' : 'other', p.qos, p.subIds]);
    rows.sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
    expect(rows).toEqual([
      ['c1', 1, [2]],
      ['other', 0, undefined],
      ['other', 1, undefined],
    ]);
  });

  it('different identifiers are all kept, each once, in the order of the matching filters', async () => {
    const h = harness();
    const c = h.connect('c1');
    h.subscribe('c1', c, [{ filter: 'a/+' }, { filter: 'a/#' }], 4);
    h.subscribe('c1', c, [{ filter: 'a/b' }, { filter: '+/b' }], 9);
    await tick();
    h.ackRoutes();
    await tick();
    h.take();
    h.publish('a/b', 1);
    await tick();
    const [p] = pubs(h.take());
    expect([...p!.subIds!].sort((x, y) => x - y)).toEqual([4, 9]);
  });

  it('the deduplicated identifiers are what a queued message and a resend carry', async () => {
    const h = harness();
    const c1 = h.connect('p1', { cleanStart: false, expiry: 3600 });
    h.subscribe('p1', c1, [{ filter: 't/+' }, { filter: 't/#' }], 3);
    await tick();
    h.ackRoutes();
    await tick();
    h.take();
    h.publish('t/a', 1, 'live'); // sent, not acknowledged
    await tick();
    expect(pubs(h.take()).map((p) => p.subIds)).toEqual([[3]]);
    h.shard({ t: 'disconnect', connId: c1, clientId: 'p1', publishWill: false, qos2In: [] });
    h.publish('t/b', 1, 'queued'); // offline: queued
    await tick();
    const c2 = h.connect('p1', { cleanStart: false, expiry: 3600 });
    await tick();
    const again = pubs(h.take());
    expect(again.map((p) => [Buffer.from(p.msg.payload).toString(), p.dup, p.subIds])).toEqual([
      ['live', true, [3]],
      ['queued', false, [3]],
    ]);
    h.shard({ t: 'disconnect', connId: c2, clientId: 'p1', publishWill: false, qos2In: [], expiry: 0 });
  });
});

describe('ShardActor: one failing recipient', () => {
  it('does not cost the other recipients of the publish, and is counted and logged', async () => {
    const h = harness();
    await online(h, 'good1', [['a/#', 1]]);
    await online(h, 'bad', [['a/#', 1]]);
    await online(h, 'good2', [['a/#', 1]]);
    // A bug (or a store failure) while sending to 'bad'.
    const sent = h.actor.journal.sent.bind(h.actor.journal);
    vi.spyOn(h.actor.journal, 'sent').mockImplementation((s: Session, e, packetId) => {
      if (s.clientId === 'bad') throw new Error('boom');
      sent(s, e, packetId);
    });
    h.publish('a/x', 1, 'first');
    await tick();
    const got = pubs(h.take());
    expect(got.map((p) => Buffer.from(p.msg.payload).toString())).toEqual(['first', 'first']);
    expect(h.metrics.get('internal_errors_total{op="deliver"}')).toBe(1);
    expect(h.metrics.get('messages_dropped_total{reason="internal_error"}')).toBe(1);
    expect(h.sys.actorErrors).toBe(0); // handled per recipient, not by the actor system
  });

  it('leaves the per-publish merge clean: the next message reaches its subscribers only', async () => {
    const h = harness();
    await online(h, 'bad', [['a/#', 1]]);
    await online(h, 'after', [['a/#', 1]]);
    const other = await online(h, 'other', [['b/#', 1]]);
    const sent = h.actor.journal.sent.bind(h.actor.journal);
    vi.spyOn(h.actor.journal, 'sent').mockImplementation((s: Session, e, packetId) => {
      if (s.clientId === 'bad') throw new Error('boom');
      sent(s, e, packetId);
    });
    h.publish('a/x', 1, 'one');
    await tick();
    h.take();
    h.publish('b/y', 1, 'two');
    await tick();
    expect(pubs(h.take()).map((p) => [p.connId, Buffer.from(p.msg.payload).toString()])).toEqual([[other, 'two']]);
  });
});

describe('ShardActor: sessions stored before the fix', () => {
  it('a stored subscription whose Subscription Identifier is a list (a repeated one once got through) keeps its first one', async () => {
    const store = new MemoryStore();
    store.putSession({
      clientId: 'old',
      protocolVersion: 5,
      expiry: 3600,
      offlineSince: Date.now(),
      receiveMaximum: 65535,
      subs: [['a/#', { qos: 1, noLocal: false, retainAsPublished: false, subId: [2, 2] as unknown as number }]],
      presub: [],
      hold: false,
      qos2In: [],
    });
    await store.commit();
    const h = harness({ store }, { restore: true });
    const c = h.connect('old', { cleanStart: false, expiry: 3600 });
    await tick();
    h.ackRoutes();
    await tick();
    expect(h.take()).toContainEqual({ t: 'connack', connId: c, sessionPresent: true, qos2In: [] });
    h.publish('a/x', 1);
    await tick();
    expect(pubs(h.take()).map((p) => p.subIds)).toEqual([[2]]);
    h.shard({ t: 'disconnect', connId: c, clientId: 'old', publishWill: false, qos2In: [], expiry: 0 });
  });
});
