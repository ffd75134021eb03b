/**
 * MQTT 5 capabilities in the pure channel (config `mqtt`, docs/mqtt5.md): inbound Topic
 * Aliases, the CONNACK properties and their enforcement (Maximum QoS, Retain Available,
 * Wildcard Subscription Available, Subscription Identifiers Available, Server Keep Alive,
 * Response Information, server redirection), the server's Receive Maximum over QoS 1 and
 * QoS 2, and Request Problem Information. Each test is named after the statement it checks
 * (MQTT 5.0 OASIS Standard numbering; a section number where the spec has no statement id).
 */
import { describe, expect, it } from 'vitest';
import type { IConnackPacket, IConnectPacket, ISubscribePacket, Packet } from 'mqtt-packet';
import { handleIn, newChannelState, type ChannelEnv, type ChannelState, type Effect } from '../../../src/channel/index.js';
import { subackReasonString } from '../../../src/channel/problem-info.js';
import type { MqttConfig } from '../../../src/config/schema.js';
import { closeOf, connectPacket, makeEnv as makeChannelEnv, open as openChannel, publish, routes, sent } from './channel-env.js';

function makeEnv(mqtt: Partial<MqttConfig> = {}, over: Partial<ChannelEnv> = {}): ChannelEnv {
  return makeChannelEnv({
    acl: { canPublish: (_c, t) => t !== 'denied', canSubscribe: () => true },
    shardOf: () => 0,
    newClientId: () => 'auto-1',
    mqtt,
    ...over,
  });
}

/** CONNECT -> auth ok -> session ready; returns the state and the CONNACK. */
function open(version: 4 | 5, env: ChannelEnv, over: Partial<IConnectPacket> = {}): { st: ChannelState; connack: IConnackPacket } {
  const { st, fx } = openChannel(version, env, { connect: over });
  return { st, connack: sent(fx)[0] as IConnackPacket };
}

const connected = (version: 4 | 5, env: ChannelEnv, over: Partial<IConnectPacket> = {}) => open(version, env, over).st;

const subReqs = (fx: Effect[]) => {
  const m = fx.find((e) => e.e === 'shard');
  if (m?.e !== 'shard' || m.msg.t !== 'subscribe') throw new Error(`expected a subscribe, got ${JSON.stringify(fx)}`);
  return m.msg.subs;
};

