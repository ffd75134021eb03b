import { describe, it, expect, afterEach, vi } from 'vitest';
import { firstConnId } from '../../../src/gateway/conn-id.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { messageFingerprint } from '../../../src/store/message.js';
import type { GatewayMsg, QoS, WillMessage } from '../../../src/protocol/messages.js';
import {
  cleanups,
  online,
  payloads,
  pubs,
  runCleanups,
  shardHarness as harness,
  tick,
  type ShardHarness as Harness,
} from './shard-harness.js';

afterEach(runCleanups);

describe('ShardActor: connect', () => {
  it('connect is answered with connack (no session present for a new client)', async () => {
    const h = harness();
    const connId = h.connect('c1');
    await tick();
    expect(h.take()).toEqual([{ t: 'connack', connId, sessionPresent: false, qos2In: [] }]);
  });

  it('refuses a new session beyond maxSessions (counted), but still resumes an existing one', async () => {
    const h = harness({ maxSessions: 1 });
    const c1 = h.connect('c1', { cleanStart: false, expiry: 60 });
    await tick();
    h.take();
    const c2 = h.connect('c2');
    await tick();
    expect(h.take()).toEqual([{ t: 'connack', connId: c2, sessionPresent: false, qos2In: [], refused: 'quota' }]);
    expect(h.metrics.get('connections_rejected_total{reason="max_sessions"}')).toBe(1);
    h.shard({ t: 'disconnect', connId: c1, clientId: 'c1', publishWill: false, qos2In: [] });
    const c1b = h.connect('c1', { cleanStart: false, expiry: 60 });
    await tick();
    expect(h.take()).toEqual([{ t: 'connack', connId: c1b, sessionPresent: true, qos2In: [] }]);
  });

  it('answers the gateway the connection came through', async () => {
    const h = harness({ gateways: 3 });
    const connId = h.connect('c1', { gw: 2 });
    await tick();
    expect(h.gw[0]).toEqual([]);
    expect(h.gw[2]).toEqual([{ t: 'connack', connId, sessionPresent: false, qos2In: [] }]);
  });

  it('[MQTT-3.2.2-2] resuming a persistent session reports session present and its QoS 2 ids', async () => {
    const h = harness();
    const c1 = h.connect('c1', { cleanStart: false, expiry: 60 });
    h.shard({ t: 'disconnect', connId: c1, clientId: 'c1', publishWill: false, qos2In: [4, 5] });
    const c2 = h.connect('c1', { cleanStart: false, expiry: 60 });
    await tick();
    expect(h.take()).toEqual([
      { t: 'connack', connId: c1, sessionPresent: false, qos2In: [] },
      { t: 'connack', connId: c2, sessionPresent: true, qos2In: [4, 5] },
    ]);
    h.shard({ t: 'disconnect', connId: c2, clientId: 'c1', publishWill: false, qos2In: [], expiry: 0 });
    await tick();
  });

  it('[MQTT-3.1.2-4] clean start discards the previous session', async () => {
    const h = harness();
    const c1 = await online(h, 'c1', [['a', 1]], { cleanStart: false, expiry: 60 });
    h.shard({ t: 'disconnect', connId: c1, clientId: 'c1', publishWill: false, qos2In: [] });
    const c2 = h.connect('c1', { cleanStart: true });
    h.publish('a', 1);
    await tick();
    const got = h.take();
    expect(got).toContainEqual({ t: 'connack', connId: c2, sessionPresent: false, qos2In: [] });
    expect(pubs(got)).toEqual([]); // the subscription went with the old session
    expect(got).toContainEqual({ t: 'routeDel', shard: 0, filters: ['a'] });
  });
});

