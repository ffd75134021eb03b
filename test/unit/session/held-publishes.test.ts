/**
 * limits.queueFullPolicy hold (src/session/held-publishes.ts) through a ShardActor: a
 * message whose publisher waits for its ack (the publish's token) parks beyond a full
 * queue, and the shard answers the token (`committed`) only once every parked copy
 * entered its queue; bounded per session and in time; in order; answered when the
 * session ends. The drop policy (the default) is checked against the same scenario.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeConnId } from '../../../src/gateway/conn-id.js';
import type { GatewayMsg } from '../../../src/protocol/messages.js';
import { online, payloads, pubs, runCleanups, shardHarness, tick, type ShardHarness } from './shard-harness.js';

afterEach(runCleanups);

/** Several turns: the journal's flush (setImmediate), the store commit, the answer. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await tick();
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A publisher's connection on gateway 0. */
const PUBLISHER = makeConnId(4242, 0);
const HOLD = { maxPerSession: 100, maxAgeMs: 60_000 };

/** A client's QoS 1 publish whose ack the gateway holds under token `token`. */
function publish(h: ShardHarness, topic: string, payload: string, token: number): void {
  h.publish(topic, 1, payload, { originConn: PUBLISHER, origin: 'pub' }, { ack: token });
}

/** The tokens answered in `msgs`, in order. */
const answered = (msgs: GatewayMsg[]): number[] => msgs.flatMap((m) => (m.t === 'committed' ? m.ids : []));
const dropped = (h: ShardHarness, reason: string): number => h.metrics.get(`messages_dropped_total{reason="${reason}"}`) ?? 0;