describe('Topic Aliases from the client (section 3.3.2.3.4)', () => {
  it('[MQTT-3.3.2-12] an alias with a Topic Name sets the mapping; the alias alone then stands for that topic', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const first = routes(handleIn(st, publish({ topic: 'sensors/long/name', properties: { topicAlias: 1 } }), env));
    expect(first).toHaveLength(1);
    expect(first[0]!.msg.topic).toBe('sensors/long/name');
    const second = routes(handleIn(st, publish({ topic: '', payload: Buffer.from('y'), properties: { topicAlias: 1 } }), env));
    expect(second).toHaveLength(1);
    expect(second[0]!.msg.topic).toBe('sensors/long/name');
    // The alias is this connection's business: it does not travel with the message.
    expect(second[0]!.msg.props).toBeUndefined();
  });

  it('[MQTT-3.3.2-12] every alias from 1 to the Topic Alias Maximum is accepted, and the map holds at most that many', () => {
    const env = makeEnv({ topicAliasMaximum: 4 });
    const st = connected(5, env);
    for (let a = 1; a <= 4; a++) expect(routes(handleIn(st, publish({ topic: `t/${a}`, properties: { topicAlias: a } }), env))).toHaveLength(1);
    for (let a = 1; a <= 4; a++) {
      const [r] = routes(handleIn(st, publish({ topic: '', properties: { topicAlias: a } }), env));
      expect(r!.msg.topic).toBe(`t/${a}`);
    }
    expect(st.topicAliases!.size).toBe(4);
  });

  it('section 3.3.2.3.4: a PUBLISH with the same alias and another Topic Name replaces the mapping', () => {
    const env = makeEnv();
    const st = connected(5, env);
    handleIn(st, publish({ topic: 'a/1', properties: { topicAlias: 2 } }), env);
    handleIn(st, publish({ topic: 'a/2', properties: { topicAlias: 2 } }), env);
    expect(routes(handleIn(st, publish({ topic: '', properties: { topicAlias: 2 } }), env))[0]!.msg.topic).toBe('a/2');
  });

  it('[MQTT-3.3.2-8] Topic Alias 0 is DISCONNECT 0x94 Topic Alias invalid, with a Reason String', () => {
    const env = makeEnv();
    const fx = handleIn(connected(5, env), publish({ properties: { topicAlias: 0 } }), env);
    expect(routes(fx)).toEqual([]);
    expect(closeOf(fx)).toMatchObject({ reason: 0x94, why: 'topic_alias_invalid', text: 'Topic Alias 0 is not permitted' });
  });

  it('[MQTT-3.3.2-9][MQTT-3.2.2-17] an alias above the Topic Alias Maximum is DISCONNECT 0x94', () => {
    const env = makeEnv({ topicAliasMaximum: 16 });
    const st = connected(5, env);
    expect(routes(handleIn(st, publish({ properties: { topicAlias: 16 } }), env))).toHaveLength(1);
    const fx = handleIn(st, publish({ properties: { topicAlias: 17 } }), env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x94, why: 'topic_alias_invalid' });
    expect(closeOf(fx)!.text).toContain('17');
  });

  it('[MQTT-3.2.2-18] with Topic Alias Maximum 0 any alias is DISCONNECT 0x94', () => {
    const env = makeEnv({ topicAliasMaximum: 0 });
    const { st, connack } = open(5, env);
    expect(connack.properties?.topicAliasMaximum).toBe(0);
    expect(closeOf(handleIn(st, publish({ properties: { topicAlias: 1 } }), env))).toMatchObject({ reason: 0x94 });
  });

  it('section 3.3.2.3.4: an empty Topic Name with an alias never mapped is DISCONNECT 0x82 Protocol Error', () => {
    const env = makeEnv();
    const fx = handleIn(connected(5, env), publish({ topic: '', properties: { topicAlias: 3 } }), env);
    expect(routes(fx)).toEqual([]);
    expect(closeOf(fx)).toMatchObject({ reason: 0x82, why: 'topic_alias_unknown' });
  });

  it('section 3.3.2.1: an empty Topic Name without a Topic Alias is DISCONNECT 0x82 (v5), a closed connection (3.1.1)', () => {
    const env = makeEnv();
    expect(closeOf(handleIn(connected(5, env), publish({ topic: '' }), env))).toMatchObject({ reason: 0x82, why: 'empty_topic_name' });
    const v3 = closeOf(handleIn(connected(4, env), publish({ topic: '' }), env));
    expect(v3).toMatchObject({ why: 'bad_topic_name' });
    expect(v3!.reason).toBeUndefined();
  });

  it('[MQTT-3.3.2-7] mappings are not carried to another connection of the same client', () => {
    const env = makeEnv();
    handleIn(connected(5, env), publish({ topic: 'a/1', properties: { topicAlias: 1 } }), env);
    const again = connected(5, env);
    expect(closeOf(handleIn(again, publish({ topic: '', properties: { topicAlias: 1 } }), env))).toMatchObject({ reason: 0x82, why: 'topic_alias_unknown' });
  });

  it('the ACL judges the topic an alias stands for', () => {
    const env = makeEnv();
    const st = connected(5, env);
    handleIn(st, publish({ topic: 'denied', qos: 1, messageId: 1, properties: { topicAlias: 1 } }), env);
    const fx = handleIn(st, publish({ topic: '', qos: 1, messageId: 2, properties: { topicAlias: 1 } }), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toMatchObject([{ cmd: 'puback', messageId: 2, reasonCode: 0x87 }]);
  });
});