describe('ShardActor: subscribe and the route table protocol', () => {
  it('subscribe -> routeAdd to every gateway; suback only after every gateway acknowledged', async () => {
    const h = harness({ gateways: 2 });
    const connId = h.connect('c1');
    await tick();
    h.take(0);
    h.subscribe('c1', connId, [{ filter: 'a/+', qos: 1 }, { filter: 'b', qos: 2 }]);
    await tick();
    expect(h.take(0)).toEqual([{ t: 'routeAdd', shard: 0, filters: ['a/+', 'b'], seq: 1 }]);
    expect(h.take(1)).toEqual([{ t: 'routeAdd', shard: 0, filters: ['a/+', 'b'], seq: 1 }]);
    h.ackRoutes(0);
    await tick();
    expect(h.gw[0]).toEqual([]); // gateway 1 has not acknowledged yet
    h.ackRoutes(1);
    await tick();
    expect(h.take(0)).toEqual([{ t: 'suback', connId, packetId: 1, codes: [1, 2] }]);
    expect(h.gw[1]).toEqual([]);
  });

  it('a filter that already has a route is not announced again; its suback waits behind earlier ones', async () => {
    const h = harness();
    const c1 = h.connect('c1');
    const c2 = h.connect('c2');
    await tick();
    h.take();
    h.subscribe('c1', c1, [{ filter: 'x', qos: 1 }]);
    h.subscribe('c2', c2, [{ filter: 'x', qos: 0 }]);
    await tick();
    expect(h.take()).toEqual([{ t: 'routeAdd', shard: 0, filters: ['x'], seq: 1 }]);
    h.ackRoutes();
    await tick();
    expect(h.take()).toEqual([
      { t: 'suback', connId: c1, packetId: 1, codes: [1] },
      { t: 'suback', connId: c2, packetId: 1, codes: [0] },
    ]);
    // Route known everywhere now: a further subscriber gets its suback at once.
    const c3 = h.connect('c3');
    h.subscribe('c3', c3, [{ filter: 'x', qos: 2 }]);
    await tick();
    expect(h.take()).toEqual([
      { t: 'connack', connId: c3, sessionPresent: false, qos2In: [] },
      { t: 'suback', connId: c3, packetId: 1, codes: [2] },
    ]);
  });

  it('refused requests keep their code; the v5 subscription quota answers 0x97', async () => {
    const h = harness({ maxSubscriptionsPerClient: 1 });
    const c = h.connect('c1');
    h.subscribe('c1', c, [
      { filter: 'a', qos: 1 },
      { filter: 'bad/#/x', qos: 1, code: 0x8f },
      { filter: 'b', qos: 1 },
      { filter: 'a', qos: 2 }, // replaces the existing one [MQTT-3.8.4-3], not a new one
    ]);
    await tick();
    h.ackRoutes();
    await tick();
    const suback = h.take().find((m) => m.t === 'suback');
    expect(suback).toEqual({ t: 'suback', connId: c, packetId: 1, codes: [1, 0x8f, 0x97, 2] });
    expect(h.metrics.get('subscriptions_refused_total{reason="quota"}')).toBe(1);
  });

  it('unsubscribe: unsuback does not overtake a pending suback; the last subscriber sends routeDel', async () => {
    const h = harness();
    const c = h.connect('c1');
    await tick();
    h.take();
    h.subscribe('c1', c, [{ filter: 'a', qos: 1 }]);
    h.shard({ t: 'unsubscribe', connId: c, clientId: 'c1', packetId: 2, filters: ['a', 'nope'] });
    await tick();
    expect(h.take()).toEqual([
      { t: 'routeAdd', shard: 0, filters: ['a'], seq: 1 },
      { t: 'routeDel', shard: 0, filters: ['a'] },
    ]);
    h.ackRoutes();
    await tick();
    expect(h.take()).toEqual([
      { t: 'suback', connId: c, packetId: 1, codes: [1] },
      { t: 'unsuback', connId: c, packetId: 2, codes: [0x00, 0x11] },
    ]);
  });

  it('routeSync answers with a snapshot and counts as an acknowledgement of every route', async () => {
    const h = harness();
    const c = h.connect('c1');
    h.subscribe('c1', c, [{ filter: 'a/#', qos: 1 }]);
    await tick();
    h.take();
    h.shard({ t: 'routeSync', gw: 0 });
    await tick();
    expect(h.take()).toEqual([
      { t: 'routeSnapshot', shard: 0, filters: ['a/#'] },
      { t: 'suback', connId: c, packetId: 1, codes: [1] },
    ]);
  });

  it('retain handling: a retainedRequest goes to the coordinator with the suback (rh 0 always, rh 1 only when new, rh 2 never)', async () => {
    const h = harness();
    const c = h.connect('c1');
    h.subscribe('c1', c, [{ filter: 'a', retainHandling: 0 }, { filter: 'b', retainHandling: 1 }, { filter: 'c', retainHandling: 2 }]);
    await tick();
    expect(h.coord).toEqual([]); // held with the suback
    h.ackRoutes();
    await tick();
    expect(h.coord).toEqual([
      {
        t: 'retainedRequest',
        shard: 0,
        clientId: 'c1',
        connId: c,
        subs: [
          { filter: 'a', opts: { qos: 1, noLocal: false, retainAsPublished: false } },
          { filter: 'b', opts: { qos: 1, noLocal: false, retainAsPublished: false } },
        ],
      },
    ]);
    h.coord.length = 0;
    h.subscribe('c1', c, [{ filter: 'b', retainHandling: 1 }]); // exists now
    await tick();
    expect(h.coord).toEqual([]);
  });
});