describe('queueFullPolicy hold: a publisher waits for room in a full queue', () => {
  it('a copy that finds the queue full parks; its token is answered once it entered the queue, nothing is dropped', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 2, hold: HOLD });
    const c = await online(h, 'sub', [['q', 1]]);
    for (let i = 1; i <= 5; i++) publish(h, 'q', `m${i}`, i);
    await settle();
    let got = h.take();
    // m1 in flight, m2 m3 queued: answered; m4 m5 parked: not yet.
    expect(payloads(got)).toEqual(['m1']);
    expect(answered(got)).toEqual([1, 2, 3]);
    expect(h.metrics.get('messages_held_total')).toBe(2);
    expect(h.actor.held!.size).toBe(2);
    expect(dropped(h, 'queue_full')).toBe(0);
    expect(got.filter((m) => m.t === 'throttle')).toEqual([]);

    // Each PUBACK from the subscriber lets one more in: m4, then m5 are answered.
    for (const expected of [[4], [5], [], []]) {
      const [p] = pubs(got);
      h.ack('sub', c, 'puback', p!.packetId);
      await settle();
      got = h.take();
      expect(answered(got)).toEqual(expected);
    }
    expect(h.actor.held!.size).toBe(0);
    h.actor.receive({ t: 'collectMetrics', reqId: 1 });
    expect(h.metrics.get('messages_held')).toBe(0);
  });

  it('limits.maxQueuedMessages 0: a parked message goes straight out when the window has room', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 0, hold: HOLD });
    const c = await online(h, 'sub', [['q', 1]]);
    for (let i = 1; i <= 3; i++) publish(h, 'q', `m${i}`, i);
    await settle();
    let got = h.take();
    expect(payloads(got)).toEqual(['m1']);
    expect(answered(got)).toEqual([1]);
    const seen: string[] = [];
    for (const expected of [[2], [3]]) {
      h.ack('sub', c, 'puback', pubs(got)[0]!.packetId);
      await settle();
      got = h.take();
      seen.push(...payloads(got));
      expect(answered(got)).toEqual(expected);
    }
    expect(seen).toEqual(['m2', 'm3']);
    expect(dropped(h, 'queue_full')).toBe(0);
  });

  it('the same scenario with drop (the default): acknowledged at once, two dropped as queue_full, the publisher throttled', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 2 });
    await online(h, 'sub', [['q', 1]]);
    for (let i = 1; i <= 5; i++) publish(h, 'q', `m${i}`, i);
    await settle();
    const got = h.take();
    expect(answered(got)).toEqual([1, 2, 3, 4, 5]);
    expect(dropped(h, 'queue_full')).toBe(2);
    expect(got.filter((m) => m.t === 'throttle')).toEqual([{ t: 'throttle', connId: PUBLISHER, ms: expect.any(Number) }]);
    expect(h.actor.held).toBeNull();
  });

  it('a publish with copies for several sessions is answered when the last parked copy got in', async () => {
    const h = shardHarness({ maxInflight: 10, maxQueuedMessages: 1, hold: HOLD });
    const slow = await online(h, 'slow', [['t/#', 1]], { receiveMaximum: 1 });
    await online(h, 'fast', [['t/#', 1]]);
    publish(h, 't/1', 'a', 1); // slow: in flight
    publish(h, 't/1', 'b', 2); // slow: queued
    publish(h, 't/1', 'c', 3); // slow: parked; fast: in flight at once
    await settle();
    let got = h.take();
    expect(answered(got)).toEqual([1, 2]);
    expect(pubs(got).filter((p) => p.connId !== slow).map((p) => Buffer.from(p.msg.payload).toString())).toEqual(['a', 'b', 'c']);
    h.ack('slow', slow, 'puback', pubs(got).find((p) => p.connId === slow)!.packetId);
    await settle();
    got = h.take();
    expect(answered(got)).toEqual([3]);
  });

  it('[MQTT-4.6.0-5][MQTT-4.6.0-6] order: a later message, with or without a waiting publisher, parks behind the parked ones and is delivered after them', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 1, hold: HOLD });
    const c = await online(h, 'sub', [['q', 1]]);
    publish(h, 'q', 'a', 1);
    publish(h, 'q', 'b', 2);
    publish(h, 'q', 'c', 3); // parked
    h.publish('q', 1, 'will'); // broker-made, nobody waits: behind c, not dropped
    publish(h, 'q', 'd', 4);
    await settle();
    let got = h.take();
    expect(h.actor.held!.size).toBe(3);
    const seen = payloads(got);
    for (let i = 0; i < 8 && seen.length < 5; i++) {
      const p = pubs(got).at(-1);
      if (p) h.ack('sub', c, 'puback', p.packetId);
      await settle();
      got = h.take();
      seen.push(...payloads(got));
    }
    expect(seen).toEqual(['a', 'b', 'c', 'will', 'd']);
    expect(dropped(h, 'queue_full')).toBe(0);
  });

  it('bounded by maxPerSession: one more is dropped (queue_full) and answered at once, its publisher throttled', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 1, hold: { maxPerSession: 2, maxAgeMs: 60_000 } });
    await online(h, 'sub', [['q', 1]]);
    for (let i = 1; i <= 5; i++) publish(h, 'q', `m${i}`, i);
    await settle();
    const got = h.take();
    expect(answered(got)).toEqual([1, 2, 5]);
    expect(h.actor.held!.size).toBe(2);
    expect(dropped(h, 'queue_full')).toBe(1);
    expect(got.filter((m) => m.t === 'throttle')).toHaveLength(1);
  });

  it('a message nobody waits for keeps the drop path when the queue is full (QoS 0, broker-made)', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 1, hold: HOLD });
    await online(h, 'sub', [['q', 1]]);
    h.publish('q', 1, 'a');
    h.publish('q', 1, 'b');
    h.publish('q', 1, 'no one waits');
    await settle();
    expect(dropped(h, 'queue_full')).toBe(1);
    expect(h.actor.held!.size).toBe(0);
  });

  it('after maxAgeMs a parked message is dropped (hold_timeout) and its publisher answered: a dead subscriber never blocks it for ever', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 1, hold: { maxPerSession: 10, maxAgeMs: 100 } });
    await online(h, 'sub', [['q', 1]]);
    for (let i = 1; i <= 4; i++) publish(h, 'q', `m${i}`, i);
    await settle();
    expect(answered(h.take())).toEqual([1, 2]);
    await sleep(250);
    await settle();
    expect(answered(h.take())).toEqual([3, 4]);
    expect(dropped(h, 'hold_timeout')).toBe(2);
    expect(h.actor.held!.size).toBe(0);
  });

  it('a session that ends (clean start) drops its parked messages as session_ended and answers their publishers', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 1, hold: HOLD });
    const c = await online(h, 'sub', [['q', 1]], { cleanStart: false, expiry: 3600 });
    for (let i = 1; i <= 4; i++) publish(h, 'q', `m${i}`, i);
    await settle();
    expect(answered(h.take())).toEqual([1, 2]);
    // A takeover with Clean Start: the old connection is kicked, then the session discarded.
    h.connect('sub', { cleanStart: true });
    await settle();
    h.shard({ t: 'kicked', connId: c, clientId: 'sub' });
    await settle();
    expect(answered(h.take())).toEqual([3, 4]);
    // m1 unacknowledged, m2 queued, m3 m4 parked.
    expect(dropped(h, 'session_ended')).toBe(4);
    expect(h.actor.held!.size).toBe(0);
  });

  it('an offline persistent session parks beyond its queue; its client coming back drains the queue, then the parked messages', async () => {
    const h = shardHarness({ maxQueuedMessages: 2, hold: HOLD });
    const c = await online(h, 'sub', [['q', 1]], { cleanStart: false, expiry: 3600 });
    h.shard({ t: 'disconnect', connId: c, clientId: 'sub', publishWill: false, qos2In: [] });
    for (let i = 1; i <= 4; i++) publish(h, 'q', `m${i}`, i);
    await settle();
    expect(answered(h.take())).toEqual([1, 2]);
    h.connect('sub', { cleanStart: false, expiry: 3600 });
    await settle();
    const got = h.take();
    expect(payloads(got)).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(answered(got)).toEqual([3, 4]);
  });

  it('a persistent session: a parked message is answered only once its queue record is committed', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 1, hold: HOLD });
    const c = await online(h, 'sub', [['q', 1]], { cleanStart: false, expiry: 3600 });
    for (let i = 1; i <= 3; i++) publish(h, 'q', `m${i}`, i);
    await settle();
    const first = pubs(h.take())[0]!;
    const outbound = (): string[] => h.store.loadOutbound('sub', true).outbound.map((r) => String(r.seq));
    h.ack('sub', c, 'puback', first.packetId);
    // Answered in the turn after the one that wrote m3's record, never before.
    let seenAnswer = false;
    for (let i = 0; i < 6 && !seenAnswer; i++) {
      await tick();
      const got = h.take();
      if (answered(got).includes(3)) {
        seenAnswer = true;
        expect(outbound()).toHaveLength(2); // m2 in flight, m3 queued
      }
    }
    expect(seenAnswer).toBe(true);
  });

  it('an evicted session (messages on disk only) parks beyond its stored queue; a reconnect reloads, then admits the parked ones', async () => {
    const h = shardHarness({ maxQueuedMessages: 2, hold: HOLD });
    const c = await online(h, 'sub', [['q', 1]], { cleanStart: false, expiry: 3600 });
    h.shard({ t: 'disconnect', connId: c, clientId: 'sub', publishWill: false, qos2In: [] });
    publish(h, 'q', 'm1', 1);
    await settle();
    const s = h.actor.sessions.get('sub')!;
    h.actor.journal.evict(s);
    for (let i = 2; i <= 4; i++) publish(h, 'q', `m${i}`, i);
    await settle();
    expect(answered(h.take())).toEqual([1, 2]);
    expect(s.evicted!.queued).toBe(2);
    expect(h.actor.held!.size).toBe(2);
    h.connect('sub', { cleanStart: false, expiry: 3600 });
    await settle();
    const got = h.take();
    expect(payloads(got)).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(answered(got)).toEqual([3, 4]);
  });

  it('shared subscription: the member parks a copy for a full queue and its owner answers the publisher after it got in', async () => {
    const h = shardHarness({ maxInflight: 1, maxQueuedMessages: 1, hold: HOLD });
    const c = h.connect('m1');
    h.subscribe('m1', c, [{ filter: '$share/g/jobs', qos: 1 }]);
    await settle();
    h.ackRoutes();
    await settle();
    h.take();
    for (let i = 1; i <= 3; i++) publish(h, 'jobs', `j${i}`, i);
    await settle();
    let got = h.take();
    expect(payloads(got)).toEqual(['j1']);
    expect(answered(got)).toEqual([1, 2]);
    h.ack('m1', c, 'puback', pubs(got)[0]!.packetId);
    await settle();
    got = h.take();
    expect(answered(got)).toEqual([3]);
    expect(dropped(h, 'queue_full')).toBe(0);
  });

  it('a shared member whose connection ends gives its parked copies back to the group, which answers their publishers', async () => {
    const h = shardHarness({ maxInflight: 10, maxQueuedMessages: 1, hold: HOLD });
    const c1 = h.connect('m1', { receiveMaximum: 1 });
    h.subscribe('m1', c1, [{ filter: '$share/g/jobs', qos: 1 }]);
    await settle();
    h.ackRoutes();
    await settle();
    h.take();
    for (let i = 1; i <= 3; i++) publish(h, 'jobs', `j${i}`, i);
    await settle();
    expect(answered(h.take())).toEqual([1, 2]);
    // A second member joins; the first one's connection goes away (its session lives on).
    const c2 = h.connect('m2');
    h.subscribe('m2', c2, [{ filter: '$share/g/jobs', qos: 1 }]);
    await settle();
    h.take();
    h.shard({ t: 'disconnect', connId: c1, clientId: 'm1', publishWill: false, qos2In: [], expiry: 3600 });
    await settle();
    const got = h.take();
    expect(answered(got)).toEqual([3]);
    // j1 (unacknowledged), j2 (queued) and j3 (parked) went to m2.
    expect(pubs(got).filter((p) => p.connId === c2).map((p) => Buffer.from(p.msg.payload).toString()).sort()).toEqual(['j1', 'j2', 'j3']);
    expect(h.actor.held!.size).toBe(0);
  });
});