describe('CONNACK properties from config `mqtt`', () => {
  it('[MQTT-3.2.2-9] defaults: Topic Alias Maximum 16, everything available, no Maximum QoS (= 2)', () => {
    const { connack } = open(5, makeEnv({}, { sharedSubscriptions: true }));
    expect(connack.properties).toMatchObject({
      topicAliasMaximum: 16,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      sharedSubscriptionAvailable: true,
      receiveMaximum: 3,
      maximumPacketSize: 1_048_576,
    });
    expect(connack.properties?.maximumQoS).toBeUndefined();
    expect(connack.properties?.serverKeepAlive).toBeUndefined();
    expect(connack.properties?.responseInformation).toBeUndefined();
  });

  it('[MQTT-3.2.2-9] the announced capabilities follow the configuration', () => {
    const env = makeEnv(
      { topicAliasMaximum: 0, maximumQoS: 1, retainAvailable: false, wildcardSubscriptionAvailable: false, subscriptionIdentifiersAvailable: false },
      { sharedSubscriptions: false },
    );
    expect(open(5, env).connack.properties).toMatchObject({
      topicAliasMaximum: 0,
      maximumQoS: 1,
      retainAvailable: false,
      wildcardSubscriptionAvailable: false,
      subscriptionIdentifiersAvailable: false,
      sharedSubscriptionAvailable: false,
    });
    expect(open(5, makeEnv({ maximumQoS: 0 })).connack.properties?.maximumQoS).toBe(0);
  });

  it('[MQTT-3.2.2-21] mqtt.serverKeepAlive is sent and used, within limits.maxKeepAlive', () => {
    let env = makeEnv({ serverKeepAlive: 20 });
    let r = open(5, env, { keepalive: 600 });
    expect(r.connack.properties?.serverKeepAlive).toBe(20);
    expect(r.st.keepalive).toBe(20);
    env = makeEnv({ serverKeepAlive: 120 }, {});
    env.limits.maxKeepAlive = 60;
    r = open(5, env, { keepalive: 10 });
    expect(r.connack.properties?.serverKeepAlive).toBe(60);
    expect(r.st.keepalive).toBe(60);
    // 3.1.1 cannot be told: its own Keep Alive stays.
    expect(open(4, makeEnv({ serverKeepAlive: 20 }), { keepalive: 600 }).st.keepalive).toBe(600);
  });

  it('[MQTT-3.2.2-22] without mqtt.serverKeepAlive the client\'s Keep Alive is used and none is sent', () => {
    const r = open(5, makeEnv(), { keepalive: 45 });
    expect(r.connack.properties?.serverKeepAlive).toBeUndefined();
    expect(r.st.keepalive).toBe(45);
  });

  it('[MQTT-3.1.2-28] Response Information only to a client that asked for it, with {clientid} filled in', () => {
    const env = makeEnv({ responseInformation: 'reply/{clientid}/' });
    expect(open(5, env).connack.properties?.responseInformation).toBeUndefined();
    expect(open(5, env, { properties: { requestResponseInformation: false } }).connack.properties?.responseInformation).toBeUndefined();
    expect(open(5, env, { properties: { requestResponseInformation: true } }).connack.properties?.responseInformation).toBe('reply/c1/');
    // Not configured: none, even when asked.
    expect(open(5, makeEnv(), { properties: { requestResponseInformation: true } }).connack.properties?.responseInformation).toBeUndefined();
  });

  it('section 3.2.2.3.15: Response Information is left out when it would exceed the client\'s Maximum Packet Size', () => {
    const env = makeEnv({ responseInformation: `reply/${'x'.repeat(200)}/{clientid}` });
    const { connack } = open(5, env, { properties: { requestResponseInformation: true, maximumPacketSize: 100 } });
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.responseInformation).toBeUndefined();
  });

  it('section 4.11: with mqtt.serverReference every CONNECT is refused with 0x9C and the Server Reference (3.1.1: 0x03), before authentication', () => {
    const env = makeEnv({ serverReference: 'mqtt2.example.com:1883' });
    let st = newChannelState(1);
    let fx = handleIn(st, connectPacket(5), env);
    expect(fx.some((e) => e.e === 'auth')).toBe(false);
    expect(sent(fx)).toEqual([
      {
        cmd: 'connack',
        sessionPresent: false,
        reasonCode: 0x9c,
        properties: { serverReference: 'mqtt2.example.com:1883', reasonString: 'Use another server: mqtt2.example.com:1883' },
      },
    ]);
    expect(closeOf(fx)).toMatchObject({ why: 'server_reference', counter: 'connections_rejected_total{reason="server_reference"}' });
    expect(st.phase).toBe('closed');
    st = newChannelState(1);
    fx = handleIn(st, connectPacket(4), env);
    expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, returnCode: 3 }]);
  });

  it('section 4.11: mqtt.serverMoved refuses with 0x9D Server moved', () => {
    const env = makeEnv({ serverReference: 'new.example.com', serverMoved: true });
    const fx = handleIn(newChannelState(1), connectPacket(5), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'connack', reasonCode: 0x9d, properties: { serverReference: 'new.example.com' } }]);
  });
});