describe('ShardActor: delivery', () => {
  it('[MQTT-3.3.5-1] overlapping subscriptions give one delivery at the maximum QoS', async () => {
    const h = harness();
    const c = await online(h, 'c1', [['a/+', 0], ['a/#', 2], ['a/b', 1]]);
    h.publish('a/b', 2, 'm');
    await tick();
    const got = pubs(h.take());
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ connId: c, qos: 2, dup: false, retain: false });
    expect(got[0]!.packetId).toBeGreaterThan(0);
  });

  it('[MQTT-3.3.5-1] delivered QoS is the minimum of the message QoS and the subscription QoS', async () => {
    const h = harness();
    await online(h, 'c1', [['a/+', 1]]);
    h.publish('a/x', 2);
    h.publish('a/y', 0);
    await tick();
    expect(pubs(h.take()).map((p) => [p.msg.topic, p.qos])).toEqual([
      ['a/x', 1],
      ['a/y', 0],
    ]);
  });

  it('[MQTT-3.3.4-3] every matching subscription identifier is delivered', async () => {
    const h = harness();
    const c = h.connect('c1');
    h.subscribe('c1', c, [{ filter: 'a/+' }], 5);
    h.subscribe('c1', c, [{ filter: 'a/b' }], 7);
    await tick();
    h.ackRoutes();
    await tick();
    h.take();
    h.publish('a/b', 1);
    await tick();
    const [p] = pubs(h.take());
    expect([...p!.subIds!].sort()).toEqual([5, 7]);
  });

  it('[MQTT-3.8.3-3] No Local: not delivered back to the publishing client', async () => {
    const h = harness();
    const c1 = h.connect('c1');
    h.subscribe('c1', c1, [{ filter: 'n', noLocal: true }]);
    await tick();
    h.ackRoutes();
    await tick();
    const c2 = await online(h, 'c2', [['n', 1]]);
    h.publish('n', 1, 'from c1', { origin: 'c1' });
    h.publish('n', 1, 'from c2', { origin: 'c2' });
    await tick();
    expect(pubs(h.take()).map((p) => [p.connId, Buffer.from(p.msg.payload).toString()])).toEqual([
      [c2, 'from c1'], // not back to c1 (No Local)
      [c1, 'from c2'],
      [c2, 'from c2'], // c2 did not ask for No Local
    ]);
  });

  it('[MQTT-3.3.1-12] retain is cleared on live delivery unless Retain As Published', async () => {
    const h = harness();
    const c = h.connect('c1');
    h.subscribe('c1', c, [{ filter: 'r' }, { filter: 'rap/+', retainAsPublished: true }]);
    await tick();
    h.ackRoutes();
    await tick();
    h.take();
    h.publish('r', 1, 'x', { retain: true });
    h.publish('rap/1', 1, 'y', { retain: true });
    await tick();
    expect(pubs(h.take()).map((p) => [p.msg.topic, p.retain])).toEqual([
      ['r', false],
      ['rap/1', true],
    ]);
  });

  it('the inflight window holds QoS 1 beyond min(maxInflight, receiveMaximum) in the queue; acks pump it in order', async () => {
    const h = harness({ maxInflight: 10 });
    const c = await online(h, 'c1', [['q', 1]], { receiveMaximum: 2 });
    for (let i = 0; i < 5; i++) h.publish('q', 1, `m${i}`);
    await tick();
    const first = pubs(h.take());
    expect(first.map((p) => Buffer.from(p.msg.payload).toString())).toEqual(['m0', 'm1']);
    h.shard({ t: 'ack', connId: c, clientId: 'c1', kind: 'puback', packetId: first[0]!.packetId });
    await tick();
    expect(payloads(h.take())).toEqual(['m2']);
    h.shard({ t: 'ack', connId: c, clientId: 'c1', kind: 'puback', packetId: first[1]!.packetId });
    await tick();
    expect(payloads(h.take())).toEqual(['m3']);
  });

  it('QoS 2 outbound: PUBREC -> pubrel, PUBCOMP frees the slot', async () => {
    const h = harness({ maxInflight: 1 });
    const c = await online(h, 'c1', [['q', 2]]);
    h.publish('q', 2, 'a');
    h.publish('q', 2, 'b');
    await tick();
    const [p] = pubs(h.take());
    expect(p).toMatchObject({ qos: 2 });
    h.shard({ t: 'ack', connId: c, clientId: 'c1', kind: 'pubrec', packetId: p!.packetId });
    await tick();
    expect(h.take()).toEqual([{ t: 'deliver', connId: c, out: [{ k: 'pubrel', packetId: p!.packetId }] }]);
    h.shard({ t: 'ack', connId: c, clientId: 'c1', kind: 'pubcomp', packetId: p!.packetId });
    await tick();
    expect(payloads(h.take())).toEqual(['b']);
  });

  it('expired messages are not delivered', async () => {
    const h = harness();
    await online(h, 'c1', [['e', 1]]);
    h.publish('e', 1, 'old', { props: { expiresAt: Date.now() - 1 } });
    await tick();
    expect(pubs(h.take())).toEqual([]);
    expect(h.metrics.get('messages_dropped_total{reason="expired"}')).toBe(1);
  });
});

