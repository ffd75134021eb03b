/**
 * v5 properties as mqtt-packet's parser leaves them (src/channel/properties.ts): a repeated
 * property becomes an array, a truncated value null / -1 / false. Both are refused before
 * they can reach a shard (found by test/integration/34-fuzz.test.ts: a SUBSCRIBE with its
 * Subscription Identifier twice made every delivery to that client fail to encode, and the
 * gateway lost the whole delivery batch with it).
 *
 * The packets are raw bytes through the real parser, as the gateway sees them.
 */
import { describe, it, expect } from 'vitest';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { handleIn, newChannelState, type ChannelEnv, type ChannelState, type Effect } from '../../../src/channel/index.js';
import { propertyError, validSubscriptionId } from '../../../src/channel/properties.js';
import { packet, properties, str } from '../../helpers/packets.js';
import { closeOf, connectedState, makeEnv } from './channel-env.js';

const env: ChannelEnv = makeEnv({ shardOf: () => 0, newClientId: () => 'auto-1', limits: { maxInflight: 10 } });

/** Parses one v5 packet from its bytes with mqtt-packet, as the gateway does. */
function parse(bytes: Buffer): Packet {
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  const out: Packet[] = [];
  parser.on('packet', (p: Packet) => out.push(p));
  parser.on('error', (err: Error) => {
    throw err;
  });
  parser.parse(bytes);
  expect(out).toHaveLength(1);
  return out[0]!;
}

/** SUBSCRIBE, packet id 1, with `props`, filters a/+ (QoS 1) and a/# (QoS 0). */
const subscribeWith = (props: Buffer): Buffer => packet(0x82, [0, 1, ...props, ...str('a/+'), 1, ...str('a/#'), 0]);
/** PUBLISH QoS 1 id 7 on a/b with `props`, payload "x". */
const publishWith = (props: Buffer): Buffer => packet(0x32, [...str('a/b'), 0, 7, ...props, 0x78]);

const connected = (): ChannelState => connectedState(5, env, { connect: { keepalive: 0 } });

const toShard = (fx: Effect[]) => fx.find((e): e is Extract<Effect, { e: 'shard' }> => e.e === 'shard');

describe('channel: repeated and truncated v5 properties', () => {
  it('mqtt-packet parses a repeated Subscription Identifier as an array (what used to reach the shard)', () => {
    const p = parse(subscribeWith(properties([0x0b, 2], [0x0b, 2])));
    expect((p as { properties?: unknown }).properties).toEqual({ subscriptionIdentifier: [2, 2] });
  });

  it('a SUBSCRIBE with its Subscription Identifier twice is a Protocol Error (DISCONNECT 0x82), nothing reaches the shard', () => {
    const fx = handleIn(connected(), parse(subscribeWith(properties([0x0b, 2], [0x0b, 2]))), env);
    expect(closeOf(fx)).toEqual({ e: 'close', reason: 0x82, why: 'duplicate_property', counter: 'protocol_errors_total{reason="duplicate_property"}' });
    expect(toShard(fx)).toBeUndefined();
  });

  it('one Subscription Identifier for several filters is fine: the shard gets it as a number', () => {
    const fx = handleIn(connected(), parse(subscribeWith(properties([0x0b, 2]))), env);
    expect(closeOf(fx)).toBeUndefined();
    expect(toShard(fx)?.msg).toMatchObject({ t: 'subscribe', subId: 2, subs: [{ filter: 'a/+' }, { filter: 'a/#' }] });
  });

  it('[MQTT-3.8.2.1.2] Subscription Identifier 0 is a Protocol Error', () => {
    const fx = handleIn(connected(), parse(subscribeWith(properties([0x0b, 0]))), env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x82, why: 'bad_subscription_identifier' });
  });

  it('[MQTT-3.3.4-6] a client PUBLISH with a Subscription Identifier is a Protocol Error', () => {
    const fx = handleIn(connected(), parse(publishWith(properties([0x0b, 5]))), env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x82, why: 'subscription_identifier_in_publish' });
  });

  it('a PUBLISH with Content Type twice is a Protocol Error, not routed', () => {
    const ct = [0x03, ...str('a')];
    const fx = handleIn(connected(), parse(publishWith(properties(ct, ct))), env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x82, why: 'duplicate_property' });
    expect(fx.some((e) => e.e === 'route')).toBe(false);
  });

  it('User Property may repeat (same name twice is a list)', () => {
    const up = [0x26, ...str('k'), ...str('v')];
    const fx = handleIn(connected(), parse(publishWith(properties(up, up))), env);
    expect(closeOf(fx)).toBeUndefined();
    const route = fx.find((e): e is Extract<Effect, { e: 'route' }> => e.e === 'route');
    expect(route?.msg.props?.userProperties).toEqual({ k: ['v', 'v'] });
  });

  it('a User Property cut short by the end of the properties is Malformed (0x81), not routed with a null value', () => {
    // Property length 4: id, then a name of 1 byte, then a value whose length runs past the packet.
    const bytes = packet(0x32, [...str('a/b'), 0, 7, 4, 0x26, 0, 1, 0x6b]);
    const p = parse(bytes);
    expect((p as { properties?: { userProperties?: unknown } }).properties?.userProperties).toEqual({ k: null });
    const fx = handleIn(connected(), p, env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x81, why: 'malformed_property' });
    expect(fx.some((e) => e.e === 'route')).toBe(false);
  });

  it('a CONNECT with Session Expiry Interval twice is refused with CONNACK 0x82', () => {
    const sei = [0x11, 0, 0, 0, 60];
    const body = [...str('MQTT'), 5, 0x02, 0, 0, ...properties(sei, sei), ...str('c1')];
    const st = newChannelState(1);
    const fx = handleIn(st, parse(packet(0x10, body)), env);
    expect(fx).toEqual([
      { e: 'send', packet: { cmd: 'connack', sessionPresent: false, reasonCode: 0x82, properties: { reasonString: expect.any(String) } } },
      { e: 'close', why: 'duplicate_property', counter: 'protocol_errors_total{reason="duplicate_property"}' },
    ]);
  });

  it('a CONNECT whose will properties repeat a property is refused too', () => {
    const ct = [0x03, ...str('t')];
    // flags: clean start + will (QoS 0)
    const body = [...str('MQTT'), 5, 0x06, 0, 0, ...properties(), ...str('c1'), ...properties(ct, ct), ...str('w/t'), ...str('bye')];
    const fx = handleIn(newChannelState(1), parse(packet(0x10, body)), env);
    expect(closeOf(fx)).toMatchObject({ why: 'duplicate_property' });
  });

  it('propertyError: sentinels the parser leaves for truncated values', () => {
    expect(propertyError(undefined)).toBeUndefined();
    expect(propertyError({ contentType: 'a', userProperties: { k: 'v', l: ['1', '2'] }, payloadFormatIndicator: false })).toBeUndefined();
    expect(propertyError({ correlationData: null })).toMatchObject({ why: 'malformed_property' });
    expect(propertyError({ messageExpiryInterval: -1 })).toMatchObject({ why: 'malformed_property' });
    expect(propertyError({ subscriptionIdentifier: false })).toMatchObject({ why: 'malformed_property' });
    expect(propertyError({ userProperties: { k: ['v', null] } })).toMatchObject({ why: 'malformed_property' });
    expect(propertyError({ topicAlias: [1, 2] })).toMatchObject({ reason: 0x82, why: 'duplicate_property' });
    expect([0, 1, 268_435_455, 268_435_456, 1.5, [2, 2], '2'].map(validSubscriptionId)).toEqual([false, true, true, false, false, false, false]);
  });
});