describe('Maximum QoS and Retain Available', () => {
  it('[MQTT-3.2.2-11] a PUBLISH above Maximum QoS is DISCONNECT 0x9B QoS not supported (section 3.3.1.2)', () => {
    const env = makeEnv({ maximumQoS: 1 });
    const st = connected(5, env);
    expect(routes(handleIn(st, publish({ qos: 1, messageId: 1 }), env))).toHaveLength(1);
    const fx = handleIn(st, publish({ qos: 2, messageId: 2 }), env);
    expect(routes(fx)).toEqual([]);
    expect(closeOf(fx)).toMatchObject({ reason: 0x9b, why: 'qos_not_supported', text: 'QoS 2 is above the Maximum QoS 1' });
    // 3.1.1 has no Maximum QoS to be told about: closed without DISCONNECT.
    const v3 = closeOf(handleIn(connected(4, env), publish({ qos: 2, messageId: 2 }), env));
    expect(v3).toMatchObject({ why: 'qos_not_supported' });
    expect(v3!.reason).toBeUndefined();
  });

  it('[MQTT-3.2.2-12] a will QoS above Maximum QoS is refused with CONNACK 0x9B (3.1.1: 0x05)', () => {
    const env = makeEnv({ maximumQoS: 0 });
    const will = { topic: 'w', payload: Buffer.from('bye'), qos: 1 as const, retain: false };
    let fx = handleIn(newChannelState(1), connectPacket(5, { will }), env);
    expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, reasonCode: 0x9b, properties: { reasonString: 'Will QoS 1 is above the Maximum QoS 0' } }]);
    expect(closeOf(fx)).toMatchObject({ why: 'will_qos_not_supported' });
    fx = handleIn(newChannelState(1), connectPacket(4, { will }), env);
    expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, returnCode: 5 }]);
  });

  it('[MQTT-3.2.2-13] a retained will without Retain Available is refused with CONNACK 0x9A', () => {
    const env = makeEnv({ retainAvailable: false });
    const fx = handleIn(newChannelState(1), connectPacket(5, { will: { topic: 'w', payload: Buffer.from('bye'), qos: 0, retain: true } }), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'connack', reasonCode: 0x9a, properties: { reasonString: expect.stringContaining('Retain Available') } }]);
    // A will without RETAIN is fine.
    const ok = handleIn(newChannelState(1), connectPacket(5, { will: { topic: 'w', payload: Buffer.from('bye'), qos: 0, retain: false } }), env);
    expect(ok[0]).toMatchObject({ e: 'auth' });
  });

  it('[MQTT-3.2.2-14] a retained PUBLISH without Retain Available is DISCONNECT 0x9A Retain not supported', () => {
    const env = makeEnv({ retainAvailable: false });
    const st = connected(5, env);
    expect(routes(handleIn(st, publish({ retain: false }), env))).toHaveLength(1);
    const fx = handleIn(st, publish({ retain: true }), env);
    expect(routes(fx)).toEqual([]);
    expect(closeOf(fx)).toMatchObject({ reason: 0x9a, why: 'retain_not_supported' });
  });
});