describe('ShardActor: offline sessions and resume', () => {
  async function persistent(h: Harness, qos: QoS = 1): Promise<number> {
    const c = await online(h, 'p1', [['t/#', qos]], { cleanStart: false, expiry: 3600 });
    h.shard({ t: 'disconnect', connId: c, clientId: 'p1', publishWill: false, qos2In: [] });
    await tick();
    return c;
  }

  /** Reconnect and end the session, so no expiry timer is left behind. */
  function endSession(h: Harness, connId: number): void {
    h.shard({ t: 'disconnect', connId, clientId: 'p1', publishWill: false, qos2In: [], expiry: 0 });
  }

  it('queues QoS 1 and drops QoS 0 while offline; resume sends the queue in order', async () => {
    const h = harness();
    await persistent(h);
    h.publish('t/1', 1, 'a');
    h.publish('t/2', 0, 'dropped');
    h.publish('t/3', 1, 'b');
    h.publish('t/4', 2, 'c'); // QoS 2 message, QoS 1 subscription
    await tick();
    expect(h.take()).toEqual([]);
    expect(h.metrics.get('messages_dropped_total{reason="offline_qos0"}')).toBe(1);
    const c2 = h.connect('p1', { cleanStart: false, expiry: 3600 });
    await tick();
    const got = h.take();
    expect(got[0]).toEqual({ t: 'connack', connId: c2, sessionPresent: true, qos2In: [] });
    const sentPubs = pubs(got);
    expect(sentPubs.map((p) => Buffer.from(p.msg.payload).toString())).toEqual(['a', 'b', 'c']);
    expect(sentPubs.map((p) => p.qos)).toEqual([1, 1, 1]);
    expect(sentPubs.every((p) => !p.dup && p.connId === c2)).toBe(true);
    expect(new Set(sentPubs.map((p) => p.packetId)).size).toBe(3);
    endSession(h, c2);
  });

  it('[MQTT-4.4.0-1] unacknowledged messages are resent in order with DUP set, pubrel state as PUBREL, before the queue', async () => {
    const h = harness({ maxInflight: 3 });
    const c1 = await online(h, 'p1', [['t/#', 2]], { cleanStart: false, expiry: 3600 });
    h.publish('t/a', 1, 'a');
    h.publish('t/b', 2, 'b');
    h.publish('t/c', 1, 'c');
    h.publish('t/d', 1, 'd'); // beyond the window: queued
    await tick();
    const first = pubs(h.take());
    expect(first.map((p) => Buffer.from(p.msg.payload).toString())).toEqual(['a', 'b', 'c']);
    const [a, b, c] = first;
    // 'b' (QoS 2) got PUBREC: the broker sent PUBREL and waits for PUBCOMP.
    h.shard({ t: 'ack', connId: c1, clientId: 'p1', kind: 'pubrec', packetId: b!.packetId });
    await tick();
    h.take();
    // Connection lost.
    h.shard({ t: 'disconnect', connId: c1, clientId: 'p1', publishWill: true, qos2In: [] });
    const c2 = h.connect('p1', { cleanStart: false, expiry: 3600 });
    await tick();
    const got = h.take();
    expect(got[0]).toMatchObject({ t: 'connack', sessionPresent: true });
    expect(got.slice(1)).toEqual([
      { t: 'deliver', connId: c2, out: [{ k: 'pub', msg: a!.msg, qos: 1, packetId: a!.packetId, dup: true, retain: false, subIds: undefined }] },
      { t: 'deliver', connId: c2, out: [{ k: 'pubrel', packetId: b!.packetId }] },
      { t: 'deliver', connId: c2, out: [{ k: 'pub', msg: c!.msg, qos: 1, packetId: c!.packetId, dup: true, retain: false, subIds: undefined }] },
    ]);
    // 'd' follows once the window has room.
    h.shard({ t: 'ack', connId: c2, clientId: 'p1', kind: 'puback', packetId: a!.packetId });
    await tick();
    const next = pubs(h.take());
    expect(next.map((p) => [Buffer.from(p.msg.payload).toString(), p.dup])).toEqual([['d', false]]);
    endSession(h, c2);
  });

  it('queue_full is counted when maxQueuedMessages is reached', async () => {
    const h = harness({ maxQueuedMessages: 2 });
    await persistent(h);
    for (let i = 0; i < 5; i++) h.publish('t/x', 1, `m${i}`);
    await tick();
    expect(h.metrics.get('messages_dropped_total{reason="queue_full"}')).toBe(3);
    const c2 = h.connect('p1', { cleanStart: false, expiry: 3600 });
    await tick();
    expect(payloads(h.take())).toEqual(['m0', 'm1']);
    endSession(h, c2);
  });

  it('queue_full also applies to an online session beyond its window', async () => {
    const h = harness({ maxInflight: 1, maxQueuedMessages: 1 });
    await online(h, 'c1', [['q', 1]]);
    for (let i = 0; i < 4; i++) h.publish('q', 1, `m${i}`);
    await tick();
    expect(payloads(h.take())).toEqual(['m0']);
    expect(h.metrics.get('messages_dropped_total{reason="queue_full"}')).toBe(2);
  });

  it('a session with expiry 0 is discarded at disconnect', async () => {
    const h = harness();
    const c = await online(h, 'c1', [['z', 1]]);
    h.shard({ t: 'disconnect', connId: c, clientId: 'c1', publishWill: false, qos2In: [] });
    await tick();
    expect(h.take()).toEqual([{ t: 'routeDel', shard: 0, filters: ['z'] }]);
    h.connect('c1', { cleanStart: false });
    await tick();
    expect(h.take()[0]).toMatchObject({ t: 'connack', sessionPresent: false });
  });

  it('an offline session expires after its interval (fake timers)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const h = harness();
    const c = await online(h, 'p1', [['t', 1]], { cleanStart: false, expiry: 10 });
    h.shard({ t: 'disconnect', connId: c, clientId: 'p1', publishWill: false, qos2In: [] });
    await tick();
    vi.advanceTimersByTime(9_000);
    expect(h.metrics.get('sessions_expired_total')).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(h.metrics.get('sessions_expired_total')).toBe(1);
    h.connect('p1', { cleanStart: false });
    await tick();
    expect(h.take()).toEqual([
      { t: 'routeDel', shard: 0, filters: ['t'] },
      expect.objectContaining({ t: 'connack', sessionPresent: false }),
    ]);
  });

  // Regression (fixed in src/session/shard-actor.ts, detached()/onDisconnect): the expiry timer is
  // `setTimeout(..., s.expiry * 1000)`. Node clamps any delay above 2^31-1 ms (~24.8 days)
  // to 1 ms (TimeoutOverflowWarning), so a session whose expiry is between 2,147,484 s and
  // 0xFFFFFFFE s is discarded ~immediately after disconnect instead of after its interval.
  // The config allows limits.maxSessionExpiryInterval up to 4,294,967,295, and v5 clients
  // may ask for any value up to that cap. The same overflow hits the will timer
  // (Math.min(will.delay, expiry) * 1000).
  it('a session with a 30-day expiry survives its disconnect (setTimeout overflow)', async () => {
    const h = harness();
    const c = await online(h, 'p1', [['t', 1]], { cleanStart: false, expiry: 30 * 24 * 3600 });
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    cleanups.push(() => warn.mockRestore());
    h.shard({ t: 'disconnect', connId: c, clientId: 'p1', publishWill: false, qos2In: [] });
    await tick();
    await new Promise((r) => setTimeout(r, 30));
    expect(h.metrics.get('sessions_expired_total')).toBe(0);
    const c2 = h.connect('p1', { cleanStart: false, expiry: 0 });
    await tick();
    expect(h.take()).toContainEqual({ t: 'connack', connId: c2, sessionPresent: true, qos2In: [] });
  });
});

describe('ShardActor: takeover and wills', () => {
  const will = (topic: string, delay = 0): WillMessage => ({
    msg: { topic, payload: Buffer.from('gone'), qos: 1, retain: false, origin: 'c1' },
    delay,
  });

  it('[MQTT-3.1.4-3] a second connection with the same client id kicks the first with 0x8E', async () => {
    const h = harness({ gateways: 2 });
    const a = await online(h, 'c1', [['t', 1]], { gw: 0, cleanStart: false, expiry: 60 });
    const b = h.connect('c1', { gw: 1, cleanStart: false, expiry: 60 });
    await tick();
    expect(h.take(0)).toEqual([
      { t: 'kick', connId: a, clientId: 'c1', reason: 0x8e, message: 'session taken over by another connection' },
    ]);
    // The new connection waits until the old gateway confirms the kick.
    expect(h.take(1)).toEqual([]);
    h.shard({ t: 'kicked', connId: a, clientId: 'c1' });
    await tick();
    expect(h.take(1)).toEqual([{ t: 'connack', connId: b, sessionPresent: true, qos2In: [] }]);
    expect(h.metrics.get('session_takeovers_total')).toBe(1);
    // The old connection's late disconnect does not detach the new one.
    h.shard({ t: 'disconnect', connId: a, clientId: 'c1', publishWill: false, qos2In: [] });
    h.publish('t', 1, 'still here');
    await tick();
    expect(pubs(h.take(1)).map((p) => p.connId)).toEqual([b]);
    expect(h.take(0)).toEqual([]);
    h.shard({ t: 'disconnect', connId: b, clientId: 'c1', publishWill: false, qos2In: [], expiry: 0 });
  });

  it('takeover publishes the old connection\'s will (delay 0) to subscribers', async () => {
    const h = harness();
    await online(h, 'watcher', [['status/#', 1]]);
    h.connect('c1', { will: will('status/c1') });
    await tick();
    const old = h.take().find((m) => m.t === 'connack')!.connId;
    h.connect('c1', { cleanStart: false });
    await tick();
    h.shard({ t: 'kicked', connId: old, clientId: 'c1' });
    await tick();
    await tick();
    expect(h.metrics.get('wills_published_total')).toBe(1);
    expect(payloads(h.take())).toEqual(['gone']);
  });

  it('a normal DISCONNECT that reaches the shard after the takeover request but before the kick confirmation: no will, new expiry kept', async () => {
    const h = harness({ gateways: 2 });
    await online(h, 'watcher', [['status/#', 1]]);
    const a = await online(h, 'c1', [], { gw: 0, cleanStart: false, expiry: 60, will: will('status/c1') });
    h.take(0);
    const b = h.connect('c1', { gw: 1, cleanStart: false, expiry: 60 });
    await tick();
    // Gateway 0 had already handled the client's DISCONNECT (expiry changed to 0) when the
    // kick arrived: FIFO per link puts the disconnect before the confirmation.
    h.shard({ t: 'disconnect', connId: a, clientId: 'c1', publishWill: false, qos2In: [], expiry: 0 });
    h.shard({ t: 'kicked', connId: a, clientId: 'c1' });
    await tick();
    await tick();
    expect(h.metrics.get('wills_published_total')).toBe(0);
    // Expiry 0 ended the old session at its DISCONNECT, so the new connection starts fresh.
    expect(h.take(1)).toContainEqual({ t: 'connack', connId: b, sessionPresent: false, qos2In: [] });
  });

  it('v5 DISCONNECT 0x04 (publishWill) publishes the will; a normal one discards it [MQTT-3.14.4-3]', async () => {
    const h = harness();
    await online(h, 'watcher', [['status/#', 1]]);
    const c1 = h.connect('c1', { will: will('status/c1') });
    const c2 = h.connect('c2', { will: { ...will('status/c2') } });
    h.shard({ t: 'disconnect', connId: c1, clientId: 'c1', publishWill: true, qos2In: [] });
    h.shard({ t: 'disconnect', connId: c2, clientId: 'c2', publishWill: false, qos2In: [] });
    await tick();
    await tick();
    expect(pubs(h.take()).map((p) => p.msg.topic)).toEqual(['status/c1']);
  });

  it('a retained will also goes to the coordinator', async () => {
    const h = harness();
    const c1 = h.connect('c1', { will: { msg: { ...will('w').msg, retain: true }, delay: 0 } });
    h.shard({ t: 'disconnect', connId: c1, clientId: 'c1', publishWill: true, qos2In: [] });
    await tick();
    expect(h.coord).toEqual([{ t: 'retain', msg: expect.objectContaining({ topic: 'w', retain: true }) }]);
  });

  it('[MQTT-3.1.3-9] a reconnect before the will delay cancels the will', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const h = harness();
    await online(h, 'watcher', [['status/#', 1]]);
    const c1 = h.connect('c1', { cleanStart: false, expiry: 100, will: will('status/c1', 5) });
    h.shard({ t: 'disconnect', connId: c1, clientId: 'c1', publishWill: true, qos2In: [] });
    await tick();
    vi.advanceTimersByTime(4_000);
    const c2 = h.connect('c1', { cleanStart: false, expiry: 100 });
    await tick();
    vi.advanceTimersByTime(10_000);
    await tick();
    expect(h.metrics.get('wills_published_total')).toBe(0);
    h.shard({ t: 'disconnect', connId: c2, clientId: 'c1', publishWill: false, qos2In: [], expiry: 0 });
  });

  it('a delayed will is published when the delay runs out', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const h = harness();
    await online(h, 'watcher', [['status/#', 1]]);
    const c1 = h.connect('c1', { cleanStart: false, expiry: 100, will: will('status/c1', 5) });
    h.shard({ t: 'disconnect', connId: c1, clientId: 'c1', publishWill: true, qos2In: [] });
    await tick();
    vi.advanceTimersByTime(5_000);
    await tick();
    expect(h.metrics.get('wills_published_total')).toBe(1);
    expect(payloads(h.take())).toEqual(['gone']);
    vi.advanceTimersByTime(100_000); // let the session expire too
  });

  // Regression (fixed in src/session/shard-actor.ts, onConnect): when an *offline* session still has a
  // delayed will pending and the client reconnects with Clean Start = 1, `destroy()`
  // clears the will timer and the will is lost. The session ends before the will delay,
  // so the will must be published then (MQTT 5.0 §3.1.3.2.2: "until the Will Delay
  // Interval has passed or the Session ends, whichever happens first"); the takeover
  // branch of the same function already publishes the will when cleanStart is set, but
  // only for a session that is still bound to a connection.
  it('a clean-start reconnect to an offline session with a pending delayed will publishes the will', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const h = harness();
    await online(h, 'watcher', [['status/#', 1]]);
    const c1 = h.connect('c1', { cleanStart: false, expiry: 100, will: will('status/c1', 30) });
    h.shard({ t: 'disconnect', connId: c1, clientId: 'c1', publishWill: true, qos2In: [] });
    await tick();
    h.connect('c1', { cleanStart: true });
    await tick();
    await tick();
    expect(h.metrics.get('wills_published_total')).toBe(1);
  });

  it('gatewayDown detaches every session of that gateway and publishes their wills', async () => {
    const h = harness({ gateways: 2 });
    await online(h, 'watcher', [['status/#', 1]], { gw: 1 });
    h.connect('c1', { gw: 0, will: will('status/c1') });
    await tick();
    h.shard({ t: 'gatewayDown', gw: 0, before: firstConnId(1, 0) });
    await tick();
    await tick();
    expect(pubs(h.take(1)).map((p) => p.msg.topic)).toEqual(['status/c1']);
  });

  it('gatewayDown leaves alone a connection of the next generation that got there first', async () => {
    const h = harness({ gateways: 2 });
    await online(h, 'watcher', [['status/#', 1]], { gw: 1 });
    // A client reconnected through the restarted gateway 0 before gatewayDown arrived.
    const fresh = h.connect('c1', { gw: 0, connId: firstConnId(1, 0) + 64, will: will('status/c1') });
    await tick();
    h.shard({ t: 'gatewayDown', gw: 0, before: firstConnId(1, 0) });
    await tick();
    await tick();
    expect(h.metrics.get('wills_published_total')).toBe(0);
    h.publish('status/x', 1);
    await tick();
    expect(h.take(0).some((m) => m.t === 'connack' && m.connId === fresh)).toBe(true);
  });
});