describe('SUBSCRIBE and the announced capabilities', () => {
  const sub = (subs: ISubscribePacket['subscriptions'], properties?: ISubscribePacket['properties']): ISubscribePacket => ({
    cmd: 'subscribe',
    messageId: 4,
    subscriptions: subs,
    ...(properties ? { properties } : {}),
  });

  it('[MQTT-3.2.2-10] a Requested QoS above Maximum QoS is accepted and granted the maximum', () => {
    const env = makeEnv({ maximumQoS: 1 });
    const reqs = subReqs(handleIn(connected(5, env), sub([{ topic: 'a', qos: 2 }, { topic: 'b', qos: 1 }, { topic: 'c', qos: 0 }]), env));
    expect(reqs.map((r) => [r.qos, r.code])).toEqual([
      [1, 0],
      [1, 0],
      [0, 0],
    ]);
  });

  it('section 3.2.2.3.11: without Wildcard Subscription Available a filter with "+" or "#" gets 0xA2 (3.1.1: 0x80)', () => {
    const env = makeEnv({ wildcardSubscriptionAvailable: false }, { sharedSubscriptions: true });
    const topics = ['a/+', 'a/#', '#', 'plain/topic', '$share/g/x/+', '$share/g/x/y'];
    const subs = topics.map((topic) => ({ topic, qos: 1 as const }));
    expect(subReqs(handleIn(connected(5, env), sub(subs), env)).map((r) => r.code)).toEqual([0xa2, 0xa2, 0xa2, 0, 0xa2, 0]);
    expect(subReqs(handleIn(connected(4, env), sub(subs), env)).map((r) => r.code)).toEqual([0x80, 0x80, 0x80, 0, 0x80, 0]);
  });

  it('section 3.2.2.3.12: a Subscription Identifier without Subscription Identifiers Available is DISCONNECT 0xA1', () => {
    const env = makeEnv({ subscriptionIdentifiersAvailable: false });
    const fx = handleIn(connected(5, env), sub([{ topic: 'a', qos: 1 }], { subscriptionIdentifier: 7 }), env);
    expect(fx.some((e) => e.e === 'shard')).toBe(false);
    expect(closeOf(fx)).toMatchObject({ reason: 0xa1, why: 'subscription_identifiers_not_supported' });
    // Without one the SUBSCRIBE goes on.
    expect(subReqs(handleIn(connected(5, env), sub([{ topic: 'a', qos: 1 }]), env))).toHaveLength(1);
  });
});

describe('the server\'s Receive Maximum counts QoS 1 and QoS 2 (limits.maxInflight = 3)', () => {
  it('[MQTT-3.3.4-7] held PUBACKs count: one more QoS 1 PUBLISH than the Receive Maximum is DISCONNECT 0x93', () => {
    const env = makeEnv({}, { holdAcks: true });
    const st = connected(5, env);
    for (let id = 1; id <= 3; id++) {
      expect(routes(handleIn(st, publish({ qos: 1, messageId: id }), env))).toHaveLength(1);
      st.acksHeld++; // what the gateway does when it holds the routed publish's PUBACK
    }
    // QoS 0 is not counted.
    expect(routes(handleIn(st, publish({ qos: 0 }), env))).toHaveLength(1);
    const fx = handleIn(st, publish({ qos: 1, messageId: 4 }), env);
    expect(routes(fx)).toEqual([]);
    expect(closeOf(fx)).toMatchObject({ reason: 0x93, why: 'receive_maximum' });
    expect(closeOf(fx)!.text).toContain('Receive Maximum (3)');
  });

  it('[MQTT-3.3.4-7] a written PUBACK frees its place', () => {
    const env = makeEnv({}, { holdAcks: true });
    const st = connected(5, env);
    st.acksHeld = 3;
    expect(closeOf(handleIn(st, publish({ qos: 1, messageId: 9 }), env))).toMatchObject({ reason: 0x93 });
    const st2 = connected(5, env);
    st2.acksHeld = 2;
    expect(routes(handleIn(st2, publish({ qos: 1, messageId: 9 }), env))).toHaveLength(1);
  });

  it('[MQTT-3.3.4-7] QoS 2 counts until PUBREL (PUBCOMP sent), QoS 1 and 2 together', () => {
    const env = makeEnv(); // durability memory: PUBACK at once, the QoS 2 id remembered by the channel
    const st = connected(5, env);
    handleIn(st, publish({ qos: 2, messageId: 1 }), env);
    handleIn(st, publish({ qos: 2, messageId: 2 }), env);
    st.acksHeld = 1; // and one QoS 1 PUBACK not written yet
    expect(closeOf(handleIn(st, publish({ qos: 2, messageId: 3 }), env))).toMatchObject({ reason: 0x93 });
    const st2 = connected(5, env);
    handleIn(st2, publish({ qos: 2, messageId: 1 }), env);
    handleIn(st2, publish({ qos: 2, messageId: 2 }), env);
    handleIn(st2, publish({ qos: 2, messageId: 3 }), env);
    handleIn(st2, { cmd: 'pubrel', messageId: 1 }, env);
    expect(routes(handleIn(st2, publish({ qos: 2, messageId: 4 }), env))).toHaveLength(1);
  });

  it('[MQTT-4.3.3-10] a resent QoS 2 PUBLISH (id awaiting PUBREL) is not a new one: PUBREC, no 0x93', () => {
    const env = makeEnv();
    const st = connected(5, env);
    for (let id = 1; id <= 3; id++) handleIn(st, publish({ qos: 2, messageId: id }), env);
    const fx = handleIn(st, publish({ qos: 2, messageId: 2, dup: true }), env);
    expect(closeOf(fx)).toBeUndefined();
    expect(sent(fx)).toEqual([{ cmd: 'pubrec', messageId: 2 }]);
  });

  it('MQTT 3.1.1 has no Receive Maximum: no limit', () => {
    const env = makeEnv({}, { holdAcks: true });
    const st = connected(4, env);
    st.acksHeld = 50;
    expect(routes(handleIn(st, publish({ qos: 1, messageId: 1 }), env))).toHaveLength(1);
  });
});

describe('Request Problem Information and Reason Strings', () => {
  it('[MQTT-3.1.2-29] Request Problem Information 0: a negative PUBACK/PUBREC has no Reason String', () => {
    const env = makeEnv();
    const quiet = connected(5, env, { properties: { requestProblemInformation: false } });
    expect(quiet.requestProblemInfo).toBe(false);
    expect(sent(handleIn(quiet, publish({ topic: 'denied', qos: 1, messageId: 1 }), env))).toEqual([{ cmd: 'puback', messageId: 1, reasonCode: 0x87 }]);
    expect(sent(handleIn(quiet, publish({ topic: 'denied', qos: 2, messageId: 2 }), env))).toEqual([{ cmd: 'pubrec', messageId: 2, reasonCode: 0x87 }]);
    // The default (absent = 1): the refusal says why.
    const talky = connected(5, env);
    expect(sent(handleIn(talky, publish({ topic: 'denied', qos: 1, messageId: 1 }), env))).toEqual([
      { cmd: 'puback', messageId: 1, reasonCode: 0x87, properties: { reasonString: 'not allowed to publish to this topic' } },
    ]);
  });

  it('[MQTT-3.1.2-29] Request Problem Information 0: SUBACK and UNSUBACK get no Reason String', () => {
    const env = makeEnv();
    const quiet = connected(5, env, { properties: { requestProblemInformation: false } });
    expect(subackReasonString(quiet, [0x87, 0])).toBeUndefined();
    const talky = connected(5, env);
    expect(subackReasonString(talky, [0x87, 1, 0xa2, 0xa2])).toBe('refused: filter 1: Not authorized; filters 3, 4: Wildcard Subscriptions not supported');
    expect(subackReasonString(talky, [0, 1, 2, 0x11])).toBeUndefined(); // nothing refused
    expect(subackReasonString(connected(4, env), [0x80])).toBeUndefined(); // 3.1.1 has no properties
  });

  it('[MQTT-3.9.2-1] the SUBACK Reason String is left out when it would exceed the client\'s Maximum Packet Size', () => {
    const env = makeEnv();
    const st = connected(5, env, { properties: { maximumPacketSize: 40 } });
    expect(subackReasonString(st, [0x87])).toBeUndefined();
    expect(subackReasonString(connected(5, env, { properties: { maximumPacketSize: 60 } }), [0x87])).toBe('refused: filter 1: Not authorized');
  });

  it('[MQTT-3.1.2-29] CONNACK and DISCONNECT may still say why when Request Problem Information is 0', () => {
    const env = makeEnv({ maximumQoS: 1 });
    const fx = handleIn(newChannelState(1), connectPacket(5, { clientId: 'x'.repeat(65), properties: { requestProblemInformation: false } }), env);
    expect(sent(fx)).toMatchObject([{ cmd: 'connack', reasonCode: 0x85, properties: { reasonString: expect.any(String) } }]);
    const st = connected(5, env, { properties: { requestProblemInformation: false } });
    expect(closeOf(handleIn(st, publish({ qos: 2, messageId: 1 }), env))!.text).toBeDefined();
  });

  it('the Maximum Packet Size the client sent is known before a CONNACK refusal (the gateway trims its Reason String to fit)', () => {
    const st = newChannelState(1);
    handleIn(st, connectPacket(5, { clientId: 'x'.repeat(65), properties: { maximumPacketSize: 20 } }), makeEnv());
    expect(st.maxPacketSizeOut).toBe(20);
  });
});