describe('ShardActor: inbound QoS 2 resend check (dedup)', () => {
  /** A QoS 2 PUBLISH of publisher `origin` with packet id `packetId`, as a gateway routes it (durability sync/async). */
  const qos2 = (h: Harness, topic: string, payload: string, origin: string, packetId: number, part = 0): void =>
    h.shard({ t: 'publish', msg: { topic, payload: Buffer.from(payload), qos: 2, retain: false, origin }, dedup: { packetId, part } });

  it('a resend (same key, same topic and payload) is dropped; the same key with other content is delivered', async () => {
    const store = new MemoryStore();
    const h = harness({ store });
    await online(h, 's1', [['t/#', 2]]);
    qos2(h, 't/a', 'one', 'pub', 9);
    qos2(h, 't/a', 'one', 'pub', 9); // resend
    qos2(h, 't/a', 'two', 'pub', 9); // new payload under the same id
    qos2(h, 't/b', 'two', 'pub', 9); // new topic under the same id
    qos2(h, 't/b', 'two', 'pub', 9); // resend of that one
    await tick();
    expect(payloads(h.take())).toEqual(['one', 'two', 'two']);
    expect(h.metrics.get('messages_duplicate_dropped_total')).toBe(2);
    await tick();
    // One entry per key, carrying the fingerprint of the newest message.
    expect(store.loadShard().dedup).toEqual([{ key: ['pub', 9, 0], fp: messageFingerprint('t/b', Buffer.from('two')), at: expect.any(Number) }]);
  });

  it('the offline sweep purges entries older than dedupMaxAgeMs: a resend after that is delivered again', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    vi.setSystemTime(1_767_225_600_000);
    const store = new MemoryStore();
    // The sweep runs every evictAfterMs (at least 100 ms, at most 5 s).
    const h = harness({ store, evictAfterMs: 1000, dedupMaxAgeMs: 10_000 });
    await online(h, 's1', [['t', 2]]);
    qos2(h, 't', 'm', 'pub', 3);
    await tick();
    expect(payloads(h.take())).toEqual(['m']);
    await tick();
    expect(store.loadShard().dedup.map((e) => e.at)).toEqual([1_767_225_600_000]);

    vi.advanceTimersByTime(9_000); // nine sweeps, the entry is 9 s old: kept
    qos2(h, 't', 'm', 'pub', 3);
    await tick();
    expect(payloads(h.take())).toEqual([]);
    expect(h.metrics.get('messages_duplicate_dropped_total')).toBe(1);
    expect(store.loadShard().dedup).toHaveLength(1);

    vi.advanceTimersByTime(2_000); // 11 s old at the next sweeps: purged
    await tick();
    expect(store.loadShard().dedup).toEqual([]);
    qos2(h, 't', 'm', 'pub', 3);
    await tick();
    expect(payloads(h.take())).toEqual(['m']);
    expect(h.metrics.get('messages_duplicate_dropped_total')).toBe(1);
    // Taken in again, with the time of now.
    await tick();
    expect(store.loadShard().dedup.map((e) => e.at)).toEqual([1_767_225_611_000]);
  });
});

describe('ShardActor: metrics', () => {
  it('collectMetrics reports sessions, subscriptions, queued and inflight to the coordinator', async () => {
    const h = harness({ maxInflight: 1 });
    await online(h, 'c1', [['a', 1], ['b', 1]]);
    h.publish('a', 1);
    h.publish('a', 1);
    h.shard({ t: 'collectMetrics', reqId: 7 });
    await tick();
    const report = h.coord.find((m) => m.t === 'metricsReport');
    expect(report).toMatchObject({
      t: 'metricsReport',
      reqId: 7,
      snapshot: {
        thread: 'shard0',
        gauges: {
          sessions: 1,
          sessions_online: 1,
          subscriptions: 2,
          messages_inflight: 1,
          messages_queued: 1,
          // A clean session (expiry 0) writes nothing to the store.
          store_bytes: 0,
          store_entries: 0,
        },
      },
    });
  });
});

describe('ShardActor: fan-out grouping', () => {
  it('one publish to several sessions on one gateway becomes one deliverGroup carrying the message once', async () => {
    const h = harness();
    const a = await online(h, 'a', [['f', 0]]);
    const b = await online(h, 'b', [['f', 1]]);
    h.publish('f', 1, 'x');
    await tick();
    const out = h.take();
    const groups = out.filter((m) => m.t === 'deliverGroup');
    expect(groups).toHaveLength(1);
    const g = groups[0] as Extract<GatewayMsg, { t: 'deliverGroup' }>;
    expect(g.items.map((i) => [i.connId, i.qos])).toEqual([
      [a, 0],
      [b, 1],
    ]);
    expect(out.filter((m) => m.t === 'deliver')).toEqual([]);
  });
});

describe('ShardActor: flow control towards publishers', () => {
  it('a publisher whose message overflows a queue gets one throttle notice per pause; broker-made messages none', async () => {
    const h = harness({ maxInflight: 1, maxQueuedMessages: 1 });
    await online(h, 'c1', [['q', 1]]);
    const publisher = 4242 * 64; // a connection id of gateway 0
    for (let i = 0; i < 5; i++) h.publish('q', 1, `m${i}`, { originConn: publisher });
    h.publish('q', 1, 'will');
    await tick();
    const throttles = h.take().filter((m) => m.t === 'throttle');
    expect(throttles).toEqual([{ t: 'throttle', connId: publisher, ms: expect.any(Number) }]);
    expect(h.metrics.get('messages_dropped_total{reason="queue_full"}')).toBe(4);
  });
});
